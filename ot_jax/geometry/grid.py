"""A regular (or rectilinear) grid whose squared Euclidean kernel is separable.

On a grid with per-axis coordinates ``axes[d]: [n_d]`` (``D = len(axes)`` in 1-3)
the points are all ``n = n_0 * ... * n_{D-1}`` tuples ``(axes[0][i_0], ...)``,
flattened in C order (row-major: the last axis varies fastest, so an image
``[H, W]`` becomes a measure with ``image.reshape(-1)``). The squared Euclidean
cost is a sum over axes, ``C_ij = sum_d c_d[i_d, j_d]`` with
``c_d = (axes[d][:, None] - axes[d][None, :]) ** 2``, so the Gibbs kernel is a
tensor product, ``exp(-C / eps) = K_0 (x) ... (x) K_{D-1}``, and every kernel
operation is a sequence of 1-D operations, one grid axis at a time
(Solomon et al. 2015, "Convolutional Wasserstein distances: efficient optimal
transportation on geometric domains", ACM TOG 34(4)). In the log domain,

    LSE_j((h_j - C_ij) / eps) = LSE_{j_0}(-c_0/eps + LSE_{j_1}(-c_1/eps + ... h / eps)),

and likewise for min-plus (c-transforms) and for the plan's cost ``<C, P>``.
Each 1-D step holds a ``[n, n_d]`` array, so an operation costs
``O(n * sum_d n_d)`` time and memory instead of ``O(n^2)``: ``sinkhorn``,
``ipot`` and the barycenters run on images without an ``[n, n]`` array.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import all_finite
from ot_jax.geometry.costs import CostFn
from ot_jax.geometry.base import AbstractGeometry
from ot_jax.geometry.pointcloud import PointCloud

__all__ = ["Grid"]


def _safe_logsumexp(z: jax.Array, axis: int) -> jax.Array:
    """log-sum-exp over ``axis``: ``-inf`` (not NaN), with a zero gradient, on all ``-inf`` slices."""
    top = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    total = jnp.sum(jnp.exp(z - top), axis=axis)
    positive = total > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, total, 1.0)) + jnp.squeeze(top, axis), -jnp.inf)


def _safe_log(x: jax.Array) -> jax.Array:
    """``log x`` with ``-inf`` (and a zero gradient) where ``x <= 0``."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), -jnp.inf)


def _per_axis(v: jax.Array, mats, step) -> jax.Array:
    """Apply ``out[.., i_d, ..] = step_j(mats[d][i_d, j] (+) v[.., j, ..])`` along each grid axis ``d``.

    ``v``: grid-shaped ``[n_0, ..., n_{D-1}]``; ``mats[d]``: ``[n_d, n_d]``;
    ``step(z, axis)`` reduces ``z`` over ``axis``. Peak size ``n * max_d n_d``.
    """
    ndim = v.ndim
    for d, mat in enumerate(mats):
        # z[.., i_d, j_d, ..] = mat[i_d, j_d] (+) v[.., j_d, ..]: reduce over j_d (axis d + 1).
        z = jnp.expand_dims(v, d) + mat.reshape(mat.shape + (1,) * (ndim - d - 1))
        v = step(z, d + 1)
    return v


def _log_apply(log_v: jax.Array, log_kernels) -> jax.Array:
    """``out_i = log sum_j exp(log_v_j + sum_d L_d[i_d, j_d])`` on grid-shaped arrays."""
    return _per_axis(log_v, log_kernels, _safe_logsumexp)


def _min_apply(v: jax.Array, costs) -> jax.Array:
    """``out_i = min_j (v_j + sum_d c_d[i_d, j_d])`` on grid-shaped arrays (nested min-plus).

    Each minimum is read at its ``argmin``, so its gradient goes to that one entry.
    (``jnp.min``'s gradient finds the minimiser again by equality with the output,
    which recomputed intermediates can miss by one rounding: 0 / 0 = NaN.)
    """

    def take_min(z, axis):
        at = jnp.argmin(z, axis=axis, keepdims=True)
        return jnp.take_along_axis(z, at, axis=axis).squeeze(axis)

    return _per_axis(v, costs, take_min)


@dataclasses.dataclass(frozen=True)
class _ExactSqEuclidean(CostFn):
    """``||x - y||^2`` from coordinate differences (exact zeros on the diagonal; for fallbacks)."""

    def __call__(self, x, y):
        return jnp.sum((x - y) ** 2)

    def pairwise(self, x, y):
        return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


@dataclasses.dataclass(frozen=True)
class Grid(AbstractGeometry):
    """A regular or rectilinear grid in 1-3 dimensions with the squared Euclidean cost.

    Source and target are the same grid: the geometry has shape ``(n, n)`` with
    ``n = prod(grid_shape)``. Measures on it are flat ``[n]`` vectors in C order
    (an image ``img: [H, W]`` is ``img.reshape(-1)``; a result ``[n]`` goes back
    with ``.reshape(grid.grid_shape)``). The cost is
    ``C_ij = ||x_i - x_j||^2 = sum_d (axes[d][i_d] - axes[d][j_d])^2``; only this
    separable cost is supported (for a per-axis weight ``w_d``, scale the
    coordinates of axis ``d`` by ``sqrt(w_d)``).

    ``lse``, ``kernel_apply``, ``apply_plan``, ``marginals``, ``transport_cost``,
    ``primal_dual_stats``, ``c_transform``, ``max_cost`` and ``mean_cost`` are
    separable (Solomon et al. 2015, "Convolutional Wasserstein distances"):
    ``O(n * sum_d n_d)`` time and memory, never an ``[n, n]`` array, and
    differentiable in the measures, the potentials, ``eps`` and the coordinates.
    ``cost_matrix`` and ``plan`` materialise ``[n, n]``; any other operation runs
    lazily in row blocks over the grid points, like :class:`PointCloud`.

    A pytree: the coordinate arrays are leaves, ``batch_size`` is static. The
    constructor only checks and stores; pytree unflattening skips the checks.

    Args:
      axes: sequence of 1-3 finite 1-D coordinate arrays, ``axes[d]: [n_d]``
        (need not be evenly spaced or sorted). Integer coordinates are cast to
        the default float dtype; all axes are cast to their common dtype.
      batch_size: rows per block for the lazy fallback operations (see
        :class:`PointCloud`); the separable operations do not use it.

    Raises:
      ValueError: no axes or more than 3, an axis that is not 1-D, is empty,
        is complex, or (for concrete arrays) holds NaN/inf; a bad ``batch_size``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> grid = ot_jax.Grid.regular((4, 3))          # 4 x 3 points in [0, 1]^2
        >>> grid.shape, grid.grid_shape
        ((12, 12), (4, 3))
        >>> h = jnp.linspace(-1.0, 1.0, 12)
        >>> dense = ot_jax.Geometry(grid.cost_matrix)
        >>> bool(jnp.allclose(grid.lse(h, 0.1, axis=1), dense.lse(h, 0.1, axis=1)))
        True
    """

    axes: tuple[jax.Array, ...]
    batch_size: int | None = None

    def __post_init__(self):
        axes = self.axes
        if not isinstance(axes, (tuple, list)):
            raise ValueError(
                f"Grid: axes must be a tuple of 1-D coordinate arrays, e.g. Grid(axes=(xs,)), "
                f"got {type(axes).__name__}"
            )
        if not 1 <= len(axes) <= 3:
            raise ValueError(f"Grid: supports 1 to 3 axes, got {len(axes)}")
        arrays = []
        for d, ax in enumerate(axes):
            ax = jnp.asarray(ax)
            if ax.ndim != 1:
                raise ValueError(f"Grid: axis {d} must be a 1-D array of coordinates, got shape {tuple(ax.shape)}")
            if ax.shape[0] == 0:
                raise ValueError(f"Grid: axis {d} is empty; every axis needs at least one coordinate")
            if jnp.issubdtype(ax.dtype, jnp.complexfloating):
                raise ValueError(f"Grid: axis {d} has complex dtype {ax.dtype}; coordinates must be real")
            if not jnp.issubdtype(ax.dtype, jnp.floating):
                ax = ax.astype(jnp.result_type(float))
            if not isinstance(ax, jax.core.Tracer):
                values = np.asarray(ax)
                bad = ~np.isfinite(values)
                if bad.any():
                    k = int(np.argmax(bad))
                    raise ValueError(f"Grid: axis {d} has a non-finite coordinate {values[k]} at index {k}")
            arrays.append(ax)
        dtype = jnp.result_type(*arrays)
        object.__setattr__(self, "axes", tuple(ax.astype(dtype) for ax in arrays))
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size > 0):
            raise ValueError(f"Grid: batch_size must be a positive int or None, got {self.batch_size!r}")

    @classmethod
    def regular(cls, shape: Sequence[int], bounds=(0.0, 1.0), *, dtype=None, batch_size: int | None = None) -> Grid:
        """Evenly spaced grid: axis ``d`` is ``linspace(lo_d, hi_d, shape[d])`` (end points included).

        Args:
          shape: ``(n_0, ..., n_{D-1})``, 1-3 positive ints (e.g. an image's ``[H, W]``).
          bounds: ``(lo, hi)`` for every axis, or one ``(lo_d, hi_d)`` pair per axis.
          dtype: coordinate dtype (default: JAX's default float).
          batch_size: see :class:`Grid`.

        Returns:
          A :class:`Grid` with ``grid_shape == tuple(shape)``.

        Examples:
            >>> Grid.regular((3,), bounds=(0, 2)).axes[0].tolist()
            [0.0, 1.0, 2.0]
        """
        shape = tuple(shape)
        if not all(isinstance(k, (int, np.integer)) and k > 0 for k in shape):
            raise ValueError(f"Grid.regular: shape must be positive ints, got {shape}")
        pairs = np.asarray(bounds, dtype=float)
        if pairs.shape == (2,):
            pairs = np.broadcast_to(pairs, (len(shape), 2))
        if pairs.shape != (len(shape), 2):
            raise ValueError(
                f"Grid.regular: bounds must be (lo, hi) or one (lo, hi) per axis ({len(shape)}), "
                f"got shape {pairs.shape}"
            )
        dtype = jnp.result_type(float) if dtype is None else dtype
        axes = tuple(jnp.linspace(lo, hi, k, dtype=dtype) for (lo, hi), k in zip(pairs, shape))
        return cls(axes, batch_size=batch_size)

    # ------------------------------------------------------------------ structure
    @property
    def grid_shape(self) -> tuple[int, ...]:
        """``(n_0, ..., n_{D-1})``: points per axis."""
        return tuple(int(ax.shape[0]) for ax in self.axes)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)`` with ``n = prod(grid_shape)``."""
        n = int(np.prod(self.grid_shape))
        return (n, n)

    @property
    def dtype(self):
        return jnp.result_type(*self.axes)

    @property
    def points(self) -> jax.Array:
        """``[n, D]`` grid points in C order."""
        mesh = jnp.meshgrid(*self.axes, indexing="ij")
        return jnp.stack([m.reshape(-1) for m in mesh], axis=-1)

    def axis_costs(self) -> tuple[jax.Array, ...]:
        """Per-axis costs ``c_d = (axes[d][:, None] - axes[d][None, :]) ** 2``, each ``[n_d, n_d]``."""
        return tuple((ax[:, None] - ax[None, :]) ** 2 for ax in self.axes)

    @property
    def cost_matrix(self) -> jax.Array:
        """``[n, n]`` dense costs ``sum_d c_d[i_d, j_d]`` (materialised: only for small grids)."""
        ndim = len(self.axes)
        total = 0.0
        for d, c in enumerate(self.axis_costs()):
            # c_d[i_d, j_d] placed on axes d (rows) and ndim + d (columns) of a [*grid, *grid] array.
            shape = [1] * (2 * ndim)
            shape[d], shape[ndim + d] = c.shape
            total = total + c.reshape(shape)
        n = self.shape[0]
        return jnp.broadcast_to(total, self.grid_shape * 2).reshape(n, n)

    def all_finite(self):
        return all_finite(*self.axes)

    def _cloud(self) -> PointCloud:
        return PointCloud(self.points, self.points, cost_fn=_ExactSqEuclidean(), batch_size=self.batch_size)

    def _row_reduce(self, fn, row_args, col_args, checkpoint=False, combine=None):
        return self._cloud()._row_reduce(fn, row_args, col_args, checkpoint, combine)

    def _col_reduce(self, fn, col_args, row_args, checkpoint=False, combine=None):
        return self._cloud()._col_reduce(fn, col_args, row_args, checkpoint, combine)

    def _grid(self, v: jax.Array, name: str) -> jax.Array:
        """``[n]`` -> grid-shaped ``[n_0, ..., n_{D-1}]`` (C order)."""
        n = self.shape[0]
        if v.shape != (n,):
            raise ValueError(f"Grid: {name} must have shape ({n},) (the flattened grid {self.grid_shape}), "
                             f"got {tuple(v.shape)}")
        return v.reshape(self.grid_shape)

    # ------------------------------------------------------------------ separable kernel ops
    # Jitted (the grid is a pytree argument): one compilation per grid shape for eager
    # calls instead of one per primitive; inlined when called inside a traced function.
    def _log_kernels(self, eps, costs=None):
        """Per-axis log-kernels ``-c_d / eps``, each ``[n_d, n_d]`` (of ``costs`` if given)."""
        return [-c / eps for c in (self.axis_costs() if costs is None else costs)]

    @functools.partial(jax.jit, static_argnames="axis")
    def lse(self, h: jax.Array, eps, axis: int) -> jax.Array:
        """Soft-min ``LSE_j((h_j - C_ij) / eps)``: ``h: [n]`` -> ``[n]`` (both axes: ``C`` is symmetric).

        Nested 1-D log-sum-exps; ``-inf`` entries of ``h`` (zero-mass pixels) are
        fine, and an all ``-inf`` ``h`` gives ``-inf`` with zero gradient.
        """
        del axis  # the grid is its own target, so C = C^T
        out = _log_apply(self._grid(h, "h") / eps, self._log_kernels(eps))
        return out.reshape(-1)

    @functools.partial(jax.jit, static_argnames="axis")
    def kernel_apply(self, v: jax.Array, eps, axis: int) -> jax.Array:
        """``K v`` with ``K = exp(-C / eps) = K_0 (x) ... (x) K_{D-1}``: ``v: [n]`` -> ``[n]``.

        One ``[n_d, n_d]`` matrix product per axis (Solomon's separable Gaussian
        blur). Scaling domain: underflows where ``max c_d / eps`` is large; use
        :meth:`lse` then.
        """
        del axis
        v = self._grid(v, "v")
        kernels = [jnp.exp(-c / eps) for c in self.axis_costs()]
        for d, k in enumerate(kernels):
            v = jnp.moveaxis(jnp.tensordot(k, v, axes=([1], [d]), precision=jax.lax.Precision.HIGHEST), 0, d)
        return v.reshape(-1)

    @functools.partial(jax.jit, static_argnames="axis")
    def apply_plan(self, f, g, eps, vec: jax.Array, axis: int) -> jax.Array:
        """``P vec`` (axis=1) or ``P^T vec`` (axis=0) for ``P = exp((f_i + g_j - C_ij) / eps)``; ``[n]`` -> ``[n]``.

        Log domain: ``exp(f/eps + LSE_j(g_j/eps + log vec_j - C_ij/eps))`` on the
        positive and negative parts of ``vec``.
        """
        if axis == 1:
            out_pot, in_pot = f, g
        else:
            out_pot, in_pot = g, f
        base = self._grid(in_pot, "potential") / eps
        vec = self._grid(vec, "vec")
        log_k = self._log_kernels(eps)
        out_scale = self._grid(out_pot, "potential") / eps
        pos = jnp.exp(out_scale + _log_apply(base + _safe_log(vec), log_k))
        neg = jnp.exp(out_scale + _log_apply(base + _safe_log(-vec), log_k))
        return (pos - neg).reshape(-1)

    def marginals(self, f, g, eps) -> tuple[jax.Array, jax.Array]:
        """Row and column sums ``[n]`` of the plan, separable (``exp(f/eps + LSE_j((g_j - C_ij)/eps))``)."""

        def sums(out_pot, in_pot):
            live = out_pot > -jnp.inf
            z = jnp.where(live, out_pot, 0.0) / eps + self.lse(in_pot, eps, axis=1)
            return jnp.where(live, jnp.exp(jnp.where(live, z, -jnp.inf)), 0.0)

        return sums(f, g), sums(g, f)

    def plan_matvec(self, f, g, eps, vec: jax.Array, axis: int) -> jax.Array:
        """``P vec`` as a linear map of ``vec`` (transposable), for implicit differentiation.

        ``exp(f/eps + s) * K (exp(g/eps - s) * vec)`` with the separable kernel and the
        shift ``s = max g/eps``; entries of ``K`` below the dtype's range are 0.
        """
        out_pot, in_pot = (f, g) if axis == 1 else (g, f)
        live_in = in_pot > -jnp.inf
        base = jnp.where(live_in, in_pot, 0.0) / eps
        shift = jax.lax.stop_gradient(jnp.max(jnp.where(live_in, base, -jnp.inf)))
        w = jnp.where(live_in, jnp.exp(jnp.where(live_in, base - shift, 0.0)), 0.0) * vec
        live_out = out_pot > -jnp.inf
        scale = jnp.where(live_out, jnp.exp(jnp.where(live_out, out_pot / eps + shift, 0.0)), 0.0)
        return scale * self.kernel_apply(w, eps, axis)

    def _cost_rows(self, f, g, eps, plan_costs):
        """Row sums ``sum_j P_ij C_ij`` ``[n]``, the plan built from ``plan_costs`` (per axis)."""
        costs = self.axis_costs()
        log_k = self._log_kernels(eps, plan_costs)
        base = self._grid(g, "g") / eps
        f_scale = self._grid(f, "f") / eps
        rows = 0.0
        for d, c in enumerate(costs):
            # sum_j P_ij c_d[i_d, j_d]: the kernel of axis d becomes c_d * K_d (log c_d - c_d / eps).
            kernels = list(log_k)
            kernels[d] = _safe_log(c) + log_k[d]
            rows = rows + jnp.exp(f_scale + _log_apply(base, kernels))
        return rows.reshape(-1)

    @functools.partial(jax.jit, static_argnames="plan_gradient")
    def transport_cost(self, f, g, eps, *, plan_gradient: bool = False) -> jax.Array:
        """``<C, P>`` (scalar) for the plan of ``(f [n], g [n], eps)``, separable.

        Gradients as in :meth:`AbstractGeometry.transport_cost`: with
        ``plan_gradient=False`` the cost inside ``P`` is held fixed (``d/dC = P``).
        """
        costs = self.axis_costs()
        plan_costs = costs if plan_gradient else [jax.lax.stop_gradient(c) for c in costs]
        return jnp.sum(self._cost_rows(f, g, eps, plan_costs))

    @jax.jit
    def primal_dual_stats(self, f, g, eps):
        """``(cost_rows [n], row_mass [n], f_ctrans [n])`` as in :meth:`AbstractGeometry.primal_dual_stats`."""
        cost_rows = self._cost_rows(f, g, eps, None)
        row_mass = jnp.exp(f / eps + self.lse(g, eps, axis=1))
        return cost_rows, row_mass, self.c_transform(g)

    @functools.partial(jax.jit, static_argnames="axis")
    def apply_cost(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``C vec``: ``[n]`` -> ``[n]``, separable: ``sum_d c_d`` applied along axis d to the
        marginal of ``vec`` on that axis (``C`` is symmetric, so ``axis`` does not matter)."""
        del axis
        v = self._grid(vec, "vec")
        ndim = len(self.axes)
        out = 0.0
        for d, c in enumerate(self.axis_costs()):
            marginal = jnp.sum(v, axis=tuple(k for k in range(ndim) if k != d))  # [n_d]
            shape = [1] * ndim
            shape[d] = c.shape[0]
            out = out + (c @ marginal).reshape(shape)
        return jnp.broadcast_to(out, self.grid_shape).reshape(-1)

    @jax.jit
    def c_transform(self, g: jax.Array) -> jax.Array:
        """``min_j (C_ij - g_j)``: ``g: [n]`` -> ``[n]``, nested 1-D min-plus (``g = -inf`` entries ignored)."""
        return _min_apply(-self._grid(g, "g"), self.axis_costs()).reshape(-1)

    def max_cost(self) -> jax.Array:
        """Scalar ``max C = sum_d max c_d``."""
        return sum(jnp.max(c) for c in self.axis_costs())

    def mean_cost(self) -> jax.Array:
        """Scalar mean of ``C`` over all pairs, ``sum_d mean c_d``."""
        return sum(jnp.mean(c) for c in self.axis_costs())


def _flatten_with_keys(grid: Grid):
    return ((jax.tree_util.GetAttrKey("axes"), grid.axes),), (grid.batch_size,)


def _unflatten(aux, children) -> Grid:
    # Bypass __init__: checks ran when the user built the grid; leaves here may be
    # tracers, batched arrays or placeholders.
    grid = object.__new__(Grid)
    object.__setattr__(grid, "axes", children[0])
    object.__setattr__(grid, "batch_size", aux[0])
    return grid


jax.tree_util.register_pytree_with_keys(Grid, _flatten_with_keys, _unflatten)
