"""Gromov-Wasserstein barycenters: a structure matrix that is a GW average of several spaces.

Given ``S`` measured spaces ``(C_s: [n_s, n_s], q_s: [n_s])`` and barycentric weights
``lambda: [S]``, find ``C: [N, N]`` on ``N`` points of fixed masses ``p: [N]`` that
minimises ``sum_s lambda_s GW(C, C_s)`` (Peyré, Cuturi & Solomon 2016). The block
coordinate descent alternates the GW plans ``T_s: [N, n_s]`` from ``C`` to each space
(:func:`ot_jax.gromov_wasserstein`, from ``p q_s^T``) with the closed-form minimiser in
``C`` for the plans fixed,

    square loss:  C = sum_s lambda_s T_s C_s T_s^T / (p p^T)
    KL loss:      C = exp(sum_s lambda_s T_s log(C_s) T_s^T / (p p^T)),

and stops when ``||C_new - C||_F <= tol`` (POT's ``gromov_barycenters`` with its default
``stop_criterion="barycenter"``). The objective is nonconvex in ``(C, T)``: the result
is the fixed point reached from ``init``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import all_finite, check_int_at_least, check_unit_mass, check_weights, concrete_true
from ot_jax.solvers.gromov import LOSSES, gromov_wasserstein
from ot_jax.solvers.results import Status, raise_on_status, result_repr

__all__ = ["gromov_barycenter", "GromovBarycenterResult"]

_KL_FLOOR = 1e-16  # POT's floor inside log(C_s) of the KL update


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GromovBarycenterResult:
    """Output of :func:`gromov_barycenter`.

    (Its own type: the barycenter is a structure matrix, neither a histogram on a support,
    :class:`~ot_jax.BarycenterResult`, nor a set of locations,
    :class:`~ot_jax.FreeBarycenterResult`.)

    Attributes:
      cost_matrix: ``[N, N]`` the barycenter's structure ``C``.
      weights: ``[N]`` its masses ``p`` (fixed, as given).
      cost: scalar ``sum_s lambda_s c(T_s)``, the GW objectives of the last plans, which
        were computed for the previous ``C`` (the iterate before the last update; the
        two agree once ``C`` has settled).
      converged: scalar bool, ``status == Status.CONVERGED``; n_iters: scalar int, outer steps.
      errors: ``[max_iters]`` ``||C_new - C||_F`` per step, ``-1`` after the stop.
      status: scalar int, a :class:`~ot_jax.Status` (an inner solve's bad status comes first).
    """

    cost_matrix: jax.Array
    weights: jax.Array
    cost: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("cost_matrix", "cost", "status", "n_iters"))


def gromov_barycenter(
    costs,
    init,
    *,
    point_weights=None,
    init_weights=None,
    weights=None,
    loss: str = "square",
    epsilon=None,
    tol: float = 1e-9,
    max_iters: int = 1000,
    inner_tol: float | None = None,
    inner_max_iters: int = 1000,
    throw: bool = False,
) -> GromovBarycenterResult:
    """GW barycenter of ``S`` spaces by block coordinate descent (module docstring).

    Args:
      costs: the spaces' structure matrices: ``[S, n, n]`` or a list of ``S`` arrays ``[n_s, n_s]``.
      init: ``[N, N]`` initial barycenter structure (its size ``N`` is kept).
      point_weights: the spaces' masses ``q_s``, ``[S, n]`` or a list of ``[n_s]`` (each
        summing to 1; uniform if None).
      init_weights: ``[N]`` masses ``p`` of the barycenter's points (summing to 1; uniform if None).
      weights: ``[S]`` barycentric weights ``lambda`` (``>= 0``, summing to 1; uniform if None).
      loss: ``"square"`` or ``"kl"`` (:data:`ot_jax.solvers.gromov.LOSSES`).
      epsilon: None (each plan by conditional gradient with exact LPs, POT's
        ``gromov_barycenters``) or > 0 (entropic GW plans, POT's ``entropic_gromov_barycenters``).
      tol: stop when ``||C_new - C||_F <= tol`` (POT's default 1e-9).
      max_iters: cap on outer steps (static; POT's default 1000).
      inner_tol, inner_max_iters: ``tol`` and ``max_iters`` of the GW solves (None: their
        defaults).
      throw: raise on bad input or when the iteration did not converge.

    Returns:
      :class:`GromovBarycenterResult`. No derivative is offered: differentiating
      ``cost_matrix`` or ``cost`` in the inputs raises a ``ValueError``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> square = jnp.array([[0.0, 1.0, 2.0, 1.0], [1.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, 1.0],
        ...                     [1.0, 2.0, 1.0, 0.0]])
        >>> out = ot_jax.gromov_barycenter([square, square[::-1, ::-1]], init=square + 0.1)
        >>> bool(jnp.allclose(out.cost_matrix, square, atol=1e-6)), ot_jax.Status(int(out.status)).name
        (True, 'CONVERGED')
    """
    name = "gromov_barycenter"
    if loss not in LOSSES:
        raise ValueError(f"{name}: loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}")
    max_iters = check_int_at_least(max_iters, "max_iters", name, allow_none=False)
    inner_max_iters = check_int_at_least(inner_max_iters, "inner_max_iters", name, allow_none=False)
    init = jnp.asarray(init)
    if init.ndim != 2 or init.shape[0] != init.shape[1] or init.shape[0] == 0:
        raise ValueError(f"{name}: init must be a non-empty square matrix [N, N], got shape {tuple(init.shape)}")
    stacked = not isinstance(costs, (list, tuple))
    mats = [costs[s] for s in range(jnp.shape(costs)[0])] if stacked else list(costs)
    if stacked and jnp.ndim(costs) != 3:
        raise ValueError(f"{name}: costs must be [S, n, n] or a list of S square matrices, got shape "
                         f"{tuple(jnp.shape(costs))}")
    if len(mats) == 0:
        raise ValueError(f"{name}: costs is empty; need at least one space")
    dtype = jnp.result_type(init, *mats)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    mats = [jnp.asarray(c, dtype) for c in mats]
    for s, c in enumerate(mats):
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
            raise ValueError(f"{name}: costs[{s}] must be a non-empty square matrix [n_s, n_s], got {tuple(c.shape)}")
    invalid = np.bool_(False)
    for label, matrix in [("init", init)] + [(f"costs[{s}]", c) for s, c in enumerate(mats)]:
        bad = ~all_finite(matrix)
        if concrete_true(bad):
            raise ValueError(f"{name}: {label} contains NaN or inf")
        if loss == "kl" and concrete_true(jnp.any(matrix < 0)):
            raise ValueError(f"{name}: {label} has negative entries; loss='kl' needs costs >= 0")
        invalid = invalid | bad
    if point_weights is None:
        qs = [None] * len(mats)
    else:
        qs = list(point_weights) if isinstance(point_weights, (list, tuple)) else \
            [point_weights[s] for s in range(jnp.shape(point_weights)[0])]
        if len(qs) != len(mats):
            raise ValueError(f"{name}: point_weights has {len(qs)} entries but costs has {len(mats)} spaces")
    checked_q = []
    for s, (c, q) in enumerate(zip(mats, qs)):
        q, _, bad = check_weights(q, None, (c.shape[0], 1), dtype, name, balanced=False,
                                  owners=(f"costs[{s}] has {{}} points", "{}"))
        checked_q.append(jnp.full((c.shape[0],), 1.0 / c.shape[0], dtype) if q is None else q)
        invalid = invalid | bad | check_unit_mass(checked_q[-1], f"point_weights[{s}]", name)
    p, lam, bad = check_weights(init_weights, weights, (init.shape[0], len(mats)), dtype, name, balanced=False,
                                owners=("init has {} points (N)", "costs has {} spaces (S)"))
    p = jnp.full((init.shape[0],), 1.0 / init.shape[0], dtype) if p is None else p
    lam = jnp.full((len(mats),), 1.0 / len(mats), dtype) if lam is None else lam
    invalid = invalid | bad | check_unit_mass(p, "init_weights", name) | check_unit_mass(lam, "weights", name)
    if concrete_true(jnp.any(p <= 0)):
        raise ValueError(f"{name}: init_weights must be > 0 (the update divides by p p^T)")
    eps = None if epsilon is None else jnp.asarray(epsilon, dtype)
    inner_tol = None if inner_tol is None else jnp.asarray(inner_tol, dtype)
    result = _solve(tuple(mats), tuple(checked_q), init.astype(dtype), p, lam, jnp.asarray(invalid),
                    jnp.asarray(tol, dtype), eps, inner_tol, loss=loss, inner_max_iters=int(inner_max_iters),
                    max_iters=int(max_iters))
    inputs = (tuple(mats), tuple(checked_q), p, lam, eps)
    result = dataclasses.replace(result, cost_matrix=_no_derivative(result.cost_matrix, inputs),
                                 cost=_no_derivative(result.cost, inputs))
    return raise_on_status(result, name, "max_iters") if throw else result


def _no_derivative(value, inputs):
    """``value`` unchanged; differentiating it in any of ``inputs`` raises (instead of a silent zero)."""

    @jax.custom_jvp
    def guard(v, _):
        return v

    @guard.defjvp
    def _(primals, tangents):
        raise ValueError("gromov_barycenter offers no derivative (cost_matrix and cost are fixed points of a "
                         "nonconvex iteration; the inputs are held constant inside); wrap the inputs in "
                         "jax.lax.stop_gradient if a constant is what you want")

    return guard(value, inputs)


def _update(plans, mats, p, lam, loss):
    """The minimiser in ``C`` of ``sum_s lambda_s c(T_s)`` with the plans ``T_s: [N, n_s]`` fixed."""
    if loss == "square":
        total = sum(w * (t @ c @ t.T) for w, t, c in zip(lam, plans, mats))
        return total / jnp.outer(p, p)
    total = sum(w * (t @ jnp.log(jnp.maximum(c, _KL_FLOOR)) @ t.T) for w, t, c in zip(lam, plans, mats))
    return jnp.exp(total / jnp.outer(p, p))


@functools.partial(jax.jit, static_argnames=("loss", "inner_max_iters", "max_iters"))
def _solve(mats, qs, init, p, lam, invalid, tol, epsilon, inner_tol, *, loss, inner_max_iters, max_iters):
    mats, qs, init, p, lam = jax.lax.stop_gradient((mats, qs, init, p, lam))
    n_spaces = len(mats)
    lam_list = [lam[s] for s in range(n_spaces)]
    options = dict(loss=loss, epsilon=epsilon, tol=inner_tol, max_iters=inner_max_iters)

    def plans_at(c):
        outs = [gromov_wasserstein(c, mats[s], p, qs[s], **options) for s in range(n_spaces)]
        statuses = jnp.stack([o.status for o in outs])
        bad = statuses != Status.CONVERGED
        status = jnp.where(jnp.any(bad), statuses[jnp.argmax(bad)], Status.CONVERGED)
        cost = sum(w * o.cost for w, o in zip(lam_list, outs))
        return [o.plan for o in outs], cost, status

    def body(state):
        c, it, _, errors, _, _ = state
        plans, cost, status = plans_at(c)
        c_new = _update(plans, mats, p, lam_list, loss)
        change = jnp.linalg.norm(c_new - c)
        change = jnp.where(jnp.all(jnp.isfinite(c_new)), change, jnp.nan)
        ok = jnp.isfinite(change)
        done = ~ok | (change <= tol)
        return jnp.where(ok, c_new, c), it + 1, done, errors.at[it].set(change), status, cost

    def cond(state):
        return (~state[2]) & (state[1] < max_iters)

    dtype = init.dtype
    state = (init, jnp.zeros((), jnp.int32), invalid, jnp.full((max_iters,), -1.0, dtype),
             jnp.asarray(Status.CONVERGED, jnp.int32), jnp.asarray(jnp.nan, dtype))
    c, n_iters, _, errors, inner_status, cost = jax.lax.while_loop(cond, body, state)
    last = errors[jnp.maximum(n_iters - 1, 0)]
    status = jnp.where(inner_status != Status.CONVERGED, inner_status,
                       jnp.where(jnp.isnan(last), Status.NON_FINITE,
                                 jnp.where(last <= tol, Status.CONVERGED, Status.MAX_ITERS)))
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    return GromovBarycenterResult(cost_matrix=c, weights=p, cost=cost, converged=status == Status.CONVERGED,
                                  n_iters=n_iters, errors=errors, status=status)
