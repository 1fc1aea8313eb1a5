"""Result pytrees and status codes shared by every solver.

Results are frozen dataclasses registered as pytrees: every field is an array
(or a geometry pytree), so results pass out of ``jit`` and ``vmap`` unchanged.
Health travels with the result (``converged``, ``n_iters``, ``errors``,
``status``); ``throw=True`` on a solver turns a bad status into an exception.
"""

from __future__ import annotations

import dataclasses
import enum

import equinox as eqx
import jax
import jax.numpy as jnp

from ot_jax.geometry import AbstractGeometry

__all__ = ["Status", "ExactResult", "EntropicResult", "raise_on_status"]


class Status(enum.IntEnum):
    """Solver status codes (``result.status``)."""

    CONVERGED = 0
    """The stopping rule was met."""
    MAX_ITERS = 1
    """``max_iters`` was reached before the tolerance."""
    NON_FINITE = 2
    """A NaN/inf appeared in the iterates (e.g. scaling-domain underflow)."""
    INVALID_INPUT = 3
    """Inputs failed validation inside a trace (negative or non-finite weights,
    unequal mass, non-finite costs, epsilon/beta <= 0)."""
    STALLED = 4
    """IPOT reached the precision limit of the dtype (plan temperature below
    ~300 machine-eps x max C) before ``tol``; the best iterate seen is returned."""


_MESSAGES = {
    Status.MAX_ITERS: "did not converge within max_iters (raise max_iters, loosen tol, or change epsilon/beta)",
    Status.NON_FINITE: "a NaN or inf appeared in the iterates (use the log-domain mode, or check the inputs)",
    Status.STALLED: "reached the float32 precision limit before tol (use float64, a larger beta, "
    "or a looser tol); the best iterate is returned",
    Status.INVALID_INPUT: "invalid input: weights must be finite, >= 0 and of equal total mass, costs finite, "
    "and epsilon/beta > 0",
}


def raise_on_status(result, solver: str):
    """Attach runtime checks to ``result`` that raise on a bad status (works inside ``jit``).

    Uses :func:`equinox.error_if`; the returned result must be used, or the check
    is dead code and vanishes.
    """
    status = result.status
    cost = result.cost
    for code, message in _MESSAGES.items():
        cost = eqx.error_if(cost, status == code, f"ot_jax.{solver}: {message}")
    return dataclasses.replace(result, cost=cost)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExactResult:
    """Solution of the exact OT linear program (:func:`ot_jax.emd`).

    Attributes:
      plan: ``[n, m]`` optimal plan (a vertex of the transport polytope).
      f: ``[n]`` dual potential of the row constraints (defined up to a constant).
      g: ``[m]`` dual potential of the column constraints.
      cost: scalar ``<C, plan>``; differentiable (``d/dC = plan``, ``d/da = f``,
        ``d/db = g``: the envelope theorem).
      converged: scalar bool.
      n_iters: scalar int, simplex iterations reported by the LP solver.
      status: scalar int, a :class:`Status`.
    """

    plan: jax.Array
    f: jax.Array
    g: jax.Array
    cost: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    status: jax.Array

    @property
    def lower_bound(self) -> jax.Array:
        """The LP value is exact: its own lower bound."""
        return self.cost


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EntropicResult:
    """Output of a potential-based solver (:func:`ot_jax.sinkhorn`, :func:`ot_jax.ipot`).

    The plan is kept implicitly as ``P_ij = exp((f_i + g_j - C_ij) / plan_epsilon)``
    and materialised only on request (``.plan``) or applied lazily
    (``.apply(vec, axis)``), so a :class:`~ot_jax.PointCloud` result never stores n x m.

    Attributes:
      geom: the geometry the problem was solved on.
      a: ``[n]`` source weights; b: ``[m]`` target weights.
      f: ``[n]``, g: ``[m]`` potentials of the plan.
      plan_epsilon: scalar temperature of the plan (``epsilon`` for Sinkhorn;
        ``beta / t`` after ``t`` IPOT steps).
      cost: scalar transport cost ``<C, P>``. Differentiable by the envelope
        theorem by default (``d/dC = P``), or by unrolling.
      reg_cost: scalar regularised objective ``<C, P> + eps KL(P | a b^T)``
        (Sinkhorn; for IPOT equal to ``cost``).
      lower_bound: scalar certified lower bound on the exact OT value, the dual
        objective of the c-transformed potentials (``<a, g^c> + <b, g>``).
      converged: scalar bool; n_iters: scalar int.
      errors: ``[max_iters // check_every]`` stopping-rule values, one per check,
        ``-1`` after the loop stopped.
      status: scalar int, a :class:`Status`.
    """

    geom: AbstractGeometry
    a: jax.Array
    b: jax.Array
    f: jax.Array
    g: jax.Array
    plan_epsilon: jax.Array
    cost: jax.Array
    reg_cost: jax.Array
    lower_bound: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    @property
    def plan(self) -> jax.Array:
        """``[n, m]`` materialised plan."""
        return self.geom.plan(self.f, self.g, self.plan_epsilon)

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m]``) or ``P^T vec`` (axis=0, ``vec: [n]``), never storing P."""
        return self.geom.apply_plan(self.f, self.g, self.plan_epsilon, vec, axis)

    @property
    def marginals(self) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[n]`` and column sums ``[m]`` of the plan."""
        return self.geom.marginals(self.f, self.g, self.plan_epsilon)

    @property
    def marginal_error(self) -> jax.Array:
        """``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
        rows, cols = self.marginals
        return jnp.sum(jnp.abs(rows - self.a)) + jnp.sum(jnp.abs(cols - self.b))
