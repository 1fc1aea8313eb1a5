"""Differentiable top-k, sort, rank and quantiles from entropic optimal transport.

Every operator here is one Sinkhorn problem (:func:`ot_jax.sinkhorn`) between the
``n`` input values, each of mass ``1/n``, and ``m`` increasing anchors on ``[0, 1]``
with weights ``b``, under the squared distance between the *normalised* value and
the anchor. Sorting is the optimal (monotone) coupling of the two; the entropic
plan ``P`` (``[n, m]``, temperature ``epsilon``) is a smooth relaxation of it, and
each operator reads one statistic off ``P``:

- :func:`soft_topk` (Xie et al. 2020, "SOFT"): two anchors ``{0, 1}`` of masses
  ``(n - k)/n`` and ``k/n``; the indicator is ``n P[:, 1]``.
- :func:`soft_sort`: ``m`` uniform anchors; the sorted values are ``P^T x / b``.
- :func:`soft_rank`: the same plan; the ranks are ``n P (0, ..., m - 1)``, rescaled
  to ``[0, n - 1]``.
- :func:`soft_quantile`: one small anchor of mass ``w`` at each level ``q``
  between filler anchors; the quantile is the mean of the values sent to it.

As ``epsilon -> 0`` each operator tends to its hard counterpart (``jax.lax.top_k``,
``jnp.sort``, ``argsort(argsort(x))``, a local mean of the sorted values). All are
differentiable in the values by implicit differentiation of the Sinkhorn fixed
point (``grad_mode="implicit"``, the default) or by unrolling the iterations
(``grad_mode="unroll"``), and work on ``[..., n]`` inputs without ``jax.vmap``.

Normalisation (``normalize=``), applied to each slice ``x: [n]`` before the cost:

- ``"sigmoid"`` (default of sort, rank and quantile; OTT-JAX's squashing):
  ``sigmoid((x - mean x) / (std x + 1e-10))``, with ``std`` the population
  standard deviation. At matched ``epsilon``, number and weights of anchors, these
  three agree with ``ott.tools.soft_sort.sort``, ``ranks`` and ``quantile``.
- ``"minmax"`` (default of top-k, as in SOFT): ``(x - min x) / (max x - min x)``,
  so the largest value sits on anchor 1 and the smallest on anchor 0 (a constant
  slice maps to 0.5). ``epsilon`` is then in units of the squared score range.
- ``"none"``: the values are used as they are (put them in ``[0, 1]`` yourself).

``epsilon`` is absolute, in the units of the normalised cost (which lies in
``[0, 1]``). Memory: the top-k problem is ``n x 2`` and the quantile problem
``n x (2 len(q) + 1)``, stored densely (``O(n)``); sort and rank use a lazy
:class:`~ot_jax.PointCloud` of 1-D points once ``m > 32``, so the ``n x m`` cost is
never stored (time is still ``O(n m)`` per iteration).

Solving: the top-k problem reduces to one unknown, the difference ``h`` of the two
anchors' potentials, and plain Sinkhorn iterations approach it slowly once few
scores are shared between the anchors (small ``n`` or ``epsilon``: 10^4 iterations
and more). With ``grad_mode="implicit"`` the solve therefore starts from ``h``
found by bisection (60 passes over the scores, no derivative) and Sinkhorn only
polishes it (usually one check, 10 iterations); the gradient is still the
solver's implicit one. ``"unroll"`` starts from zero potentials, so that its
derivative is that of the iterations. Sort, rank and quantile start from zero.

Differences from OTT-JAX by design: top-k normalises by min-max by default (SOFT;
``normalize="sigmoid"`` gives ``topk_mask``'s values); a constant slice (zero
standard deviation) has a zero, not NaN, gradient through the sigmoid
normalisation; OTT-JAX's sort starts from its ``SortingInitializer``, which has no
reverse-mode derivative, ours from zero (same fixed point); OTT-JAX's ``sort(topk=)``,
``ranks(target_weights=)``, ``sort_with``, ``quantize`` and
``quantile_normalization`` have no counterpart here.

Health: inputs are checked before tracing (shapes, ``k``, ``q``, settings; and, for
concrete inputs, NaN/inf values and ``epsilon <= 0``, which raise ``ValueError``).
Inside ``jit`` the value checks become :data:`~ot_jax.Status.INVALID_INPUT`: the
output of a bad slice is NaN, and ``throw=True`` raises (through
:func:`~ot_jax.solvers.raise_on_status`) on any status other than ``CONVERGED``,
also ``MAX_ITERS``. With ``throw=False`` a slice that did not converge returns its
last iterate.

References: Cuturi, Teboul, Vert, "Differentiable ranks and sorting using optimal
transport", NeurIPS 2019; Xie, Dai, Chen, Dai, Zhao, Zha, Wei, Pfister,
"Differentiable top-k with optimal transport", NeurIPS 2020.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import all_finite, check_int_at_least, check_positive, concrete_true, is_concrete
from ot_jax.geometry import Geometry, PointCloud
from ot_jax.solvers import Status, raise_on_status, sinkhorn

__all__ = ["soft_topk", "soft_sort", "soft_rank", "soft_quantile"]

_NORMALIZATIONS = ("minmax", "sigmoid", "none")
_GRAD_MODES = ("implicit", "unroll")
_DENSE_ANCHORS = 32  # up to this many anchors the [n, m] cost is stored; past it, a lazy PointCloud
_SETTINGS = ("max_iters", "grad_mode")

Normalize = Literal["minmax", "sigmoid", "none"]


class _Output(NamedTuple):
    value: jax.Array
    status: jax.Array


# ----------------------------------------------------------------------------- checks


def _values(x, name: str, fn: str) -> jax.Array:
    """``x: [..., n]`` as a floating array; NaN/inf raise when concrete."""
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"{fn}: {name} must be an array [..., n] of values, got a scalar")
    if x.shape[-1] == 0:
        raise ValueError(f"{fn}: {name} is empty along its last axis (shape {tuple(x.shape)})")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if concrete_true(~all_finite(x)):
        raise ValueError(f"{fn}: {name} contains NaN or inf")
    return x


def _settings(fn: str, normalize, max_iters, grad_mode) -> tuple[int, int]:
    """``(index of normalize, max_iters)`` after checking the settings."""
    if normalize not in _NORMALIZATIONS:
        raise ValueError(f"{fn}: normalize must be one of {', '.join(map(repr, _NORMALIZATIONS))}, got {normalize!r}")
    if grad_mode == "envelope":
        raise ValueError(f"{fn}: grad_mode='envelope' does not differentiate the plan, which every soft operator "
                         "reads; use 'implicit' (default) or 'unroll'")
    if grad_mode not in _GRAD_MODES:
        raise ValueError(f"{fn}: grad_mode must be 'implicit' (default) or 'unroll', got {grad_mode!r}")
    return _NORMALIZATIONS.index(normalize), check_int_at_least(max_iters, "max_iters", fn, low=1, allow_none=False)


def _finish(value, status, fn: str, invalid_text: str, throw: bool):
    """``value``; with ``throw``, raise on a bad ``status`` (now if concrete, at run time under ``jit``)."""
    if not throw:
        return value
    messages = {Status.INVALID_INPUT: f"ot_jax.{fn}: INVALID_INPUT: {invalid_text}"}
    return raise_on_status(_Output(value, status), fn, "epsilon", messages=messages, field="value").value


# ----------------------------------------------------------------------------- the transport


def _minmax(x):
    lo, hi = jnp.min(x), jnp.max(x)
    span = hi - lo
    return jnp.where(span > 0, (x - lo) / jnp.where(span > 0, span, 1.0), 0.5)


def _sigmoid(x):
    centred = x - jnp.mean(x)
    var = jnp.mean(centred**2)
    std = jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0)  # no NaN gradient at var = 0
    return jax.nn.sigmoid(centred / (std + 1e-10))


def _normalize(x: jax.Array, how) -> jax.Array:
    """``x: [n]`` -> ``[n]`` normalised to ``[0, 1]``; ``how`` indexes :data:`_NORMALIZATIONS`.

    A traced index (``lax.switch``), so that one compiled program serves every normalisation.
    """
    return jax.lax.switch(how, (_minmax, _sigmoid, lambda v: v), x)


def _two_anchor_start(points, b, eps):
    """Column potentials ``(0, h)`` that solve the two-anchor problem, by bisection on ``h``.

    With ``g = (0, h)`` the share of point ``i`` sent to anchor 1 is
    ``sigmoid((h - d_i) / eps)``, ``d_i = C_i1 - C_i0 = 1 - 2 x_i``; their mean is
    increasing in ``h`` and must equal ``b_1``. Sinkhorn iterations converge slowly on
    this problem once few points are shared between the anchors (small ``n`` or
    ``epsilon``: 10^4 and more iterations), so the solve starts from this point and
    only polishes it. A start carries no derivative (the solver's implicit
    differentiation gives the gradient).
    """
    points, b, eps = jax.lax.stop_gradient((points, b, eps))
    d = 1.0 - 2.0 * points
    mass = lambda h: jnp.mean(jax.nn.sigmoid((h - d) / eps))
    lo, hi = jnp.min(d) - 40.0 * eps, jnp.max(d) + 40.0 * eps

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        low = mass(mid) < b[1]
        return jnp.where(low, mid, lo), jnp.where(low, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 60, halve, (lo, hi))
    h = 0.5 * (lo + hi)
    return jnp.zeros_like(points), jnp.stack([jnp.zeros_like(h), h])


def _transport(x, b, eps, tol, *, normalize, max_iters, grad_mode):
    """Entropic OT from ``x: [n]`` (uniform mass) to ``m = len(b)`` anchors ``linspace(0, 1, m)``.

    ``normalize``: traced index into :data:`_NORMALIZATIONS`.
    """
    points = _normalize(x, normalize)
    m = b.shape[0]
    anchors = jnp.linspace(0.0, 1.0, m, dtype=x.dtype)
    if m <= _DENSE_ANCHORS:
        geom = Geometry((points[:, None] - anchors[None, :]) ** 2)
    else:
        geom = PointCloud(points[:, None], anchors[:, None])
    # Unrolled gradients differentiate the iterations themselves: they start cold, or the
    # few polishing steps after a warm start would be all they see.
    init = _two_anchor_start(points, b, eps) if m == 2 and grad_mode == "implicit" else None
    return sinkhorn(geom, None, b, epsilon=eps, tol=tol, max_iters=max_iters, grad_mode=grad_mode, init=init)


def _bad_slice(x, eps):
    """Traced flag: the slice ``x`` has a NaN/inf or ``eps`` is not a finite number > 0."""
    return ~jnp.all(jnp.isfinite(x)) | ~(jnp.isfinite(eps) & (eps > 0))


def _map_slices(one, x, *args):
    """``one(x_row, *args) -> (outputs, status, bad)`` over the rows of ``x: [B, n]``; NaN where bad."""
    out, status, bad = jax.vmap(one, in_axes=(0,) + (None,) * len(args))(x, *args)
    out = jax.tree_util.tree_map(lambda o: jnp.where(bad.reshape(bad.shape + (1,) * (o.ndim - 1)), jnp.nan, o), out)
    status = jnp.where(bad, Status.INVALID_INPUT, status).astype(jnp.int32)
    return out, status


@functools.partial(jax.jit, static_argnames=_SETTINGS)
def _topk(x, k, descending, normalize, eps, tol, *, max_iters, grad_mode):
    n = x.shape[-1]
    frac = jnp.asarray(k, x.dtype) / n
    share = jnp.where(descending, frac, 1.0 - frac)  # mass of anchor 1
    b = jnp.stack([1.0 - share, share])
    pick = jnp.where(descending, jnp.array([0.0, 1.0], x.dtype), jnp.array([1.0, 0.0], x.dtype))

    def one(row, b, pick, eps, tol):
        out = _transport(row, b, eps, tol, normalize=normalize, max_iters=max_iters, grad_mode=grad_mode)
        return n * out.apply(pick, axis=1), out.status, _bad_slice(row, eps)

    return _map_slices(one, x, b, pick, eps, tol)


@functools.partial(jax.jit, static_argnames=("num_targets",) + _SETTINGS)
def _sort_and_rank(x, normalize, eps, tol, *, num_targets, max_iters, grad_mode):
    """``([B, m] sorted values, [B, n] ranks, [B] status)``: one program serves both operators."""
    n, m = x.shape[-1], num_targets
    b = jnp.full((m,), 1.0 / m, x.dtype)
    scale = (n - 1.0) / (m - 1.0) if m > 1 else 0.0

    def one(row, b, eps, tol):
        out = _transport(row, b, eps, tol, normalize=normalize, max_iters=max_iters, grad_mode=grad_mode)
        ranks = n * scale * out.apply(jnp.arange(m, dtype=x.dtype), axis=1)
        return (out.apply(row, axis=0) / b, ranks), out.status, _bad_slice(row, eps)

    (values, ranks), status = _map_slices(one, x, b, eps, tol)
    return values, ranks, status


def _quantile_targets(q, weight):
    """Anchor weights ``[2Q + 1]`` (filler, w, filler, ..., w, filler) for sorted levels ``q: [Q]``.

    The anchor of level ``q_j`` gets mass ``w`` centred at cumulative mass ``q_j``: ``w`` is
    ``weight`` capped at half of every gap between consecutive levels (0 and 1 included)
    and at ``0.5 / Q``, so every filler keeps positive mass. This is OTT-JAX's rule
    (``ott.tools.soft_sort.quantile``).
    """
    n_q = q.shape[0]
    dtype = q.dtype
    gaps = jnp.diff(jnp.concatenate([jnp.zeros(1, dtype), q, jnp.ones(1, dtype)]))  # [Q + 1]
    w = jnp.minimum(jnp.minimum(0.5 / n_q, 0.5 * jnp.min(gaps)), weight)
    # interior fillers lose w (half to each neighbouring level), the two end fillers w / 2
    ends = jnp.zeros(n_q + 1, dtype).at[0].set(0.5).at[-1].add(0.5)
    fillers = gaps - w * (1.0 - ends)
    weights = jnp.stack([fillers, jnp.full((n_q + 1,), w, dtype)], axis=1).reshape(-1)[:-1]
    return weights


@functools.partial(jax.jit, static_argnames=_SETTINGS)
def _quantile(x, q, weight, normalize, eps, tol, *, max_iters, grad_mode):
    n = x.shape[-1]
    order = jnp.argsort(q)
    q_sorted = q[order]
    b = _quantile_targets(q_sorted, weight)
    q_bad = ~jnp.all(jnp.isfinite(q) & (q > 0) & (q < 1)) | jnp.any(jnp.diff(q_sorted) <= 0)
    q_bad = q_bad | ~(jnp.isfinite(weight) & (weight > 0))

    def one(row, b, eps, tol):
        out = _transport(row, b, eps, tol, normalize=normalize, max_iters=max_iters, grad_mode=grad_mode)
        means = out.apply(row, axis=0) / b
        value = jnp.zeros(q.shape, x.dtype).at[order].set(means[1::2])
        return value, out.status, _bad_slice(row, eps) | q_bad

    return _map_slices(one, x, b, eps, tol)


# ----------------------------------------------------------------------------- public operators


def _rows(x):
    """``x: [..., n]`` -> ``([B, n], leading shape)``."""
    return x.reshape((-1, x.shape[-1])), x.shape[:-1]


def _epsilon(epsilon, fn):
    check_positive(epsilon, "epsilon", fn)  # raises for a concrete bad value; traced: checked per slice
    return epsilon


def soft_topk(
    scores,
    k: int,
    *,
    epsilon=1e-2,
    descending: bool = True,
    normalize: Normalize = "minmax",
    tol: float = 1e-4,
    max_iters: int = 5000,
    grad_mode: Literal["implicit", "unroll"] = "implicit",
    throw: bool = False,
) -> jax.Array:
    """Soft top-k indicator of ``scores`` (SOFT, Xie et al. 2020).

    Entropic OT from the ``n`` normalised scores, mass ``1/n`` each, to two anchors
    ``0`` and ``1`` with masses ``(n - k)/n`` and ``k/n``, cost the squared distance
    between normalised score and anchor. The indicator is ``n P[:, 1]`` (the mass
    each score sends to anchor 1, per unit of its own mass): in ``[0, 1]`` (up to
    ``tol``) and summing to ``k`` (exactly: the solver ends on the column update).
    As ``epsilon -> 0`` it is the hard top-k mask; tied scores share the mass evenly.

    Args:
      scores: ``[..., n]`` scores (leading axes are independent problems).
      k: number of entries to select, ``0 < k < n`` (static).
      epsilon: temperature, > 0, in units of the normalised squared distance (with
        ``normalize="minmax"`` the scores span ``[0, 1]``).
      descending: select the ``k`` largest scores (True) or the ``k`` smallest.
      normalize: ``"minmax"`` (default, as in the paper: ``(s - min s) / (max s - min s)``
        per slice), ``"sigmoid"`` (OTT-JAX's ``topk_mask``: sigmoid of the whitened
        scores) or ``"none"`` (scores used as they are).
      tol: Sinkhorn tolerance on the relative L1 marginal error.
      max_iters: Sinkhorn iteration cap (static).
      grad_mode: ``"implicit"`` (default; implicit function theorem, memory as the
        forward pass) or ``"unroll"`` (through the iterations).
      throw: raise on a status other than ``CONVERGED`` (also inside ``jit``).

    Returns:
      ``[..., n]`` soft indicator. NaN for a slice with NaN/inf scores (or a traced
      ``epsilon <= 0``) inside ``jit``.

    Raises:
      ValueError: ``k`` not an integer in ``(0, n)``, a bad setting, or (concrete
        inputs) NaN/inf scores or ``epsilon <= 0``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> mask = ot_jax.soft_topk(jnp.array([0.1, 3.0, 2.0, -1.0]), 2, epsilon=1e-3)
        >>> [round(float(v), 3) for v in mask]
        [0.0, 1.0, 1.0, 0.0]
    """
    fn = "soft_topk"
    x = _values(scores, "scores", fn)
    n = x.shape[-1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k < n:
        raise ValueError(f"{fn}: k must be an integer with 0 < k < n = {n} (the size of the last axis of scores), "
                         f"got {k!r}")
    how, max_iters = _settings(fn, normalize, max_iters, grad_mode)
    rows, lead = _rows(x)
    out, status = _topk(rows, int(k), bool(descending), how, _epsilon(epsilon, fn), tol, max_iters=max_iters,
                        grad_mode=grad_mode)
    return _finish(out.reshape(lead + (n,)), status.reshape(lead), fn,
                   "scores must be finite and epsilon a finite number > 0", throw)


def soft_sort(
    x,
    *,
    epsilon=1e-2,
    num_targets: int | None = None,
    normalize: Normalize = "sigmoid",
    tol: float = 1e-4,
    max_iters: int = 5000,
    grad_mode: Literal["implicit", "unroll"] = "implicit",
    throw: bool = False,
) -> jax.Array:
    """Soft sort of ``x`` in increasing order (Cuturi, Teboul & Vert 2019).

    Entropic OT from the ``n`` normalised values (mass ``1/n``) to ``m`` anchors
    ``linspace(0, 1, m)`` of mass ``1/m``; the ``j``-th sorted value is the mean of
    the values sent to anchor ``j``, ``(P^T x)_j / b_j``, a convex combination of the
    entries of ``x``. Same definition as ``ott.tools.soft_sort.sort`` (with its
    default ``topk=-1``). As ``epsilon -> 0`` and ``m = n`` it is ``jnp.sort(x)``.
    For decreasing order sort ``-x`` and negate (with ``"sigmoid"`` or ``"minmax"``
    that is exactly the reversed output).

    Args:
      x: ``[..., n]`` values (leading axes are independent problems).
      epsilon: temperature, > 0, in units of the normalised squared distance.
      num_targets: number ``m >= 1`` of sorted outputs (static); default ``n``.
      normalize: ``"sigmoid"`` (default, as OTT-JAX), ``"minmax"`` or ``"none"``
        (module docstring).
      tol, max_iters, grad_mode, throw: as in :func:`soft_topk`.

    Returns:
      ``[..., m]`` soft-sorted values (NaN for a bad slice inside ``jit``).

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> out = ot_jax.soft_sort(jnp.array([3.0, 1.0, 2.0]), epsilon=1e-3)
        >>> [round(float(v), 2) for v in out]
        [1.0, 2.0, 3.0]
    """
    fn = "soft_sort"
    x = _values(x, "x", fn)
    n = x.shape[-1]
    m = n if num_targets is None else check_int_at_least(num_targets, "num_targets", fn, low=1, allow_none=False)
    how, max_iters = _settings(fn, normalize, max_iters, grad_mode)
    rows, lead = _rows(x)
    out, _, status = _sort_and_rank(rows, how, _epsilon(epsilon, fn), tol, num_targets=m, max_iters=max_iters,
                                    grad_mode=grad_mode)
    return _finish(out.reshape(lead + (m,)), status.reshape(lead), fn,
                   "x must be finite and epsilon a finite number > 0", throw)


def soft_rank(
    x,
    *,
    epsilon=1e-2,
    num_targets: int | None = None,
    normalize: Normalize = "sigmoid",
    tol: float = 1e-4,
    max_iters: int = 5000,
    grad_mode: Literal["implicit", "unroll"] = "implicit",
    throw: bool = False,
) -> jax.Array:
    """Soft ranks of ``x``, 0-based, in ``[0, n - 1]`` (Cuturi, Teboul & Vert 2019).

    The plan of :func:`soft_sort`; entry ``i`` gets the mean index of the anchors
    its mass goes to, ``n (P (0, 1, ..., m - 1))_i``, rescaled by ``(n - 1)/(m - 1)``
    to ``[0, n - 1]``. Same definition as ``ott.tools.soft_sort.ranks``. As
    ``epsilon -> 0`` and ``m = n`` it is ``jnp.argsort(jnp.argsort(x))`` (the smallest
    value has rank 0).

    Args:
      x: ``[..., n]`` values (leading axes are independent problems).
      epsilon: temperature, > 0, in units of the normalised squared distance.
      num_targets: number ``m >= 2`` of anchors (static); default ``n``.
      normalize, tol, max_iters, grad_mode, throw: as in :func:`soft_sort`.

    Returns:
      ``[..., n]`` soft ranks (NaN for a bad slice inside ``jit``).

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> out = ot_jax.soft_rank(jnp.array([3.0, 1.0, 2.0]), epsilon=1e-3)
        >>> [round(float(v), 2) for v in out]
        [2.0, 0.0, 1.0]
    """
    fn = "soft_rank"
    x = _values(x, "x", fn)
    n = x.shape[-1]
    m = n if num_targets is None else check_int_at_least(num_targets, "num_targets", fn, low=2, allow_none=False)
    if m < 2:
        raise ValueError(f"{fn}: ranks need at least 2 anchors; x has n = {n} values (pass num_targets >= 2)")
    how, max_iters = _settings(fn, normalize, max_iters, grad_mode)
    rows, lead = _rows(x)
    _, out, status = _sort_and_rank(rows, how, _epsilon(epsilon, fn), tol, num_targets=m, max_iters=max_iters,
                                    grad_mode=grad_mode)
    return _finish(out.reshape(lead + (n,)), status.reshape(lead), fn,
                   "x must be finite and epsilon a finite number > 0", throw)


def soft_quantile(
    x,
    q,
    *,
    epsilon=1e-2,
    weight=None,
    normalize: Normalize = "sigmoid",
    tol: float = 1e-4,
    max_iters: int = 5000,
    grad_mode: Literal["implicit", "unroll"] = "implicit",
    throw: bool = False,
) -> jax.Array:
    """Soft quantiles of ``x`` at levels ``q`` (Cuturi, Teboul & Vert 2019).

    Entropic OT from the ``n`` normalised values (mass ``1/n``) to ``2 Q + 1``
    anchors ``linspace(0, 1, 2Q + 1)``: a small anchor of mass ``w`` for each level
    (centred at cumulative mass ``q_j``) between filler anchors that take the rest.
    The ``j``-th soft quantile is the mean of the values sent to level ``j``'s
    anchor, a convex combination of the entries of ``x``. Same construction and
    default ``w`` as ``ott.tools.soft_sort.quantile``. As ``epsilon -> 0`` it is the
    mean of the sorted values over the window of cumulative mass
    ``[q - w/2, q + w/2]`` (each value holding ``1/n``): the hard quantile of
    ``jnp.sort(x)`` averaged over ``w n`` neighbours (``w n = 1.5`` by default for
    ``n >= 75``).

    Args:
      x: ``[..., n]`` values (leading axes are independent problems).
      q: scalar or ``[Q]`` levels, distinct, each in the open interval ``(0, 1)``.
      epsilon: temperature, > 0, in units of the normalised squared distance.
      weight: mass ``w`` of each level's anchor; default ``min(0.02, 1.5 / n)``; in
        any case capped at ``0.5 / Q`` and at half of the smallest gap between
        levels (0 and 1 included).
      normalize, tol, max_iters, grad_mode, throw: as in :func:`soft_sort`.

    Returns:
      ``[..., Q]`` soft quantiles (``[...]`` for a scalar ``q``), in the order of
      ``q``; NaN for a bad slice (or bad traced ``q``) inside ``jit``.

    Raises:
      ValueError: (concrete ``q``) a level outside ``(0, 1)`` or repeated; an empty
        ``q``; and the checks of :func:`soft_sort`.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> x = jnp.arange(101.0)
        >>> round(float(ot_jax.soft_quantile(x, 0.5, epsilon=1e-4, tol=1e-6)), 1)
        50.0
    """
    fn = "soft_quantile"
    x = _values(x, "x", fn)
    n = x.shape[-1]
    q_arr = jnp.asarray(q)
    scalar = q_arr.ndim == 0
    if q_arr.ndim > 1 or q_arr.size == 0:
        raise ValueError(f"{fn}: q must be a scalar or a non-empty 1-D array of levels, got shape {tuple(q_arr.shape)}")
    q_arr = jnp.atleast_1d(q_arr).astype(x.dtype)
    if is_concrete(q_arr):
        levels = np.asarray(q_arr)
        if not np.all(np.isfinite(levels) & (levels > 0) & (levels < 1)):
            raise ValueError(f"{fn}: q must lie in the open interval (0, 1), got {levels.tolist()}")
        if np.unique(levels).size != levels.size:
            raise ValueError(f"{fn}: q must hold distinct levels, got {levels.tolist()}")
    if weight is None:
        weight = min(0.02, 1.5 / n)
    else:
        check_positive(weight, "weight", fn)
    weight = jnp.asarray(weight, x.dtype)
    how, max_iters = _settings(fn, normalize, max_iters, grad_mode)
    rows, lead = _rows(x)
    out, status = _quantile(rows, q_arr, weight, how, _epsilon(epsilon, fn), tol, max_iters=max_iters,
                            grad_mode=grad_mode)
    out = out.reshape(lead + q_arr.shape)
    if scalar:
        out = out[..., 0]
    return _finish(out, status.reshape(lead), fn,
                   "x must be finite, q distinct levels in (0, 1), weight and epsilon finite numbers > 0", throw)
