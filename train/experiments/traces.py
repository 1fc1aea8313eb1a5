"""Per-iteration traces of ``<C, P(t)>`` for the convergence figure (thesis fig. 2.2).

``ot_jax.ipot`` takes its iteration count as a static argument, so one call per
iteration count costs one XLA compile (~0.6 s); a curve over t = 1..2000 would need
thousands. The traces below compile once per curve shape:

* :func:`sinkhorn_trace` calls the public ``ot_jax.sinkhorn`` one iteration at a time
  inside ``lax.scan``, warm-started from the previous potentials (exactly the
  iterates of one long run).
* :func:`ipot_trace` is a transcription of thesis Algorithm 1 in the log domain
  (warm-started ``v``, accumulated potentials ``F, G``; docs/algorithms.md, IPOT),
  used only to draw dense curves; the experiment checks it against ``ot_jax.ipot``
  at a few iteration counts (:func:`ipot_cost_at`) and reports the library values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import ot_jax

__all__ = ["ipot_trace", "ipot_cost_at", "sinkhorn_trace"]


@functools.partial(jax.jit, static_argnames="n_iters")
def ipot_trace(cost, a, b, beta, inner_iters, *, n_iters: int):
    """``<C, P(t)>`` for ``t = 1..n_iters`` of IPOT (thesis Algorithm 1).

    Args: ``cost: [n, m]``; ``a: [n]``, ``b: [m]`` positive weights of equal mass;
      ``beta``: scalar proximal step; ``inner_iters``: scalar int ``L`` (traced, so
      every L shares one compile); ``n_iters``: static trace length ``T``.
    Returns: ``[T]`` transport costs.
    """
    log_a, log_b = jnp.log(a), jnp.log(b)
    lse = jax.nn.logsumexp

    def step(state, t):
        big_f, big_g, log_v = state
        log_q = (big_f[:, None] + big_g[None, :] - t * cost) / beta  # Q = exp(-C/beta) * P(t-1)

        def sweep(_, uv):
            log_u = log_a - lse(log_q + uv[1][None, :], axis=1)
            return log_u, log_b - lse(log_q + log_u[:, None], axis=0)

        log_u, log_v = jax.lax.fori_loop(0, inner_iters, sweep, (jnp.zeros_like(log_a), log_v))
        big_f, big_g = big_f + beta * log_u, big_g + beta * log_v
        shift = jnp.mean(big_f)  # F + c, G - c leave P unchanged
        big_f, big_g = big_f - shift, big_g + shift
        plan = jnp.exp((big_f[:, None] + big_g[None, :] - t * cost) / beta)
        return (big_f, big_g, log_v), jnp.sum(plan * cost)

    n, m = cost.shape
    state0 = (jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype), jnp.full(m, -jnp.log(m), cost.dtype))
    ts = jnp.arange(1, n_iters + 1, dtype=cost.dtype)
    return jax.lax.scan(step, state0, ts)[1]


@functools.partial(jax.jit, static_argnames=("inner_iters", "n_iters"))
def ipot_cost_at(cost, a, b, beta, *, inner_iters: int, n_iters: int):
    """``<C, P(n_iters)>`` from ``ot_jax.ipot`` (scalar).

    ``tol=0``, ``check_every=n_iters`` and ``keep_best=False`` give exactly ``n_iters``
    steps and return the last iterate (by default ``ot_jax.ipot`` returns the checked
    iterate of smallest primal-dual gap). ``cost: [n, m]``, ``a: [n]``, ``b: [m]``.
    The plan's own cost is returned (``out.cost`` is moved into the certified
    interval ``[lower_bound, upper_bound]`` when the plan's cost falls outside it).
    """
    out = ot_jax.ipot(cost, a, b, beta=beta, inner_iters=inner_iters, tol=0.0,
                      max_iters=n_iters, check_every=n_iters, keep_best=False)
    return jnp.vdot(out.plan, cost)


@functools.partial(jax.jit, static_argnames="n_iters")
def sinkhorn_trace(cost, a, b, epsilon, *, n_iters: int):
    """``<C, P_t>`` for ``t = 1..n_iters`` Sinkhorn iterations (public ``ot_jax.sinkhorn``).

    ``cost: [n, m]``, ``a: [n]``, ``b: [m]``, ``epsilon``: scalar (traced). Returns ``[T]``.
    """

    def step(potentials, _):
        out = ot_jax.sinkhorn(cost, a, b, epsilon=epsilon, init=potentials, tol=0.0,
                              max_iters=1, check_every=1)
        return (out.f, out.g), out.cost

    n, m = cost.shape
    init = (jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype))  # = sinkhorn's own cold start
    return jax.lax.scan(step, init, None, length=n_iters)[1]
