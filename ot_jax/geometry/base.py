"""Geometries: where the points are and what moving mass between them costs.

Both geometries expose the same kernel operations, written for potentials
``f: [n]``, ``g: [m]`` and a temperature ``eps > 0`` that define the plan

    P_ij = exp((f_i + g_j - C_ij) / eps).

:class:`Geometry` holds a dense cost matrix ``[n, m]``. :class:`PointCloud` holds
points ``x: [n, d]``, ``y: [m, d]`` and a cost function, and computes every
operation in blocks of rows (or columns) so that no ``[n, m]`` array is ever
stored, in the forward pass or, through ``jax.checkpoint``, in the backward pass.

Both are pytrees (arrays are leaves; the cost function and block size are static),
so they pass through ``jit``/``vmap``/``grad`` and can be batched.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp

__all__ = ["AbstractGeometry", "logsumexp", "log_plan_block", "log_kernel_block"]


def logsumexp(z: jax.Array, axis: int) -> jax.Array:
    """log-sum-exp that returns -inf (not NaN) for all -inf slices."""
    return jax.nn.logsumexp(z, axis=axis)


def log_plan_block(c: jax.Array, fi: jax.Array, gj: jax.Array, eps) -> jax.Array:
    """``(f_i + g_j - C_ij) / eps`` for a block ``c: [k, m]``, ``fi: [k]``, ``gj: [m]``.

    A potential of ``-inf`` (a point of zero weight) gives ``-inf`` (a zero plan
    entry) through a ``where``, so derivatives, in ``eps`` too, stay finite there.
    """
    fin_i, fin_j = fi > -jnp.inf, gj > -jnp.inf
    z = (jnp.where(fin_i, fi, 0.0)[:, None] + jnp.where(fin_j, gj, 0.0)[None, :] - c) / eps
    return jnp.where(fin_i[:, None] & fin_j[None, :], z, -jnp.inf)


def log_kernel_block(c: jax.Array, h: jax.Array, eps, axis: int) -> jax.Array:
    """``(h - C) / eps`` for the soft-min: ``h: [m]`` along columns (axis=1) or ``[k]`` along rows (axis=0).

    ``c: [k, m]``. A potential of ``-inf`` gives ``-inf`` through a ``where``, so the
    derivative in ``eps`` stays finite there (``d/deps (-inf / eps)`` would be NaN).
    """
    h = h[None, :] if axis == 1 else h[:, None]
    live = h > -jnp.inf
    return jnp.where(live, (jnp.where(live, h, 0.0) - c) / eps, -jnp.inf)


_SUM = ("sum",)


class AbstractGeometry(abc.ABC):
    """Interface shared by dense and lazy geometries (all shapes in docstrings)."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(n, m)``."""

    @property
    @abc.abstractmethod
    def dtype(self):
        """Floating dtype of the costs."""

    @property
    @abc.abstractmethod
    def cost_matrix(self) -> jax.Array:
        """``[n, m]`` dense costs (materialised for lazy geometries)."""

    # ``combine`` declares, per output of ``fn``, how partial results over disjoint
    # column (row) blocks merge: "sum", "lse" (log-sum-exp), "min" or "max". Single-device
    # geometries see every column at once and ignore it; a sharded PointCloud uses it to
    # merge the blocks that visit each device (see ot_jax.geometry.pointcloud).
    @abc.abstractmethod
    def _row_reduce(self, fn, row_args, col_args, checkpoint=False, combine=None):
        """Apply ``fn(cost_rows [k, m], *row_args[k], *col_args[m]) -> tuple of [k]`` in row blocks."""

    @abc.abstractmethod
    def _col_reduce(self, fn, col_args, row_args, checkpoint=False, combine=None):
        """Apply ``fn(cost_cols [k, n], *col_args[k], *row_args[n]) -> tuple of [k]`` in column blocks."""

    @abc.abstractmethod
    def all_finite(self) -> jax.Array:
        """Scalar bool: every cost entry (or every point) is finite."""

    # ------------------------------------------------------------------ kernel ops
    def lse(self, h: jax.Array, eps, axis: int) -> jax.Array:
        """Soft-min kernel operation.

        axis=1: ``h: [m]`` -> ``[n]``, ``LSE_j((h_j - C_ij) / eps)``.
        axis=0: ``h: [n]`` -> ``[m]``, ``LSE_i((h_i - C_ij) / eps)``.
        """
        fn = lambda c, hh: (logsumexp(log_kernel_block(c, hh, eps, 1), axis=1),)
        if axis == 1:
            return self._row_reduce(fn, (), (h,), combine=("lse",))[0]
        return self._col_reduce(fn, (), (h,), combine=("lse",))[0]

    def kernel_apply(self, v: jax.Array, eps, axis: int) -> jax.Array:
        """Scaling-domain kernel product with ``K = exp(-C / eps)``.

        axis=1: ``v: [m]`` -> ``K v: [n]``; axis=0: ``u: [n]`` -> ``K^T u: [m]``.
        """
        fn = lambda c, vv: (jnp.exp(-c / eps) @ vv,)
        if axis == 1:
            return self._row_reduce(fn, (), (v,), combine=_SUM)[0]
        return self._col_reduce(fn, (), (v,), combine=_SUM)[0]

    # The plan operations below are differentiable in every argument (the cost, f, g,
    # eps, vec), with -inf potentials handled by log_plan_block; lazy geometries
    # recompute their blocks in the backward pass (jax.checkpoint) instead of storing them.
    def plan(self, f: jax.Array, g: jax.Array, eps) -> jax.Array:
        """``[n, m]`` plan ``exp((f_i + g_j - C_ij) / eps)`` (materialised)."""
        return jnp.exp(log_plan_block(self.cost_matrix, f, g, eps))

    def apply_plan(self, f, g, eps, vec: jax.Array, axis: int) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m]`` -> ``[n]``) or ``P^T vec`` (axis=0, ``vec: [n]`` -> ``[m]``)."""
        fn = lambda c, hi, hj, vv: (jnp.exp(log_plan_block(c, hi, hj, eps)) @ vv,)
        if axis == 1:
            return self._row_reduce(fn, (f,), (g, vec), checkpoint=True, combine=_SUM)[0]
        return self._col_reduce(fn, (g,), (f, vec), checkpoint=True, combine=_SUM)[0]

    def plan_matvec(self, f, g, eps, vec: jax.Array, axis: int) -> jax.Array:
        """:meth:`apply_plan` written as a linear (transposable) map of ``vec``.

        For the adjoint solves of implicit differentiation, which JAX transposes.
        Dense and lazy geometries: :meth:`apply_plan` itself.
        """
        return self.apply_plan(f, g, eps, vec, axis)

    def marginals(self, f, g, eps) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[n]`` and column sums ``[m]`` of the plan."""
        fn = lambda c, hi, hj: (jnp.sum(jnp.exp(log_plan_block(c, hi, hj, eps)), axis=1),)
        rows = self._row_reduce(fn, (f,), (g,), checkpoint=True, combine=_SUM)[0]
        cols = self._col_reduce(fn, (g,), (f,), checkpoint=True, combine=_SUM)[0]
        return rows, cols

    def transport_cost(self, f, g, eps, *, plan_gradient: bool = False) -> jax.Array:
        """``<C, P>`` for the plan of ``(f, g, eps)``.

        With ``plan_gradient=False`` the plan is held fixed under differentiation
        (``d/dC = P``, the envelope gradient); with ``True`` the gradient also flows
        through ``P``'s dependence on ``C``, ``f``, ``g`` and ``eps``.
        """

        def fn(c, fi, gj):
            c_plan = c if plan_gradient else jax.lax.stop_gradient(c)
            p = jnp.exp(log_plan_block(c_plan, fi, gj, eps))
            return (jnp.sum(p * c, axis=1),)

        return jnp.sum(self._row_reduce(fn, (f,), (g,), checkpoint=True, combine=_SUM)[0])

    def primal_dual_stats(self, f, g, eps):
        """One pass over the rows for the certified bounds (:func:`ot_jax.solvers._entropic.round_plan`).

        Returns ``(cost_rows [n], row_mass [n], f_ctrans [n])``: the row sums of
        ``P * C`` and of ``P``, and the c-transform ``min_j (C_ij - g_j)``, which
        makes ``(f_ctrans, g)`` a feasible dual pair of the exact LP.
        """

        def fn(c, fi, gj):
            p = jnp.exp(log_plan_block(c, fi, gj, eps))
            return jnp.sum(p * c, axis=1), jnp.sum(p, axis=1), jnp.min(c - gj[None, :], axis=1)

        return self._row_reduce(fn, (f,), (g,), checkpoint=True, combine=("sum", "sum", "min"))

    def apply_cost(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``C vec`` (axis=1, ``vec: [m]`` -> ``[n]``) or ``C^T vec`` (axis=0, ``vec: [n]`` -> ``[m]``)."""
        fn = lambda c, vv: (c @ vv,)
        if axis == 1:
            return self._row_reduce(fn, (), (vec,), checkpoint=True, combine=_SUM)[0]
        return self._col_reduce(fn, (), (vec,), checkpoint=True, combine=_SUM)[0]

    def c_transform(self, g: jax.Array) -> jax.Array:
        """``min_j (C_ij - g_j)``: ``g: [m]`` -> ``[n]``."""
        return self._row_reduce(lambda c, gj: (jnp.min(c - gj[None, :], axis=1),), (), (g,), combine=("min",))[0]

    def max_cost(self) -> jax.Array:
        """Scalar max of the cost over all pairs."""
        return _max_cost(self)

    def mean_cost(self) -> jax.Array:
        """Scalar mean of the cost over all pairs (unweighted)."""
        return _mean_cost(self)


# Jitted (one compiled program per geometry type and shape instead of one per eager
# operation); inside an outer trace they are inlined.
@jax.jit
def _max_cost(geom: AbstractGeometry) -> jax.Array:
    return jnp.max(geom._row_reduce(lambda c: (jnp.max(c, axis=1),), (), (), combine=("max",))[0])


@jax.jit
def _mean_cost(geom: AbstractGeometry) -> jax.Array:
    n, m = geom.shape
    return jnp.sum(geom._row_reduce(lambda c: (jnp.sum(c, axis=1),), (), (), combine=_SUM)[0]) / (n * m)
