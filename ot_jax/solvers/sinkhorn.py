"""Entropic OT by Sinkhorn iterations (Cuturi 2013), log-domain by default."""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.geometry import Geometry
from ot_jax.solvers import _anderson, _entropic, _initializers
from ot_jax.solvers._implicit import target_mass
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax._checks import check_int_at_least, check_positive, concrete_true, is_concrete
from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import EntropicResult, Status, raise_on_status

__all__ = ["sinkhorn"]

# Largest (max C - min C) / eps for which mode="auto" takes the scaling path:
# exp(-range/eps) and the scalings u, v stay far inside the float range.
_SAFE_SCALING_RANGE = {32: 30.0, 64: 300.0}
_GRAD_MODES = ("implicit", "envelope", "unroll")  # meanings: ot_jax.solvers._entropic.GRAD_MODES


def _row_error(a, f_old, f_new, eps):
    """L1 row-marginal error of the plan (f_old, g), read off the next f-update.

    Row sums of that plan are ``a * exp((f_old - f_new) / eps)``: no extra kernel pass.
    """
    diff = jnp.where(a > 0, f_old - f_new, 0.0)
    rows = jnp.where(a > 0, a * jnp.exp(diff / eps), 0.0)
    return jnp.sum(jnp.abs(rows - a)) / jnp.sum(a)


def _marginal_error(w, pot_old, lse_old, eps, rho):
    """L1 error of the rows of the plan ``(pot_old, h)`` against their optimal masses.

    ``lse_old = LSE_j((h_j - C_ij) / eps)``, so the rows are ``exp(pot_old / eps + lse_old)``;
    the optimal rows are ``w`` (hard marginal, ``rho`` None) or
    ``w exp(-(pot_old - eps log w) / rho)`` (KL-penalised). Relative to ``sum(w)``.
    """
    live = w > 0
    rows = jnp.where(live, jnp.exp(jnp.where(live, pot_old / eps + lse_old, 0.0)), 0.0)
    target = target_mass(w, pot_old, eps, rho)
    return jnp.sum(jnp.abs(rows - target)) / jnp.sum(w)


def _parse_reg_m(reg_m, solver):
    """``(rho_a, rho_b, invalid)`` from ``reg_m`` (None, a scalar or a pair): ``inf`` becomes None."""
    if reg_m is None:
        return None, None, np.bool_(False)
    pair = tuple(reg_m) if isinstance(reg_m, (tuple, list)) else (reg_m, reg_m)
    if len(pair) != 2:
        raise ValueError(f"{solver}: reg_m must be a number or a pair (rho_a, rho_b), got {len(pair)} values")
    out, invalid = [], np.bool_(False)
    for side, rho in zip(("reg_m[0]", "reg_m[1]"), pair):
        if is_concrete(rho):
            value = float(np.asarray(rho))
            if not value > 0:
                raise ValueError(f"{solver}: {side} must be > 0 (or inf for a hard marginal), got {value}")
            out.append(None if value == np.inf else rho)
        else:
            out.append(rho)
            invalid = invalid | check_positive(rho, side, solver)
    return out[0], out[1], invalid


def _translation(a, b, f, g, eps, rho):
    """The constant ``t`` that maximises the unbalanced dual along ``(f + t, g - t)``
    (Séjourné et al. 2022's translation-invariant step; the plan does not change).

    With ``phi = f - eps log a``, ``psi = g - eps log b`` the dual's ``t``-dependent part is
    ``-rho_a A exp(-t / rho_a) - rho_b B exp(t / rho_b)``, ``A = sum_i a_i exp(-phi_i / rho_a)``,
    ``B = sum_j b_j exp(-psi_j / rho_b)``; its maximum is at
    ``t = log(A / B) / (1 / rho_a + 1 / rho_b)``. A hard side (``rho`` None) contributes
    ``<a, phi>``, i.e. ``A = sum(a)`` and ``1 / rho_a = 0``.
    """

    def log_mass(w, pot, r):
        live = w > 0
        log_w = jnp.log(jnp.where(live, w, 1.0))
        if r is None:
            return jax.nn.logsumexp(jnp.where(live, log_w, -jnp.inf))
        rel = jnp.where(live, pot - eps * log_w, 0.0)
        return jax.nn.logsumexp(jnp.where(live, log_w - rel / r, -jnp.inf))

    inv = sum(0.0 if r is None else 1.0 / r for r in rho)
    return (log_mass(a, f, rho[0]) - log_mass(b, g, rho[1])) / inv


def _has_nan(*xs):
    return jnp.any(jnp.array([jnp.any(jnp.isnan(x) | (x == jnp.inf)) for x in xs]))


def sinkhorn(
    geom,
    a=None,
    b=None,
    *,
    epsilon,
    reg_m=None,
    relative_epsilon: bool = False,
    tol: float = 1e-4,
    max_iters: int = 5000,
    check_every: int = 10,
    init: tuple | str | None = None,
    anderson: int | None = None,
    epsilon_init=None,
    epsilon_decay: float = 0.9,
    mode: Literal["log", "scaling", "auto"] = "log",
    grad_mode: Literal["implicit", "envelope", "unroll"] = "implicit",
    throw: bool = False,
) -> EntropicResult:
    """Entropic OT: ``min_P <C, P> + eps KL(P | a b^T)`` over plans with marginals a, b.

    Log-domain updates (stable in float32 down to eps ~ 1e-4 x mean cost):
    ``f <- eps log a - eps LSE_j((g_j - C_ij)/eps)``, then the same for ``g``.
    Stops when the L1 row-marginal error (relative to the mass) is ``<= tol``.

    **Unbalanced** transport (``reg_m = rho`` or ``(rho_a, rho_b)``; Chizat et al. 2018)
    replaces the marginal constraints by penalties,
    ``min_{P >= 0} <C, P> + eps KL(P | a b^T) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b)``
    (generalised KL; the masses of ``a`` and ``b`` may differ; ``inf`` keeps that side a
    hard constraint). The updates are the balanced ones damped by
    ``tau = rho / (rho + eps)``: ``f <- eps log a - tau eps LSE_j((g_j - C_ij)/eps)``;
    after each iteration the pair moves to ``(f + t, g - t)`` with the ``t`` that maximises
    the dual along that line (Séjourné et al. 2022's translation-invariant step; the plan is
    unchanged, and the slow mode of the damped iteration, contracted only by ``tau^2`` per
    step, is gone); the stopping rule measures the rows against their optimal masses
    ``a exp(-(f - eps log a) / rho_a)``. This is POT's ``sinkhorn_unbalanced`` with
    ``reg_type="kl"`` (``reg = eps``) and OTT-JAX's ``tau_a = rho_a / (rho_a + eps)``.

    Args:
      geom: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`.
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights.
      reg_m: None (balanced, the default), a number ``rho > 0`` for both sides, or a pair
        ``(rho_a, rho_b)``; ``float("inf")`` for a hard marginal. Then ``cost`` is ``<C, P>``,
        ``reg_cost`` the whole objective above, and the bounds bracket the unregularised
        unbalanced value (:class:`~ot_jax.solvers.results.EntropicResult`); every
        ``grad_mode`` applies and the implicit one also differentiates in ``reg_m``.
        Needs ``mode="log"`` (``"auto"`` picks it).
      epsilon: regularisation, > 0 (multiplied by the mean cost if ``relative_epsilon``; that
        scale is read without a derivative, so gradients treat the resulting epsilon as a constant).
      tol: tolerance on the relative L1 marginal error.
      max_iters: iteration cap (static); check_every: iterations per error check (static).
      init: starting potentials: None (zeros), a pair ``(f [n], g [m])`` (a warm start, e.g.
        ``previous.f, previous.g``), ``"gaussian"`` (the Kantorovich potential between
        Gaussian fits of the two clouds; a :class:`~ot_jax.PointCloud` with the squared
        Euclidean cost) or ``"sorting"`` (the exact unregularised dual of a one-dimensional
        problem, from the sorted points; a ``PointCloud`` with ``d = 1``, any weights):
        Thornton & Cuturi 2023's initializers. The fixed point, and so every output and
        gradient, does not depend on the start; only the number of iterations does.
      anderson: None (off) or the memory ``M >= 1`` of Anderson acceleration on the column
        potential: between checks each iterate is the combination of the last ``M``
        Sinkhorn images whose residuals cancel best (:mod:`ot_jax.solvers._anderson`); the
        checking iteration stays a plain one, so the stopping rule and ``status`` certify
        the returned potentials as without it. Needs ``mode="log"`` (``"auto"`` picks it) and
        ``grad_mode`` ``"implicit"`` or ``"envelope"`` (unrolled derivatives would stop
        with the accelerated iterates, before they converge). In float32 the mixing pauses
        once the error is down at the rounding level of the potentials,
        ``max|g| * 2^-23 / eps``, and plain iterations finish.
      epsilon_init: start of an epsilon-scaling schedule
        ``eps_t = max(epsilon, epsilon_init * epsilon_decay**t)`` (same units as epsilon);
        convergence is only declared at the target epsilon.
      mode: ``"log"`` (always safe); ``"scaling"`` (matrix-vector products with
        ``K = exp(-C/eps)``, faster, underflows for small eps: reported as
        ``Status.NON_FINITE``); ``"auto"`` takes scaling when the inputs are concrete
        and ``(max C - min C) / eps`` is small enough, log otherwise.
      grad_mode: ``"implicit"`` (default: every output, ``cost``, ``reg_cost``,
        ``plan``, ``apply``, ``marginals``, ``f``, ``g``, is differentiable in the
        points or costs, ``a``, ``b`` and ``epsilon`` by the implicit function
        theorem, one conjugate-gradient solve per backward pass, exact up to
        ``tol``), ``"envelope"`` (cheapest: exact gradients of ``reg_cost`` only;
        ``cost`` gets the plan-fixed gradient ``d/dC = P``; the plan operations
        refuse to be differentiated) or ``"unroll"`` (backpropagate through the
        iterations; memory grows with ``max_iters``). Meanings:
        :data:`ot_jax.solvers._entropic.GRAD_MODES`.
      throw: raise (also inside ``jit``) when not converged or on bad input.

    Returns:
      :class:`~ot_jax.solvers.results.EntropicResult` with ``plan_epsilon = eps``.

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.uniform(jax.random.PRNGKey(0), (64, 2))
        >>> out = ot_jax.sinkhorn(ot_jax.PointCloud(x, x[::-1] + 0.5), epsilon=1e-2)
        >>> bool(out.converged)
        True
    """
    solver = "sinkhorn"
    _entropic.check_grad_mode(grad_mode, solver, _GRAD_MODES)
    if mode not in ("log", "scaling", "auto"):
        raise ValueError(f"{solver}: mode must be 'log', 'scaling' or 'auto', got {mode!r}")
    rho_a, rho_b, bad_rho = _parse_reg_m(reg_m, solver)
    unbalanced = rho_a is not None or rho_b is not None
    geom, a, b, invalid = prepare(geom, a, b, solver, balanced=not unbalanced)
    dtype = geom.dtype
    rho = tuple(None if r is None else jnp.asarray(r, dtype) for r in (rho_a, rho_b))
    invalid = invalid | bad_rho | check_positive(epsilon, "epsilon", solver)
    eps = jnp.asarray(epsilon, dtype)
    if relative_epsilon:
        eps = eps * jax.lax.stop_gradient(geom.mean_cost())
    eps0 = None
    if epsilon_init is not None:
        invalid = invalid | check_positive(epsilon_init, "epsilon_init", solver)
        if not 0.0 < epsilon_decay < 1.0:
            raise ValueError(f"{solver}: epsilon_decay must be in (0, 1), got {epsilon_decay}")
        eps0 = jnp.asarray(epsilon_init, dtype)
        if relative_epsilon:
            eps0 = eps0 * jax.lax.stop_gradient(geom.mean_cost())
    n, m = geom.shape

    init_kind = None
    if isinstance(init, str):
        _initializers.check_initializer(init, geom, solver)
        init_kind, init = init, None
    elif init is not None:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise ValueError(f"{solver}: init must be a pair (f [{n}], g [{m}]) of potentials, got {type(init).__name__}")
        init = (jnp.asarray(init[0], dtype), jnp.asarray(init[1], dtype))
        if init[0].shape != (n,) or init[1].shape != (m,):
            raise ValueError(f"{solver}: init potentials must have shapes ({n},) and ({m},), "
                             f"got {init[0].shape} and {init[1].shape}")
        init = jax.lax.stop_gradient(init) if grad_mode != "unroll" else init
    anderson = check_int_at_least(anderson, "anderson", solver)  # the memory M, or None (off)
    if mode == "scaling" and unbalanced:
        raise ValueError(f"{solver}: unbalanced transport (reg_m) needs mode='log' or 'auto'")
    if anderson is not None and grad_mode == "unroll":
        raise ValueError(f"{solver}: anderson acceleration stops the iterations before their derivatives "
                         "converge, so grad_mode='unroll' would be inaccurate: use grad_mode='implicit' "
                         "(exact at any start and speed-up)")
    if mode == "scaling" and anderson is not None:
        raise ValueError(f"{solver}: anderson acceleration needs mode='log' or 'auto'")
    if mode == "auto":
        mode = "log"
        if isinstance(geom, Geometry) and epsilon_init is None and not unbalanced and anderson is None:
            spread = (jnp.max(geom.cost) - jnp.min(geom.cost)) / eps
            if concrete_true(spread <= _SAFE_SCALING_RANGE[jnp.finfo(dtype).bits]):
                mode = "scaling"
    if mode == "scaling" and epsilon_init is not None:
        raise ValueError(f"{solver}: epsilon scaling needs mode='log'")

    result = _solve(geom, a, b, eps, eps0, init, invalid, tol, rho, mode=mode, grad_mode=grad_mode,
                    max_iters=int(max_iters), check_every=int(check_every), epsilon_decay=float(epsilon_decay),
                    anderson=anderson, init_kind=init_kind)
    messages = {Status.NON_FINITE: f"ot_jax.{solver}: NON_FINITE: a NaN or inf appeared in the iterates "
                "(mode='scaling' underflows for small epsilon: use mode='log'; or check the inputs)"}
    return raise_on_status(result, solver, "epsilon", messages=messages) if throw else result


@functools.partial(jax.jit, static_argnames=("init_kind", "mode", "grad_mode", "max_iters", "check_every",
                                             "epsilon_decay", "anderson"))
def _solve(geom, a, b, eps, eps0, init, invalid, tol, rho, *, mode, grad_mode, max_iters, check_every,
           epsilon_decay, anderson, init_kind):
    """The iterations and the result, for checked inputs (see :func:`sinkhorn`).

    Jitted (settings static; ``tol``, ``eps`` and the inputs dynamic), so repeated eager
    calls reuse one compiled program; inside an outer ``jit``/``vmap``/``grad`` it is inlined.
    ``eps0`` (start of the epsilon schedule) and ``init`` (a pair of potentials) may be None;
    ``init_kind`` names an initializer instead; ``anderson`` is the acceleration's memory or None;
    ``rho = (rho_a, rho_b)`` the marginal penalties (None: a hard marginal).
    """
    dtype = geom.dtype
    n, m = geom.shape
    if grad_mode == "unroll":
        a_s, b_s, geom_s, eps_s, rho_s = a, b, geom, eps, rho
    else:
        a_s, b_s, geom_s, eps_s, rho_s = jax.lax.stop_gradient((a, b, geom, eps, rho))
    log_a, log_b = _entropic.log_or_zero(a_s), _entropic.log_or_zero(b_s)
    unbalanced = rho[0] is not None or rho[1] is not None

    def damping(r, e):  # tau = rho / (rho + eps); 1 for a hard marginal
        return 1.0 if r is None else r / (r + e)

    def eps_at(it):
        if eps0 is None:
            return eps_s
        return jnp.maximum(eps_s, eps0 * epsilon_decay ** it.astype(dtype))

    if mode == "log":
        live_b = b_s > 0

        def step(state, it, check):
            f, g, history = state
            e = eps_at(it)
            lse_g = geom_s.lse(g, e, axis=1)
            f_new = jnp.where(a_s > 0, e * (log_a - damping(rho_s[0], e) * lse_g), -jnp.inf)
            lse_f = geom_s.lse(f_new, e, axis=0)
            g_new = jnp.where(live_b, e * (log_b - damping(rho_s[1], e) * lse_f), -jnp.inf)
            if unbalanced:  # the plan is unchanged, the dual goes up: a free step
                shift = _translation(a_s, b_s, f_new, g_new, e, rho_s)
                f_new, g_new = f_new + shift, g_new - shift
            g_next = g_new
            if anderson is not None:
                history = _anderson.push(history, g, g_new, live_b)
                if not check:  # the checking iteration stays plain: its error certifies (f_new, g_new)
                    g_next = jnp.where(e > eps_s, g_new, _anderson.mix(history, g_new, live_b))
            err = jnp.zeros((), dtype)
            if check:
                if anderson is not None:
                    # Rows of the plan (f_new, g) are exact; measure its columns (g was mixed).
                    err = _marginal_error(b_s, g, lse_f, e, rho_s[1])
                elif unbalanced:
                    err = _marginal_error(a_s, f, lse_g, e, rho_s[0])
                else:
                    err = _row_error(a_s, f, f_new, e)
                err = jnp.where(e > eps_s, jnp.inf, err)
                err = jnp.where(_has_nan(f_new, g_new), jnp.nan, err)
                if anderson is not None:
                    history = _anderson.update_activity(history, err, g_new, live_b, e)
            return (f_new, g_next, history), err

        if init is not None:
            f0, g0 = init
        elif init_kind is not None:
            e0 = eps_s if eps0 is None else jnp.maximum(eps_s, eps0)
            f0 = _initializers.initial_row_potential(init_kind, geom_s, a_s, b_s, e0)
            g0 = jnp.where(live_b, e0 * (log_b - damping(rho_s[1], e0) * geom_s.lse(f0, e0, axis=0)), -jnp.inf)
        else:
            f0, g0 = jnp.zeros(n, dtype), jnp.zeros(m, dtype)
        history0 = None if anderson is None else _anderson.init_history(anderson, m, dtype)
        loop = fixed_point_loop(step, (f0, g0, history0), max_iters=max_iters, check_every=check_every, tol=tol,
                                differentiable=grad_mode == "unroll", dtype=dtype)
        f, g, _ = loop.state
    else:
        if isinstance(geom_s, Geometry):
            kernel = jnp.exp(-geom_s.cost / eps_s)
            k_rows, k_cols = (lambda v: kernel @ v), (lambda u: u @ kernel)
        else:
            k_rows = lambda v: geom_s.kernel_apply(v, eps_s, axis=1)
            k_cols = lambda u: geom_s.kernel_apply(u, eps_s, axis=0)

        def step(state, it, check):
            u, v = state
            u_new = a_s / k_rows(v)
            v_new = b_s / k_cols(u_new)
            err = jnp.zeros((), dtype)
            if check:
                rows = u * a_s / jnp.where(a_s > 0, u_new, 1.0)
                err = jnp.sum(jnp.abs(jnp.where(a_s > 0, rows, 0.0) - a_s)) / jnp.sum(a_s)
                err = jnp.where(_has_nan(u_new, v_new), jnp.nan, err)
            return (u_new, v_new), err

        if init is None:
            state0 = (jnp.ones(n, dtype), jnp.ones(m, dtype))
        else:
            state0 = (jnp.exp(init[0] / eps_s), jnp.exp(init[1] / eps_s))
        loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                                differentiable=grad_mode == "unroll", dtype=dtype)
        u, v = loop.state
        f, g = eps_s * _entropic.safe_log(u), eps_s * _entropic.safe_log(v)

    result = _entropic.entropic_result(geom, a, b, f, g, eps, loop, invalid,
                                       grad_mode=grad_mode, regularised=True, tol=tol, rho=rho)
    return result
