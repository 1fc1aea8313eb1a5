"""Gromov-Wasserstein (GW) and fused GW transport between measures on different spaces.

GW compares ``(C_x, a)`` and ``(C_y, b)`` through their intra-space costs only
(``C_x: [n, n]``, ``C_y: [m, m]``), so the spaces may differ (dimension, rotation,
graphs):

    GW(T) = sum_{i,j,k,l} L(C_x[i, k], C_y[j, l]) T_ij T_kl,   T in U(a, b),

with the square loss ``L(s, t) = (s - t)^2`` or the KL loss ``L(s, t) = s log(s / t) - s + t``.
Fused GW (Vayer et al. 2019) adds a feature cost ``M: [n, m]`` between the spaces:
``c(T) = (1 - alpha) <M, T> + alpha GW(T)``. Both losses split as
``L(s, t) = f1(s) + f2(t) - h1(s) h2(t)`` (Peyré, Cuturi & Solomon 2016), so ``L ⊗ T``
costs two matrix products (``O(n^2 m + n m^2)``) instead of ``O(n^2 m^2)``.

The objective is a nonconvex quadratic: both solvers find a stationary point, which
depends on the initial plan (``a b^T`` by default, as in POT).

- ``epsilon=None``: conditional gradient (Frank-Wolfe). Each step solves the exact LP
  of the linearised objective with :func:`ot_jax.emd` and moves by the exact line
  search of the quadratic; it stops when the objective changes by less than ``tol``
  (absolute or relative). POT's ``gromov_wasserstein`` / ``fused_gromov_wasserstein``.
- ``epsilon > 0``: entropic GW by mirror descent (Peyré et al. 2016): ``T <- argmin_P
  <grad c(T), P> + eps KL(P | a b^T)``, one :func:`ot_jax.sinkhorn` solve per step
  (warm-started); it stops when ``||T_new - T||_F <= tol``. Its fixed points are the
  stationary points of ``c(T) + eps KL(T | a b^T)``. POT's ``entropic_gromov_wasserstein``
  (``solver="PGD"``) and ``entropic_fused_gromov_wasserstein``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import all_finite, check_positive, check_weights, concrete_true, is_concrete
from ot_jax.geometry import AbstractGeometry, Geometry, as_geometry
from ot_jax.solvers import exact
from ot_jax.solvers.results import EntropicResult, ExactResult, Status, raise_on_status
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["gromov_wasserstein", "LOSSES"]

#: The losses ``L(s, t)`` of :func:`gromov_wasserstein`.
LOSSES = {"square": "(s - t)^2", "kl": "s log(s / t) - s + t (costs >= 0; log(0) read as log(1e-18), as POT)"}

_TINY = 1e-18  # POT's floor inside the KL loss's logarithms


class _Terms(NamedTuple):
    """``L(s, t) = f1(s) + f2(t) - h1(s) h2(t)`` applied to ``C_x: [n, n]`` and ``C_y: [m, m]``."""

    f_x: jax.Array
    f_y: jax.Array
    h_x: jax.Array
    h_y: jax.Array

    @property
    def transposed(self) -> "_Terms":
        return _Terms(*(t.T for t in self))


def _split(cost_x, cost_y, loss: str) -> _Terms:
    if loss == "square":
        return _Terms(cost_x ** 2, cost_y ** 2, cost_x, 2.0 * cost_y)
    return _Terms(cost_x * jnp.log(cost_x + _TINY) - cost_x, cost_y, cost_x, jnp.log(cost_y + _TINY))


def _tensor(terms: _Terms, plan):
    """``[n, m]`` ``(L ⊗ T)_ij = sum_kl L(C_x[i, k], C_y[j, l]) T_kl``, marginals read from ``plan``."""
    rows, cols = jnp.sum(plan, axis=1), jnp.sum(plan, axis=0)
    return (terms.f_x @ rows)[:, None] + (terms.f_y @ cols)[None, :] - terms.h_x @ plan @ terms.h_y.T


def _gw_value(terms: _Terms, plan):
    """Scalar ``GW(T) = <L ⊗ T, T>``."""
    return jnp.sum(_tensor(terms, plan) * plan)


def _gw_gradient(terms: _Terms, plan, symmetric: bool):
    """``[n, m]`` gradient of ``GW`` at ``plan`` (``2 L ⊗ T`` for symmetric costs)."""
    if symmetric:
        return 2.0 * _tensor(terms, plan)
    return _tensor(terms, plan) + _tensor(terms.transposed, plan)


def _as_matrix(value, name: str, shape: tuple, solver: str):
    """A cost argument (array or geometry) as a floating ``[n, m]`` matrix of the given shape."""
    if value is None:
        return None
    matrix = value.cost_matrix if isinstance(value, AbstractGeometry) else jnp.asarray(value)
    if matrix.ndim != 2 or any(want is not None and got != want for got, want in zip(matrix.shape, shape)):
        want = ", ".join(str(s) if s is not None else "?" for s in shape)
        raise ValueError(f"{solver}: {name} must be a [{want}] cost matrix (or geometry), got shape "
                         f"{tuple(matrix.shape)}")
    if 0 in matrix.shape:
        raise ValueError(f"{solver}: {name} is empty (shape {tuple(matrix.shape)})")
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        matrix = matrix.astype(jnp.result_type(float))
    return matrix


def _is_symmetric(*matrices) -> bool:
    """True when every matrix is concrete and symmetric (POT's test, atol 1e-10); False under tracing."""
    if not is_concrete(*matrices):
        return False
    return all(np.allclose(np.asarray(c), np.asarray(c).T, atol=1e-10) for c in matrices)


def gromov_wasserstein(
    cost_x,
    cost_y,
    a=None,
    b=None,
    *,
    loss: str = "square",
    cost_xy=None,
    alpha: float = 0.5,
    epsilon=None,
    init=None,
    tol: float | None = None,
    max_iters: int = 1000,
    inner_tol: float | None = None,
    inner_max_iters: int = 1000,
    symmetric: bool | None = None,
    throw: bool = False,
):
    """Gromov-Wasserstein (and fused GW) transport: a stationary point of ``c(T)`` over ``U(a, b)``.

    ``c(T) = GW(T) = sum_ijkl L(C_x[i, k], C_y[j, l]) T_ij T_kl`` (module docstring), or
    with a feature cost ``M = cost_xy``, fused GW ``c(T) = (1 - alpha) <M, T> + alpha GW(T)``.
    The objective is nonconvex: the result is the stationary point reached from ``init``.

    Args:
      cost_x: ``[n, n]`` costs within the source space (matrix or geometry, e.g.
        ``ot_jax.PointCloud(x, x)``); cost_y: ``[m, m]`` within the target space.
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights, same mass.
      loss: ``"square"`` or ``"kl"`` (:data:`LOSSES`; ``"kl"`` needs costs ``>= 0``).
      cost_xy: ``[n, m]`` feature cost between the spaces for fused GW (None: plain GW).
      alpha: weight of the GW term in fused GW, in ``[0, 1]`` (ignored without ``cost_xy``).
      epsilon: None for the conditional-gradient solver with exact LPs; a number ``> 0``
        for entropic GW (absolute, like :func:`ot_jax.sinkhorn`'s).
      init: ``[n, m]`` initial plan with marginals ``a``, ``b`` (default ``a b^T``).
      tol: conditional gradient: stop when the objective changes by less than ``tol``
        (absolute) or ``tol |c|`` (relative), POT's ``tol_abs``/``tol_rel``; entropic:
        stop when ``||T_new - T||_F <= tol``. None: ``1e-9`` (POT's) in float64, ``1e-6`` in float32.
      max_iters: cap on outer iterations (static); reaching it gives ``MAX_ITERS``.
      inner_tol, inner_max_iters: the entropic solver's Sinkhorn solves (``tol`` and
        ``max_iters`` of :func:`ot_jax.sinkhorn`; None: ``1e-9`` in float64, ``1e-5`` in
        float32); ignored by the conditional gradient.
      symmetric: whether ``C_x`` and ``C_y`` are symmetric (halves the work of a
        gradient); None tests concrete inputs and assumes not under tracing.
      throw: raise on bad input or when the solver did not converge.

    Returns:
      ``epsilon=None``: :class:`~ot_jax.solvers.results.ExactResult` with ``plan: [n, m]``,
      ``cost = c(plan)``, ``f: [n]``, ``g: [m]`` the LP duals of the objective linearised
      at the plan (the KKT multipliers of the stationary point), ``n_iters`` outer
      steps. ``cost`` is differentiable by the envelope theorem in ``cost_x``,
      ``cost_y``, ``cost_xy``, ``alpha`` (plan fixed) and ``a``, ``b`` (``d/da = f``,
      ``d/db = g``), exact wherever the stationary point moves smoothly; the plan
      carries no derivative (a constant under ``jax.grad``, as :func:`ot_jax.emd`'s).

      ``epsilon > 0``: :class:`~ot_jax.solvers.results.EntropicResult` of the last
      Sinkhorn solve (``geom`` the linearised cost, ``plan`` the GW plan,
      ``plan_epsilon = epsilon``), with ``cost = c(plan)``, ``reg_cost = c(plan) + eps
      KL(plan | a b^T)``, ``n_iters`` and ``errors: [max_iters]`` of the outer loop,
      ``lower_bound = -inf``, ``upper_bound = inf`` (no certificate for a nonconvex
      problem), ``grad_mode="envelope"``. ``reg_cost`` is differentiable by the envelope
      theorem in ``cost_x``, ``cost_y``, ``cost_xy``, ``alpha``, ``epsilon``, ``a`` and
      ``b``; ``cost`` and the plan carry no derivative (constants under ``jax.grad``:
      differentiate ``reg_cost``). Its ``rounded()`` is that of the last linear solve: a
      feasible plan whose ``cost`` is the linearised cost ``<geom, P>``, not ``c(P)``.

      ``status`` is ``CONVERGED`` when the stopping rule was met (a stationary point to
      ``tol``; nonconvex, so not certified globally optimal), ``MAX_ITERS``, or the
      status of a failed inner solve.

    Examples:
        >>> import jax, jax.numpy as jnp, ot_jax
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (20, 2))
        >>> rotation = jnp.array([[0.0, -1.0], [1.0, 0.0]])
        >>> out = ot_jax.gromov_wasserstein(ot_jax.PointCloud(x, x), ot_jax.PointCloud(x @ rotation, x @ rotation))
        >>> bool(out.cost < 1e-6)
        True
    """
    solver = "gromov_wasserstein"
    if loss not in LOSSES:
        raise ValueError(f"{solver}: loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}")
    for name, value in (("max_iters", max_iters), ("inner_max_iters", inner_max_iters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{solver}: {name} must be an integer >= 1, got {value!r}")
    cost_x = _as_matrix(cost_x, "cost_x", (None, None), solver)
    n = cost_x.shape[0]
    if cost_x.shape != (n, n):
        raise ValueError(f"{solver}: cost_x must be a square [n, n] cost matrix, got shape {tuple(cost_x.shape)}")
    cost_y = _as_matrix(cost_y, "cost_y", (None, None), solver)
    m = cost_y.shape[0]
    if cost_y.shape != (m, m):
        raise ValueError(f"{solver}: cost_y must be a square [m, m] cost matrix, got shape {tuple(cost_y.shape)}")
    fused = cost_xy is not None
    cost_xy = _as_matrix(cost_xy, "cost_xy", (n, m), solver)
    init = _as_matrix(init, "init", (n, m), solver)
    dtype = jnp.result_type(*[c for c in (cost_x, cost_y, cost_xy, init) if c is not None])
    cost_x, cost_y = cost_x.astype(dtype), cost_y.astype(dtype)
    cost_xy = jnp.zeros((n, m), dtype) if cost_xy is None else cost_xy.astype(dtype)
    a, b, invalid = check_weights(a, b, (n, m), dtype, solver,
                                  owners=("cost_x has {} rows (n)", "cost_y has {} rows (m)"))
    a = jnp.full((n,), 1.0 / n, dtype) if a is None else a
    b = jnp.full((m,), 1.0 / m, dtype) if b is None else b
    invalid = invalid | _check_costs(cost_x, cost_y, cost_xy, loss, solver)
    if fused:
        invalid = invalid | _check_alpha(alpha, solver)
    alpha = jnp.asarray(alpha if fused else 1.0, dtype)
    if init is None:
        init = a[:, None] * b[None, :]
    else:
        invalid = invalid | _check_init(init.astype(dtype), a, b, solver)
    init = init.astype(dtype)
    if symmetric is None:
        symmetric = _is_symmetric(cost_x, cost_y)
    double = jnp.finfo(dtype).bits > 32
    tol = (1e-9 if double else 1e-6) if tol is None else tol
    inner_tol = (1e-9 if double else 1e-5) if inner_tol is None else inner_tol
    if epsilon is None:
        result = _solve_cg(cost_x, cost_y, cost_xy, alpha, a, b, init, invalid, jnp.asarray(tol, dtype),
                           loss=loss, symmetric=bool(symmetric), max_iters=int(max_iters))
        parameter = "max_iters"
    else:
        invalid = invalid | check_positive(epsilon, "epsilon", solver)
        result = _solve_entropic(cost_x, cost_y, cost_xy, alpha, a, b, init, jnp.asarray(epsilon, dtype), invalid,
                                 jnp.asarray(tol, dtype), jnp.asarray(inner_tol, dtype), loss=loss,
                                 symmetric=bool(symmetric), max_iters=int(max_iters),
                                 inner_max_iters=int(inner_max_iters))
        parameter = "epsilon"
    return raise_on_status(result, solver, parameter) if throw else result


def _check_costs(cost_x, cost_y, cost_xy, loss, solver):
    """Traced flag for non-finite costs (and negative ones under the KL loss); raises when concrete."""
    named = (("cost_x", cost_x), ("cost_y", cost_y), ("cost_xy", cost_xy))
    flag = np.bool_(False)
    for name, c in named:
        bad = ~all_finite(c)
        if concrete_true(bad):
            raise ValueError(f"{solver}: {name} contains NaN or inf")
        flag = flag | bad
    if loss == "kl":
        for name, c in named[:2]:
            bad = jnp.any(c < 0) if not is_concrete(c) else np.bool_(np.any(np.asarray(c) < 0))
            if concrete_true(bad):
                raise ValueError(f"{solver}: loss='kl' needs costs >= 0, but {name} has a negative entry "
                                 f"({float(np.min(np.asarray(c))):.3g})")
            flag = flag | bad
    return flag


def _check_alpha(alpha, solver):
    if is_concrete(alpha):
        value = float(np.asarray(alpha))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{solver}: alpha must be in [0, 1] (the weight of the GW term), got {value}")
        return np.bool_(False)
    alpha = jnp.asarray(alpha)
    return ~((alpha >= 0) & (alpha <= 1))


def _check_init(init, a, b, solver):
    """Traced flag for an initial plan off the marginals (POT's tolerance, 1e-8, scaled to the dtype)."""
    atol = 1e-8 if jnp.finfo(init.dtype).bits > 32 else 1e-5
    off = (jnp.max(jnp.abs(jnp.sum(init, 1) - a)) > atol) | (jnp.max(jnp.abs(jnp.sum(init, 0) - b)) > atol) | jnp.any(init < 0)
    if is_concrete(init, a, b):
        if bool(off) or not np.all(np.isfinite(np.asarray(init))):
            raise ValueError(f"{solver}: init must be a plan >= 0 with marginals a and b (rows sum to a, columns to "
                             f"b, to {atol:g})")
        return np.bool_(False)
    return off | ~jnp.all(jnp.isfinite(init))


def _objective(cost_xy, alpha, terms, plan):
    """``c(T) = (1 - alpha) <M, T> + alpha GW(T)``."""
    return (1.0 - alpha) * jnp.sum(cost_xy * plan) + alpha * _gw_value(terms, plan)


def _linearised(cost_xy, alpha, terms, plan, symmetric):
    """``[n, m]`` gradient of ``c`` at ``plan``: the cost of the linearised problem."""
    return (1.0 - alpha) * cost_xy + alpha * _gw_gradient(terms, plan, symmetric)


@functools.partial(jax.jit, static_argnames=("loss", "symmetric", "max_iters"))
def _solve_cg(cost_x, cost_y, cost_xy, alpha, a, b, init, invalid, tol, *, loss, symmetric, max_iters):
    """Frank-Wolfe with exact LPs and exact line search (POT's ``cg`` with ``solve_gromov_linesearch``)."""
    n, m = cost_xy.shape
    args = jax.lax.stop_gradient((cost_x, cost_y, cost_xy, alpha, a, b, init))
    c_x, c_y, c_xy, alp, a_s, b_s, plan0 = args
    a_s = jnp.where(invalid, 1.0 / n, a_s)
    b_s = jnp.where(invalid, 1.0 / m, b_s)
    plan0 = jnp.where(invalid, a_s[:, None] * b_s[None, :], plan0)
    terms = _split(c_x, c_y, loss)
    lp_iters = exact.DEFAULT_MAX_ITERS

    def lp(cost):
        return exact._solve(cost, a_s, b_s, jnp.zeros((), bool), max_iters=lp_iters)

    def body(state):
        plan, value, it, _, status = state
        grad = _linearised(c_xy, alp, terms, plan, symmetric)
        vertex = lp(grad)
        delta = vertex.plan - plan
        quad = -alp * jnp.sum((terms.h_x @ delta @ terms.h_y.T) * delta)
        slope = jnp.sum(grad * delta)
        step = jnp.where(quad > 0, jnp.clip(-slope / (2.0 * jnp.where(quad > 0, quad, 1.0)), 0.0, 1.0),
                         jnp.where(quad + slope < 0, 1.0, 0.0))
        new_value = value + quad * step ** 2 + slope * step
        change = jnp.abs(new_value - value)
        stop_rule = (change < tol) | (change < tol * jnp.abs(new_value))
        lp_ok = vertex.status == Status.CONVERGED
        plan = jnp.where(lp_ok, plan + step * delta, plan)
        status = jnp.where(~lp_ok, vertex.status, jnp.where(stop_rule, Status.CONVERGED, Status.MAX_ITERS))
        done = ~lp_ok | stop_rule
        return plan, jnp.where(lp_ok, new_value, value), it + 1, done, status.astype(jnp.int32)

    def cond(state):
        return (~state[3]) & (state[2] < max_iters)

    value0 = _objective(c_xy, alp, terms, plan0)
    init_state = (plan0, value0, jnp.zeros((), jnp.int32), invalid, jnp.asarray(Status.MAX_ITERS, jnp.int32))
    plan, _, n_iters, _, status = jax.lax.while_loop(cond, body, init_state)
    # The KKT multipliers of the stationary point: duals of the LP linearised at the final plan.
    duals = lp(_linearised(c_xy, alp, terms, plan, symmetric))
    status = jnp.where(duals.status != Status.CONVERGED, duals.status, status)
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    f, g = duals.f, duals.g
    # Envelope value: c at the fixed plan (marginals read from the plan, so a and b enter only
    # through the zero-valued dual terms, which give d/da = f and d/db = g).
    cost = (_objective(cost_xy, alpha, _split(cost_x, cost_y, loss), plan)
            + jnp.sum((a - a_s) * f) + jnp.sum((b - b_s) * g))
    return ExactResult(plan=plan, f=f, g=g, cost=cost, converged=status == Status.CONVERGED, n_iters=n_iters,
                       status=status)


@functools.partial(jax.jit, static_argnames=("loss", "symmetric", "max_iters", "inner_max_iters"))
def _solve_entropic(cost_x, cost_y, cost_xy, alpha, a, b, init, eps, invalid, tol, inner_tol, *, loss, symmetric,
                    max_iters, inner_max_iters):
    """Mirror descent ``T <- Sinkhorn(grad c(T), eps)`` (Peyré et al. 2016), warm-started."""
    n, m = cost_xy.shape
    dtype = cost_xy.dtype
    c_x, c_y, c_xy, alp, a_s, b_s, plan0, eps_s = jax.lax.stop_gradient((cost_x, cost_y, cost_xy, alpha, a, b, init,
                                                                        eps))
    a_s = jnp.where(invalid, 1.0 / n, a_s)
    b_s = jnp.where(invalid, 1.0 / m, b_s)
    plan0 = jnp.where(invalid, a_s[:, None] * b_s[None, :], plan0)
    eps_s = jnp.where(invalid, 1.0, eps_s)
    terms = _split(c_x, c_y, loss)

    def inner(plan, f, g):
        geom = Geometry(_linearised(c_xy, alp, terms, plan, symmetric))
        return sinkhorn(geom, a_s, b_s, epsilon=eps_s, tol=inner_tol, max_iters=inner_max_iters, init=(f, g),
                        grad_mode="envelope")

    def body(state):
        plan, f, g, it, _, errors, _ = state
        res = inner(plan, f, g)
        new_plan = res.geom.plan(res.f, res.g, res.plan_epsilon)
        err = jnp.sqrt(jnp.sum((new_plan - plan) ** 2))
        err = jnp.where(jnp.all(jnp.isfinite(new_plan)), err, jnp.nan)
        done = (err <= tol) | jnp.isnan(err)
        return new_plan, res.f, res.g, it + 1, done, errors.at[it].set(err), res.status

    def cond(state):
        return (~state[4]) & (state[3] < max_iters)

    zeros_n, zeros_m = jnp.zeros((n,), dtype), jnp.zeros((m,), dtype)
    errors0 = jnp.full((max_iters,), -1.0, dtype)
    state = (plan0, zeros_n, zeros_m, jnp.zeros((), jnp.int32), invalid, errors0,
             jnp.asarray(Status.CONVERGED, jnp.int32))
    plan, f, g, n_iters, _, errors, inner_status = jax.lax.while_loop(cond, body, state)
    last = jnp.where(n_iters > 0, errors[jnp.maximum(n_iters - 1, 0)], jnp.inf)
    status = jnp.where(jnp.isnan(last), Status.NON_FINITE,
                       jnp.where(last <= tol, jnp.where(inner_status == Status.CONVERGED, Status.CONVERGED,
                                                        inner_status), Status.MAX_ITERS))
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    # One more (warm) solve linearised at the final plan: geom, f, g and plan of one problem.
    final = inner(plan, f, g)
    plan = final.geom.plan(final.f, final.g, eps_s)
    value = _objective(c_xy, alp, terms, plan)
    # Envelope value of c(T) + eps KL(T | a b^T) at the stationary point: partial derivatives at the
    # fixed plan; a and b through the KKT multipliers f - eps log a, g - eps log b.
    objective = _objective(cost_xy, alpha, _split(cost_x, cost_y, loss), plan)
    kl = _kl_to_product(plan, a_s, b_s)
    mult_a = jnp.where(a_s > 0, final.f - eps_s * jnp.log(jnp.where(a_s > 0, a_s, 1.0)), 0.0)
    mult_b = jnp.where(b_s > 0, final.g - eps_s * jnp.log(jnp.where(b_s > 0, b_s, 1.0)), 0.0)
    reg_cost = objective + eps * kl + jnp.sum((a - a_s) * mult_a) + jnp.sum((b - b_s) * mult_b)
    inf = jnp.asarray(jnp.inf, dtype)
    return dataclasses.replace(final, cost=value, reg_cost=reg_cost, lower_bound=-inf, upper_bound=inf,
                               converged=status == Status.CONVERGED, n_iters=n_iters, errors=errors, status=status)


def _kl_to_product(plan, a, b):
    """Scalar ``KL(T | a b^T) = sum T log(T / (a_i b_j)) - sum T + sum a sum b`` (generalised)."""
    prod = a[:, None] * b[None, :]
    log_ratio = jnp.log(jnp.where(plan > 0, plan, 1.0)) - jnp.log(jnp.where(prod > 0, prod, 1.0))
    return jnp.sum(jnp.where(plan > 0, plan * log_ratio, 0.0)) - jnp.sum(plan) + jnp.sum(a) * jnp.sum(b)
