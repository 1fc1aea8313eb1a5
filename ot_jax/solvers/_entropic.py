"""Pieces shared by the potential-based solvers (Sinkhorn, IPOT)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ot_jax.solvers.results import EntropicResult, Status

GRAD_MODES = {
    "envelope": "iterate without tracking derivatives (a while loop that stops at tol), then "
    "differentiate the returned cost by the envelope (Danskin) theorem with the potentials held "
    "fixed: d cost/dC = P, d/da and d/db from the potentials; forward and reverse mode",
    "unroll": "differentiate through the iterations: a scan over max_iters steps that freezes the "
    "state once converged; reverse and forward mode, memory grows with max_iters",
    "forward": "differentiate through the iterations of the while loop that stops at tol: forward "
    "mode only (jax.jvp, jax.jacfwd); jax.grad raises",
}
"""The one vocabulary of ``grad_mode`` (one meaning each; a solver accepts the subset that
applies to it): :func:`ot_jax.sinkhorn`, :func:`ot_jax.ipot` and the minibatch losses take
``"envelope"`` (default) and ``"unroll"``; :func:`ot_jax.barycenter`, whose output ``q`` is
not a value function (no envelope theorem), takes ``"forward"`` (default) and ``"unroll"``."""


def safe_log(w: jax.Array) -> jax.Array:
    """``log w`` with ``-inf`` (and a zero gradient) where ``w == 0``."""
    positive = w > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), -jnp.inf)


def masked_dot(w: jax.Array, pot: jax.Array) -> jax.Array:
    """``<w, pot>`` ignoring entries with zero weight (whose potential may be -inf)."""
    return jnp.sum(jnp.where(w > 0, w * jnp.where(w > 0, pot, 0.0), 0.0))


def dual_lower_bound(geom, a, b, g) -> jax.Array:
    """``<a, g^c> + <b, g>`` with ``g^c_i = min_j (C_ij - g_j)``: a feasible LP dual value <= W."""
    g = jnp.where(b > 0, g, -jnp.inf)
    f_ctrans = geom.c_transform(g)
    return masked_dot(a, f_ctrans) + masked_dot(b, g)


def _dual_objective(geom, a, b, phi, psi, eps) -> jax.Array:
    """Entropic dual ``<a, phi> + <b, psi> - eps (sum_ij a_i b_j e^{(phi_i + psi_j - C_ij)/eps} - |a||b|)``.

    Its value at the optimum is ``<C, P> + eps KL(P | a b^T)``; with ``phi, psi``
    held fixed its gradient in ``(C, a, b, eps)`` is the exact one (Danskin).
    """
    f_full = jnp.where(a > 0, phi + eps * safe_log(a), -jnp.inf)
    g_full = jnp.where(b > 0, psi + eps * safe_log(b), -jnp.inf)
    mass = jnp.sum(jnp.exp(f_full / eps + geom.lse(g_full, eps, axis=1)))
    return jnp.sum(a * phi) + jnp.sum(b * psi) - eps * (mass - jnp.sum(a) * jnp.sum(b))


def check_grad_mode(grad_mode: str, solver: str, allowed: tuple[str, ...] = ("envelope", "unroll")):
    """Reject a ``grad_mode`` outside ``allowed`` (a subset of :data:`GRAD_MODES`), before tracing."""
    if grad_mode not in allowed:
        meanings = "; ".join(f"{mode!r}: {GRAD_MODES[mode]}" for mode in allowed)
        raise ValueError(f"{solver}: grad_mode must be one of {', '.join(map(repr, allowed))}, "
                         f"got {grad_mode!r} ({meanings})")


def entropic_result(geom, a, b, f, g, eps, loop, invalid, *, grad_mode, regularised, tol, stalled=False):
    """Assemble an :class:`EntropicResult` whose ``cost``/``reg_cost`` carry the right gradients.

    In ``envelope`` mode ``f, g`` are constants and ``cost``/``reg_cost`` are written as
    functions of ``(C, a, b, eps)`` whose gradient is the envelope (Danskin) gradient:
    ``d/dC = P``, ``d/da = f - eps log a``, ``d/db = g - eps log b``. In ``unroll`` mode
    the gradient flows through the iterations that produced ``f, g``.
    """
    if grad_mode == "envelope":
        f, g = jax.lax.stop_gradient((f, g))
        a_s, b_s, eps_s = jax.lax.stop_gradient((a, b, eps))
        # Potentials relative to a b^T: phi = f - eps log a (0 where a = 0), held fixed.
        phi = jnp.where(a > 0, f - eps_s * safe_log(a_s), 0.0)
        psi = jnp.where(b > 0, g - eps_s * safe_log(b_s), 0.0)
        cost = geom.transport_cost(f, g, eps_s) + jnp.sum((a - a_s) * phi) + jnp.sum((b - b_s) * psi)
    else:
        phi = jnp.where(a > 0, f - eps * safe_log(a), 0.0)
        psi = jnp.where(b > 0, g - eps * safe_log(b), 0.0)
        cost = geom.transport_cost(f, g, eps, plan_gradient=True)
    reg_cost = _dual_objective(geom, a, b, phi, psi, eps) if regularised else cost

    lower = jax.lax.stop_gradient(dual_lower_bound(geom, a, b, g))
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
        converged=converged,
        n_iters=loop.n_iters,
        errors=loop.errors,
        status=status,
    )
