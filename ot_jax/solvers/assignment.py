"""Linear assignment: the cheapest injection of rows into columns.

Given a cost matrix ``C: [n, m]`` with ``n <= m``, find ``sigma`` (distinct
columns, one per row) minimising ``sum_i C[i, sigma(i)]``. Two solvers in pure
JAX (``jit``, ``vmap``, any backend) and one on the host:

- ``method="auction"``: Bertsekas' auction (1981) in the parallel (Jacobi) form
  with epsilon-scaling, on the benefit ``A = -C``:

  * Forward rounds: every candidate row ``i`` at once computes its best column
    ``j* = argmax_k (A_ik - p_k)`` and the second-best value, and bids
    ``p_j* + (best - second) + eps``; each column takes its highest bid (ties:
    the lowest row) and evicts its previous owner. Among tied best columns a row
    starts looking at column ``i`` (cyclically), so rows with identical ties
    (integer costs) do not all bid for the same column.
  * Compaction: the candidates of the next round are the losers plus the rows
    evicted by the winners, so their number never grows within a phase. They
    are kept in a queue and a ``lax.switch`` picks the smallest of a few static
    chunk sizes (``n, n/16, n/256, ..., 2``; just ``n`` when ``n <= 32``) that
    holds them: a round costs ``O(k m)`` for ``k`` candidates instead of
    ``O(n m)``. Under ``vmap`` a
    ``custom_vmap`` rule picks one chunk for the whole batch (the one its
    largest member needs), so the switch does not become a select that runs
    every branch.
  * Epsilon-scaling: ``eps`` starts at ``(max C - min C) / n`` and is divided by
    ``eps_scale`` per phase down to ``eps_final``. Prices and assignments carry
    over; a phase starts with one round over all rows in which only the rows
    that violate eps-complementary slackness for the new ``eps`` (and unassigned
    ones) bid.
  * Rectangular problems (``n < m``): no dummy rows; after the last forward
    phase a reverse auction (Bertsekas & Castanon 1992) lets the free columns
    priced above ``lam`` (the lowest assigned price) bid for rows, in the same
    Jacobi/compacted form, until every free column is priced at most ``lam``.
  * Guarantee: eps-complementary slackness for every row (plus the ``lam``
    condition when ``n < m``) bounds the suboptimality by
    ``n * eps_final`` (``result.lower_bound = cost - n * eps_final``); integer
    costs are solved exactly because the default ``eps_final = 1 / (n + 1)``
    makes that gap ``< 1``.
  * CPU specifics: the best/second-best scan views a row as 16 strided groups
    (one vectorised max pass, then the best group), and large rounds are
    computed in blocks of 32 rows (``lax.map``) to stay in cache; accelerators
    get a plain ``vmap``.
- ``method="hungarian"``: the O(n^2 m) shortest-augmenting-path Hungarian
  algorithm with potentials (Jonker-Volgenant / Kuhn-Munkres), one row added
  per outer step. Exact up to floating-point rounding. Its inner loop is
  sequential (one column is fixed per step); on the CPU it is about as fast as
  the auction for n of a few hundred and slower beyond (``docs/benchmarks.md``).
- ``method="scipy"``: SciPy's ``linear_sum_assignment`` (a shortest-augmenting-path
  Jonker-Volgenant variant in C++, Crouse 2016), the fastest exact solver on a
  CPU for every n we measured; it runs on the host through ``jax.pure_callback``,
  so it works under ``jit`` and ``vmap`` (a batch is one host call, a loop over the
  problems there) but moves the cost matrix to the host on accelerators.

The returned ``cost`` is differentiable by the envelope theorem: the solve is
done on ``stop_gradient(C)`` and ``cost = sum_i C[i, sigma(i)]``, so
``d cost / d C`` is the 0/1 assignment matrix and gradients with respect to
points flow through ``C``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.geometry import AbstractGeometry
from ot_jax._checks import concrete_true
from ot_jax.solvers.results import Status, raise_on_status, result_repr

__all__ = ["assignment", "AssignmentResult"]

_METHODS = ("auction", "hungarian", "scipy")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AssignmentResult:
    """Solution of a linear assignment problem (:func:`ot_jax.assignment`).

    Attributes:
      permutation: ``[n]`` int32, row ``i`` is assigned to column ``permutation[i]``
        (distinct columns; always a valid injection, also when not converged).
      cost: scalar ``sum_i C[i, permutation[i]]``; differentiable
        (``d/dC`` = the 0/1 assignment matrix: the envelope theorem).
      lower_bound: scalar certified lower bound on the optimum,
        ``lower_bound <= optimum <= cost``: ``cost - n * eps_final`` for the
        auction, ``cost`` for the exact methods, ``-inf`` when not converged
        (not differentiated).
      converged: scalar bool, ``status == Status.CONVERGED``.
      n_iters: scalar int32: bidding rounds (auction, all phases),
        augmenting-path steps (Hungarian) or rows augmented (scipy: ``n``).
      status: scalar int32, a :class:`~ot_jax.Status`.
    """

    permutation: jax.Array
    cost: jax.Array
    lower_bound: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("permutation", "cost", "lower_bound", "status", "n_iters"))

    def matrix(self, m: int) -> jax.Array:
        """``[n, m]`` 0/1 assignment matrix (the gradient of ``cost`` w.r.t. ``C``); ``m`` = number of columns."""
        return jax.nn.one_hot(self.permutation, m, dtype=self.cost.dtype)


def _as_cost(cost) -> jax.Array:
    if isinstance(cost, AbstractGeometry):
        cost = cost.cost_matrix
    cost = jnp.asarray(cost)
    if cost.ndim != 2:
        raise ValueError(f"assignment: cost matrix must be 2-D [n, m], got shape {tuple(cost.shape)}")
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError(f"assignment: empty problem, the cost matrix has shape ({n}, {m})")
    if n > m:
        raise ValueError(
            f"assignment: more rows than columns ({n} > {m}); each row needs a distinct column, "
            "so transpose the cost matrix (and invert the permutation)"
        )
    if not (jnp.issubdtype(cost.dtype, jnp.floating) or jnp.issubdtype(cost.dtype, jnp.integer)
            or cost.dtype == jnp.bool_):
        raise TypeError(f"assignment: costs must be real numbers, got {cost.dtype}")
    return cost


def _complete(owner_of_row: jax.Array, m: int) -> jax.Array:
    """Give rows with ``-1`` the free columns in order (a valid injection whatever happened)."""
    taken = jnp.zeros((m,), bool).at[jnp.where(owner_of_row >= 0, owner_of_row, m)].set(True, mode="drop")
    free_cols = jnp.argsort(taken, stable=True)  # free columns first, in order
    unassigned = owner_of_row < 0
    rank = jnp.cumsum(unassigned) - 1
    return jnp.where(unassigned, free_cols[jnp.clip(rank, 0, m - 1)], owner_of_row).astype(jnp.int32)


# ----------------------------------------------------------------------------- auction


_BLOCK = 32  # bidders per block when many bids are computed at once (keeps the working set in cache)
_BLOCK_MIN_WORK = 1 << 16  # ... when there are more entries than this in all
_PAIRWISE = 16  # conflicts among at most this many bidders: k x k comparisons (else scatter)


def _chunk_sizes(k: int, factor: int = 16, smallest: int = 2, single: int = 32) -> tuple[int, ...]:
    """Static bidder-chunk sizes ``k, ceil(k/16), ceil(k/256), ..., 2`` (descending).

    Pools of at most ``single`` bidders get the one size ``k`` (each extra size is
    one more compiled branch, and tiny rounds gain nothing from it).
    """
    sizes = [k]
    while k > single and sizes[-1] > smallest:
        sizes.append(max(-(-sizes[-1] // factor), smallest))
    return tuple(sizes)


def _n_groups(length: int) -> int:
    """Columns per group (``W``) for :func:`_best_two` on rows of ``length`` entries."""
    return 16 if length >= 256 else 1


def _first_max(vals: jax.Array, best, start):
    """First index ``j`` with ``vals[j] == best`` at or after ``start``, cyclically (``vals: [L]``)."""
    L = vals.shape[0]
    pos = jnp.arange(L, dtype=jnp.int32)
    shifted = jnp.where(pos >= start, pos - start, pos - start + L)
    j = jnp.min(jnp.where(vals == best, shifted, L)) + start
    return jnp.where(j >= L, j - L, j).astype(jnp.int32)


def _best_two(a: jax.Array, p: jax.Array, start, groups: int):
    """Best and second-best entry of ``a - p`` (``a, p: [L]``, ``L`` a multiple of ``groups``).

    Returns ``(j, best, second)`` (``second = -inf`` when ``L == 1``). With
    ``groups = W > 1`` the row is viewed as ``W`` contiguous slices of ``S = L / W``
    and ``M[b] = max_t (a - p)[b + t S]`` is one vectorised pass; then the top two
    of ``M`` (``S`` entries) and of the ``W`` members of the best group give the
    answer, instead of three passes over the row. Ties: the first best group at or
    after ``start mod S`` (cyclically), then its first best member at or after
    ``(start // S) mod W``, so that bidders ``start = 0 .. L-1`` with identical
    ties (integer costs) spread over distinct columns and Jacobi rounds do not all
    collide.
    """
    L = a.shape[0]
    if groups == 1:
        vals = a - p
        best = jnp.max(vals)
        j = _first_max(vals, best, start % L)
        second = jnp.max(jnp.where(jnp.arange(L) == j, -jnp.inf, vals)) if L > 1 else jnp.asarray(-jnp.inf, a.dtype)
        return j, best, second
    S = L // groups
    M = jnp.max((a - p).reshape(groups, S), axis=0)  # [S]
    best = jnp.max(M)
    b = _first_max(M, best, start % S)
    second_out = jnp.max(jnp.where(jnp.arange(S) == b, -jnp.inf, M)) if S > 1 else jnp.asarray(-jnp.inf, a.dtype)
    members = b + S * jnp.arange(groups, dtype=jnp.int32)
    g = a[members] - p[members]  # [W]
    t = _first_max(g, best, (start // S) % groups)
    second_in = jnp.max(jnp.where(jnp.arange(groups) == t, -jnp.inf, g))
    return b + S * t, best, jnp.maximum(second_out, second_in)


def _pad_to(x: jax.Array, groups: int, value) -> jax.Array:
    """Pad the last axis of ``x`` with ``value`` up to a multiple of ``groups``."""
    extra = -x.shape[-1] % groups
    if extra == 0:
        return x
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)], constant_values=value)


def _winners(target, value, who, active, size: int):
    """Resolve Jacobi conflicts: per ``target``, the active entry with the highest ``value`` wins
    (ties: the smallest ``who``). ``target, value, who, active: [k]``; ``target < size``.
    Returns ``won: [k]`` bool. Small ``k``: ``k x k`` comparisons; else scatter-max/min over ``size``.
    """
    k = target.shape[0]
    if k <= _PAIRWISE:
        rival = (target[None, :] == target[:, None]) & active[None, :]
        beats = (value[None, :] > value[:, None]) | ((value[None, :] == value[:, None]) & (who[None, :] < who[:, None]))
        return active & ~jnp.any(rival & beats, axis=1)
    high = jnp.full((size,), -jnp.inf, value.dtype).at[jnp.where(active, target, size)].max(value, mode="drop")
    top = active & (value == high[target])
    first = jnp.full((size,), jnp.iinfo(jnp.int32).max, jnp.int32).at[jnp.where(top, target, size)].min(
        who, mode="drop")
    return top & (first[target] == who)


def _map_rows(fn, xs, k: int, length: int):
    """``vmap(fn)`` over ``k`` bidders with rows of ``length`` entries.

    On the CPU, in blocks of ``_BLOCK`` bidders (``lax.map``) when ``k * length``
    is large: one big ``[k, length]`` temporary is several times slower there.
    Accelerators get the plain ``vmap`` (all bidders in parallel).
    """
    if k <= _BLOCK or k * length <= _BLOCK_MIN_WORK or jax.default_backend() != "cpu":
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=_BLOCK)


def _compact(nxt: jax.Array, sentinel: int) -> jax.Array:
    """Move the entries ``< sentinel`` of ``nxt: [k]`` to the front (sorted), sentinels last."""
    return jnp.sort(nxt)


def _jacobi(make_round, sizes, sentinel: int, carry, queue, rounds, max_iters: int):
    """Run Jacobi bidding rounds until no candidate bidder is left (or ``max_iters``).

    ``queue: [sizes[0]]`` holds the candidate bidders first, then ``sentinel``.
    Each round takes the smallest static chunk ``k`` in ``sizes`` that holds all
    candidates (``lax.switch``), runs ``make_round(k)(carry, queue[:k]) ->
    (carry, next [k])`` and compacts the next candidates (at most ``k``: a bidder
    that loses stays, a winner hands over to the bidder it evicted), so a round
    costs ``O(k L)``, not ``O(N L)``. Returns ``(carry, candidates left, rounds)``.
    """
    sizes_arr = np.asarray(sizes, np.int32)  # a constant: custom_vmap functions cannot close over tracers

    @jax.custom_batching.custom_vmap
    def chunk(u):  # index into sizes of the smallest chunk that holds u candidates
        return jnp.sum(sizes_arr >= u, dtype=jnp.int32) - 1

    @chunk.def_vmap
    def _chunk_batched(axis_size, in_batched, u):
        # Under vmap, one chunk for the whole batch (the one the largest u needs): the index
        # stays unbatched, so lax.switch runs one branch instead of all of them (a select).
        return chunk(jnp.max(u) if in_batched[0] else u), False

    def branch(k):
        def run(args):
            carry, queue = args
            carry, nxt = make_round(k)(carry, queue[:k])
            nxt = _compact(nxt, sentinel)
            return carry, queue.at[:k].set(nxt), jnp.sum(nxt != sentinel, dtype=jnp.int32)
        return run

    branches = [branch(k) for k in sizes]

    def body(c):
        carry, queue, u, rounds = c
        if len(branches) == 1:
            carry, queue, u = branches[0]((carry, queue))
        else:
            carry, queue, u = jax.lax.switch(chunk(u), branches, (carry, queue))
        return carry, queue, u, rounds + 1

    def cond(c):
        return (c[2] > 0) & (c[3] < max_iters)

    u = jnp.sum(queue != sentinel, dtype=jnp.int32)
    carry, _, u, rounds = jax.lax.while_loop(cond, body, (carry, queue, u, rounds))
    return carry, u, rounds


def _auction(benefit: jax.Array, eps0, eps_final, eps_scale: float, max_iters: int):
    """Maximise ``sum_i benefit[i, sigma(i)]`` over injections, ``benefit: [n, m]``, ``n <= m``.

    Forward auction with eps-scaling (rows bid for columns); when ``n < m`` a
    reverse auction at ``eps_final`` (free columns priced above the lowest
    assigned price bid for rows) ends it. Returns ``(row_to_col [n] int32
    (-1: unassigned), rounds, finished)``; on finishing, the assignment is
    within ``n * eps_final`` of the optimum.
    """
    n, m = benefit.shape
    dtype = benefit.dtype
    rows = jnp.arange(n, dtype=jnp.int32)
    wf = _n_groups(m)
    a_f = _pad_to(benefit, wf, -jnp.inf)  # [n, mp]: padded columns are never bid for
    mp = a_f.shape[1]

    # ---- forward: rows bid. carry = (prices [mp], owner [mp] column -> row or -1, col [n] row -> column or -1, eps)
    def forward_round(k):
        def run(carry, queue):
            prices, owner, col, eps = carry
            if k == n:  # the phase-start round: every row, in order (no gather); assigned rows
                idx, valid = rows, jnp.zeros((n,), bool).at[queue].set(True, mode="drop")  # may bid too
                xs = (a_f, rows, col)
            else:  # later rounds: only unassigned rows are candidates
                idx = queue
                valid = idx < n
                xs = (None, jnp.minimum(idx, n - 1), None)

            def bid(x):
                a, i, own = x
                a = a_f[i] if a is None else a
                j, best, second = _best_two(a, prices, i, wf)
                second = best if m == 1 else second
                if own is None:
                    return j, best - second + eps, True
                # a row bids if unassigned or if it violates eps-complementary slackness
                ownc = jnp.maximum(own, 0)
                return j, best - second + eps, (own < 0) | (a[ownc] - prices[ownc] < best - eps)

            j, incr, bidding = _map_rows(bid, xs, k, mp)
            bidding = bidding & valid
            if k == n:
                own = jnp.where(bidding, col, -1)
                owner = owner.at[jnp.where(own >= 0, own, mp)].set(-1, mode="drop")  # violators let go
            bid_price = prices[j] + incr
            won = _winners(j, bid_price, idx, bidding, mp)
            old = owner[j]
            jw = jnp.where(won, j, mp)
            prices = prices.at[jw].set(bid_price, mode="drop")
            owner = owner.at[jw].set(idx, mode="drop")
            evicted = jnp.where(won & (old >= 0), old, n)
            # bidders take their column or none; evicted rows (never bidders) lose theirs
            col = col.at[jnp.concatenate([jnp.where(bidding, idx, n), evicted])].set(
                jnp.concatenate([jnp.where(won, j, -1), jnp.full((k,), -1, jnp.int32)]), mode="drop")
            return (prices, owner, col, eps), jnp.where(bidding & ~won, idx, evicted)
        return run

    # ---- reverse (n < m): free columns priced above lam bid for rows. carry adds lam.
    wr = _n_groups(n)
    if n < m:
        a_r = _pad_to(benefit.T, wr, -jnp.inf)  # [m, np]
        n_pad = a_r.shape[1] - n

    def reverse_round(k):
        def run(carry, queue):
            prices, owner, col, eps, lam = carry
            profit = jnp.take_along_axis(benefit, col[:, None], axis=1)[:, 0] - prices[col]  # [n]
            profit = jnp.concatenate([profit, jnp.zeros((n_pad,), dtype)])
            valid = queue < m
            idx = jnp.minimum(queue, m - 1)
            i, beta, omega = _map_rows(lambda jj: _best_two(a_r[jj], profit, jj, wr), idx, k, a_r.shape[1])
            active = valid & (owner[idx] < 0) & (prices[idx] > lam)
            drop = active & (beta - eps <= lam)  # nobody wants it above lam: price down to lam
            offer = active & ~drop
            q = jnp.maximum(lam, omega - eps)  # new price of the column if accepted
            gain = a_r[idx, i] - q  # the row's new profit
            won = _winners(i, gain, idx, offer, n)
            old = col[i]
            prices = prices.at[jnp.where(drop | won, idx, mp)].set(jnp.where(drop, lam, q), mode="drop")
            # the row leaves its old column (assigned) for this one (free): distinct indices
            owner = owner.at[jnp.concatenate([jnp.where(won, old, mp), jnp.where(won, idx, mp)])].set(
                jnp.concatenate([jnp.full((k,), -1, jnp.int32), i]), mode="drop")
            col = col.at[jnp.where(won, i, n)].set(idx, mode="drop")
            nxt = jnp.where(won, old, jnp.where(offer, idx, m))
            return (prices, owner, col, eps, lam), nxt
        return run

    sizes_f = _chunk_sizes(n)

    def phase(c):
        prices, owner, col, eps, rounds, _ = c
        # every row is a candidate: those unassigned or violating eps-CS for the new eps bid
        (prices, owner, col, _), left, rounds = _jacobi(
            forward_round, sizes_f, n, (prices, owner, col, eps), rows, rounds, max_iters)
        last = (eps <= eps_final) & (left == 0)
        return prices, owner, col, jnp.maximum(eps / eps_scale, eps_final), rounds, last

    def outer_cond(c):
        return ~c[5] & (c[4] < max_iters)

    init = (jnp.zeros((mp,), dtype), jnp.full((mp,), -1, jnp.int32), jnp.full((n,), -1, jnp.int32),
            jnp.maximum(eps0, eps_final).astype(dtype), jnp.asarray(0, jnp.int32), jnp.asarray(False))
    prices, owner, col, _, rounds, finished = jax.lax.while_loop(outer_cond, phase, init)
    if n < m:  # (not finished: rounds >= max_iters, and the reverse loop does not start)
        lam = jnp.min(jnp.where(owner >= 0, prices, jnp.inf))
        free = (owner < 0) & (prices > lam) & (jnp.arange(mp) < m)
        cand = jnp.sort(jnp.where(free, jnp.arange(mp, dtype=jnp.int32), m))[:m - n]  # at most m - n are free
        carry = (prices, owner, col, jnp.asarray(eps_final, dtype), lam)
        (prices, owner, col, _, _), left, rounds = _jacobi(
            reverse_round, _chunk_sizes(m - n), m, carry, cand, rounds, max_iters)
        finished = finished & (left == 0)
    return col, rounds, finished


# ----------------------------------------------------------------------------- Hungarian


def _scipy_solve(cost: np.ndarray):
    """Host solve of ``cost: [..., n, m]`` (a batch is looped over).

    Returns ``([..., n]`` int32 columns, ``[...]`` bool finite``)``; a problem with
    NaN or inf costs is not solved and gets the identity injection.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost)
    flat = cost.reshape((-1,) + cost.shape[-2:])
    out = np.empty(flat.shape[:2], np.int32)
    finite = np.empty(flat.shape[0], bool)
    for k, c in enumerate(flat):
        finite[k] = bool(np.isfinite(c).all())
        # rows come back in order 0..n-1
        out[k] = linear_sum_assignment(c)[1] if finite[k] else np.arange(c.shape[0])
    return out.reshape(cost.shape[:-1]), finite.reshape(cost.shape[:-2])


def _host_assignment(cost: jax.Array):
    """``([n]`` int32 optimal columns, scalar bool finite``)`` of ``cost: [n, m]`` from SciPy,
    in one host call per batch (the costs are not copied on the way)."""
    shapes = (jax.ShapeDtypeStruct(cost.shape[:-1], jnp.int32), jax.ShapeDtypeStruct(cost.shape[:-2], jnp.bool_))
    return jax.pure_callback(_scipy_solve, shapes, cost, vmap_method="broadcast_all")


def _hungarian(cost: jax.Array):
    """Minimise ``sum_i cost[i, sigma(i)]`` for ``cost: [n, m]``, ``n <= m``.

    The classic potentials formulation (1-based arrays, column 0 is a sentinel):
    for each new row, grow a shortest-path tree over columns with Dijkstra on the
    reduced costs ``cost - u - v`` until a free column is reached, update the
    potentials, and flip the path. Returns ``(row_to_col [n], steps)``.
    """
    n, m = cost.shape
    dtype = cost.dtype
    inf = jnp.asarray(jnp.inf, dtype)

    def add_row(i, carry):  # i: 1-based row
        u, v, p, way, steps = carry
        p = p.at[0].set(i)
        minv = jnp.full((m + 1,), inf)
        used = jnp.zeros((m + 1,), bool)

        def search_cond(c):
            _, _, p_, _, _, _, j0, _ = c
            return p_[j0] != 0

        def search(c):
            u, v, p, way, minv, used, j0, steps = c
            used = used.at[j0].set(True)
            i0 = p[j0]
            row = jnp.concatenate([jnp.zeros((1,), dtype), jax.lax.dynamic_index_in_dim(cost, i0 - 1, 0, False)])
            cur = row - u[i0] - v
            better = ~used & (cur < minv)
            minv = jnp.where(better, cur, minv)
            way = jnp.where(better, j0, way)
            cand = jnp.where(used, inf, minv)
            j1 = jnp.argmin(cand).astype(jnp.int32)
            delta = cand[j1]
            u = u.at[jnp.where(used, p, n + 1)].add(delta, mode="drop")
            v = jnp.where(used, v - delta, v)
            minv = jnp.where(used, minv, minv - delta)
            return u, v, p, way, minv, used, j1, steps + 1

        u, v, p, way, _, _, j0, steps = jax.lax.while_loop(
            search_cond, search, (u, v, p, way, minv, used, jnp.asarray(0, jnp.int32), steps))

        def flip(c):
            p, j0 = c
            j1 = way[j0]
            return p.at[j0].set(p[j1]), j1

        p, _ = jax.lax.while_loop(lambda c: c[1] != 0, flip, (p, j0))
        return u, v, p, way, steps

    init = (jnp.zeros((n + 1,), dtype), jnp.zeros((m + 1,), dtype), jnp.zeros((m + 1,), jnp.int32),
            jnp.zeros((m + 1,), jnp.int32), jnp.asarray(0, jnp.int32))
    _, _, p, _, steps = jax.lax.fori_loop(1, n + 1, add_row, init)
    # p[j] = 1-based row of column j (0: free). Invert to row -> column.
    row_to_col = jnp.full((n,), -1, jnp.int32).at[jnp.where(p[1:] > 0, p[1:] - 1, n)].set(
        jnp.arange(m, dtype=jnp.int32), mode="drop")
    return row_to_col, steps


# ----------------------------------------------------------------------------- entry point


def assignment(
    cost,
    *,
    method: str = "auction",
    eps_final=None,
    eps_scale: float = 8.0,
    max_iters: int = 1_000_000,
    throw: bool = False,
) -> AssignmentResult:
    """Optimal assignment ``min_sigma sum_i C[i, sigma(i)]`` over injections ``sigma``.

    Args:
      cost: ``[n, m]`` cost matrix with ``n <= m`` (or a geometry, materialised).
        Integer costs are solved in floating point (exactly by both methods, for
        integers below ~2**50 in float64 / 2**21 in float32).
      method: ``"auction"`` (parallel Jacobi bidding, ``cost - lower_bound = n * eps_final``;
        on the CPU about as fast as scipy's ``linear_sum_assignment`` on large
        random problems, see ``docs/benchmarks.md``), ``"hungarian"`` (exact,
        sequential) or ``"scipy"`` (exact, SciPy's solver on the host; fastest on a CPU).
      eps_final: auction only: the final epsilon, so that
        ``cost <= optimum + n * eps_final``. Default: ``1 / (n + 1)`` for integer
        costs (then the result is optimal), otherwise
        ``(max C - min C) * max(1e-7 / n, 16 * machine_eps)``, i.e. a bound of
        ``1e-7 * (max C - min C)`` (the second term keeps price increments above
        the rounding of float32 prices).
      eps_scale: auction only: epsilon is divided by this factor per phase (> 1).
      max_iters: auction only: cap on the total number of bidding rounds.
      throw: raise (also inside ``jit``) on bad input or when ``max_iters`` is hit.

    Returns:
      :class:`~ot_jax.solvers.assignment.AssignmentResult`. ``cost`` is
      differentiable by the envelope theorem (``d/dC`` = the assignment matrix).

    Raises:
      ValueError: not 2-D, empty, ``n > m``, unknown method, bad parameters, and
        (for concrete inputs) NaN or inf costs. Inside ``jit`` non-finite costs
        give ``status == Status.INVALID_INPUT`` instead.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> out = ot_jax.assignment(jnp.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]))
        >>> out.permutation.tolist(), float(out.cost)
        ([1, 0, 2], 5.0)
    """
    if method not in _METHODS:
        raise ValueError(f"assignment: unknown method {method!r}; choose one of {', '.join(map(repr, _METHODS))}")
    if not float(eps_scale) > 1.0:
        raise ValueError(f"assignment: eps_scale must be > 1, got {eps_scale}")
    if int(max_iters) < 1:
        raise ValueError(f"assignment: max_iters must be >= 1, got {max_iters}")
    cost = _as_cost(cost)
    integer = not jnp.issubdtype(cost.dtype, jnp.floating)
    if integer:
        cost = cost.astype(jnp.result_type(float))
    dtype = cost.dtype
    if eps_final is not None:
        eps_final = jnp.asarray(eps_final, dtype)
        if concrete_true(~(jnp.isfinite(eps_final) & (eps_final > 0))):
            raise ValueError(f"assignment: eps_final must be a finite number > 0, got {float(eps_final)}")
    if concrete_true(_any_nonfinite(cost)):
        bad = np.argwhere(~np.isfinite(np.asarray(cost)))[0]
        raise ValueError(f"assignment: the costs contain NaN or inf (first at [{bad[0]}, {bad[1]}])")
    default_eps = eps_final is None
    perm, bound, converged, steps, status = _solve(
        jax.lax.stop_gradient(cost), jnp.asarray(1.0 if default_eps else eps_final, dtype), default_eps, integer,
        method=method, eps_scale=float(eps_scale), max_iters=int(max_iters))
    value = _assigned_cost(cost, perm)  # differentiable (envelope theorem)
    lower = jax.lax.stop_gradient(value) - bound  # bound: n * eps_final, 0 (Hungarian), inf (not converged)
    result = AssignmentResult(permutation=perm, cost=value, lower_bound=lower, converged=converged,
                              n_iters=steps, status=status)
    messages = {
        Status.MAX_ITERS: "ot_jax.assignment: MAX_ITERS: the auction hit max_iters bidding rounds "
        "(raise max_iters, or a larger eps_final)",
        Status.INVALID_INPUT: "ot_jax.assignment: INVALID_INPUT: invalid input: the costs must be finite "
        "and eps_final > 0",
    }
    return raise_on_status(result, "assignment", "eps_final", messages=messages) if throw else result


@jax.jit
def _any_nonfinite(cost: jax.Array) -> jax.Array:
    return jnp.any(~jnp.isfinite(cost))


@jax.jit
def _assigned_cost(cost: jax.Array, perm: jax.Array) -> jax.Array:
    """``sum_i cost[i, perm[i]]`` for ``cost: [n, m]``, ``perm: [n]``."""
    return jnp.sum(jnp.take_along_axis(cost, perm[:, None], axis=1))


@functools.partial(jax.jit, static_argnames=("method", "eps_scale", "max_iters"))
def _solve(cost, eps_final, default_eps, integer, *, method: str, eps_scale: float, max_iters: int):
    """The solve behind :func:`assignment`, jitted so that repeated calls (and ``grad``,
    which never differentiates through it) reuse the compiled loops.

    ``cost: [n, m]`` floating (not differentiated); ``eps_final``: scalar, ignored
    when the scalar bool ``default_eps`` is set; ``integer``: scalar bool, the costs
    were integers (traced flags: one compilation serves all of these cases).
    Returns ``(permutation [n] int32, bound, converged, n_iters, status)``.
    """
    n, m = cost.shape
    dtype = cost.dtype
    bad_eps = ~default_eps & ~(jnp.isfinite(eps_final) & (eps_final > 0))
    if method == "scipy":  # the host checks finiteness: no pass over the costs here
        perm, finite = _host_assignment(cost)
        invalid = ~finite | bad_eps
        status = jnp.where(invalid, Status.INVALID_INPUT, Status.CONVERGED).astype(jnp.int32)
        converged = status == Status.CONVERGED
        bound = jnp.where(converged, 0.0, jnp.inf).astype(dtype)
        return perm, bound, converged, jnp.asarray(n, jnp.int32), status
    invalid = jnp.any(~jnp.isfinite(cost)) | bad_eps

    c_s = jnp.where(invalid, 0.0, cost)
    if method == "hungarian":
        perm, steps = _hungarian(c_s)
        finished = jnp.all(perm >= 0)
        bound = jnp.asarray(0.0, dtype)
    else:
        benefit = jnp.min(c_s) - c_s  # A = -(C - min C), in [-span, 0]
        span = jnp.max(c_s) - jnp.min(c_s)
        rel = max(1e-7 / n, 16 * float(jnp.finfo(dtype).eps))
        eps_f = jnp.where(integer, 1.0 / (n + 1), jnp.where(span > 0, span * rel, 1.0))
        eps_f = jnp.where(default_eps, eps_f, jnp.where(bad_eps, 1.0, eps_final)).astype(dtype)
        eps0 = jnp.maximum(span / n, eps_f)
        perm, steps, finished = _auction(benefit, eps0, eps_f, eps_scale, max_iters)
        bound = jnp.where(span > 0, n * eps_f, 0.0).astype(dtype)  # constant costs: every injection is optimal

    perm = _complete(perm, m)
    status = jnp.where(invalid, Status.INVALID_INPUT, jnp.where(finished, Status.CONVERGED, Status.MAX_ITERS))
    status = status.astype(jnp.int32)
    converged = status == Status.CONVERGED
    bound = jnp.where(converged, bound, jnp.inf).astype(dtype)
    return perm, bound, converged, steps.astype(jnp.int32), status
