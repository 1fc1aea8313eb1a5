"""The exact OT cost between two point clouds, shared by :func:`ot_jax.losses.point_cloud.exact_loss`
and :func:`ot_jax.losses.minibatch.exact_loss` (private).

Method names (one word each, the same in every loss): ``"hungarian"`` and
``"auction"`` (:func:`ot_jax.assignment`: equal sizes, uniform weights, where the
optimal plan is a permutation), ``"lp"`` (:func:`ot_jax.emd`, the exact linear
program, any sizes and weights) and ``"ipot"`` (:func:`ot_jax.ipot`, exact OT by
proximal point on a lazy point cloud).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ot_jax.geometry import CostFn, PointCloud
from ot_jax.solvers import assignment, emd, ipot

ASSIGNMENT_METHODS = ("hungarian", "auction")
PLAN_METHODS = ("lp", "ipot")

#: the parameter each method's messages name (``throw=True``)
PARAMETERS = {"hungarian": None, "auction": "eps_final", "lp": None, "ipot": "beta"}


def check_method(method: str, allowed: tuple[str, ...], fn: str) -> None:
    if method not in allowed:
        raise ValueError(f"{fn}: unknown method {method!r}; choose one of {', '.join(map(repr, allowed))}")


def check_sizes(method: str, n: int, m: int, fn: str) -> None:
    """The assignment methods match points one to one: they need ``n == m``."""
    if method in ASSIGNMENT_METHODS and n != m:
        raise ValueError(f"{fn}: method={method!r} matches points one to one, so it needs equal sizes, got "
                         f"n = {n} and m = {m}; use method='lp' (exact LP, small clouds) for unequal sizes")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _matched_mean(cost_fn: CostFn, pair_cost, x: jax.Array, y: jax.Array, perm: jax.Array) -> jax.Array:
    """``mean_i c(x_i, y_perm(i))`` (``pair_cost`` or ``cost_fn`` row by row): one compiled program."""
    pair = pair_cost if pair_cost is not None else jax.vmap(cost_fn)
    return jnp.mean(pair(x, y[perm]))


def exact_cost(x: jax.Array, y: jax.Array, a=None, b=None, *, cost_fn: CostFn, method: str,
               pair_cost: Callable[[jax.Array, jax.Array], jax.Array] | None = None, **solver_kwargs):
    """Exact OT cost ``min_P <C, P>`` between ``x: [n, d]`` and ``y: [m, d]``, differentiable in the points.

    Args:
      x, y: the two clouds; a: ``[n]``, b: ``[m]`` weights (``"lp"``/``"ipot"`` only;
        normalised to mass 1; uniform if None).
      cost_fn: the ground cost.
      method: one of :data:`ASSIGNMENT_METHODS` + :data:`PLAN_METHODS` (checked by the caller).
      pair_cost: ``(x [n, d], y [n, d]) -> [n]`` matched costs for the assignment
        methods (default: ``cost_fn`` row by row).
      **solver_kwargs: passed to the solver.

    Returns:
      ``(value, status, n_iters)`` scalars. The gradient is the envelope gradient:
      the matching (or plan) is held fixed and the cost re-evaluated on the points.
    """
    if method in ASSIGNMENT_METHODS:
        xs, ys = jax.lax.stop_gradient((x, y))
        geom = PointCloud(xs, ys, cost_fn=cost_fn)
        out = assignment(geom, method=method, **solver_kwargs)
        return _matched_mean(cost_fn, pair_cost, x, y, out.permutation), out.status, out.n_iters
    if a is not None:
        a = jnp.asarray(a, x.dtype)
        a = a / jnp.sum(a)
    if b is not None:
        b = jnp.asarray(b, x.dtype)
        b = b / jnp.sum(b)
    solve = emd if method == "lp" else ipot
    out = solve(PointCloud(x, y, cost_fn=cost_fn), a, b, **solver_kwargs)
    return out.cost, out.status, out.n_iters
