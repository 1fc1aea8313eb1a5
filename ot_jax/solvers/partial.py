"""Partial OT: transport a fixed mass ``m`` between measures of possibly different masses.

``W_m = min <C, P>`` over ``P >= 0`` with ``P 1 <= a``, ``P^T 1 <= b`` and ``sum P = m``
(Caffarelli & McCann 2010; Figalli 2010). Exactly, as a balanced LP with one dummy
point on each side (Chapel et al. 2020): the dummy row carries ``|b| - m``, the dummy
column ``|a| - m``, both at zero cost to the real points, and the dummy pair is priced
out (cost ``2 max|C| + 1``). Entropically (Benamou et al. 2015), by block coordinate
ascent on the dual of ``min <C, P> + eps sum P log P``, which is Dykstra's algorithm
for the three constraint sets written on potentials (lazy: nothing ``[n, m]`` stored).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_positive, is_concrete
from ot_jax.solvers import _entropic
from ot_jax.solvers.exact import DEFAULT_MAX_ITERS, emd
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import ExactResult, Status, raise_on_status

__all__ = ["partial_emd", "partial_sinkhorn"]


def _check_mass(mass, a, b, solver):
    """Traced flag for ``0 < mass <= min(|a|, |b|)``; raises now when concrete."""
    limit = jnp.minimum(jnp.sum(a), jnp.sum(b))
    if is_concrete(mass, limit):
        value, cap = float(np.asarray(mass)), float(np.asarray(limit))
        if not (np.isfinite(value) and 0.0 < value <= cap * (1.0 + 1e-12)):
            raise ValueError(f"{solver}: mass must be in (0, min(sum(a), sum(b))] = (0, {cap:.6g}], got {value}")
        return np.bool_(False)
    mass = jnp.asarray(mass)
    return ~(jnp.isfinite(mass) & (mass > 0) & (mass <= limit * (1.0 + 1e-12)))


def partial_emd(geom, a=None, b=None, *, mass, max_iters: int = DEFAULT_MAX_ITERS,
                throw: bool = False) -> ExactResult:
    """Exact partial OT: ``min <C, P>`` s.t. ``P 1 <= a``, ``P^T 1 <= b``, ``sum P = mass``.

    Solved as the balanced LP with one dummy point per side (module docstring) by
    :func:`ot_jax.emd`, so it has the same certificate, ``jit``/``vmap`` behaviour and
    envelope gradients (``cost``: ``d/dC = plan``; ``a``, ``b`` and ``mass`` through
    the LP duals of the extended problem). POT's ``partial_wasserstein``.

    Args:
      geom: ``[n, m]`` cost matrix or a geometry (materialised).
      a: ``[n]`` weights (uniform with mass 1 if None); b: ``[m]`` weights; their
        masses may differ.
      mass: the mass to transport, ``0 < mass <= min(sum(a), sum(b))``.
      max_iters, throw: as :func:`ot_jax.emd`.

    Returns:
      :class:`~ot_jax.solvers.results.ExactResult` for the real points: ``plan: [n, m]``
      (rows sum to at most ``a``, columns to at most ``b``, total ``mass``), ``f: [n]``,
      ``g: [m]`` the duals of the extended LP on the real points, ``cost = <C, plan>``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> cost = jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> out = ot_jax.partial_emd(cost, jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]), mass=0.6)
        >>> float(out.cost)
        0.0
    """
    solver = "partial_emd"
    geom, a, b, invalid = prepare(geom, a, b, solver, balanced=False)
    invalid = invalid | _check_mass(mass, a, b, solver)
    cost = geom.cost_matrix
    n, m = cost.shape
    mass = jnp.asarray(mass, cost.dtype)
    dummy = 2.0 * jax.lax.stop_gradient(jnp.max(jnp.abs(cost))) + 1.0
    extended = jnp.block([[cost, jnp.zeros((n, 1), cost.dtype)],
                          [jnp.zeros((1, m), cost.dtype), dummy[None, None]]])
    a_ext = jnp.concatenate([a, (jnp.sum(b) - mass)[None]])
    b_ext = jnp.concatenate([b, (jnp.sum(a) - mass)[None]])
    # Invalid traced inputs: a harmless extended problem, flagged in status.
    a_ext = jnp.where(invalid, jnp.full_like(a_ext, 1.0 / (n + 1)), a_ext)
    b_ext = jnp.where(invalid, jnp.full_like(b_ext, 1.0 / (m + 1)), b_ext)
    full = emd(extended, a_ext, b_ext, max_iters=max_iters)
    plan = full.plan[:n, :m]
    status = jnp.where(invalid, Status.INVALID_INPUT, full.status).astype(jnp.int32)
    # The LP value minus the dummy column's and row's zero-cost terms is <C, plan>; writing
    # it as the extended value keeps the envelope gradients in a, b and mass.
    result = ExactResult(plan=plan, f=full.f[:n], g=full.g[:m], cost=full.cost, converged=status == Status.CONVERGED,
                         n_iters=full.n_iters, status=status)
    return raise_on_status(result, solver, "mass") if throw else result


def partial_sinkhorn(
    geom,
    a=None,
    b=None,
    *,
    mass,
    epsilon,
    tol: float = 1e-6,
    max_iters: int = 10000,
    check_every: int = 10,
    grad_mode: str = "envelope",
    throw: bool = False,
):
    """Entropic partial OT: ``min <C, P> + eps sum_ij P_ij log P_ij`` s.t. ``P 1 <= a``, ``P^T 1 <= b``, ``sum P = mass``.

    The plan is ``P_ij = exp((f_i + g_j - C_ij) / eps)`` with dual potentials that
    satisfy ``f <= eps log a``-type caps: each sweep maximises the dual exactly in the
    row potentials (the balanced update, clipped so that no row exceeds ``a``), in the
    column potentials (the same for ``b``), and in the mass multiplier (rescaling to
    ``sum P = mass``). This is Benamou et al.'s (2015) Dykstra iteration, POT's
    ``entropic_partial_wasserstein``, in the log domain and lazily. The stopping rule
    is the L1 violation (relative to ``mass``) of the optimality conditions: rows
    above ``a``, and rows below ``a`` whose cap is active (the same for the columns).

    Args:
      geom: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`.
      a: ``[n]`` weights; b: ``[m]`` weights (masses may differ); mass: as :func:`partial_emd`.
      epsilon: regularisation, > 0 (absolute: the entropy is not relative to ``a b^T``).
      tol, max_iters, check_every: stopping rule (static iteration settings).
      grad_mode: ``"envelope"`` (default: ``reg_cost`` differentiable exactly in the
        costs, ``a``, ``b``, ``mass`` and ``epsilon`` by Danskin's theorem; ``cost`` gets
        the plan-fixed ``d/dC = P``; plan operations refuse to be differentiated) or
        ``"unroll"`` (every output, through the iterations). No implicit mode: the
        active caps make the optimality conditions non-smooth.
      throw: raise when not converged or on bad input.

    Returns:
      :class:`~ot_jax.solvers.results.EntropicResult` with ``reg_cost = <C, P> + eps
      sum P log P``. ``lower_bound``/``upper_bound`` are ``-inf``/``inf``: no certificate
      of the exact partial value is computed (use :func:`partial_emd` for it).
    """
    solver = "partial_sinkhorn"
    _entropic.check_grad_mode(grad_mode, solver, ("envelope", "unroll"))
    geom, a, b, invalid = prepare(geom, a, b, solver, balanced=False)
    invalid = invalid | _check_mass(mass, a, b, solver) | check_positive(epsilon, "epsilon", solver)
    dtype = geom.dtype
    result = _solve(geom, a, b, jnp.asarray(mass, dtype), jnp.asarray(epsilon, dtype), invalid, tol,
                    grad_mode=grad_mode, max_iters=int(max_iters), check_every=int(check_every))
    return raise_on_status(result, solver, "epsilon") if throw else result


@functools.partial(jax.jit, static_argnames=("grad_mode", "max_iters", "check_every"))
def _solve(geom, a, b, mass, eps, invalid, tol, *, grad_mode, max_iters, check_every):
    dtype = geom.dtype
    if grad_mode == "unroll":
        a_s, b_s, geom_s, eps_s, mass_s = a, b, geom, eps, mass
    else:
        a_s, b_s, geom_s, eps_s, mass_s = jax.lax.stop_gradient((a, b, geom, eps, mass))
    log_a, log_b = _entropic.log_or_zero(a_s), _entropic.log_or_zero(b_s)

    # Dual variables: u [n] <= 0, v [m] <= 0 (the caps' multipliers), h (the mass's);
    # the plan is exp((u_i + v_j + h - C_ij) / eps).
    def step(state, it, check):
        u, v, h = state
        lse_rows = geom_s.lse(v, eps_s, axis=1)  # LSE_j((v_j - C_ij) / eps)
        u_free = jnp.where(a_s > 0, eps_s * (log_a - lse_rows) - h, -jnp.inf)
        u_new = jnp.minimum(u_free, 0.0)
        lse_cols = geom_s.lse(u_new, eps_s, axis=0)
        v_free = jnp.where(b_s > 0, eps_s * (log_b - lse_cols) - h, -jnp.inf)
        v_new = jnp.minimum(v_free, 0.0)
        total = jax.nn.logsumexp(v_new / eps_s + geom_s.lse(u_new, eps_s, axis=0))
        h_new = eps_s * (jnp.log(mass_s) - total)
        err = jnp.zeros((), dtype)
        if check:
            # KKT residual of the rows at the start state (u, v, h): the row masses are
            # a exp((u - u_free) / eps); excess over a, or a deficit where the cap u < 0 binds.
            err = _side_error(a_s, u, u_free, eps_s) + _side_error(b_s, v, v_free, eps_s)
            err = err / mass_s
            err = jnp.where(jnp.isnan(h_new) | jnp.any(jnp.isnan(u_new)), jnp.nan, err)
        return (u_new, v_new, h_new), err

    state0 = (jnp.where(a_s > 0, 0.0, -jnp.inf).astype(dtype), jnp.where(b_s > 0, 0.0, -jnp.inf).astype(dtype),
              jnp.zeros((), dtype))
    loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                            differentiable=grad_mode == "unroll", dtype=dtype)
    u, v, h = loop.state
    if grad_mode == "envelope":
        u, v, h = jax.lax.stop_gradient((u, v, h))
    f, g = u + h, v  # the plan exp((f + g - C) / eps)
    # cost: with "envelope" the plan is held fixed (d/dC = P). reg_cost: the dual value
    # <u, a> + <v, b> + h mass - eps sum P + eps mass, which equals <C, P> + eps sum P log P at
    # the optimum; with "envelope" (u, v, h) are constants and it is live in (C, a, b, mass,
    # eps): Danskin's gradient.
    cost = geom.transport_cost(f, g, eps, plan_gradient=grad_mode == "unroll")
    plan_mass = jnp.sum(geom.marginals(f, g, eps)[0])
    reg_cost = (_entropic.masked_dot(a, u) + _entropic.masked_dot(b, v) + h * mass - eps * plan_mass
                + eps * mass)
    inf = jnp.asarray(jnp.inf, dtype)
    return _entropic.assemble_result(geom, a, b, f, g, eps, cost, reg_cost, -inf, inf, loop, invalid,
                                     grad_mode=grad_mode, tol=tol, stalled=False)


def _side_error(w, pot, pot_free, eps):
    """L1 violation of one side's conditions at potentials ``pot`` (``pot_free``: the uncapped update).

    The side's masses are ``w exp((pot - pot_free) / eps)``; a violation is mass above
    ``w``, or mass below ``w`` where the cap binds (``pot < 0``).
    """
    live = w > 0
    mass = jnp.where(live, w * jnp.exp(jnp.where(live, (pot - pot_free) / eps, 0.0)), 0.0)
    excess = jnp.maximum(mass - w, 0.0)
    deficit = jnp.where(live & (pot < 0), jnp.maximum(w - mass, 0.0), 0.0)
    return jnp.sum(excess + deficit)
