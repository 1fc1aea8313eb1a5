"""Exact OT: the transportation linear program, solved on the host by HiGHS.

Why HiGHS (through ``scipy.optimize.linprog``): it is a maintained, exact
simplex solver already in our dependency tree (scipy), it returns a vertex
solution together with the dual potentials (needed for gradients with respect
to the weights), and we tighten its tolerances so the value is exact to ~1e-12
relative in float64. It runs on the CPU through ``jax.pure_callback``, so
:func:`emd` works under ``jit`` and ``vmap`` (problems solved one after another)
and is differentiable by the envelope theorem; it is not a GPU solver and its
time grows quickly with n (the LP has n*m variables): use :func:`ot_jax.ipot`
for large problems.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.sparse

from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import ExactResult, Status, raise_on_status

__all__ = ["emd"]

_HIGHS_OPTIONS = {
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
    "presolve": True,
}


def _constraints(n: int, m: int):
    rows = scipy.sparse.kron(scipy.sparse.eye(n), np.ones((1, m)))
    cols = scipy.sparse.kron(np.ones((1, n)), scipy.sparse.eye(m))
    return scipy.sparse.vstack([rows, cols]).tocsc()


def _solve_lp(cost: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Host solve of one LP. ``cost: [n, m]``, ``a: [n]``, ``b: [m]`` (float64)."""
    n, m = cost.shape
    scale = float(np.max(np.abs(cost))) or 1.0
    mass = float(a.sum())
    b = b * (mass / float(b.sum()))  # remove the (tolerated) rounding difference in total mass
    res = scipy.optimize.linprog(
        (cost / scale).ravel(),
        A_eq=_constraints(n, m),
        b_eq=np.concatenate([a, b]) / mass,
        bounds=(0, None),
        method="highs-ds",
        options=_HIGHS_OPTIONS,
    )
    if res.status != 0 or res.x is None:
        nan = np.full((n,), np.nan)
        return np.full((n, m), np.nan), nan, np.full((m,), np.nan), 0, int(Status.NON_FINITE)
    plan = np.maximum(res.x.reshape(n, m), 0.0) * mass
    duals = res.eqlin.marginals * scale
    f, g = duals[:n], duals[n:]
    shift = f.mean() if n else 0.0  # potentials are defined up to f + c, g - c
    return plan, f - shift, g + shift, int(res.nit), int(Status.CONVERGED)


def _host_solve(cost, a, b):
    dtype = cost.dtype
    plan, f, g, nit, status = _solve_lp(
        np.asarray(cost, np.float64), np.asarray(a, np.float64), np.asarray(b, np.float64)
    )
    return (plan.astype(dtype), f.astype(dtype), g.astype(dtype), np.int32(nit), np.int32(status))


def emd(geom, a=None, b=None, *, throw: bool = False) -> ExactResult:
    """Exact OT ``W = min_{P >= 0, P 1 = a, P^T 1 = b} <C, P>`` (earth mover's distance).

    Args:
      geom: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`
        (materialised: the LP is dense).
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights.
      throw: raise (also inside ``jit``) on bad input or a failed solve.

    Returns:
      :class:`~ot_jax.solvers.results.ExactResult`. ``cost`` is differentiable:
      ``d/dC = plan``, ``d/da = f``, ``d/db = g`` (envelope theorem; gradients with
      respect to points go through ``C``). Float64 inputs give the value to ~1e-12.

    >>> import jax.numpy as jnp, ot_jax
    >>> out = ot_jax.emd(jnp.array([[0.0, 1.0], [1.0, 0.0]]), jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75]))
    >>> float(out.cost)
    0.25
    """
    solver = "emd"
    geom, a, b, invalid = prepare(geom, a, b, solver)
    dtype = geom.dtype
    n, m = geom.shape
    cost_matrix = geom.cost_matrix
    c_s, a_s, b_s = jax.lax.stop_gradient((cost_matrix, a, b))
    # Invalid traced inputs are replaced by a harmless problem and flagged in status.
    c_s = jnp.where(invalid, 0.0, c_s)
    a_s = jnp.where(invalid, 1.0 / n, a_s)
    b_s = jnp.where(invalid, 1.0 / m, b_s)
    shapes = (
        jax.ShapeDtypeStruct((n, m), dtype),
        jax.ShapeDtypeStruct((n,), dtype),
        jax.ShapeDtypeStruct((m,), dtype),
        jax.ShapeDtypeStruct((), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.int32),
    )
    plan, f, g, nit, status = jax.pure_callback(_host_solve, shapes, c_s, a_s, b_s, vmap_method="sequential")
    # Value <C, plan>; the two zero-valued terms give d/da = f and d/db = g.
    cost = jnp.sum(plan * cost_matrix) + jnp.sum((a - a_s) * f) + jnp.sum((b - b_s) * g)
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    result = ExactResult(plan=plan, f=f, g=g, cost=cost, converged=status == Status.CONVERGED,
                         n_iters=nit, status=status)
    messages = {Status.NON_FINITE: f"ot_jax.{solver}: NON_FINITE: the LP solver (HiGHS) failed on this problem "
                "(check the costs for extreme values)",
                Status.INVALID_INPUT: f"ot_jax.{solver}: INVALID_INPUT: invalid input: weights must be finite, >= 0 and of "
                "equal total mass, and costs finite"}
    return raise_on_status(result, solver, messages=messages) if throw else result
