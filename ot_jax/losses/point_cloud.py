"""Losses between point clouds: the Chamfer distance and the exact OT loss (the EMD).

The use case of the lecture slides: compare a predicted and a reference point
cloud (PointSetGen, Fan et al. 2017; AtlasNet, Groueix et al. 2018) of 1000 to
10000 points in 3 to 6 dimensions, with a loss that does not depend on the
order of the points.

- :func:`chamfer_distance` matches every point to its nearest neighbour in the
  other cloud, both ways: ``mean_i min_j |x_i - y_j|^p + mean_j min_i |x_i - y_j|^p``.
  It is cheap (``O(n m d)``, computed in blocks so no ``[n, m]`` array is ever
  stored) but it is not a transport: many points may match the same one, so
  it ignores density (a cloud collapsed onto part of the target still scores well).
- :func:`exact_loss` (the earth mover's distance, EMD) is the optimal transport cost between the two empirical
  measures. For equal sizes and uniform weights the optimal plan is a
  permutation (Birkhoff), so it is the mean matched cost of the optimal
  assignment ``min_sigma (1/n) sum_i |x_i - y_sigma(i)|^p``, solved exactly by
  :func:`ot_jax.assignment`. Unequal sizes or weights go through
  :func:`ot_jax.emd` (``method="lp"``, the exact LP) or :func:`ot_jax.ipot` on a
  :class:`ot_jax.PointCloud`. The same concept, with the minibatch trainers'
  signature, is :func:`ot_jax.losses.minibatch.exact_loss`.

Both are differentiable in the points. The Chamfer gradient is that of the
nearest-neighbour distance (``p |x_i - y_nn(i)|^(p-2) (x_i - y_nn(i))`` per term,
a subgradient where the nearest neighbour is not unique); the exact loss' gradient
follows from the envelope theorem (Danskin): the matching is held fixed, so
``d/dx_i = (p/n) |x_i - y_sigma(i)|^(p-2) (x_i - y_sigma(i))``, i.e.
``2 (x_i - y_sigma(i)) / n`` for the default ``p = 2``.

References: Fan, Su, Guibas, "A point set generation network for 3D object
reconstruction from a single image", CVPR 2017 (Chamfer and EMD losses);
Kuhn, "The Hungarian method for the assignment problem", 1955; Bertsekas,
"A distributed algorithm for the assignment problem", 1979/1981 (auction).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_int_at_least, check_points, check_same_dim, is_concrete
from ot_jax.geometry import Euclidean, PNorm, SqEuclidean, nearest_neighbors
from ot_jax.losses import _exact
from ot_jax.solvers import raise_on_status

__all__ = ["chamfer_distance", "exact_loss"]

_METHODS = _exact.ASSIGNMENT_METHODS + _exact.PLAN_METHODS


# ----------------------------------------------------------------------------- helpers


def _check_p(p, fn: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not np.isfinite(p) or p <= 0:
        raise ValueError(f"{fn}: p must be a finite number > 0, got {p!r}")
    return float(p)


def _pow_dist(sq: jax.Array, p: float) -> jax.Array:
    """``|.|^p`` from squared distances, with a zero (sub)gradient at 0 for ``p <= 2``."""
    if p == 2.0:
        return sq
    positive = sq > 0
    safe = jnp.where(positive, sq, 1.0)
    return jnp.where(positive, safe ** (p / 2.0), 0.0)


# ----------------------------------------------------------------------------- Chamfer


def chamfer_distance(x, y, *, p: float = 2.0, block_size: int | None = None) -> jax.Array:
    """Symmetric Chamfer distance ``mean_i min_j |x_i - y_j|^p + mean_j min_i |x_i - y_j|^p``.

    With the default ``p = 2`` this is the squared-distance Chamfer loss of Fan et
    al. (CVPR 2017) averaged over points (as in PyTorch3D's ``chamfer_distance``);
    ``p = 1`` uses plain Euclidean distances. Both nearest-neighbour searches are
    blocked (see :func:`ot_jax.geometry.nearest_neighbors`), so two clouds of 10^4 points never
    materialise a 10^4 x 10^4 matrix. Works under ``jit``, ``vmap`` and ``grad``.

    Args:
      x: ``[n, d]`` points; y: ``[m, d]`` points (n and m may differ).
      p: exponent of the Euclidean distance (static, > 0).
      block_size: rows per block of the nearest-neighbour searches (static).

    Returns:
      scalar loss, ``>= 0`` and ``0`` iff the two point *sets* are equal.
      Its gradient is that of the nearest-neighbour distances (the nearest
      neighbours held fixed; a subgradient at ties), e.g. for ``p = 2``
      ``d/dx_i = 2 (x_i - y_nn(i)) / n + sum_{j: nn(j) = i} 2 (x_i - y_j) / m``.

    Raises:
      ValueError: arrays not 2-D, empty, of different dimension d, ``p <= 0``,
        or (for concrete inputs) NaN/inf points.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
        >>> y = jnp.array([[0.0, 0.5], [1.0, 0.0], [1.0, 0.0]])
        >>> round(float(ot_jax.chamfer_distance(x, y)), 6)  # (0.25 + 0) / 2 + (0.25 + 0 + 0) / 3
        0.208333
    """
    fn = "chamfer_distance"
    p = _check_p(p, fn)
    x = check_points(x, "x", fn)
    y = check_points(y, "y", fn)
    check_same_dim(x, y, fn)
    dtype = jnp.result_type(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    return _chamfer_core(x, y, p, check_int_at_least(block_size, "block_size", fn))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _chamfer_core(x, y, p, block_size):
    _, dx = nearest_neighbors(x, y, block_size=block_size)
    _, dy = nearest_neighbors(y, x, block_size=block_size)
    return jnp.mean(_pow_dist(dx, p)) + jnp.mean(_pow_dist(dy, p))


# ----------------------------------------------------------------------------- exact OT (EMD)


def exact_loss(x, y, a=None, b=None, *, p: float = 2.0, method: str = "hungarian", throw: bool = False,
               **solver_kwargs) -> jax.Array:
    """Exact OT cost ``W_p^p`` between two point clouds (the earth mover's distance; permutation-invariant).

    For equal sizes and uniform weights (the default) the optimal plan is a
    permutation, and the loss is the mean matched cost of the optimal assignment

        ``EMD(x, y) = min_sigma (1/n) sum_i |x_i - y_sigma(i)|^p``,

    solved exactly by the Hungarian method (``method="hungarian"``, best on the
    CPU) or within ``n * eps_final`` by the parallel auction (``"auction"``, best
    on accelerators); both are ``O(n^3)``-ish, practical up to a few thousand
    points. For different sizes or weights use ``method="lp"`` (exact LP on the
    host, dense, a few hundred points) or ``method="ipot"`` (exact OT by proximal
    point iterations on a lazy :class:`~ot_jax.PointCloud`, the large-scale path);
    both return ``sum_ij P_ij |x_i - y_j|^p`` with weights normalised to mass 1.

    Differentiable in ``x`` and ``y`` by the envelope theorem: the matching (or
    plan) is computed on stopped gradients and the loss is re-evaluated on the
    points, so ``d/dx_i = (p/n) |x_i - y_sigma(i)|^(p-2) (x_i - y_sigma(i))``
    (``2 (x_i - y_sigma(i)) / n`` for ``p = 2``). Batched inputs ``[B, n, d]``
    are mapped with ``jax.vmap``; ``jit``/``vmap`` work on the function too.

    Args:
      x: ``[n, d]`` or ``[B, n, d]`` points; y: ``[m, d]`` or ``[B, m, d]``
        (``m = n`` for the assignment methods).
      a: ``[n]`` (or ``[B, n]``) source weights, uniform if None; b: ``[m]`` (or
        ``[B, m]``) target weights. Only with ``method="lp"`` or ``"ipot"``.
      p: exponent of the Euclidean ground distance (static, > 0); ``p = 2``
        gives ``W_2^2``, ``p = 1`` the classical EMD ``W_1``.
      method: ``"hungarian"``, ``"auction"``, ``"lp"`` or ``"ipot"``.
      throw: raise (also inside ``jit``) when the solver reports a bad status
        (e.g. IPOT or the auction hitting ``max_iters``); otherwise the value of
        the last iterate is returned (use :func:`ot_jax.losses.minibatch.exact_loss`
        for the status itself).
      **solver_kwargs: passed to :func:`ot_jax.assignment` (e.g. ``eps_final``),
        :func:`ot_jax.emd` or :func:`ot_jax.ipot` (e.g. ``beta``, ``tol``).

    Returns:
      scalar loss (``[B]`` for batched inputs); ``0`` iff the two clouds are the
      same set of points (with multiplicity).

    Raises:
      ValueError: bad shapes, ``n != m`` or weights with an assignment method,
        unknown method, ``p <= 0``, NaN/inf points (concrete inputs).

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
        >>> float(ot_jax.exact_loss(x, x[::-1] + jnp.array([0.0, 1.0])))  # a shuffle, then a shift by 1
        1.0
    """
    fn = "exact_loss"
    p = _check_p(p, fn)
    _exact.check_method(method, _METHODS, fn)
    x = check_points(x, "x", fn, batched=True)
    y = check_points(y, "y", fn, batched=True)
    if x.ndim != y.ndim:
        raise ValueError(f"{fn}: x has shape {tuple(x.shape)} and y has shape {tuple(y.shape)}; "
                         "both must be [n, d] or both batched [B, n, d]")
    if x.ndim == 3 and x.shape[0] != y.shape[0]:
        raise ValueError(f"{fn}: batch sizes differ, x has {x.shape[0]} clouds but y has {y.shape[0]}")
    check_same_dim(x, y, fn)
    n, m = x.shape[-2], y.shape[-2]
    _exact.check_sizes(method, n, m, fn)
    if method in _exact.ASSIGNMENT_METHODS and (a is not None or b is not None):
        raise ValueError(f"{fn}: weights a, b need method='lp' or method='ipot' "
                         f"(method={method!r} is for uniform weights)")
    dtype = jnp.result_type(x, y)
    x, y = x.astype(dtype), y.astype(dtype)

    try:  # settings as static arguments of one compiled function (each new value recompiles)
        static = tuple(sorted(solver_kwargs.items()))
        hash(static)
        single = functools.partial(_exact_loss_jit, p=p, method=method, throw=bool(throw), static_kwargs=static)
    except TypeError:  # an array among the settings: stay eager (the solvers compile their own parts)
        single = functools.partial(_exact_loss_single, p=p, method=method, throw=bool(throw),
                                   solver_kwargs=solver_kwargs)

    a = _weights(a, x.shape[:-1], "a", fn, dtype)
    b = _weights(b, y.shape[:-1], "b", fn, dtype)
    if x.ndim == 2:
        return single(x, y, a, b)
    axes = (0, 0, None if a is None else 0, None if b is None else 0)
    return jax.vmap(single, in_axes=axes)(x, y, a, b)


def _weights(w, shape, name: str, fn: str, dtype):
    """Check weights ``[n]`` (or ``[B, n]``); they are normalised to mass 1 later."""
    if w is None:
        return None
    w = jnp.asarray(w)
    if w.shape != tuple(shape):
        raise ValueError(f"{fn}: weights {name} must have shape {tuple(shape)} (one per point), got {w.shape}")
    w = w.astype(dtype)
    if is_concrete(w):
        v = np.asarray(w)
        if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v.sum(-1) <= 0):
            raise ValueError(f"{fn}: weights {name} must be finite, >= 0 and not all zero")
    return w


@functools.partial(jax.jit, static_argnames=("p", "method", "throw", "static_kwargs"))
def _exact_loss_jit(x, y, a, b, *, p, method, throw, static_kwargs):
    return _exact_loss_single(x, y, a, b, p=p, method=method, throw=throw, solver_kwargs=dict(static_kwargs))


class _Checked(NamedTuple):
    """Carrier of a loss value and its solver's status for :func:`raise_on_status`."""

    cost: jax.Array
    status: jax.Array


def _exact_loss_single(x, y, a, b, *, p, method, throw, solver_kwargs):
    cost_fn = SqEuclidean() if p == 2.0 else Euclidean() if p == 1.0 else PNorm(p=2.0, power=p)
    pair = lambda u, v: _pow_dist(jnp.sum((u - v) ** 2, axis=-1), p)  # zero (sub)gradient at 0
    value, status, _ = _exact.exact_cost(x, y, a, b, cost_fn=cost_fn, method=method, pair_cost=pair,
                                         **solver_kwargs)
    if throw:
        value = raise_on_status(_Checked(value, status), "exact_loss", _exact.PARAMETERS[method]).cost
    return value
