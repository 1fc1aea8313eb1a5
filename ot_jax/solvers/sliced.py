"""Exact 1-D optimal transport and (max-)sliced Wasserstein distances.

In one dimension the optimal plan is monotone, so for ``p >= 1``
``W_p^p(mu, nu) = int_0^M |F^-1(t) - G^-1(t)|^p dt`` where ``F^-1``, ``G^-1`` are
the quantile functions (step functions) of the two weighted samples and ``M``
their common mass. Both are constant between the breakpoints ``cumsum(a)`` and
``cumsum(b)``, so the integral is an exact finite sum over the merged breakpoints.
One call costs three sorts (``x``, ``y`` and the merged breakpoints); with uniform
weights the merge does not depend on the data and is done once per call, so the
sliced distance sorts only the projected points.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import all_finite, check_weights, concrete_true
from ot_jax.solvers.results import Exact1DResult, Status

__all__ = ["emd_1d", "wasserstein_1d", "sliced_wasserstein"]


def _points_1d(x, name: str, fn: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{fn}: {name} must be a 1-D array of samples [n], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{fn}: {name} is empty; need at least one sample")
    return x


def _float_dtype(*xs):
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _check_weights(x, y, a, b, fn: str):
    """Validate ``a [n]``, ``b [m]`` against the samples; return ``(a, b, invalid)``.

    ``a``/``b`` stay None when uniform (the fast path); inside a trace bad values set
    ``invalid`` (the distance is then NaN). See :func:`ot_jax.solvers.problem.check_weights`.
    """
    return check_weights(a, b, (x.shape[0], y.shape[0]), x.dtype, fn,
                         owners=("x has {} samples", "y has {} samples"))


def _check_points_finite(fn: str, **arrays):
    for name, v in arrays.items():
        if concrete_true(~all_finite(v)):
            raise ValueError(f"{fn}: the points {name} contain NaN or inf")


def _check_p(p, fn: str) -> float:
    try:
        p = float(p)
    except TypeError:
        raise ValueError(f"{fn}: p must be a Python number >= 1 (static), got {type(p).__name__}") from None
    if not (np.isfinite(p) and p >= 1.0):
        raise ValueError(f"{fn}: p must be a finite number >= 1, got {p}")
    return p


def _checked_1d(x, y, a, b, p, fn: str):
    """Checked 1-D problem ``(x [n], y [m], a, b, invalid, p)`` in one floating dtype (weights None = uniform)."""
    p = _check_p(p, fn)
    x, y = _points_1d(x, "x", fn), _points_1d(y, "y", fn)
    dtype = _float_dtype(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    _check_points_finite(fn, x=x, y=y)
    a, b, invalid = _check_weights(x, y, a, b, fn)
    return x, y, a, b, invalid, p


def _merge(cwa, cwb):
    """Merge breakpoints ``cwa [n]``, ``cwb [m]`` (each non-decreasing).

    Returns ``(delta [n+m], ia [n+m], ib [n+m])``: interval lengths of the merged
    grid ``(q_{k-1}, q_k]`` and, for each interval, the index of the sample of x
    (resp. y) that the quantile function takes there. One stable sort: for the
    k-th merged breakpoint the number of x-breakpoints before it is exactly the
    left ``searchsorted`` index wherever the interval has positive length.
    """
    n, m = cwa.shape[0], cwb.shape[0]
    is_a = jnp.concatenate([jnp.ones(n, jnp.int32), jnp.zeros(m, jnp.int32)])
    qs, is_a = jax.lax.sort((jnp.concatenate([cwa, cwb]), is_a), num_keys=1, is_stable=True)
    ia = jnp.cumsum(is_a) - is_a
    ib = jnp.cumsum(1 - is_a) - (1 - is_a)
    delta = jnp.diff(qs, prepend=jnp.zeros((1,), qs.dtype))
    return delta, jnp.minimum(ia, n - 1), jnp.minimum(ib, m - 1)


def _uniform_cw(n, dtype):
    return jnp.arange(1, n + 1, dtype=dtype) / n


def _cost_sorted(xs, ys, delta, ia, ib, p):
    """``sum_k delta_k |xs[ia_k] - ys[ib_k]|^p`` for already sorted samples."""
    return jnp.sum(delta * _pow(jnp.abs(xs[ia] - ys[ib]), p))


def _pow(diff, p):
    if p == 1.0:
        return diff
    if p == 2.0:
        return diff * diff
    return diff**p


def _wpp_uniform(x, y, merged, p):
    """W_p^p for uniform weights, given the precomputed merge of ``k/n`` and ``l/m``."""
    return _cost_sorted(jnp.sort(x), jnp.sort(y), *merged, p)


def _wpp_weighted(x, y, a, b, p):
    """W_p^p for general weights (a or b may be None = uniform)."""
    n, m = x.shape[0], y.shape[0]
    dtype = x.dtype
    if a is None:
        xs, cwa = jnp.sort(x), _uniform_cw(n, dtype)
    else:
        xs, a_s = jax.lax.sort((x, a), num_keys=1)
        cwa = jnp.cumsum(a_s)
    if b is None:
        ys, cwb = jnp.sort(y), _uniform_cw(m, dtype)
    else:
        ys, b_s = jax.lax.sort((y, b), num_keys=1)
        cwb = jnp.cumsum(b_s)
    return _cost_sorted(xs, ys, *_merge(cwa, cwb), p)


def _root(s, p):
    """``s^(1/p)`` with a zero (not NaN) gradient at ``s = 0``."""
    pos = s > 0
    return jnp.where(pos, jnp.where(pos, s, 1.0) ** (1.0 / p), 0.0)


def wasserstein_1d(x, y, a=None, b=None, *, p: float = 1.0) -> jax.Array:
    """Exact 1-D Wasserstein distance ``W_p`` between weighted samples (the p-th root taken).

    ``W_p^p = int_0^M |F^-1(t) - G^-1(t)|^p dt`` over the quantile functions, computed
    exactly on the merged breakpoints of ``cumsum(a)`` and ``cumsum(b)``: O((n+m) log(n+m)).
    Works under ``jit``, ``vmap`` and ``grad`` (differentiable in x, y, and in a, b
    through the interval lengths).

    Args:
      x: ``[n]`` source samples; y: ``[m]`` target samples.
      a: ``[n]`` source weights (uniform ``1/n`` if None); b: ``[m]`` target weights.
        Weights must be finite, >= 0 and have equal total mass.
      p: exponent, a static number >= 1.

    Returns:
      scalar ``W_p`` (not ``W_p^p``). Inside ``jit``/``vmap`` invalid weights give NaN.

    Raises:
      ValueError: on empty or non-1-D samples, weight shape mismatch, ``p < 1`` and,
        for concrete inputs, negative/non-finite weights, unequal masses or non-finite points.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> float(ot_jax.wasserstein_1d(jnp.array([0.0, 1.0]), jnp.array([2.0, 3.0, 4.0]), p=1.0))
        2.5
    """
    x, y, a, b, invalid, p = _checked_1d(x, y, a, b, p, "wasserstein_1d")
    return _w1d_core(x, y, a, b, invalid, p)


@partial(jax.jit, static_argnums=5)
def _w1d_core(x, y, a, b, invalid, p):
    return jnp.where(invalid, jnp.nan, _root(_wpp_weighted(x, y, a, b, p), p))


def emd_1d(x, y, a=None, b=None, *, p: float = 2.0) -> Exact1DResult:
    """Exact 1-D OT with cost ``|x_i - y_j|^p``: the monotone plan (sparse), dual potentials, ``W_p^p``.

    The plan couples the quantile functions: on the merged breakpoints of
    ``cumsum(a)`` and ``cumsum(b)`` (sorted samples) each interval of mass moves from
    one ``x`` to one ``y``, a staircase of ``n + m - 1`` cells (north-west corner
    rule), optimal for every ``p >= 1`` since the cost is convex in ``x - y``. The
    duals make every staircase cell tight: walking the staircase, each step adds one
    new row or one new column, whose potential is the cell's cost minus the other
    one's (a cumulative sum, no loop); the Monge property of the cost then gives
    ``f_i + g_j <= |x_i - y_j|^p`` everywhere. O((n + m) log(n + m)) time, O(n + m)
    memory; ``jit``, ``vmap``, ``grad``. Derivatives: ``cost`` (envelope: ``d/dx``
    through the plan's cells, ``d/da = f`` and ``d/db = g`` up to a shared constant) and
    ``f``, ``g``, ``values`` (derivatives of these closed forms with the staircase held
    fixed, exact wherever the sorted order and the breakpoint order do not change).

    Args:
      x: ``[n]`` source samples; y: ``[m]`` target samples.
      a: ``[n]`` source weights (uniform ``1/n`` if None); b: ``[m]`` target weights
        (finite, ``>= 0``, equal masses; zeros are fine).
      p: exponent, a static number >= 1.

    Returns:
      :class:`~ot_jax.solvers.results.Exact1DResult`; ``cost`` is ``W_p^p`` (the value
      :func:`wasserstein_1d` takes the p-th root of), differentiable in ``x``, ``y``,
      ``a`` and ``b``. Inside ``jit`` invalid weights give ``INVALID_INPUT`` and NaN.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> out = ot_jax.emd_1d(jnp.array([0.0, 1.0]), jnp.array([3.0, 2.0]), p=1.0)
        >>> out.plan().tolist(), float(out.cost)
        ([[0.0, 0.5], [0.5, 0.0]], 2.0)
    """
    x, y, a, b, invalid, p = _checked_1d(x, y, a, b, p, "emd_1d")
    a = jnp.full(x.shape, 1.0 / x.shape[0], x.dtype) if a is None else a
    b = jnp.full(y.shape, 1.0 / y.shape[0], x.dtype) if b is None else b
    return _emd_1d(x, y, a, b, invalid, p)


@partial(jax.jit, static_argnums=5)
def _emd_1d(x, y, a, b, invalid, p):
    """The staircase plan and its duals, for checked ``x [n]``, ``y [m]``, ``a [n]``, ``b [m]``."""
    n, m = x.shape[0], y.shape[0]
    order_x, order_y = jnp.argsort(x), jnp.argsort(y)
    xs, ys = x[order_x], y[order_y]
    delta, ia, ib = _merge(jnp.cumsum(a[order_x]), jnp.cumsum(b[order_y]))
    cell = _pow(jnp.abs(xs[ia] - ys[ib]), p)  # [n + m] cost of each staircase cell
    cost = jnp.sum(delta * cell)
    # Cell k adds row ia[k] (same column as cell k-1) or column ib[k] (same row); with both
    # cells tight, the new potential moves by cell[k] - cell[k-1] from the one it replaces.
    # (At the end the clamped indices repeat the last cell: neither moves.)
    step = jnp.diff(cell, prepend=cell[:1])
    new_row = jnp.diff(ia, prepend=ia[:1]) > 0
    new_col = jnp.diff(ib, prepend=ib[:1]) > 0
    u = jnp.cumsum(jnp.where(new_row, step, 0.0))  # f along the staircase, f[first row] = 0
    v = cell[0] + jnp.cumsum(jnp.where(new_col, step, 0.0))  # g along it: u + v = cell
    f_sorted = jnp.zeros(n, x.dtype).at[ia].set(u)  # every cell of a row gives it the same value
    g_sorted = jnp.zeros(m, x.dtype).at[ib].set(v)
    f = jnp.zeros(n, x.dtype).at[order_x].set(f_sorted)
    g = jnp.zeros(m, x.dtype).at[order_y].set(g_sorted)
    shift = (jnp.dot(a, f) - jnp.dot(b, g)) / (2.0 * jnp.sum(a))
    f, g = f - shift, g + shift
    status = jnp.where(invalid, Status.INVALID_INPUT, Status.CONVERGED).astype(jnp.int32)
    nan = lambda v: jnp.where(invalid, jnp.nan, v)  # noqa: E731
    return Exact1DResult(rows=order_x[ia].astype(jnp.int32), cols=order_y[ib].astype(jnp.int32),
                         values=nan(delta), f=nan(f), g=nan(g), cost=nan(cost),
                         converged=status == Status.CONVERGED, status=status)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _directions(key, n_projections: int, d: int, dtype) -> jax.Array:
    theta = jax.random.normal(key, (n_projections, d), dtype=dtype)
    return theta / jnp.linalg.norm(theta, axis=1, keepdims=True)


def sliced_wasserstein(
    key,
    x,
    y,
    a=None,
    b=None,
    *,
    n_projections: int = 100,
    p: float = 2.0,
    max_sliced: bool = False,
    projections=None,
) -> jax.Array:
    """Monte-Carlo sliced Wasserstein distance ``(mean_theta W_p^p(theta#mu, theta#nu))^(1/p)``.

    Draws ``n_projections`` directions uniformly on the unit sphere with ``key``,
    projects both point clouds on them and solves each 1-D problem exactly
    (:func:`wasserstein_1d`'s quantile code, vectorised over directions). Cost
    ``O(k (n log n + m log m))`` for k directions with uniform weights; 10^6 points
    and 100 directions run on a CPU. Differentiable in x, y (and a, b).

    Args:
      key: ``jax.random`` key for the directions (ignored when ``projections`` is given).
      x: ``[n, d]`` source points; y: ``[m, d]`` target points.
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights (equal mass).
      n_projections: number of random directions k (static, >= 1).
      p: exponent, a static number >= 1.
      max_sliced: return ``max_theta W_p`` over the drawn directions instead of the mean.
      projections: optional ``[k, d]`` directions to use instead of random ones (each
        row is used as given; normalise them for the usual definition).

    Returns:
      scalar estimate. Inside ``jit``/``vmap`` invalid weights give NaN.

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (500, 3))
        >>> sw = ot_jax.sliced_wasserstein(jax.random.PRNGKey(1), x, x + 1.0, n_projections=50)
        >>> 0.5 < float(sw) < 1.5
        True
    """
    fn = "sliced_wasserstein"
    p = _check_p(p, fn)
    x = x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x)
    y = y if isinstance(y, (jax.Array, np.ndarray)) else np.asarray(y)
    for name, v in (("x", x), ("y", y)):
        if v.ndim != 2:
            raise ValueError(f"{fn}: {name} must be a 2-D array of points [n, d], got shape {tuple(v.shape)}")
        if v.shape[0] == 0:
            raise ValueError(f"{fn}: {name} is empty; need at least one point")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{fn}: x has dimension d = {x.shape[1]} but y has d = {y.shape[1]}; they must match")
    d = x.shape[1]
    dtype = _float_dtype(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    _check_points_finite(fn, x=x, y=y)
    if projections is None:
        if isinstance(n_projections, bool) or not isinstance(n_projections, (int, np.integer)) or n_projections < 1:
            raise ValueError(f"{fn}: n_projections must be an integer >= 1, got {n_projections!r}")
        theta = _directions(key, int(n_projections), d, dtype)
    else:
        theta = jnp.asarray(projections, dtype)
        if theta.ndim != 2 or theta.shape[1] != d or theta.shape[0] == 0:
            raise ValueError(
                f"{fn}: projections must have shape [k, {d}] with k >= 1, got {tuple(theta.shape)}"
            )
    a, b, invalid = _check_weights(x, y, a, b, fn)
    return _sliced_core(theta, x, y, a, b, invalid, p, bool(max_sliced))


@partial(jax.jit, static_argnums=(6, 7))
def _sliced_core(theta, x, y, a, b, invalid, p, max_sliced):
    dtype = x.dtype
    xp = theta @ x.T  # [k, n]
    yp = theta @ y.T  # [k, m]
    n, m = x.shape[0], y.shape[0]
    if a is None and b is None and n == m:
        # equal uniform weights: the quantile functions share their breakpoints k/n
        terms = lambda u, v: jnp.mean(_pow(jnp.abs(jnp.sort(u) - jnp.sort(v)), p))  # noqa: E731
        wpp = jax.vmap(terms)(xp, yp)
    elif a is None and b is None:
        merged = _merge(_uniform_cw(n, dtype), _uniform_cw(m, dtype))
        wpp = jax.vmap(lambda u, v: _wpp_uniform(u, v, merged, p))(xp, yp)
    else:
        wpp = jax.vmap(lambda u, v: _wpp_weighted(u, v, a, b, p))(xp, yp)
    out = jnp.max(wpp) if max_sliced else jnp.mean(wpp)
    return jnp.where(invalid, jnp.nan, _root(out, p))
