"""Implicit differentiation of the entropic OT optimality conditions.

At the solution of ``min_P <C, P> + eps KL(P | a b^T)`` the potentials ``f: [n]``,
``g: [m]`` of ``P_ij = exp((f_i + g_j - C_ij) / eps)`` solve the marginal equations

    F(f, g; theta) = (P 1 - a, P^T 1 - b) = 0,      theta = (geometry, a, b, eps).

By the implicit function theorem ``d(f, g) = -J^{-1} dF_theta`` with the symmetric
Jacobian ``J = (1/eps) [[diag(r), P], [P^T, diag(c)]]`` (``r, c`` the plan's row and
column sums). :func:`implicit_potentials` attaches exactly that derivative to the
potentials a solver returns, as a ``jax.custom_jvp``: forward mode, reverse mode
(JAX transposes the rule) and higher orders all follow, and every quantity
computed from ``(geometry, f, g, eps)`` afterwards (cost, plan, ``apply``,
marginals, the regularised objective) differentiates correctly by ordinary autodiff.

The linear system is solved on the Schur complement of the larger block,

    S = diag(c) - P^T diag(1/r) P      ([m, m] when m <= n),

by conjugate gradients (:func:`conjugate_gradients`), with products by ``P`` and ``P^T``
evaluated lazily, so a :class:`~ot_jax.PointCloud` never stores ``[n, m]`` in the
backward pass either. ``S`` is singular along the constant vector (``f + t``,
``g - t`` leave ``P`` unchanged); a rank-one term ``mean(c) 1 1^T / m`` removes that
null space without changing the solution of any consistent system (the system is
solved scaled by ``1 / mean(c)``, so the term is ``1 1^T / m`` there), so gradients
of quantities that do not depend on the gauge (everything above, and centred
potentials) are exact. Points of zero weight keep a zero derivative.

Unbalanced transport (marginal penalties ``rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b)``)
changes the equations to ``P 1 = a exp(-(f - eps log a) / rho_a)`` (and the same for the
columns): the Jacobian gains ``diag(t_a) / rho_a`` in its first block (``t_a`` the target
row masses), ``S`` becomes positive definite, and no ridge is added.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import lineax as lx

__all__ = ["ImplicitOptions", "implicit_fixed_point", "implicit_potentials", "conjugate_gradients"]


@dataclasses.dataclass(frozen=True)
class ImplicitOptions:
    """Accuracy of the adjoint linear solve (static: hashable).

    Attributes:
      tol: relative tolerance of conjugate gradients; None: ``1e-10`` in float64,
        ``1e-4`` in float32 (where CG stagnates near 1e-5).
      max_steps: CG iteration cap; None: ``max(200, 4 * min(n, m))``.
    """

    tol: float | None = None
    max_steps: int | None = None


def _plan_products(geom, f, g, eps):
    """``(P v, P^T u)`` as functions, for ``P = exp((f + g - C) / eps)``."""
    rows = lambda v: geom.plan_matvec(f, g, eps, v, axis=1)
    cols = lambda u: geom.plan_matvec(f, g, eps, u, axis=0)
    return rows, cols


def _solve_jacobian(geom, f, g, eps, rhs_f, rhs_g, options: ImplicitOptions, extra=(None, None)):
    """``(x, y)`` with ``[[diag(r + e_r), P], [P^T, diag(c + e_c)]] (x, y) = (rhs_f, rhs_g)``.

    ``extra = (e_r [n] | None, e_c [m] | None)``: the unbalanced terms of the diagonal.
    Balanced (both None): the gauge is fixed by a ridge. Entries of zero row (column)
    mass get ``x_i = 0`` (``y_j = 0``).
    """
    p_v, pt_u = _plan_products(geom, f, g, eps)
    r, c = geom.marginals(f, g, eps)
    ridge = extra[0] is None and extra[1] is None
    r_diag = r if extra[0] is None else r + extra[0]
    c_diag = c if extra[1] is None else c + extra[1]
    n, m = r.shape[0], c.shape[0]
    if m > n:  # eliminate the other block: the same equations with the roles swapped
        y, x = _schur_solve(c_diag, r_diag, pt_u, p_v, rhs_g, rhs_f, options, ridge)
    else:
        x, y = _schur_solve(r_diag, c_diag, p_v, pt_u, rhs_f, rhs_g, options, ridge)
    return x, y


def _schur_solve(r, c, p_v, pt_u, u, v, options, ridge=True):
    """Solve ``diag(r) x + P y = u``, ``P^T x + diag(c) y = v`` through ``S y = v - P^T (u / r)``.

    ``ridge``: add ``1 1^T / m`` (scaled), which fixes the gauge of the balanced problem.
    """
    dtype = c.dtype
    live_r, live_c = r > 0, c > 0
    inv_r = jnp.where(live_r, 1.0 / jnp.where(live_r, r, 1.0), 0.0)
    u = jnp.where(live_r, u, 0.0)
    v = jnp.where(live_c, v, 0.0)
    weight = live_c.astype(dtype)
    # The system is solved scaled to unit size (S / mean(c)): CG's stopping test and
    # breakdown guards are absolute, and the entries of S are of the order of 1/m.
    scale = jax.lax.stop_gradient(jnp.sum(c) / jnp.maximum(jnp.sum(weight), 1.0))
    ridge = 1.0 / jnp.maximum(jnp.sum(weight), 1.0) if ridge else 0.0

    def schur(y):
        y = jnp.where(live_c, y, 0.0)
        sy = (c * y - pt_u(inv_r * p_v(y))) / scale + ridge * jnp.sum(weight * y) * weight
        return jnp.where(live_c, sy, y)

    bits = jnp.finfo(dtype).bits
    tol = options.tol if options.tol is not None else (1e-10 if bits >= 64 else 1e-4)
    max_steps = options.max_steps if options.max_steps is not None else max(200, 4 * int(c.shape[0]))
    cg = functools.partial(conjugate_gradients, tol=tol, max_steps=max_steps)

    rhs = (v - pt_u(inv_r * u)) / scale
    # custom_linear_solve owns the transposition (S is symmetric, so the transposed solve
    # is the same CG): the backward pass never asks lineax to transpose itself, which
    # would turn a CG that ends at max_steps into a runtime error.
    y = jax.lax.custom_linear_solve(schur, rhs, solve=cg, symmetric=True)
    y = jnp.where(live_c, y, 0.0)
    x = inv_r * (u - p_v(y))
    return x, y


def conjugate_gradients(matvec, b: jax.Array, *, tol: float, max_steps: int) -> jax.Array:
    """``y`` with ``matvec(y) ~ b`` for a symmetric positive semi-definite ``matvec`` (``b: [m]``).

    Stops when ``|r| <= tol |b|``, after ``max_steps``, or when the curvature ``p^T A p``
    is no longer positive (rounding has exhausted the dtype; the current iterate is
    returned, CG's best so far in the energy norm). Written here rather than taken
    from :class:`lineax.CG`, which flags breakdown once ``p^T A p <= 100 m eps_dtype
    p^T r`` and then returns NaN: in float32 at m = 10,000 that threshold is 0.12
    ``p^T r``, above the small eigenvalues of a well-posed Schur complement, and the
    gradient came back NaN.
    """
    b_norm2 = jnp.vdot(b, b)
    target = (tol ** 2) * b_norm2

    def cond(state):
        _, _, _, gamma, step, ok = state
        return ok & (step < max_steps) & (gamma > target)

    def body(state):
        y, r, p, gamma, step, _ = state
        ap = matvec(p)
        curvature = jnp.vdot(p, ap)
        ok = (curvature > 0) & jnp.isfinite(curvature)
        alpha = jnp.where(ok, gamma / jnp.where(ok, curvature, 1.0), 0.0)
        y = y + alpha * p
        r = r - alpha * ap
        gamma_new = jnp.vdot(r, r)
        p = r + jnp.where(ok, gamma_new / jnp.where(gamma > 0, gamma, 1.0), 0.0) * p
        return y, r, p, jnp.where(ok, gamma_new, gamma), step + 1, ok

    y0 = jnp.zeros_like(b)
    state = (y0, b, b, b_norm2, jnp.zeros((), jnp.int32), jnp.asarray(True))
    return jax.lax.while_loop(cond, body, state)[0]


def target_mass(w, pot, eps, rho):
    """Optimal marginal of a KL-penalised side, ``w exp(-(pot - eps log w) / rho)`` (``w`` if ``rho`` is None).

    ``w: [n]`` weights, ``pot: [n]`` potentials (``-inf`` where ``w = 0``), ``rho`` scalar or None.
    """
    if rho is None:
        return w
    live = w > 0
    log_w = jnp.log(jnp.where(live, w, 1.0))
    pot = jnp.where(live, pot, 0.0)
    return jnp.where(live, jnp.exp(log_w * (1.0 + eps / rho) - pot / rho), 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def _implicit(geom, a, b, eps, rho, f, g, options):
    return f, g


@_implicit.defjvp
def _implicit_jvp(options, primals, tangents):
    geom, a, b, eps, rho, f, g = primals
    d_geom, d_a, d_b, d_eps, d_rho, _, _ = tangents
    # Read the solution through the rule itself, so that differentiating this rule
    # (second order) sees f, g as the functions of theta they are, not as constants.
    f, g = _implicit(geom, a, b, eps, rho, f, g, options)

    def residual(geom_, a_, b_, eps_, rho_):
        rows, cols = geom_.marginals(f, g, eps_)
        return rows - target_mass(a_, f, eps_, rho_[0]), cols - target_mass(b_, g, eps_, rho_[1])

    _, (d_rows, d_cols) = jax.jvp(residual, (geom, a, b, eps, rho), (d_geom, d_a, d_b, d_eps, d_rho))
    # J (df, dg) = -dF with J = K / eps: solve K (df, dg) = -eps dF. A penalised side adds
    # eps * d(-target)/d(pot) = eps * target / rho to its diagonal block.
    extra = tuple(None if r is None else eps * target_mass(w, p, eps, r) / r
                  for w, p, r in ((a, f, rho[0]), (b, g, rho[1])))
    df, dg = _solve_jacobian(geom, f, g, eps, -eps * d_rows, -eps * d_cols, options, extra)
    return (f, g), (df, dg)


def implicit_potentials(geom, a, b, eps, f, g, options: ImplicitOptions = ImplicitOptions(), rho=(None, None)):
    """``(f, g)`` unchanged, differentiable in ``(geom, a, b, eps, rho)`` by the implicit function theorem.

    Args:
      geom: the geometry the potentials solve (any differentiable leaves: points,
        costs, cost-function parameters).
      a: ``[n]`` weights; b: ``[m]`` weights; eps: scalar temperature.
      f: ``[n]``, g: ``[m]`` potentials of the solution (their own derivatives are
        discarded: they are recomputed from the optimality conditions).
      options: :class:`ImplicitOptions` of the adjoint solve.
      rho: ``(rho_a, rho_b)`` marginal penalties of unbalanced transport (scalars), None
        for a hard marginal constraint.
    Returns:
      ``(f [n], g [m])``.
    """
    f, g = jax.lax.stop_gradient((f, g))
    return _implicit(geom, a, b, eps, tuple(rho), f, g, options)


# ----------------------------------------------------------------------------- fixed points
@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 3))
def _fixed_point(step, theta, x, options):
    return x


@_fixed_point.defjvp
def _fixed_point_jvp(step, options, primals, tangents):
    theta, x = primals
    d_theta, _ = tangents
    x = _fixed_point(step, theta, x, options)  # x as a function of theta, for higher orders
    # x = T(x, theta)  =>  (I - dT/dx) dx = dT/dtheta . dtheta
    _, rhs = jax.jvp(lambda th: step(x, th), (theta,), (d_theta,))
    matvec = lambda v: v - jax.jvp(lambda x_: step(x_, theta), (x,), (v,))[1]
    bits = jnp.finfo(x.dtype).bits
    tol = options.tol if options.tol is not None else (1e-10 if bits >= 64 else 1e-5)
    max_steps = options.max_steps if options.max_steps is not None else max(200, 4 * int(x.size))
    structure = jax.ShapeDtypeStruct(x.shape, x.dtype)

    def gmres(matvec_, b):
        operator = lx.FunctionLinearOperator(matvec_, structure)
        solver = lx.GMRES(rtol=tol, atol=0.0, max_steps=max_steps, restart=min(50, int(x.size)))
        return lx.linear_solve(operator, b, solver, throw=False).value

    # custom_linear_solve owns the transposition (the transposed system is solved by the
    # same GMRES on the transposed operator), as in _schur_solve.
    dx = jax.lax.custom_linear_solve(matvec, rhs, solve=gmres, transpose_solve=gmres)
    return x, dx


def implicit_fixed_point(step, theta, x, options: ImplicitOptions = ImplicitOptions()):
    """``x`` unchanged, differentiable in ``theta`` as the fixed point ``x = step(x, theta)``.

    The derivative is that of the implicit function theorem, ``dx = (I - d step/dx)^{-1}
    d step/dtheta . dtheta``, one GMRES solve (:class:`lineax.GMRES`) per tangent, with
    products by ``d step/dx`` as Jacobian-vector products (nothing ``[x.size, x.size]`` is
    stored). Forward and reverse mode (JAX transposes the rule) and higher orders work.
    ``step`` must be a contraction near ``x`` with ``I - d step/dx`` invertible: fix any
    gauge (a direction ``step`` leaves invariant) inside ``step``, e.g. by centring.

    Args:
      step: ``(x, theta) -> x``, differentiable, a static Python callable.
      theta: pytree of the inputs to differentiate in.
      x: an array, the (converged) fixed point; its own derivative is discarded.
      options: :class:`ImplicitOptions` (``tol`` of GMRES, default ``1e-10`` in float64,
        ``1e-5`` in float32; ``max_steps``).
    """
    return _fixed_point(step, theta, jax.lax.stop_gradient(x), options)
