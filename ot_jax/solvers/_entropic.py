"""Pieces shared by the potential-based solvers (Sinkhorn, IPOT)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ot_jax.solvers._implicit import implicit_potentials, target_mass
from ot_jax.solvers.results import EntropicResult, Status

GRAD_MODES = {
    "implicit": "iterate without tracking derivatives (a while loop that stops at tol), then attach "
    "to the potentials the derivative of the optimality conditions (implicit function theorem, one "
    "adjoint linear solve: conjugate gradients, lazy for point clouds; GMRES on the barycenter sweep): every output (cost, "
    "reg_cost, plan, apply, marginals, f, g) is differentiable in every input, forward and reverse "
    "mode, second order included; memory as the forward pass",
    "envelope": "iterate without tracking derivatives, then differentiate by the envelope (Danskin) "
    "theorem with the potentials held fixed: exact for a value that is a minimum (Sinkhorn's "
    "reg_cost, IPOT's and the LP's cost once converged); Sinkhorn's cost gets the plan-fixed "
    "gradient d/dC = P, which is not its derivative; f and g carry no derivative and plan, apply "
    "and marginals raise when differentiated; the cheapest mode",
    "unroll": "differentiate through the iterations: a scan over max_iters steps that freezes the "
    "state once converged; every output, reverse and forward mode, memory grows with max_iters",
    "forward": "differentiate through the iterations of the while loop that stops at tol: forward "
    "mode only (jax.jvp, jax.jacfwd); jax.grad raises",
}
"""The one vocabulary of ``grad_mode`` (one meaning each; a solver accepts the subset that
applies to it): :func:`ot_jax.sinkhorn` and :func:`ot_jax.losses.minibatch.sinkhorn_loss` take
``"implicit"`` (default), ``"envelope"`` and ``"unroll"``; :func:`ot_jax.ipot` and
:func:`ot_jax.losses.minibatch.ipot_loss` take ``"envelope"`` (default: the gradient of the
exact OT value) and ``"unroll"``; :func:`ot_jax.barycenter`, whose output ``q`` is not a value
function (no envelope theorem), takes ``"implicit"`` (default for ``method="sinkhorn"``: the
derivative of the fixed point of the barycenter sweep), ``"forward"`` (default for
``method="ipot"``) and ``"unroll"``."""


def safe_log(w: jax.Array) -> jax.Array:
    """``log w`` with ``-inf`` (and a zero gradient) where ``w == 0``."""
    positive = w > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), -jnp.inf)


def log_or_zero(w: jax.Array) -> jax.Array:
    """``log w`` where ``w > 0`` and 0 elsewhere: for terms that a ``where`` masks out anyway,
    so that their derivative is 0 instead of ``0 * inf = NaN``."""
    positive = w > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), 0.0)


def masked_dot(w: jax.Array, pot: jax.Array) -> jax.Array:
    """``<w, pot>`` ignoring entries with zero weight (whose potential may be -inf)."""
    return jnp.sum(jnp.where(w > 0, w * jnp.where(w > 0, pot, 0.0), 0.0))


def dual_lower_bound(geom, a, b, g) -> jax.Array:
    """``<a, g^c> + <b, g>`` with ``g^c_i = min_j (C_ij - g_j)``: a feasible LP dual value <= W."""
    g = jnp.where(b > 0, g, -jnp.inf)
    f_ctrans = geom.c_transform(g)
    return masked_dot(a, f_ctrans) + masked_dot(b, g)


def penalty_dual(w, pot, rho) -> jax.Array:
    """``sum_i w_i rho (1 - exp(-pot_i / rho))``, the dual term of a side penalised by
    ``rho KL(. | w)``; ``<w, pot>`` for a hard constraint (``rho`` None). Zero weights skipped."""
    live = w > 0
    pot = jnp.where(live, pot, 0.0)
    if rho is None:
        return jnp.sum(jnp.where(live, w * pot, 0.0))
    return jnp.sum(jnp.where(live, -w * rho * jnp.expm1(-pot / rho), 0.0))


def kl_divergence(p, q) -> jax.Array:
    """Generalised KL ``sum_i p_i log(p_i / q_i) - p_i + q_i`` of nonnegative vectors (``0 log 0 = 0``)."""
    live = p > 0
    ratio = jnp.where(live, p / jnp.where(q > 0, q, 1.0), 1.0)
    return jnp.sum(jnp.where(live, p * jnp.log(ratio), 0.0) - p + q)


def _dual_objective(geom, a, b, f, g, eps, rho=(None, None)) -> jax.Array:
    """Entropic dual ``h_a(phi) + h_b(psi) - eps (sum_ij P_ij - |a||b|)``, ``phi = f - eps log a``.

    ``h = <a, .>`` for a hard marginal, :func:`penalty_dual` for a KL-penalised one
    (``rho``). Its value at the optimum is the primal optimum ``<C, P> + eps KL(P | a b^T)``
    (+ the marginal penalties); with ``f, g`` held fixed its gradient in
    ``(C, a, b, eps, rho)`` is the exact one (Danskin).
    """
    phi = jnp.where(a > 0, f - eps * log_or_zero(a), 0.0)
    psi = jnp.where(b > 0, g - eps * log_or_zero(b), 0.0)
    mass = jnp.sum(geom.marginals(f, g, eps)[0])
    return penalty_dual(a, phi, rho[0]) + penalty_dual(b, psi, rho[1]) - eps * (mass - jnp.sum(a) * jnp.sum(b))


def unbalanced_bounds(geom, a, b, f, g, eps, rho):
    """Certified bounds ``(lower, upper)`` on the unregularised unbalanced OT value.

    The value is ``UOT = min_{P >= 0} <C, P> + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b)``
    (a hard marginal where ``rho`` is None; at least one side penalised). Lower: the
    dual value ``h_a(psi^c) + h_b(psi)`` of the column potential ``psi = g - eps log b``
    and its c-transform, a feasible pair (weak duality). Upper: the primal value of the
    plan of ``(f, g)``, its rows (columns) first scaled to ``a`` (``b``) on a hard side.
    """
    live_b = b > 0
    psi = jnp.where(live_b, g - eps * log_or_zero(b), -jnp.inf)
    lower = penalty_dual(a, geom.c_transform(psi), rho[0]) + penalty_dual(b, psi, rho[1])
    rows, cols = geom.marginals(f, g, eps)
    if rho[0] is None:
        f = f + eps * _log_ratio(a, rows)
    if rho[1] is None:
        g = g + eps * _log_ratio(b, cols)
    rows, cols = geom.marginals(f, g, eps)
    upper = geom.transport_cost(f, g, eps)
    for w, mass, r in ((a, rows, rho[0]), (b, cols, rho[1])):
        if r is not None:
            upper = upper + r * kl_divergence(mass, w)
    return lower, upper


def _log_ratio(target, mass):
    """``log(target / mass)`` where both are positive, ``-inf`` where the target is 0, else 0."""
    ratio = jnp.where((mass > 0) & (target > 0), target / jnp.where(mass > 0, mass, 1.0), 1.0)
    return jnp.where(target > 0, jnp.log(ratio), -jnp.inf)


def _log_min_ratio(target, mass):
    """``log min(target / mass, 1)``: 0 where ``mass <= target``, ``-inf`` where ``target = 0``."""
    ratio = jnp.where(mass > 0, target / jnp.where(mass > 0, mass, 1.0), 1.0)
    return safe_log(jnp.minimum(ratio, 1.0))


class Rounding(NamedTuple):
    """A feasible plan ``exp((f + g - C) / eps) + rows cols^T`` and the certified bounds it gives."""

    f: jax.Array  # [n]
    g: jax.Array  # [m]
    rows: jax.Array  # [n], rank-one correction
    cols: jax.Array  # [m]
    lower: jax.Array  # scalar: <a, g^c> + <b, g>, a feasible LP dual value <= W
    upper: jax.Array  # scalar: the rounded plan's cost >= W


def round_plan(geom, a, b, f, g, eps) -> Rounding:
    """Round the plan of ``(f, g, eps)`` onto the transport polytope (Altschuler, Weed & Rigollet 2017, Alg. 2).

    Scale the rows down to at most ``a``, then the columns down to at most ``b``, and
    add the rank-one correction ``err_a err_b^T / |err_a|_1`` that restores both
    marginals exactly. The rounded plan's cost is an upper bound on the exact OT value
    and the dual value of the c-transformed column potential a lower bound. Four lazy
    passes over the cost, nothing ``[n, m]`` stored; differentiable.
    """
    n, m = geom.shape
    dtype = geom.dtype
    f_r = f + eps * _log_min_ratio(a, geom.apply_plan(f, g, eps, jnp.ones(m, dtype), axis=1))
    cols = geom.apply_plan(f_r, g, eps, jnp.ones(n, dtype), axis=0)
    log_scale_cols = _log_min_ratio(b, cols)
    g_r = g + eps * log_scale_cols
    cost_rows, rows, f_ctrans = geom.primal_dual_stats(f_r, g_r, eps)
    cols = cols * jnp.exp(log_scale_cols)
    err_a = jnp.maximum(a - rows, 0.0)
    err_b = jnp.maximum(b - cols, 0.0)
    missing = jnp.sum(err_a)
    correction_rows = err_a * jnp.where(missing > 0, 1.0 / jnp.where(missing > 0, missing, 1.0), 0.0)
    upper = jnp.sum(cost_rows) + jnp.vdot(correction_rows, geom.apply_cost(err_b, axis=1))
    lower = masked_dot(a, f_ctrans) + masked_dot(b, g_r)
    return Rounding(f_r, g_r, correction_rows, err_b, lower, upper)


def check_grad_mode(grad_mode: str, solver: str, allowed: tuple[str, ...]):
    """Reject a ``grad_mode`` outside ``allowed`` (a subset of :data:`GRAD_MODES`), before tracing."""
    if grad_mode not in allowed:
        meanings = "; ".join(f"{mode!r}: {GRAD_MODES[mode]}" for mode in allowed)
        raise ValueError(f"{solver}: grad_mode must be one of {', '.join(map(repr, allowed))}, "
                         f"got {grad_mode!r} ({meanings})")


def entropic_result(geom, a, b, f, g, eps, loop, invalid, *, grad_mode, regularised, tol, stalled=False,
                    clip_cost=False, lower_bound=None, rho=(None, None)):
    """Assemble an :class:`EntropicResult` whose outputs carry the gradients of ``grad_mode``.

    ``implicit``: ``f, g`` carry the implicit derivative (:mod:`ot_jax.solvers._implicit`)
    and every output is computed from them by ordinary autodiff. ``envelope``: ``f, g``
    are constants and ``cost``/``reg_cost`` are written as functions of ``(C, a, b, eps)``
    whose gradient is the envelope (Danskin) gradient: ``d/dC = P``,
    ``d/da = f - eps log a``, ``d/db = g - eps log b``; the plan operations refuse to be
    differentiated. ``unroll``: the gradient flows through the iterations.

    ``lower_bound`` and ``upper_bound`` come from :func:`round_plan` (the lower one raised
    to the solver's own ``lower_bound`` where given) and are constants.
    ``clip_cost=True`` (IPOT, whose target is the exact value) moves the value of
    ``cost`` into ``[lower_bound, upper_bound]``, which can only bring it closer to the
    exact value. With ``"envelope"`` its gradient stays ``d/dC = P`` (the gradient of the
    exact value at convergence); with ``"unroll"`` it is the derivative of the clipped
    value itself (the bounds are differentiated through the iterations).

    ``rho = (rho_a, rho_b)``: the marginal penalties of unbalanced transport (None: a hard
    constraint). With a penalised side the bounds are :func:`unbalanced_bounds`, ``reg_cost``
    includes the penalties, and ``"envelope"``'s ``cost`` gets only the plan-fixed ``d/dC = P``.
    """
    unbalanced = rho[0] is not None or rho[1] is not None
    if unbalanced:
        return _unbalanced_result(geom, a, b, f, g, eps, loop, invalid, grad_mode=grad_mode, tol=tol, rho=rho)
    if grad_mode == "envelope":
        a_s, b_s, eps_s = jax.lax.stop_gradient((a, b, eps))
    else:
        a_s, b_s, eps_s = a, b, eps
    rounding = jax.lax.stop_gradient(round_plan(geom, a_s, b_s, f, g, eps_s))
    lower, upper = rounding.lower, rounding.upper
    if lower_bound is not None:  # a solver's own (better) certified lower bound
        lower = jnp.maximum(lower, jax.lax.stop_gradient(lower_bound))
    if grad_mode == "envelope":
        f, g = jax.lax.stop_gradient((f, g))
        # Potentials relative to a b^T: phi = f - eps log a (0 where a = 0), held fixed.
        phi = jnp.where(a > 0, f - eps_s * log_or_zero(a_s), 0.0)
        psi = jnp.where(b > 0, g - eps_s * log_or_zero(b_s), 0.0)
        cost = geom.transport_cost(f, g, eps_s) + jnp.sum((a - a_s) * phi) + jnp.sum((b - b_s) * psi)
        if regularised:
            reg_cost = _envelope_dual(geom, a, b, phi, psi, eps)
        else:
            reg_cost = cost
    else:
        if grad_mode == "implicit":
            f, g = implicit_potentials(geom, a, b, eps, f, g)
        cost = geom.transport_cost(f, g, eps, plan_gradient=True)
        reg_cost = _dual_objective(geom, a, b, f, g, eps) if regularised else cost
    if clip_cost:
        if grad_mode == "unroll":
            # The derivative of the reported value: the bounds it is clipped to are live.
            live = round_plan(geom, a, b, f, g, eps)
            live_lower = live.lower if lower_bound is None else jnp.maximum(live.lower, lower_bound)
            cost = jnp.clip(cost, live_lower, live.upper)
        else:
            cost = cost + jax.lax.stop_gradient(jnp.clip(cost, lower, upper) - cost)
        reg_cost = cost

    return assemble_result(geom, a, b, f, g, eps, cost, reg_cost, lower, upper, loop, invalid, grad_mode=grad_mode,
                   tol=tol, stalled=stalled)


def _envelope_dual(geom, a, b, phi, psi, eps, rho=(None, None)):
    """The entropic dual at fixed ``(phi, psi)`` (relative to ``a b^T``), live in ``(C, a, b, eps, rho)``.

    Its value is ``reg_cost`` at the solution and its gradient Danskin's.
    """
    f_live = jnp.where(a > 0, phi + eps * log_or_zero(a), -jnp.inf)
    g_live = jnp.where(b > 0, psi + eps * log_or_zero(b), -jnp.inf)
    mass = jnp.sum(geom.marginals(f_live, g_live, eps)[0])
    return penalty_dual(a, phi, rho[0]) + penalty_dual(b, psi, rho[1]) - eps * (mass - jnp.sum(a) * jnp.sum(b))


def _unbalanced_result(geom, a, b, f, g, eps, loop, invalid, *, grad_mode, tol, rho):
    """:func:`entropic_result` for unbalanced transport (at least one side of ``rho`` penalised)."""
    lower, upper = jax.lax.stop_gradient(unbalanced_bounds(geom, a, b, f, g, eps, rho))
    if grad_mode == "envelope":
        f, g, eps_s = jax.lax.stop_gradient((f, g, eps))
        a_s, b_s = jax.lax.stop_gradient((a, b))
        cost = geom.transport_cost(f, g, eps_s)
        phi = jnp.where(a > 0, f - eps_s * log_or_zero(a_s), 0.0)
        psi = jnp.where(b > 0, g - eps_s * log_or_zero(b_s), 0.0)
        reg_cost = _envelope_dual(geom, a, b, phi, psi, eps, rho)
    else:
        if grad_mode == "implicit":
            f, g = implicit_potentials(geom, a, b, eps, f, g, rho=rho)
        cost = geom.transport_cost(f, g, eps, plan_gradient=True)
        reg_cost = _dual_objective(geom, a, b, f, g, eps, rho)
    return assemble_result(geom, a, b, f, g, eps, cost, reg_cost, lower, upper, loop, invalid, grad_mode=grad_mode,
                   tol=tol, stalled=False, rho=rho)


def assemble_result(geom, a, b, f, g, eps, cost, reg_cost, lower, upper, loop, invalid, *, grad_mode, tol,
                    stalled, rho=(None, None)):
    """The :class:`EntropicResult`, with the status read off the loop and the inputs' health."""
    last = loop.last_error
    finite = jnp.isfinite(cost) & ~jnp.isnan(last)
    converged = (last <= tol) & finite & ~invalid
    status = jnp.where(
        invalid,
        Status.INVALID_INPUT,
        jnp.where(
            ~finite,
            Status.NON_FINITE,
            jnp.where(converged, Status.CONVERGED, jnp.where(stalled, Status.STALLED, Status.MAX_ITERS)),
        ),
    ).astype(jnp.int32)
    return EntropicResult(
        geom=geom,
        a=a,
        b=b,
        f=f,
        g=g,
        plan_epsilon=jnp.asarray(eps, geom.dtype),
        cost=cost,
        reg_cost=reg_cost,
        lower_bound=lower,
        upper_bound=upper,
        plan_correction=(jnp.zeros(f.shape, geom.dtype), jnp.zeros(g.shape, geom.dtype)),
        converged=converged,
        n_iters=loop.n_iters,
        errors=loop.errors,
        status=status,
        reg_m=tuple(rho),
        grad_mode=grad_mode,
    )
