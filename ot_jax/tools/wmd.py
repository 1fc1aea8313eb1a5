"""Word Mover's Distance (Kusner et al. 2015): exact, IPOT and Sinkhorn document distances,
their lower bounds (WCD, RWMD) and the pruned nearest-neighbour search.

A document is a normalised bag of words: token ids ``ids: [L]`` (rows of an embedding matrix
``embeddings: [V, D]``) with weights ``weights: [L]`` (counts or nBOW frequencies; each document
is normalised to mass 1, so ``d_i = c_i / sum c``). Entries of weight 0 are padding: their ids are
ignored. The ground cost between words is the Euclidean distance of their vectors,
``C_ij = ||E[ids_a_i] - E[ids_b_j]||_2`` (zero between equal ids), and

    WMD(a, b) = min_{T >= 0, T 1 = d_a, T^T 1 = d_b} <C, T>.

Lower bounds (Kusner et al., section 4), ``WCD <= WMD`` and ``RWMD <= WMD`` (neither bounds the
other: RWMD is usually the tighter, but a document of two distant words against one that
puts 0.99 of its mass on the first has RWMD 0 and a large WCD):

* word centroid distance ``WCD = ||E^T d_a - E^T d_b||`` (the triangle inequality);
* relaxed WMD ``RWMD = max(sum_i d_a_i min_j C_ij, sum_j d_b_j min_i C_ij)``: each word moves
  all its mass to the nearest word of the other document (one marginal constraint dropped).

:func:`wmd` solves one pair, or a batch of pairs ``ids: [B, L]`` in one compiled call (the exact
solver then solves the batch in one host call). :func:`wmd_matrix` computes query-by-corpus
distances for documents of any lengths: it pads them to a few bucket lengths and streams over the
pairs in blocks, one compiled program per pair of buckets. :func:`knn` finds each query's k nearest
documents by exact WMD with Kusner et al.'s prefetch-and-prune: the ``k * prefetch`` nearest by
WCD are solved exactly, and any other document is solved only when both its WCD and its RWMD are
below the current k-th distance. Since both are lower bounds, the result is the brute-force k
nearest (up to ties).

Gradients: ``wmd(...).cost`` is differentiable with respect to ``embeddings`` and the weights:
the exact and IPOT costs by the envelope theorem (``d/dC`` = the plan; with respect to the
weights the exact duals are one subgradient when the LP is degenerate), Sinkhorn's by implicit
differentiation (exact derivatives of the entropic cost).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.geometry import Euclidean
from ot_jax.solvers import emd, ipot, sinkhorn

__all__ = ["Documents", "nbow", "pad_documents", "word_costs", "wmd", "wcd", "rwmd", "wmd_matrix", "bound_matrix",
           "knn", "KnnResult", "SOLVERS"]

SOLVERS = ("exact", "ipot", "sinkhorn")
_FN = "ot_jax.wmd"


class Documents(NamedTuple):
    """Padded documents: ``ids: [..., L]`` (int32) and ``weights: [..., L]`` (0 for padding).

    A single document is ``ids: [L]``; a batch ``ids: [B, L]``. Any ``(ids, weights)`` pair is
    accepted where a document is expected."""

    ids: jax.Array
    weights: jax.Array


def nbow(token_ids: Sequence[int]) -> Documents:
    """The normalised bag of words of a list of token ids: unique ids ``[L]`` (sorted) and their
    frequencies ``count / len(token_ids)`` (host NumPy)."""
    ids, counts = np.unique(np.asarray(token_ids, dtype=np.int64), return_counts=True)
    if ids.size == 0:
        raise ValueError("nbow: the document has no tokens")
    return Documents(ids.astype(np.int32), counts / counts.sum())


def pad_documents(docs: Sequence, length: int | None = None) -> Documents:
    """Stack documents ``(ids [L_k], weights [L_k])`` into ``Documents`` of shape ``[K, length]``
    (``length`` defaults to the longest), padding with id 0 and weight 0."""
    docs = [_host_document(d, f"docs[{k}]") for k, d in enumerate(docs)]
    if not docs:
        raise ValueError("pad_documents: no documents")
    longest = max(len(ids) for ids, _ in docs)
    length = longest if length is None else int(length)
    if length < longest:
        raise ValueError(f"pad_documents: length={length} is shorter than the longest document ({longest} words)")
    ids = np.zeros((len(docs), length), np.int32)
    weights = np.zeros((len(docs), length), np.float64)
    for k, (i, w) in enumerate(docs):
        ids[k, :len(i)], weights[k, :len(i)] = i, w
    return Documents(ids, weights)


def _host_document(doc, name: str):
    """A concrete document as NumPy ``(ids [L], weights [L])`` with zero-weight entries dropped."""
    ids, weights = doc
    ids, weights = np.asarray(ids), np.asarray(weights, dtype=np.float64)
    if ids.ndim != 1 or weights.shape != ids.shape:
        raise ValueError(f"{name}: ids and weights must be 1-D of one length, got {ids.shape} and {weights.shape}")
    keep = weights != 0
    return ids[keep].astype(np.int32), weights[keep]


def _checked(doc, name: str, vocab: int):
    """``(ids, weights)`` as arrays; concrete values are checked now (raising with ``name``),
    traced ones poison the weights with NaN so that the solver reports ``INVALID_INPUT``."""
    if isinstance(doc, Documents):
        ids, weights = doc
    else:
        try:
            ids, weights = doc
        except (TypeError, ValueError):
            raise TypeError(f"{_FN}: {name} must be a pair (ids, weights), got {type(doc).__name__}") from None
    ids, weights = jnp.asarray(ids), jnp.asarray(weights)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"{_FN}: {name} ids must be integers, got dtype {ids.dtype}")
    if ids.ndim not in (1, 2) or weights.shape != ids.shape:
        raise ValueError(f"{_FN}: {name} needs ids and weights of one shape [L] (or [B, L]), got ids "
                         f"{tuple(ids.shape)} and weights {tuple(weights.shape)}")
    if ids.shape[-1] == 0:
        raise ValueError(f"{_FN}: {name} is empty (no words)")
    if not jnp.issubdtype(weights.dtype, jnp.floating):
        weights = weights.astype(jnp.result_type(float))
    if is_concrete(ids, weights):
        i, w = np.asarray(ids), np.asarray(weights)
        used = w != 0
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{_FN}: {name} weights contain NaN or inf")
        if np.any(w < 0):
            raise ValueError(f"{_FN}: {name} weights are negative (min {w.min():.3g}); weights must be >= 0")
        if np.any(np.sum(w, axis=-1) <= 0):
            raise ValueError(f"{_FN}: {name} has zero total weight (an empty document)")
        if np.any(used & ((i < 0) | (i >= vocab))):
            bad = int(i[used & ((i < 0) | (i >= vocab))].flat[0])
            raise ValueError(f"{_FN}: {name} has token id {bad} outside the {vocab} rows of embeddings")
    else:
        outside = (weights != 0) & ((ids < 0) | (ids >= vocab))
        weights = jnp.where(jnp.any(outside, axis=-1, keepdims=True), jnp.nan, weights)
    return jnp.where(weights != 0, ids, 0), weights


def word_costs(ids_a: jax.Array, ids_b: jax.Array, embeddings: jax.Array) -> jax.Array:
    """Euclidean distances between the words of two documents, ``[La, Lb]`` (exactly 0, with a
    zero gradient, between equal ids)."""
    cost = Euclidean().pairwise(embeddings[ids_a], embeddings[ids_b])
    return jnp.where(ids_a[:, None] == ids_b[None, :], 0.0, cost)


def _normalise(w):
    return w / jnp.sum(w, axis=-1, keepdims=True)


def _solve(ids_a, w_a, ids_b, w_b, embeddings, solver, options):
    cost = word_costs(ids_a, ids_b, embeddings)
    a, b = _normalise(w_a), _normalise(w_b)
    if solver == "exact":
        return emd(cost, a, b, **options)
    if solver == "sinkhorn":
        return sinkhorn(cost, a, b, **options)
    return ipot(cost, a, b, **options)


def wmd(doc_a, doc_b, embeddings, *, solver: Literal["exact", "ipot", "sinkhorn"] = "exact",
        epsilon: float = 0.01, relative_epsilon: bool = True, beta=None, tol: float | None = None,
        max_iters: int | None = None, throw: bool = False):
    """Word Mover's Distance between two documents (or between the rows of two batches).

    Args:
      doc_a, doc_b: documents ``(ids, weights)``, ``ids: [La]`` int, ``weights: [La]`` >= 0
        (counts or frequencies; normalised to mass 1; zero entries are padding), or batches
        ``[B, La]`` and ``[B, Lb]``: the distance of each row pair, in one compiled call.
      embeddings: ``[V, D]`` word vectors (rows indexed by the ids).
      solver: ``"exact"`` (network simplex, certified), ``"ipot"`` (proximal point, converges
        to the exact value; ``tol`` its certified relative gap, default 1e-6), or ``"sinkhorn"``
        (entropic, biased by ``epsilon``: multiplied by the mean word distance when
        ``relative_epsilon``, a scale that gradients treat as a constant; ``tol`` its marginal
        error, default 1e-6). The iterative solvers' ``lower_bound`` and ``upper_bound``
        bracket the exact WMD.
      beta: IPOT's proximal step (default: the solver's); max_iters: the iterative solvers' cap
        (defaults 10000); throw: raise on bad input or a failed solve.

    Returns:
      The solver's result (:class:`~ot_jax.solvers.results.ExactResult` or
      :class:`~ot_jax.solvers.results.EntropicResult`, batched for batched documents):
      ``cost`` is the WMD (Sinkhorn: the transport cost of the entropic plan), ``plan: [La, Lb]``
      the flow between the words, ``status`` the solver's health. ``cost`` is differentiable with
      respect to ``embeddings`` and both documents' weights.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> E = jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
        >>> float(ot_jax.wmd(([0, 1], [1.0, 1.0]), ([2], [1.0]), E).cost)  # (10 + 5) / 2
        7.5
    """
    if solver not in SOLVERS:
        raise ValueError(f"{_FN}: solver must be one of {SOLVERS}, got {solver!r}")
    embeddings = _embeddings(embeddings)
    ids_a, w_a = _checked(doc_a, "doc_a", embeddings.shape[0])
    ids_b, w_b = _checked(doc_b, "doc_b", embeddings.shape[0])
    if ids_a.ndim != ids_b.ndim or (ids_a.ndim == 2 and ids_a.shape[0] != ids_b.shape[0]):
        raise ValueError(f"{_FN}: doc_a and doc_b must both be single documents or batches of one size, got ids "
                         f"{tuple(ids_a.shape)} and {tuple(ids_b.shape)}")
    dtype = jnp.result_type(embeddings.dtype, w_a.dtype, w_b.dtype)
    embeddings, w_a, w_b = embeddings.astype(dtype), w_a.astype(dtype), w_b.astype(dtype)
    options = _options(solver, epsilon, relative_epsilon, beta, tol, max_iters, throw)
    return _wmd(ids_a, w_a, ids_b, w_b, embeddings, solver=solver, options=tuple(sorted(options.items())))


def _options(solver, epsilon, relative_epsilon, beta, tol, max_iters, throw) -> dict:
    options = {"throw": throw}
    if solver == "exact":
        return options
    options["max_iters"] = 10_000 if max_iters is None else int(max_iters)
    options["tol"] = 1e-6 if tol is None else float(tol)
    if solver == "sinkhorn":
        options.update(epsilon=float(epsilon), relative_epsilon=bool(relative_epsilon))
    elif beta is not None:
        options["beta"] = float(beta)
    return options


@functools.partial(jax.jit, static_argnames=("solver", "options"))
def _wmd(ids_a, w_a, ids_b, w_b, embeddings, *, solver, options):
    opts = dict(options)
    one = lambda ia, wa, ib, wb: _solve(ia, wa, ib, wb, embeddings, solver, opts)  # noqa: E731
    if ids_a.ndim == 2:
        return jax.vmap(one)(ids_a, w_a, ids_b, w_b)
    return one(ids_a, w_a, ids_b, w_b)


def _bounds_one(ids_a, w_a, ids_b, w_b, embeddings):
    """(WCD, RWMD) of one pair of padded documents."""
    a, b = _normalise(w_a), _normalise(w_b)
    centroid = lambda ids, w: w @ embeddings[ids]  # noqa: E731
    diff = centroid(ids_a, a) - centroid(ids_b, b)
    wcd_ = jnp.sqrt(jnp.maximum(jnp.sum(diff**2), 0.0))
    cost = word_costs(ids_a, ids_b, embeddings)
    big = jnp.asarray(jnp.inf, cost.dtype)
    to_b = jnp.min(jnp.where(b[None, :] > 0, cost, big), axis=1)  # each word of a to its nearest in b
    to_a = jnp.min(jnp.where(a[:, None] > 0, cost, big), axis=0)
    rwmd_ = jnp.maximum(jnp.sum(jnp.where(a > 0, a * to_b, 0.0)), jnp.sum(jnp.where(b > 0, b * to_a, 0.0)))
    return wcd_, rwmd_


def wcd(doc_a, doc_b, embeddings) -> jax.Array:
    """Word centroid distance ``||E^T d_a - E^T d_b||`` (a lower bound of the WMD); batches of
    pairs ``[B, L]`` give ``[B]``."""
    return _bounds(doc_a, doc_b, embeddings)[0]


def rwmd(doc_a, doc_b, embeddings) -> jax.Array:
    """Relaxed WMD, the larger of the two one-constraint relaxations (``RWMD <= WMD``);
    batches of pairs ``[B, L]`` give ``[B]``."""
    return _bounds(doc_a, doc_b, embeddings)[1]


def _bounds(doc_a, doc_b, embeddings):
    embeddings = _embeddings(embeddings)
    ids_a, w_a = _checked(doc_a, "doc_a", embeddings.shape[0])
    ids_b, w_b = _checked(doc_b, "doc_b", embeddings.shape[0])
    if ids_a.ndim == 2:
        return _batched_bounds(ids_a, w_a, ids_b, w_b, embeddings)
    return _single_bounds(ids_a, w_a, ids_b, w_b, embeddings)


_single_bounds = jax.jit(_bounds_one)


@jax.jit
def _batched_bounds(ids_a, w_a, ids_b, w_b, embeddings):
    return jax.vmap(_bounds_one, in_axes=(0, 0, 0, 0, None))(ids_a, w_a, ids_b, w_b, embeddings)


# --- many pairs: buckets and blocks ---------------------------------------------------------------

def _bucket_length(n: int, smallest: int = 8) -> int:
    return max(smallest, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class _Buckets(NamedTuple):
    members: dict  # bucket length -> np.ndarray of document indices
    docs: list  # host documents (ids, weights), zero weights dropped


def _buckets(docs: Sequence, name: str) -> _Buckets:
    host = [_host_document(d, f"{name}[{k}]") for k, d in enumerate(docs)]
    if not host:
        raise ValueError(f"{_FN}: {name} holds no documents")
    for k, (ids, _) in enumerate(host):
        if ids.size == 0:
            raise ValueError(f"{_FN}: {name}[{k}] is empty (no word of positive weight)")
    members: dict = {}
    for k, (ids, _) in enumerate(host):
        members.setdefault(_bucket_length(ids.size), []).append(k)
    return _Buckets({length: np.asarray(ix) for length, ix in sorted(members.items())}, host)


def _padded(buckets: _Buckets, length: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((len(index), length), np.int32)
    weights = np.zeros((len(index), length), np.float64)
    for row, k in enumerate(index):
        i, w = buckets.docs[k]
        ids[row, :i.size], weights[row, :i.size] = i, w
    return ids, weights


def _pairwise(queries, corpus, pairs, embeddings, fn, block_size: int):
    """Apply ``fn(ids_a, w_a, ids_b, w_b) -> [B] or tuple`` to the pairs ``(q, c)`` (``pairs: [P, 2]``)
    bucket by bucket, ``block_size`` pairs per call (a last, smaller block padded by repeating a
    pair up to a power of four, so each pair of buckets compiles a few shapes). Returns the outputs
    in the order of ``pairs``."""
    q_len = {int(k): length for length, ix in queries.members.items() for k in ix}
    c_len = {int(k): length for length, ix in corpus.members.items() for k in ix}
    groups: dict = {}
    for row, (q, c) in enumerate(pairs):
        groups.setdefault((q_len[int(q)], c_len[int(c)]), []).append(row)
    out = None
    for (la, lb), rows in sorted(groups.items()):
        rows = np.asarray(rows)
        for start in range(0, rows.size, block_size):
            block = rows[start:start + block_size]
            size = min(block_size, 4 ** math.ceil(math.log(block.size, 4)))  # few block shapes, padding < 4x
            fill = np.concatenate([block, np.full(size - block.size, block[-1])])
            ia, wa = _padded(queries, la, pairs[fill, 0])
            ib, wb = _padded(corpus, lb, pairs[fill, 1])
            res = fn(ia, wa, ib, wb, embeddings)
            res = tuple(np.asarray(r)[:block.size] for r in (res if isinstance(res, tuple) else (res,)))
            if out is None:
                out = tuple(np.empty((len(pairs),) + r.shape[1:], r.dtype) for r in res)
            for o, r in zip(out, res):
                o[block] = r
    return out


def _all_pairs(n_q: int, n_c: int) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(n_q), np.arange(n_c), indexing="ij"), -1).reshape(-1, 2)


def _embeddings(embeddings) -> jax.Array:
    """``embeddings: [V, D]`` as a floating array; NaN/inf raise when the values are concrete."""
    embeddings = jnp.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"{_FN}: embeddings must be [V, D] with V >= 1, got shape {tuple(embeddings.shape)}")
    if not jnp.issubdtype(embeddings.dtype, jnp.floating):
        embeddings = embeddings.astype(jnp.result_type(float))
    if is_concrete(embeddings) and not np.all(np.isfinite(np.asarray(embeddings))):
        raise ValueError(f"{_FN}: embeddings contain NaN or inf")
    return embeddings


def _pair_wmd(solver, options):
    def fn(ia, wa, ib, wb, embeddings):
        res = wmd((ia, wa), (ib, wb), embeddings, solver=solver, **options)
        return res.cost, res.status
    return fn


def _check_vocab(buckets: _Buckets, name: str, vocab: int):
    for k, (ids, _) in enumerate(buckets.docs):
        if ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(f"{_FN}: {name}[{k}] has a token id outside the {vocab} rows of embeddings")


def wmd_matrix(queries: Sequence, corpus: Sequence, embeddings, *, solver: str = "exact", block_size: int = 256,
               **options) -> tuple[np.ndarray, np.ndarray]:
    """All query-by-corpus distances: ``(distances [Q, N], status [Q, N])`` (host NumPy).

    ``queries`` and ``corpus`` are sequences of documents ``(ids, weights)`` of any lengths;
    they are padded to bucket lengths (powers of two, at least 8) and solved ``block_size``
    pairs per compiled call (memory bounded by the block). ``options`` are :func:`wmd`'s.
    """
    embeddings = _embeddings(embeddings)
    qb, cb = _buckets(queries, "queries"), _buckets(corpus, "corpus")
    _check_vocab(qb, "queries", embeddings.shape[0])
    _check_vocab(cb, "corpus", embeddings.shape[0])
    pairs = _all_pairs(len(qb.docs), len(cb.docs))
    cost, status = _pairwise(qb, cb, pairs, embeddings, _pair_wmd(solver, options), int(block_size))
    shape = (len(qb.docs), len(cb.docs))
    return cost.reshape(shape), status.reshape(shape)


def bound_matrix(queries: Sequence, corpus: Sequence, embeddings, *, block_size: int = 256):
    """``(WCD [Q, N], RWMD [Q, N])`` for all query-by-corpus pairs (host NumPy)."""
    embeddings = _embeddings(embeddings)
    qb, cb = _buckets(queries, "queries"), _buckets(corpus, "corpus")
    _check_vocab(qb, "queries", embeddings.shape[0])
    _check_vocab(cb, "corpus", embeddings.shape[0])
    pairs = _all_pairs(len(qb.docs), len(cb.docs))
    w, r = _pairwise(qb, cb, pairs, embeddings, _batched_bounds, int(block_size))
    shape = (len(qb.docs), len(cb.docs))
    return w.reshape(shape), r.reshape(shape)


def _centroids(buckets: _Buckets, embeddings) -> np.ndarray:
    E = np.asarray(embeddings, np.float64)
    return np.stack([(w / w.sum()) @ E[ids] for ids, w in buckets.docs])


class KnnResult(NamedTuple):
    """The k nearest corpus documents of each query by WMD (host NumPy).

    ``indices: [Q, k]`` (nearest first), ``distances: [Q, k]``; ``n_exact`` WMD solves made,
    ``n_rwmd`` RWMD bounds computed, ``n_pairs`` = Q x (candidates per query): what brute
    force would solve; ``pruned = 1 - n_exact / n_pairs``."""

    indices: np.ndarray
    distances: np.ndarray
    n_exact: int
    n_rwmd: int
    n_pairs: int

    @property
    def pruned(self) -> float:
        return 1.0 - self.n_exact / self.n_pairs


def knn(queries: Sequence, corpus: Sequence, embeddings, k: int, *, prefetch: int = 2, exclude_self: bool = False,
        prune: bool = True, solver: str = "exact", block_size: int = 256, **options) -> KnnResult:
    """The ``k`` nearest corpus documents of every query by WMD, with WCD/RWMD pruning.

    Prefetch and prune (Kusner et al. 2015, section 4): sort the corpus by WCD; solve the WMD of
    the ``k * prefetch`` nearest; every other document whose WCD, then RWMD, is below the query's
    current k-th WMD is solved too; the rest cannot enter the k nearest (both are lower bounds)
    and are never solved. The result equals brute force (``prune=False``: every pair solved) up to
    ties. ``exclude_self``: the queries are the corpus and query ``i`` skips document ``i``
    (leave-one-out). The bounds are bounds of the exact WMD: with ``solver="ipot"`` or
    ``"sinkhorn"`` the search returns the neighbours by those solvers' values only up to their
    accuracy (IPOT's ``tol``; Sinkhorn's entropic bias), so use the exact solver (the default)
    when the neighbours must be exact.

    Returns:
      :class:`KnnResult` (host NumPy).
    """
    embeddings = _embeddings(embeddings)
    qb, cb = _buckets(queries, "queries"), _buckets(corpus, "corpus")
    _check_vocab(qb, "queries", embeddings.shape[0])
    _check_vocab(cb, "corpus", embeddings.shape[0])
    n_q, n_c = len(qb.docs), len(cb.docs)
    if exclude_self and n_q != n_c:
        raise ValueError(f"{_FN}: exclude_self needs the queries to be the corpus, got {n_q} queries and {n_c} documents")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_c - bool(exclude_self):
        raise ValueError(f"{_FN}: k must be an integer in 1..{n_c - bool(exclude_self)}, got {k!r}")
    if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
        raise ValueError(f"{_FN}: prefetch must be an integer >= 1, got {prefetch!r}")
    solve = _pair_wmd(solver, options)
    known = np.full((n_q, n_c), np.inf)  # solved WMDs
    allowed = np.ones((n_q, n_c), bool)
    if exclude_self:
        np.fill_diagonal(allowed, False)
    n_pairs = int(allowed.sum())

    def solve_pairs(pairs):
        if len(pairs):
            known[pairs[:, 0], pairs[:, 1]] = _pairwise(qb, cb, pairs, embeddings, solve, int(block_size))[0]

    if not prune:
        solve_pairs(np.argwhere(allowed))
        n_rwmd = 0
    else:
        cq, cc = _centroids(qb, embeddings), _centroids(cb, embeddings)
        wcd_all = np.sqrt(np.maximum(np.sum((cq[:, None, :] - cc[None, :, :]) ** 2, -1), 0.0))
        wcd_all = np.where(allowed, wcd_all, np.inf)
        order = np.argsort(wcd_all, axis=1, kind="stable")
        first = min(k * int(prefetch), n_pairs // n_q)
        solve_pairs(np.stack([np.repeat(np.arange(n_q), first), order[:, :first].ravel()], 1))
        tau = np.sort(known, axis=1)[:, k - 1]  # current k-th WMD of each query
        rest = allowed & ~np.isfinite(known) & (wcd_all < tau[:, None])
        pairs = np.argwhere(rest)
        n_rwmd = len(pairs)
        if n_rwmd:
            bounds = _pairwise(qb, cb, pairs, embeddings, _batched_bounds, int(block_size))[1]
            pairs = pairs[bounds < tau[pairs[:, 0]]]
        solve_pairs(pairs)
    order = np.argsort(known, axis=1, kind="stable")[:, :k]
    return KnnResult(order, np.take_along_axis(known, order, 1), int(np.isfinite(known).sum()), n_rwmd, n_pairs)
