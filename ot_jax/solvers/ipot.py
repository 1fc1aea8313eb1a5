"""IPOT: inexact proximal point OT (Xie et al.; thesis Algorithm 1), log-domain.

The thesis iterates ``P(t+1) = argmin_{P in Pi(a, b)} <C, P> + beta KL(P | P(t))``
with ``L`` Sinkhorn sweeps on ``Q = exp(-C/beta) * P(t)``, warm-starting each
sweep from the previous step's ``v``. After ``t`` steps
``P(t) = exp((F + G - t C) / beta)`` with accumulated potentials
``F = beta sum_s log u_s`` and ``G = beta sum_s log v_s``. We keep exactly that
state, ``(F, G, log v)``, and run every kernel operation as a log-sum-exp at the
temperature ``eps = beta / (t + 1)`` of ``Q``:

    log u = log a - F / beta - LSE_j(((G_j + beta log v_j) / (t + 1) - C_ij) / eps)
    log v = log b - G / beta - LSE_i(((F_i + beta log u_i) / (t + 1) - C_ij) / eps)   (L times)
    F += beta log u;  G += beta log v;  F -= c, G += c (recentring; P unchanged)

so nothing underflows, and the recentring keeps float32 from drifting. The warm
start (``log v`` carried over) is what makes the iteration converge; resetting it
stalls (tested against the thesis' scaling form).

Stopping rule, checked every ``check_every`` steps: the plan is rounded onto the
marginals (Altschuler, Weed & Rigollet 2017), which gives a feasible plan whose cost
is an upper bound on the exact value, and the c-transformed column potential gives a
feasible dual value, a lower bound. The run stops when their gap is within ``tol``;
``cost`` is clipped into the interval, so ``CONVERGED`` certifies it. The iterate
with the smallest gap is returned.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

from ot_jax.solvers import _entropic
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax._checks import check_positive
from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import EntropicResult, raise_on_status

__all__ = ["ipot", "DEFAULT_RELATIVE_BETA", "ABSOLUTE_FLOOR"]

ABSOLUTE_FLOOR = 1e-3
"""The stopping rule's gap is relative to ``max(|lower_bound|, ABSOLUTE_FLOOR * max C * mass)``."""

DEFAULT_RELATIVE_BETA = 0.01
"""Default beta as a fraction of the largest cost (the sweet spot of the scaling experiment, docs/reproduction.md)."""


def _stopping_error(geom, a, b, f, g, eps, gamma, floor):
    """Certified relative gap ``(upper - lower) / max(|lower|, floor)`` and ``lower``.

    ``upper`` is the cost of the plan rounded onto the marginals (a feasible plan).
    ``lower`` is the better of two feasible dual values: that of the c-transformed
    column potential ``g`` of the plan (an average over all steps, which lags the
    optimum by about ``beta / t``) and that of ``gamma = beta log v``, the dual of the
    last proximal step (``P(t+1) / P(t) = exp((alpha + gamma - C) / beta)``), which
    converges as fast as the plan once the inner sweeps solve each step. So
    ``lower <= W <= upper``; the result's ``cost`` is clipped into that interval,
    and an error ``<= tol`` proves it within ``tol`` of the exact value. Five lazy
    passes over the cost.
    """
    rounding = _entropic.round_plan(geom, a, b, f, g, eps)
    lower = jnp.maximum(rounding.lower, _entropic.dual_lower_bound(geom, a, b, gamma))
    err = (rounding.upper - lower) / jnp.maximum(jnp.abs(lower), floor)
    return jnp.where(jnp.isfinite(rounding.upper) & jnp.isfinite(lower), err, jnp.nan), lower


def ipot(
    geom,
    a=None,
    b=None,
    *,
    beta=None,
    inner_iters: int = 1,
    tol: float | None = None,
    max_iters: int = 10000,
    check_every: int = 10,
    keep_best: bool = True,
    grad_mode: Literal["envelope", "unroll"] = "envelope",
    throw: bool = False,
) -> EntropicResult:
    """Exact OT by inexact proximal point iterations (converges to the LP value, not a biased one).

    Args:
      geom: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`.
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights.
      beta: proximal step, > 0, in cost units. Default ``0.01 * max C``. Any beta
        converges to the exact value; ``0.005-0.01 x max C`` is fastest.
      inner_iters: Sinkhorn sweeps per proximal step (``L``). ``L = 1`` converges
        in value (the lower bound closes fast), but the plan's rows settle slowly and
        the rounded upper bound with them; a few sweeps (3-10) often certify a given
        ``tol`` in fewer passes over the cost (``docs/certification.md``).
      tol: stop when the certified relative gap ``(upper_bound - lower_bound) /
        max(|lower_bound|, 1e-3 * max C * mass)`` is ``<= tol``; ``CONVERGED`` then
        guarantees ``|cost - W| <= tol * max(|W|, 1e-3 * max C * mass)`` for the exact
        value ``W``. Default 1e-4 in float64, 1e-3 in float32. A run that ends
        ``MAX_ITERS`` or ``STALLED`` can still be accurate: ``gap`` says how far it
        is proven to be.
      max_iters: proximal steps cap (static). The run also stops, with
        ``Status.STALLED``, once ``beta / t`` falls below ``300 x machine-eps x max C``:
        past it float32 plans are noise at the 1e-4 level and more steps do not
        tighten the gap. That is ``t = 280`` at the default beta in float32; in
        float64 it is never reached in practice. For certified accuracy below about
        1e-2 on low-dimensional data use float64.
      check_every: steps per check (static).
      keep_best: return the checked iterate with the smallest error (default), or
        the last one (e.g. to trace convergence with ``tol=0``).
      grad_mode: ``"envelope"`` (default; ``d cost/dC = P``, ``d/da = f``, ``d/db = g``,
        exact at convergence since the LP value's gradient is the optimal plan and
        duals) or ``"unroll"`` (backpropagate through the iterations). Meanings:
        :data:`ot_jax.solvers._entropic.GRAD_MODES`.
      throw: raise (also inside ``jit``) when not converged or on bad input.

    Returns:
      :class:`~ot_jax.solvers.results.EntropicResult`: ``plan = P(t)`` (exact
      columns, rows to about the gap; ``result.rounded()`` is the feasible plan),
      ``plan_epsilon = beta / t``, the certified ``lower_bound <= W <= upper_bound``
      (``upper_bound``: the rounded plan's cost) and ``cost = <C, P(t)>`` clipped into
      that interval.

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.uniform(jax.random.PRNGKey(0), (64, 2))
        >>> y = jax.random.uniform(jax.random.PRNGKey(1), (48, 2))
        >>> geom = ot_jax.PointCloud(x, y)
        >>> out, exact = ot_jax.ipot(geom, tol=1e-3), ot_jax.emd(geom)
        >>> bool(out.converged), bool(abs(out.cost - exact.cost) < 1e-3 * exact.cost)
        (True, True)
    """
    solver = "ipot"
    _entropic.check_grad_mode(grad_mode, solver, ("envelope", "unroll"))
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
    if tol is None:
        tol = 1e-3 if jnp.finfo(dtype).bits <= 32 else 1e-4

    result = _solve(geom, a, b, beta, max_cost, invalid, tol, grad_mode=grad_mode, inner_iters=int(inner_iters),
                    max_iters=int(max_iters), check_every=int(check_every), keep_best=bool(keep_best))
    return raise_on_status(result, solver, "beta") if throw else result


@functools.partial(jax.jit, static_argnames=("grad_mode", "inner_iters", "max_iters", "check_every", "keep_best"))
def _solve(geom, a, b, beta, max_cost, invalid, tol, *, grad_mode, inner_iters, max_iters, check_every,
           keep_best):
    """The proximal iterations and the result, for checked inputs (see :func:`ipot`).

    Jitted (settings static; ``tol``, ``beta`` and the inputs dynamic), so repeated eager
    calls reuse one compiled program; inside an outer ``jit``/``vmap``/``grad`` it is inlined.
    """
    dtype = geom.dtype
    n, m = geom.shape
    if grad_mode == "envelope":
        a_s, b_s, geom_s, beta_s = jax.lax.stop_gradient((a, b, geom, beta))
    else:
        a_s, b_s, geom_s, beta_s = a, b, geom, beta
    log_a, log_b = _entropic.safe_log(a_s), _entropic.safe_log(b_s)
    mass = jnp.sum(a_s)
    # Relative errors are measured against max(|lower bound|, floor): near W = 0 the rule becomes
    # absolute, gap <= tol * 1e-3 * max C * mass, so an exact value of 0 can be certified.
    floor = ABSOLUTE_FLOOR * jnp.maximum(max_cost, jnp.finfo(dtype).tiny) * mass

    def step(state, it, check):
        big_f, big_g, log_v, best = state
        t1 = it.astype(dtype) + 1.0
        eps = beta_s / t1  # temperature of Q = exp(-C/beta) * P(t) = exp((F + G - (t+1) C) / beta)

        # Points of zero weight carry -inf; every expression below sees 0 there and puts the
        # -inf back with a where, so derivatives (in beta too) stay finite: d/dbeta of
        # -inf / beta would be 0 * inf = NaN.
        live_f, live_g = a_s > 0, b_s > 0
        finite = lambda h, live: jnp.where(live, h, 0.0)
        masked = lambda h, live: jnp.where(live, h, -jnp.inf)

        def sweep(_, uv):
            g_plan = masked((finite(big_g, live_g) + beta_s * finite(uv[1], live_g)) / t1, live_g)
            log_u = log_a - finite(big_f, live_f) / beta_s - geom_s.lse(g_plan, eps, axis=1)
            log_u = masked(log_u, live_f)
            f_plan = masked((finite(big_f, live_f) + beta_s * finite(log_u, live_f)) / t1, live_f)
            log_v = log_b - finite(big_g, live_g) / beta_s - geom_s.lse(f_plan, eps, axis=0)
            return log_u, masked(log_v, live_g)

        log_u, log_v = jax.lax.fori_loop(0, inner_iters, sweep, (jnp.zeros_like(big_f), log_v))
        # P(t+1) = diag(u) Q diag(v): fold the scalings into the accumulated potentials,
        # recentred (F + c, G - c leaves P unchanged) so float32 keeps its digits.
        big_f = masked(finite(big_f, live_f) + beta_s * finite(log_u, live_f), live_f)
        big_g = masked(finite(big_g, live_g) + beta_s * finite(log_v, live_g), live_g)
        shift = _entropic.masked_dot(a_s, big_f) / mass
        big_f, big_g = big_f - shift, big_g + shift
        err = jnp.zeros((), dtype)
        if check:
            f, g = big_f / t1, big_g / t1
            err, lower = _stopping_error(geom_s, a_s, b_s, f, g, eps, beta_s * log_v, floor)
            err = jnp.where(jnp.all(~jnp.isnan(big_f)), err, jnp.nan)
            # Keep the iterate with the smallest error: in float32 the plan's exponents lose
            # ~t * 6e-8 * max C / beta of accuracy, so late iterates can drift.
            better = (err < best[3]) | (not keep_best)
            pick = lambda new, old: jnp.where(better, new, old)
            best = (pick(f, best[0]), pick(g, best[1]), pick(t1, best[2]), pick(err, best[3]), t1,
                    pick(lower, best[5]))
        return (big_f, big_g, log_v, best), err

    # Past this plan temperature beta / t the dtype cannot resolve the plan's exponents
    # (float32: ~4e-5 x max C); in float64 it is never reached in practice.
    precision_floor = 300.0 * jnp.finfo(dtype).eps * max_cost

    def is_stalled(best):
        return beta_s / best[4] < precision_floor

    zeros_n, zeros_m = jnp.zeros(n, dtype), jnp.zeros(m, dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    # best = (f, g, t, error of the best iterate, current t, lower bound of the best iterate)
    best0 = (zeros_n, zeros_m, jnp.ones((), dtype), inf, jnp.ones((), dtype), -inf)
    state0 = (zeros_n, zeros_m, jnp.where(b_s > 0, -jnp.log(m), -jnp.inf).astype(dtype), best0)
    loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                            differentiable=grad_mode == "unroll", dtype=dtype,
                            stalled=lambda state: is_stalled(state[3]))
    f, g, t_final, best_err = loop.state[3][:4]
    stalled = is_stalled(loop.state[3])
    eps_final = beta_s / t_final
    loop = loop._replace(last_error=best_err)
    result = _entropic.entropic_result(geom, a, b, f, g, eps_final, loop, invalid,
                                       grad_mode=grad_mode, regularised=False, tol=tol, stalled=stalled,
                                       clip_cost=True, lower_bound=loop.state[3][5])
    return result
