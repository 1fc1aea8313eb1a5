"""IPOT: inexact proximal point OT (Xie et al.; thesis Algorithm 1), log-domain.

The thesis iterates ``P(t+1) = argmin_{P in Pi(a, b)} <C, P> + beta KL(P | P(t))``
with ``L`` Sinkhorn sweeps on ``Q = exp(-C/beta) * P(t)``. After ``t`` steps
``P(t) = exp((F + G - t C) / beta)``; we store it as ``exp((f + g - C) / eps_t)``
with ``eps_t = beta / t`` and ``f = F / t``, ``g = G / t``, so the potentials keep
the scale of the cost and float32 neither underflows nor drifts as ``t`` grows.

In these variables one outer step ``t -> t + 1`` is (derivation in the README's
"IPOT in the log domain"):

    eps   = beta / (t + 1),  s = t / (t + 1)
    h     = s (2 g - g_s_prev)        # g s + eps log v: the warm-started v is kept
    repeat L:  f = eps log a - eps LSE_j((h_j - C_ij)/eps);  h = eps log b - eps LSE_i((f_i - C_ij)/eps)
    g     = h,  g_s_prev = s g_old

so the state is ``(f, g, g_s_prev)``: the thesis' warm start of ``v`` is the term
``s (g - g_s_prev)``; dropping it (``h = s g``) makes the iteration stall.

Stopping rule, checked every ``check_every`` steps in one pass over the cost: the
relative gap between the plan's cost ``<C, P>`` and the dual value of the
c-transformed potentials (a certified lower bound on the exact value), and the
L1 row-marginal error (columns are exact after the last sweep); both ``<= tol``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from ot_jax.solvers import _entropic
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax.solvers.problem import check_positive, prepare
from ot_jax.solvers.results import EntropicResult, raise_on_status

__all__ = ["ipot", "DEFAULT_RELATIVE_BETA"]

DEFAULT_RELATIVE_BETA = 0.01
"""Default beta as a fraction of the largest cost (the sweet spot measured in ALGORITHMS.md)."""


def _extrapolated_error(cost, delta, prev_delta, floor):
    """Relative distance of ``cost`` to the limit of a linearly converging sequence.

    With successive changes ``delta`` and ``prev_delta`` between checks, the rate
    is ``rho = |delta / prev_delta|`` and the remaining error ``|delta| rho / (1 - rho)``
    (Aitken). Infinite until two changes are known or while ``rho >= 1``.
    """
    rho = jnp.abs(delta) / jnp.abs(prev_delta)
    remaining = jnp.where(rho < 1.0, jnp.abs(delta) * rho / (1.0 - rho), jnp.inf)
    remaining = jnp.where(delta == 0.0, 0.0, remaining)
    remaining = jnp.where(jnp.isfinite(prev_delta), remaining, jnp.inf)
    return remaining / jnp.maximum(jnp.abs(cost), floor)


def ipot(
    geom,
    a=None,
    b=None,
    *,
    beta=None,
    inner_iters: int = 1,
    tol: float = 1e-5,
    max_iters: int = 10000,
    check_every: int = 10,
    grad_mode: Literal["envelope", "unroll"] = "envelope",
    throw: bool = False,
) -> EntropicResult:
    """Exact OT by inexact proximal point iterations (converges to the LP value, not a biased one).

    Args:
      geom: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`.
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights.
      beta: proximal step, > 0, in cost units. Default ``0.01 * max C``. Any beta
        converges to the exact value; ``0.005-0.01 x max C`` is fastest.
      inner_iters: Sinkhorn sweeps per proximal step (``L``; 1 suffices).
      tol: tolerance on ``max(relative primal-dual gap, relative L1 marginal error)``.
      max_iters: proximal steps cap (static); check_every: steps per check (static).
      grad_mode: ``"envelope"`` (default; ``d cost/dC = P``, ``d/da = f``, ``d/db = g``,
        exact at convergence since the LP value's gradient is the optimal plan and
        duals) or ``"unroll"`` (backpropagate through the iterations).
      throw: raise (also inside ``jit``) when not converged or on bad input.

    Returns:
      :class:`~ot_jax.solvers.results.EntropicResult`; ``cost`` is ``<C, P(t)>``,
      ``lower_bound`` a certified lower bound on the exact value,
      ``plan_epsilon = beta / t``.

    >>> import jax, ot_jax
    >>> x = jax.random.uniform(jax.random.PRNGKey(0), (64, 2))
    >>> y = jax.random.uniform(jax.random.PRNGKey(1), (48, 2))
    >>> out = ot_jax.ipot(ot_jax.PointCloud(x, y))
    >>> bool(out.converged), bool(out.cost >= out.lower_bound)
    (True, True)
    """
    solver = "ipot"
    _entropic.check_grad_mode(grad_mode, solver)
    if int(inner_iters) < 1:
        raise ValueError(f"{solver}: inner_iters must be >= 1, got {inner_iters}")
    geom, a, b, invalid = prepare(geom, a, b, solver)
    dtype = geom.dtype
    n, m = geom.shape
    max_cost = jax.lax.stop_gradient(geom.max_cost())
    if beta is None:
        beta = DEFAULT_RELATIVE_BETA * max_cost
    else:
        invalid = invalid | check_positive(beta, "beta", solver)
    beta = jnp.asarray(beta, dtype)

    if grad_mode == "envelope":
        a_s, b_s, geom_s, beta_s = jax.lax.stop_gradient((a, b, geom, beta))
    else:
        a_s, b_s, geom_s, beta_s = a, b, geom, beta
    log_a, log_b = _entropic.safe_log(a_s), _entropic.safe_log(b_s)
    # Relative errors are measured against max(|cost|, floor) so that W = 0 stays well posed.
    floor = jnp.finfo(dtype).eps * jnp.maximum(max_cost, jnp.finfo(dtype).tiny) * jnp.sum(a_s)

    def step(state, it, check):
        f, g, g_s_prev, prev_cost, prev_delta = state
        t = it.astype(dtype)
        eps = beta_s / (t + 1.0)
        s = t / (t + 1.0)
        h = jnp.where(b_s > 0, s * (2.0 * g - g_s_prev), -jnp.inf)

        def sweep(_, fh):
            f_new = eps * (log_a - geom_s.lse(fh[1], eps, axis=1))
            return f_new, eps * (log_b - geom_s.lse(f_new, eps, axis=0))

        f_new, g_new = jax.lax.fori_loop(0, inner_iters, sweep, (f, h))
        g_s = jnp.where(b_s > 0, s * g, 0.0)
        if not check:
            return (f_new, g_new, g_s, prev_cost, prev_delta), jnp.zeros((), dtype)
        cost = geom_s.transport_cost(f_new, g_new, eps)
        delta = cost - prev_cost
        err = _extrapolated_error(cost, delta, prev_delta, floor)
        err = jnp.where(jnp.isfinite(cost) & jnp.all(~jnp.isnan(f_new)), err, jnp.nan)
        return (f_new, g_new, g_s, cost, delta), err

    inf = jnp.asarray(jnp.inf, dtype)
    state0 = (jnp.zeros(n, dtype), jnp.zeros(m, dtype), jnp.zeros(m, dtype), inf, inf)
    loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                            differentiable=grad_mode == "unroll", dtype=dtype)
    f, g = loop.state[:2]
    eps_final = beta_s / jnp.maximum(loop.n_iters, 1).astype(dtype)
    result = _entropic.entropic_result(geom, a, b, f, g, eps_final, loop, invalid,
                                       grad_mode=grad_mode, regularised=False, tol=tol)
    return raise_on_status(result, solver) if throw else result
