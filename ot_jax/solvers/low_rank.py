"""Low-rank Sinkhorn: OT over plans of nonnegative rank ``r`` (Scetbon, Cuturi & Peyré 2021).

The plan is factored as ``P = Q diag(1 / g) R^T`` with ``Q: [n, r]`` (rows ``a``, columns
``g``), ``R: [m, r]`` (rows ``b``, columns ``g``) and ``g: [r]`` on the simplex; the problem

    min_{Q, R, g} <C, Q diag(1/g) R^T> + eps (sum Q log Q + sum R log R + sum g log g)

is nonconvex, solved by mirror descent: a step on ``(Q, R, g)`` along the gradients
``C R diag(1/g)``, ``C^T Q diag(1/g)``, ``-diag(Q^T C R) / g^2`` with step ``gamma``
(rescaled by the gradients' largest squared entry, Scetbon et al. 2022), then the KL
projection onto the coupled constraints by Dykstra's algorithm (Scetbon et al. 2021,
Alg. 2, written here in the log domain), with ``g >= alpha`` kept away from zero.
Nothing ``[n, m]`` is formed: for the squared Euclidean cost of a
:class:`~ot_jax.PointCloud` the products ``C R`` use ``C = |x|^2 1^T + 1 |y|^2^T - 2 x y^T``
(``O((n + m) d r)``), for other geometries their blocked ``apply_cost``. Memory is
``O((n + m) r)``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ot_jax._checks import check_int_at_least, is_concrete
from ot_jax.geometry import PointCloud, SqEuclidean, as_geometry
from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import Status, raise_on_status, result_repr

__all__ = ["low_rank_sinkhorn", "LowRankResult"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LowRankResult:
    """Output of :func:`low_rank_sinkhorn`: the plan ``P = Q diag(1 / g) R^T``, kept factored.

    (Its own type: the plan is a product of factors, not potentials of a kernel.)

    Attributes:
      q: ``[n, r]`` left factor (rows sum to ``a``, columns to ``g``).
      r: ``[m, r]`` right factor (rows sum to ``b``, columns to ``g``).
      g: ``[r]`` inner marginal (on the simplex, entries ``>= alpha``).
      cost: scalar ``<C, P>``.
      reg_cost: scalar ``cost + eps (sum Q log Q + sum R log R + sum g log g)`` (``= cost`` at ``eps = 0``).
      converged: scalar bool; n_iters: scalar int, mirror-descent steps.
      errors: ``[max_iters // check_every]`` relative change of ``cost`` per check, ``-1`` after the stop.
      status: scalar int, a :class:`~ot_jax.Status`.
    """

    q: jax.Array
    r: jax.Array
    g: jax.Array
    cost: jax.Array
    reg_cost: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("q", "cost", "status", "n_iters"))

    @property
    def plan(self) -> jax.Array:
        """``[n, m]`` materialised plan (small problems only)."""
        return (self.q / self.g[None, :]) @ self.r.T

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m, ...]``) or ``P^T vec`` (axis=0, ``vec: [n, ...]``) in ``O((n + m) r)``."""
        left, right = (self.q, self.r) if axis == 1 else (self.r, self.q)
        inner = jnp.tensordot(right.T, vec, axes=1) / self.g.reshape((-1,) + (1,) * (jnp.ndim(vec) - 1))
        return jnp.tensordot(left, inner, axes=1)

    @property
    def marginals(self) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[n]`` and column sums ``[m]`` of the plan."""
        return jnp.sum(self.q, axis=1), jnp.sum(self.r, axis=1)


def _cost_products(geom):
    """``(C @ M, C^T @ M)`` as functions of ``M: [m, r]`` / ``[n, r]``, without forming ``C``."""
    if isinstance(geom, PointCloud) and isinstance(geom.cost_fn, SqEuclidean):
        x, y = geom.x, geom.y
        sx, sy = jnp.sum(x ** 2, axis=1), jnp.sum(y ** 2, axis=1)
        right = lambda m: sx[:, None] * jnp.sum(m, 0)[None, :] + (sy @ m)[None, :] - 2.0 * x @ (y.T @ m)  # noqa: E731
        left = lambda m: sy[:, None] * jnp.sum(m, 0)[None, :] + (sx @ m)[None, :] - 2.0 * y @ (x.T @ m)  # noqa: E731
        return right, left
    right = jax.vmap(lambda v: geom.apply_cost(v, axis=1), in_axes=1, out_axes=1)
    left = jax.vmap(lambda v: geom.apply_cost(v, axis=0), in_axes=1, out_axes=1)
    return right, left


def _entropy_term(log_q, log_r, log_g):
    return (jnp.sum(jnp.exp(log_q) * log_q) + jnp.sum(jnp.exp(log_r) * log_r) + jnp.sum(jnp.exp(log_g) * log_g))


def low_rank_sinkhorn(
    geom,
    a=None,
    b=None,
    *,
    rank: int,
    epsilon: float = 0.0,
    gamma: float = 10.0,
    alpha: float | None = None,
    key=None,
    init=None,
    tol: float = 1e-3,
    max_iters: int = 2000,
    check_every: int = 10,
    inner_tol: float = 1e-4,
    inner_max_iters: int = 1000,
    throw: bool = False,
) -> LowRankResult:
    """Low-rank OT: the best plan ``P = Q diag(1/g) R^T`` of rank ``rank`` (module docstring).

    Args:
      geom: ``[n, m]`` cost matrix or a geometry; a :class:`~ot_jax.PointCloud` with the
        squared Euclidean cost runs in ``O((n + m) d r)`` per step (no ``n x m`` anything).
      a: ``[n]`` source weights (uniform if None); b: ``[m]`` target weights, equal mass.
      rank: the rank ``r`` of the plan (``>= 1``, static).
      epsilon: entropic regularisation of the factors (``>= 0``; OTT-JAX's ``epsilon``).
      gamma: mirror-descent step (divided by the gradients' largest squared entry each step).
      alpha: lower bound on ``g`` (default ``min(1e-6, 0.5 / rank)``).
      key: ``jax.random`` key of the initialisation (default ``PRNGKey(0)``). Point clouds start
        from ``rank`` hubs, the k-means centroids of the source points (Lloyd, 10 steps), with
        ``Q``, ``R`` the entropic plans from each cloud to the hubs (Scetbon & Cuturi 2022's
        k-means initialiser); other geometries from random positive factors.
      init: ``(q [n, r], r [m, r], g [r])`` initial factors instead (e.g. a previous result's).
      tol: stop when the relative change of ``cost`` between checks is ``<= tol``.
      max_iters, check_every: step cap and steps per check (static).
      inner_tol, inner_max_iters: Dykstra projection: L1 marginal error ``<= inner_tol``, cap (static).
      throw: raise on bad input or when not converged.

    Returns:
      :class:`LowRankResult`. Its ``cost`` is an upper bound on the exact OT value (the
      factored plan is feasible up to ``inner_tol``). ``cost`` and ``reg_cost`` are
      differentiable in the geometry (points, cost matrix) by the envelope theorem,
      ``d/dC = P`` with the factors fixed (exact at a stationary point: the constraints
      do not depend on ``C``); ``a``, ``b``, ``epsilon`` and the factors carry no
      derivative (constants under ``jax.grad``).

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (200, 2))
        >>> out = ot_jax.low_rank_sinkhorn(ot_jax.PointCloud(x, x + 1.0), rank=8)
        >>> out.q.shape, bool(out.cost >= 2.0)
        ((200, 8), True)
    """
    solver = "low_rank_sinkhorn"
    rank = check_int_at_least(rank, "rank", solver, allow_none=False)
    geom = as_geometry(geom)
    geom, a, b, invalid = prepare(geom, a, b, solver)
    for name, value, low in (("epsilon", epsilon, 0.0), ("gamma", gamma, None)):
        if is_concrete(value):
            v = float(np.asarray(value))
            if not (np.isfinite(v) and (v >= 0 if low == 0.0 else v > 0)):
                raise ValueError(f"{solver}: {name} must be a finite number {'>= 0' if low == 0.0 else '> 0'}, got {v}")
        else:
            value = jnp.asarray(value)
            invalid = invalid | ~(jnp.isfinite(value) & ((value >= 0) if low == 0.0 else (value > 0)))
    alpha = min(1e-6, 0.5 / rank) if alpha is None else float(alpha)
    if not 0 <= alpha < 1.0 / rank:
        raise ValueError(f"{solver}: alpha must be in [0, 1/rank) = [0, {1.0 / rank:.3g}), got {alpha}")
    n, m = geom.shape
    dtype = geom.dtype
    if init is None:
        key = jax.random.PRNGKey(0) if key is None else key
        if isinstance(geom, PointCloud) and rank <= geom.shape[0]:
            init = _kmeans_init(geom, a, b, rank, key)
        else:
            init = _random_init(key, a, b, rank, dtype)
    else:
        if len(init) != 3:
            raise ValueError(f"{solver}: init must be a triple (q [n, r], r [m, r], g [r])")
        shapes = tuple(tuple(np.shape(v)) for v in init)
        if shapes != ((n, rank), (m, rank), (rank,)):
            raise ValueError(f"{solver}: init must have shapes ({n}, {rank}), ({m}, {rank}), ({rank},); got {shapes}")
        init = tuple(jnp.asarray(v, dtype) for v in init)
    result = _solve(geom, a, b, init, invalid, jnp.asarray(epsilon, dtype), jnp.asarray(gamma, dtype),
                    jnp.asarray(alpha, dtype), jnp.asarray(tol, dtype), jnp.asarray(inner_tol, dtype),
                    max_iters=int(max_iters), check_every=int(check_every), inner_max_iters=int(inner_max_iters))
    return raise_on_status(result, solver, "max_iters") if throw else result


def _kmeans_init(geom, a, b, rank, key, n_lloyd=10):
    """Factors through ``rank`` hubs: Lloyd's k-means centroids ``z`` of the source points, then
    ``Q`` the entropic plan from ``(x, a)`` to ``(z, 1/r)`` and ``R`` from ``(y, b)`` to ``(z, 1/r)``,
    so that ``Q diag(r) R^T`` sends each point through its nearest hubs (Scetbon & Cuturi 2022)."""
    from ot_jax.solvers.sinkhorn import sinkhorn

    x, y, a, b = jax.lax.stop_gradient((geom.x, geom.y, a, b))
    z = x[jax.random.choice(key, x.shape[0], (rank,), replace=False, p=a / jnp.sum(a))]
    for _ in range(n_lloyd):
        assign = jnp.argmin(jnp.sum((x[:, None, :] - z[None, :, :]) ** 2, -1), axis=1)
        onehot = jax.nn.one_hot(assign, rank, dtype=x.dtype) * a[:, None]
        mass = jnp.sum(onehot, axis=0)
        z = jnp.where(mass[:, None] > 0, (onehot.T @ x) / jnp.maximum(mass, 1e-30)[:, None], z)
    g = jnp.full((rank,), 1.0 / rank, x.dtype)
    opts = dict(epsilon=0.05, relative_epsilon=True, tol=1e-6, max_iters=2000, grad_mode="envelope")
    q = sinkhorn(PointCloud(x, z, cost_fn=geom.cost_fn), a, g, **opts).plan
    r = sinkhorn(PointCloud(y, z, cost_fn=geom.cost_fn), b, g, **opts).plan
    return q, r, g


def _random_init(key, a, b, rank, dtype):
    """Random positive factors with the right marginals (the first step's projection fixes the rest)."""
    kq, kr = jax.random.split(key)
    g = jnp.full((rank,), 1.0 / rank, dtype)
    q = jnp.abs(jax.random.normal(kq, (a.shape[0], rank), dtype)) + 1e-2
    r = jnp.abs(jax.random.normal(kr, (b.shape[0], rank), dtype)) + 1e-2
    q = q / jnp.sum(q, axis=1, keepdims=True) * a[:, None]
    r = r / jnp.sum(r, axis=1, keepdims=True) * b[:, None]
    return q, r, g


def _dykstra(log_xi_q, log_xi_r, log_xi_g, log_a, log_b, log_alpha, tol, max_iters):
    """KL projection of ``(xi_q, xi_r, xi_g)`` onto ``{Q 1 = a, R 1 = b, Q^T 1 = R^T 1 = g >= alpha}``.

    Scetbon et al. (2021), Alg. 2, in the log domain: the scalings ``u_q, u_r`` of the rows,
    ``v_q, v_r`` of the columns, and Dykstra's correction terms for the two non-affine
    steps (the bound on ``g``, and the geometric mean that couples the three).
    """
    rank = log_xi_g.shape[0]
    zeros = jnp.zeros((rank,), log_xi_g.dtype)

    def sweep(state):
        v_q, v_r, c_q, c_r, c_bound, c_mean, log_g, _, it = state
        u_q = log_a - logsumexp(log_xi_q + v_q[None, :], axis=1)
        u_r = log_b - logsumexp(log_xi_r + v_r[None, :], axis=1)
        bounded = jnp.maximum(log_alpha, log_g + c_bound)
        c_bound = log_g + c_bound - bounded
        log_g = bounded
        cols_q = logsumexp(log_xi_q + u_q[:, None], axis=0)
        cols_r = logsumexp(log_xi_r + u_r[:, None], axis=0)
        mean = (log_g + c_mean + v_q + c_q + cols_q + v_r + c_r + cols_r) / 3.0
        new_v_q, new_v_r = mean - cols_q, mean - cols_r
        c_q = v_q + c_q - new_v_q
        c_r = v_r + c_r - new_v_r
        c_mean = log_g + c_mean - mean
        rows_q = jnp.exp(u_q + logsumexp(log_xi_q + new_v_q[None, :], axis=1))
        rows_r = jnp.exp(u_r + logsumexp(log_xi_r + new_v_r[None, :], axis=1))
        err = jnp.sum(jnp.abs(rows_q - jnp.exp(log_a))) + jnp.sum(jnp.abs(rows_r - jnp.exp(log_b)))
        return new_v_q, new_v_r, c_q, c_r, c_bound, c_mean, mean, (u_q, u_r, err), it + 1

    def cond(state):
        err, it = state[7][2], state[8]
        return (err > tol) & (it < max_iters)

    n, m = log_xi_q.shape[0], log_xi_r.shape[0]
    dtype = log_xi_g.dtype
    state = (zeros, zeros, zeros, zeros, zeros, zeros, log_xi_g,
             (jnp.zeros((n,), dtype), jnp.zeros((m,), dtype), jnp.asarray(jnp.inf, dtype)), jnp.zeros((), jnp.int32))
    v_q, v_r, _, _, _, _, log_g, (u_q, u_r, err), _ = jax.lax.while_loop(cond, sweep, state)
    return u_q[:, None] + log_xi_q + v_q[None, :], u_r[:, None] + log_xi_r + v_r[None, :], log_g, err


@functools.partial(jax.jit, static_argnames=("max_iters", "check_every", "inner_max_iters"))
def _solve(geom, a, b, init, invalid, eps, gamma, alpha, tol, inner_tol, *, max_iters, check_every,
           inner_max_iters):
    geom_d = geom  # the differentiable geometry, for the envelope value at the end
    geom, a, b, init, eps, gamma, alpha = jax.lax.stop_gradient((geom, a, b, init, eps, gamma, alpha))
    dtype = geom.dtype
    apply_right, apply_left = _cost_products(geom)
    log_a, log_b = jnp.log(a), jnp.log(b)
    log_alpha = jnp.log(jnp.maximum(alpha, jnp.finfo(dtype).tiny))
    n_checks = max(max_iters // check_every, 1)

    def objective(log_q, log_r, log_g):
        q, r, g = jnp.exp(log_q), jnp.exp(log_r), jnp.exp(log_g)
        return jnp.sum(q * apply_right(r) / g[None, :])

    def step(state):
        log_q, log_r, log_g = state
        q, r, g = jnp.exp(log_q), jnp.exp(log_r), jnp.exp(log_g)
        cr = apply_right(r)
        grads = (cr / g[None, :], apply_left(q) / g[None, :], -jnp.sum(q * cr, axis=0) / g ** 2)
        scale = functools.reduce(jnp.maximum, [jnp.max(jnp.abs(gv + eps * lv)) for gv, lv in zip(grads, state)])
        t = gamma / jnp.maximum(scale ** 2, jnp.finfo(dtype).tiny)
        # the KL-prox step of the linearised cost plus the exact entropy: log xi = (log x - t grad) / (1 + eps t)
        log_xi = [(lv - t * gv) / (1.0 + eps * t) for lv, gv in zip(state, grads)]
        log_q, log_r, log_g, _ = _dykstra(*log_xi, log_a, log_b, log_alpha, inner_tol, inner_max_iters)
        return log_q, log_r, log_g

    def round_(carry):
        state, value, k, _, errors = carry
        state = jax.lax.fori_loop(0, check_every, lambda _, s: step(s), state)
        new_value = objective(*state)
        change = jnp.abs(new_value - value) / jnp.maximum(jnp.abs(new_value), jnp.finfo(dtype).tiny)
        change = jnp.where(jnp.isfinite(new_value), change, jnp.nan)
        done = (change <= tol) | jnp.isnan(change)
        return state, new_value, k + 1, done, errors.at[k].set(change)

    def cond(carry):
        return (~carry[3]) & (carry[2] < n_checks)

    q0, r0, g0 = init
    tiny = jnp.finfo(dtype).tiny  # entries that underflowed in the initialisation: kept finite in the log domain
    state0 = tuple(jnp.log(jnp.maximum(v, tiny)) for v in (q0, r0, g0))
    carry = (state0, objective(*state0), jnp.zeros((), jnp.int32), jnp.asarray(invalid),
             jnp.full((n_checks,), -1.0, dtype))
    (log_q, log_r, log_g), value, k, _, errors = jax.lax.while_loop(cond, round_, carry)
    last = errors[jnp.maximum(k - 1, 0)]
    status = jnp.where(jnp.isnan(last) | ~jnp.isfinite(value), Status.NON_FINITE,
                       jnp.where((k > 0) & (last <= tol), Status.CONVERGED, Status.MAX_ITERS))
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    q, r, g = jnp.exp(log_q), jnp.exp(log_r), jnp.exp(log_g)
    value = jnp.sum(q * _cost_products(geom_d)[0](r) / g[None, :])  # d/dC = P, factors fixed
    reg_cost = value + eps * _entropy_term(log_q, log_r, log_g)
    return LowRankResult(q=q, r=r, g=g, cost=value, reg_cost=reg_cost,
                         converged=status == Status.CONVERGED, n_iters=k * check_every, errors=errors, status=status)
