"""Linear assignment: the cheapest injection of rows into columns.

Given a cost matrix ``C: [n, m]`` with ``n <= m``, find ``sigma`` (distinct
columns, one per row) minimising ``sum_i C[i, sigma(i)]``. Two solvers, both
pure JAX (``jit``, ``vmap``, any backend):

- ``method="auction"``: Bertsekas' auction (1981) in the parallel (Jacobi) form
  with epsilon-scaling. Every unassigned row bids at once on its best column
  ``j* = argmax_k (A_ik - p_k)`` (benefit ``A = -C``), raising the price by
  ``(best - second best) + eps``; each column takes its highest bid and evicts
  its previous owner. Each phase divides ``eps`` by ``eps_scale`` and restarts
  the assignment from the current prices, until ``eps = eps_final``. The result
  satisfies eps-complementary slackness, so its cost is within
  ``bound = N * eps_final`` of the optimum (``N = m``, see below); integer costs
  are solved exactly because the default ``eps_final`` makes ``bound < 1``.
  Rectangular problems are padded with ``m - n`` zero-cost dummy rows (so
  prices of columns left unassigned cannot loosen the bound); this costs
  ``O(m^2)`` memory.
- ``method="hungarian"``: the O(n^2 m) shortest-augmenting-path Hungarian
  algorithm with potentials (Jonker-Volgenant / Kuhn-Munkres), one row added
  per outer step. Exact up to floating-point rounding. Its inner loop is
  sequential (one column is fixed per step), so it suits the CPU better than
  the auction does.

The returned ``cost`` is differentiable by the envelope theorem: the solve is
done on ``stop_gradient(C)`` and ``cost = sum_i C[i, sigma(i)]``, so
``d cost / d C`` is the 0/1 assignment matrix and gradients with respect to
points flow through ``C``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.geometry.geometry import AbstractGeometry
from ot_jax.solvers.problem import concrete_true
from ot_jax.solvers.results import Status, raise_on_status

__all__ = ["assignment", "AssignmentResult"]

_METHODS = ("auction", "hungarian")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AssignmentResult:
    """Solution of a linear assignment problem (:func:`ot_jax.assignment`).

    Attributes:
      permutation: ``[n]`` int32, row ``i`` is assigned to column ``permutation[i]``
        (distinct columns; always a valid injection, also when not converged).
      cost: scalar ``sum_i C[i, permutation[i]]``; differentiable
        (``d/dC`` = the 0/1 assignment matrix: the envelope theorem).
      bound: scalar guaranteed suboptimality, ``cost - optimum <= bound``:
        ``N * eps_final`` for the auction (``N = m``), ``0`` for the Hungarian
        method, ``inf`` when not converged.
      converged: scalar bool.
      n_iters: scalar int32: bidding rounds (auction, all phases) or
        augmenting-path steps (Hungarian).
      status: scalar int32, a :class:`~ot_jax.Status`.
    """

    permutation: jax.Array
    cost: jax.Array
    bound: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    status: jax.Array

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


def _auction(benefit: jax.Array, eps_final, eps_scale: float, max_iters: int):
    """Maximise ``sum_i benefit[i, sigma(i)]`` on a square ``[N, N]`` benefit matrix.

    Returns ``(row_to_col [N] int32 (-1 if unassigned), rounds, finished)``.
    """
    N = benefit.shape[0]
    dtype = benefit.dtype
    rows = jnp.arange(N)
    neg_inf = jnp.asarray(-jnp.inf, dtype)
    span = jnp.max(benefit) - jnp.min(benefit)
    eps0 = jnp.maximum(span / eps_scale, eps_final)

    def row_to_col(owner):  # owner: [N] column -> row (or -1)
        return jnp.full((N,), -1, jnp.int32).at[jnp.where(owner >= 0, owner, N)].set(
            jnp.arange(N, dtype=jnp.int32), mode="drop")

    def bid_round(carry):
        prices, owner, eps, rounds = carry
        unassigned = row_to_col(owner) < 0
        values = benefit - prices[None, :]
        # argmax + masked max: lax.top_k(values, 2) is ~30x slower on the CPU.
        jstar = jnp.argmax(values, axis=1).astype(jnp.int32)
        best = jnp.take_along_axis(values, jstar[:, None], axis=1)[:, 0]
        if N > 1:
            second = jnp.max(jnp.where(rows[None, :] == jstar[:, None], neg_inf, values), axis=1)
        else:
            second = best
        bid = prices[jstar] + (best - second) + eps  # = A[i, j*] - second + eps
        bid = jnp.where(unassigned, bid, neg_inf)
        high = jax.ops.segment_max(bid, jstar, num_segments=N)  # [N] best bid per column
        got = high > neg_inf
        is_winner = unassigned & (bid == high[jstar])
        winner = jax.ops.segment_min(jnp.where(is_winner, rows, N), jstar, num_segments=N)
        prices = jnp.where(got, high, prices)
        owner = jnp.where(got, winner, owner).astype(jnp.int32)
        return prices, owner, eps, rounds + 1

    def phase_cond(carry):
        _, owner, _, rounds = carry
        return jnp.any(owner < 0) & (rounds < max_iters)

    def phase(carry):
        prices, _, eps, rounds, _ = carry
        owner = jnp.full((N,), -1, jnp.int32)  # restart the assignment, keep the prices
        prices, owner, _, rounds = jax.lax.while_loop(phase_cond, bid_round, (prices, owner, eps, rounds))
        last = eps <= eps_final
        return prices, owner, jnp.maximum(eps / eps_scale, eps_final), rounds, last

    def outer_cond(carry):
        _, _, _, rounds, last = carry
        return ~last & (rounds < max_iters)

    init = (jnp.zeros((N,), dtype), jnp.full((N,), -1, jnp.int32), eps0, jnp.asarray(0, jnp.int32),
            jnp.asarray(False))
    _, owner, _, rounds, last = jax.lax.while_loop(outer_cond, phase, init)
    finished = last & jnp.all(owner >= 0)
    return row_to_col(owner), rounds, finished


# ----------------------------------------------------------------------------- Hungarian


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
    eps_scale: float = 5.0,
    max_iters: int = 1_000_000,
    throw: bool = False,
) -> AssignmentResult:
    """Optimal assignment ``min_sigma sum_i C[i, sigma(i)]`` over injections ``sigma``.

    Args:
      cost: ``[n, m]`` cost matrix with ``n <= m`` (or a geometry, materialised).
        Integer costs are solved in floating point (exactly by both methods, for
        integers below ~2**50 in float64 / 2**21 in float32).
      method: ``"auction"`` (parallel; best on accelerators) or ``"hungarian"``
        (exact, sequential; best on the CPU).
      eps_final: auction only: the final epsilon, so that
        ``cost <= optimum + m * eps_final``. Default: ``1 / (m + 1)`` for integer
        costs (then the result is optimal), otherwise
        ``(max C - min C) * max(1e-7 / m, 16 * machine_eps)`` (the second term
        keeps price increments above the rounding of float32 prices).
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

    >>> import jax.numpy as jnp, ot_jax
    >>> out = ot_jax.assignment(jnp.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]))
    >>> out.permutation.tolist(), float(out.cost)
    ([1, 0, 2], 5.0)
    """
    solver = "assignment"
    if method not in _METHODS:
        raise ValueError(f"assignment: unknown method {method!r}; choose one of {', '.join(map(repr, _METHODS))}")
    if not float(eps_scale) > 1.0:
        raise ValueError(f"assignment: eps_scale must be > 1, got {eps_scale}")
    if int(max_iters) < 1:
        raise ValueError(f"assignment: max_iters must be >= 1, got {max_iters}")
    cost = _as_cost(cost)
    n, m = cost.shape
    integer = not jnp.issubdtype(cost.dtype, jnp.floating)
    if integer:
        cost = cost.astype(jnp.result_type(float))
    dtype = cost.dtype

    invalid = jnp.any(~jnp.isfinite(cost))
    bad_eps = jnp.asarray(False)
    if eps_final is not None:
        eps_final = jnp.asarray(eps_final, dtype)
        bad_eps = ~(jnp.isfinite(eps_final) & (eps_final > 0))
        if concrete_true(bad_eps):
            raise ValueError(f"assignment: eps_final must be a finite number > 0, got {float(eps_final)}")
    if concrete_true(invalid):
        bad = np.argwhere(~np.isfinite(np.asarray(cost)))[0]
        raise ValueError(f"assignment: the costs contain NaN or inf (first at [{bad[0]}, {bad[1]}])")
    invalid = invalid | bad_eps

    c_s = jnp.where(invalid, 0.0, jax.lax.stop_gradient(cost))
    if method == "hungarian":
        perm, steps = _hungarian(c_s)
        finished = jnp.all(perm >= 0)
        bound = jnp.asarray(0.0, dtype)
    else:
        # Benefit A = -(C - min C) in [-span, 0]; dummy rows (n < m) have benefit 0 everywhere.
        benefit = jnp.min(c_s) - c_s
        if n < m:
            benefit = jnp.concatenate([benefit, jnp.zeros((m - n, m), dtype)], axis=0)
        span = jnp.max(c_s) - jnp.min(c_s)
        if eps_final is None:
            if integer:
                eps_f = jnp.asarray(1.0 / (m + 1), dtype)
            else:
                rel = max(1e-7 / m, 16 * float(jnp.finfo(dtype).eps))
                eps_f = jnp.where(span > 0, span * rel, 1.0).astype(dtype)
        else:
            eps_f = jnp.where(bad_eps, 1.0, eps_final)
        row_to_col, steps, finished = _auction(benefit, eps_f, float(eps_scale), int(max_iters))
        perm = row_to_col[:n]
        bound = (m * eps_f).astype(dtype)

    perm = _complete(perm, m)
    status = jnp.where(invalid, Status.INVALID_INPUT, jnp.where(finished, Status.CONVERGED, Status.MAX_ITERS))
    status = status.astype(jnp.int32)
    converged = status == Status.CONVERGED
    bound = jnp.where(converged, bound, jnp.inf).astype(dtype)
    value = jnp.sum(cost[jnp.arange(n), jax.lax.stop_gradient(perm)])
    result = AssignmentResult(permutation=perm, cost=value, bound=bound, converged=converged,
                              n_iters=steps.astype(jnp.int32), status=status)
    return raise_on_status(result, solver) if throw else result
