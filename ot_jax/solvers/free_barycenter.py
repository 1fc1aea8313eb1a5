"""Free-support Wasserstein barycenters: optimise the locations of a fixed number of points.

Given ``K`` measures ``nu_k = sum_j w_kj delta(y_kj)`` (points ``y_k: [n_k, d]``) and
barycentric weights ``lambda: [K]``, find locations ``X: [k, d]`` carrying fixed masses
``b: [k]`` that minimise ``sum_k lambda_k W_2^2(sum_i b_i delta(x_i), nu_k)``. Cuturi &
Doucet's (2014) fixed point alternates the optimal plans ``T_k: [k, n_k]`` from ``X`` to
each measure with the barycentric update

    X <- sum_k lambda_k diag(1 / b) T_k y_k,

each step decreasing the objective; it stops when ``||X_new - X||^2 <= tol`` (POT's
``free_support_barycenter`` rule and defaults). The plans come from :func:`ot_jax.emd`
(exact, host LPs: the ``K`` problems of a step in one host call when the measures are
stacked), :func:`ot_jax.ipot` (exact in the limit, lazily on point clouds, on any
device) or :func:`ot_jax.sinkhorn` (entropic: the barycenter of the blurred plans).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_points, check_positive, check_unit_mass, check_weights
from ot_jax.geometry import PointCloud
from ot_jax.solvers import exact
from ot_jax.solvers.ipot import ipot
from ot_jax.solvers.results import Status, raise_on_status, result_repr
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["free_support_barycenter", "FreeBarycenterResult"]

_SOLVERS = ("emd", "ipot", "sinkhorn")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FreeBarycenterResult:
    """Output of :func:`free_support_barycenter`.

    (Its own type: the fixed-support :class:`~ot_jax.BarycenterResult` holds a histogram
    on a given support, this one the support itself.)

    Attributes:
      locations: ``[k, d]`` barycenter points ``X``.
      weights: ``[k]`` their masses ``b`` (fixed, as given).
      cost: scalar objective ``sum_k lambda_k <C(X, y_k), T_k>`` (squared Euclidean
        costs) at the returned locations; with ``solver="emd"`` (or a converged IPOT)
        ``sum_k lambda_k W_2^2(X, nu_k)``.
      converged: scalar bool, ``status == Status.CONVERGED``; n_iters: scalar int, steps.
      errors: ``[max_iters]`` squared displacement ``||X_new - X||^2`` per step, ``-1`` after the stop.
      status: scalar int, a :class:`~ot_jax.Status`.
    """

    locations: jax.Array
    weights: jax.Array
    cost: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("locations", "cost", "status", "n_iters"))


def _measures(points, point_weights, dim, dtype, solver):
    """``(stacked, ys, ws, invalid)``: stacked ``[K, n, d]``/``[K, n]`` arrays, or lists of them."""
    stacked = not isinstance(points, (list, tuple))
    if stacked:
        points = jnp.asarray(points)
        if points.ndim != 3:
            raise ValueError(f"{solver}: points must be [K, n, d] (K measures of n points) or a list of K arrays "
                             f"[n_k, d], got shape {tuple(points.shape)}")
        ys = [points[k] for k in range(points.shape[0])]
    else:
        ys = list(points)
    if len(ys) == 0:
        raise ValueError(f"{solver}: points is empty; need at least one measure")
    if point_weights is None:
        ws = [None] * len(ys)
    else:
        ws = [point_weights[k] for k in range(len(point_weights))] if not isinstance(point_weights, (list, tuple)) \
            else list(point_weights)
        if len(ws) != len(ys):
            raise ValueError(f"{solver}: point_weights has {len(ws)} entries but points has {len(ys)} measures")
    checked_y, checked_w, invalid = [], [], np.bool_(False)
    for k, (y, w) in enumerate(zip(ys, ws)):
        y = check_points(y, f"points[{k}]", solver)
        if y.shape[1] != dim:
            raise ValueError(f"{solver}: points[{k}] has dimension {y.shape[1]} but init has {dim}")
        w, _, bad = check_weights(w, None, (y.shape[0], 1), dtype, solver, balanced=False,
                                  owners=(f"points[{k}] has {{}} points", "{}"))
        w = jnp.full((y.shape[0],), 1.0 / y.shape[0], dtype) if w is None else w
        checked_y.append(y.astype(dtype))
        checked_w.append(w)
        invalid = invalid | bad | check_unit_mass(w, f"point_weights[{k}]", solver)
    if stacked:
        return True, jnp.stack(checked_y), jnp.stack(checked_w), invalid
    return False, tuple(checked_y), tuple(checked_w), invalid


def free_support_barycenter(
    points,
    init,
    *,
    point_weights=None,
    init_weights=None,
    weights=None,
    solver: str = "emd",
    epsilon=None,
    beta=None,
    tol: float = 1e-7,
    max_iters: int = 100,
    inner_tol: float | None = None,
    inner_max_iters: int = 10000,
    throw: bool = False,
) -> FreeBarycenterResult:
    """Free-support W2 barycenter by Cuturi & Doucet's fixed point (module docstring).

    Args:
      points: the measures' points: ``[K, n, d]`` (equal sizes; each step solves the
        ``K`` problems under ``jax.vmap``, for ``"emd"`` in one host call) or a list of
        ``K`` arrays ``[n_k, d]``.
      init: ``[k, d]`` initial barycenter locations (the number of points ``k`` is fixed).
      point_weights: the measures' masses, ``[K, n]`` or a list of ``[n_k]`` (each summing
        to 1; uniform if None).
      init_weights: ``[k]`` masses ``b`` of the barycenter's points (summing to 1; uniform if None).
      weights: ``[K]`` barycentric weights ``lambda`` (``>= 0``, summing to 1; uniform if None).
      solver: ``"emd"`` (exact LPs, default; POT's ``free_support_barycenter``),
        ``"ipot"`` (exact in the limit, lazy, any device; ``beta`` its step) or
        ``"sinkhorn"`` (entropic, ``epsilon`` required).
      epsilon: Sinkhorn regularisation, > 0 (``solver="sinkhorn"`` only).
      beta: IPOT proximal step (``solver="ipot"``; None: its default).
      tol: stop when ``||X_new - X||^2 <= tol`` (POT's default 1e-7).
      max_iters: cap on fixed-point steps (static; POT's default 100).
      inner_tol, inner_max_iters: ``tol`` and ``max_iters`` of the IPOT or Sinkhorn solves
        (None: the solver's default).
      throw: raise on bad input or when the iteration did not converge.

    Returns:
      :class:`FreeBarycenterResult`. With ``"emd"`` and ``"ipot"`` the locations are
      differentiable in ``points`` and ``weights`` with the plans held fixed, which is
      the exact derivative wherever the optimal plans are unique (they are then locally
      constant); ``cost`` is differentiable in ``points``, ``weights`` and ``init``-free
      inputs by the envelope theorem. With ``"sinkhorn"`` the locations carry no
      derivative (the plans move with the points; constants under ``jax.grad``).
      Derivatives in ``point_weights`` are not offered (constants).

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> ys = jnp.array([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 2.0], [2.0, 2.0]]])
        >>> out = ot_jax.free_support_barycenter(ys, init=jnp.array([[0.1, 0.9], [1.9, 1.1]]))
        >>> out.locations.round(6).tolist()
        [[0.0, 1.0], [2.0, 1.0]]
    """
    name = "free_support_barycenter"
    if solver not in _SOLVERS:
        raise ValueError(f"{name}: solver must be one of {', '.join(map(repr, _SOLVERS))}, got {solver!r}")
    if solver == "sinkhorn" and epsilon is None:
        raise ValueError(f"{name}: solver='sinkhorn' needs epsilon > 0")
    for label, value in (("max_iters", max_iters), ("inner_max_iters", inner_max_iters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: {label} must be an integer >= 1, got {value!r}")
    init = check_points(init, "init", name)
    dtype = init.dtype
    stacked, ys, ws, invalid = _measures(points, point_weights, init.shape[1], dtype, name)
    dtype = jnp.result_type(init, *(ys if not stacked else [ys]))
    init = init.astype(dtype)
    n_measures = ys.shape[0] if stacked else len(ys)
    b, lam, bad = check_weights(init_weights, weights, (init.shape[0], n_measures), dtype, name, balanced=False,
                                owners=("init has {} points (k)", "points has {} measures (K)"))
    b = jnp.full((init.shape[0],), 1.0 / init.shape[0], dtype) if b is None else b
    lam = jnp.full((n_measures,), 1.0 / n_measures, dtype) if lam is None else lam
    invalid = invalid | bad | check_unit_mass(b, "init_weights", name) | check_unit_mass(lam, "weights", name)
    if solver == "sinkhorn":
        invalid = invalid | check_positive(epsilon, "epsilon", name)
    inner = (None if epsilon is None else jnp.asarray(epsilon, dtype), None if beta is None else jnp.asarray(beta, dtype),
             None if inner_tol is None else jnp.asarray(inner_tol, dtype))
    result = _solve(ys, ws, init, b, lam, invalid, jnp.asarray(tol, dtype), inner, stacked=stacked, solver=solver,
                    max_iters=int(max_iters), inner_max_iters=int(inner_max_iters))
    return raise_on_status(result, name, "max_iters") if throw else result


def _plan_step(x, y, w, b, invalid, *, solver, epsilon, beta, tol, max_iters):
    """``(T y [k, d], <C, T>, status)`` for one measure, everything without derivative."""
    if solver == "emd":
        cost = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        out = exact._solve(cost, b, w, invalid, max_iters=exact.DEFAULT_MAX_ITERS)
        return out.plan @ y, out.cost, out.status
    geom = PointCloud(x, y)
    options = {} if tol is None else dict(tol=tol)
    if solver == "ipot":
        out = ipot(geom, b, w, beta=beta, max_iters=max_iters, **options)
    else:
        out = sinkhorn(geom, b, w, epsilon=epsilon, max_iters=max_iters, grad_mode="envelope", **options)
    moved = out.geom.apply_plan(out.f, out.g, out.plan_epsilon, y, 1)
    return moved, out.cost, out.status


def _over_measures(fn, ys, ws, stacked):
    """``fn(y, w)`` for each measure, stacked: ``vmap`` for stacked measures, a loop for a list."""
    if stacked:
        return jax.vmap(fn)(ys, ws)
    outs = [fn(y, w) for y, w in zip(ys, ws)]
    return tuple(jnp.stack([o[i] for o in outs]) for i in range(len(outs[0])))


def _first_bad(statuses):
    bad = statuses != Status.CONVERGED
    return jnp.where(jnp.any(bad), statuses[jnp.argmax(bad)], Status.CONVERGED)


@functools.partial(jax.jit, static_argnames=("stacked", "solver", "max_iters", "inner_max_iters"))
def _solve(ys, ws, init, b, lam, invalid, tol_x, inner, *, stacked, solver, max_iters, inner_max_iters):
    dtype = init.dtype
    k = init.shape[0]
    ys_s, ws_s, x0, b_s, lam_s, inner = jax.lax.stop_gradient((ys, ws, init, b, lam, inner))
    b_s = jnp.where(invalid, 1.0 / k, b_s)
    epsilon, beta, tol = inner
    step_options = dict(solver=solver, epsilon=epsilon, beta=beta, tol=tol, max_iters=inner_max_iters)

    def moved_points(x):
        fn = lambda y, w: _plan_step(x, y, w, b_s, invalid, **step_options)  # noqa: E731
        return _over_measures(fn, ys_s, ws_s, stacked)

    def body(state):
        x, it, _, errors, _ = state
        moved, _, statuses = moved_points(x)
        x_new = jnp.einsum("k,kid->id", lam_s, moved) / b_s[:, None]
        shift = jnp.sum((x_new - x) ** 2)
        status = _first_bad(statuses)  # an inner solve short of its tol does not stop the iteration
        shift = jnp.where(jnp.all(jnp.isfinite(x_new)), shift, jnp.nan)
        ok = jnp.isfinite(shift)
        done = ~ok | (shift <= tol_x)
        return jnp.where(ok, x_new, x), it + 1, done, errors.at[it].set(shift), status

    def cond(state):
        return (~state[2]) & (state[1] < max_iters)

    state = (x0, jnp.zeros((), jnp.int32), jnp.asarray(invalid), jnp.full((max_iters,), -1.0, dtype),
             jnp.asarray(Status.CONVERGED, jnp.int32))
    x, n_iters, _, errors, inner_status = jax.lax.while_loop(cond, body, state)
    last = errors[jnp.maximum(n_iters - 1, 0)]
    status = jnp.where(inner_status != Status.CONVERGED, inner_status,
                       jnp.where(jnp.isnan(last), Status.NON_FINITE,
                                 jnp.where(last <= tol_x, Status.CONVERGED, Status.MAX_ITERS)))
    status = jnp.where(invalid, Status.INVALID_INPUT, status).astype(jnp.int32)
    # Exact plans: the returned locations are one more barycentric step from the plans at the final
    # x (the same points once the plans have settled), written as a linear map of the measures'
    # points with the plans fixed, so that they carry that derivative.
    if solver == "sinkhorn":  # the last iterate (POT's), and the entropic plans' cost from it
        _, costs, _ = moved_points(x)
        locations, cost = x, jnp.sum(lam_s * costs)
    else:
        locations, cost = _differentiable_step(x, ys, ws_s, b_s, lam, stacked, step_options)
    return FreeBarycenterResult(locations=locations, weights=b, cost=cost, converged=status == Status.CONVERGED,
                                n_iters=n_iters, errors=errors, status=status)


def _differentiable_step(x, ys, ws, b, lam, stacked, step_options):
    """``sum_k lambda_k T_k y_k / b`` and ``sum_k lambda_k <C(x, y_k), T_k>``, plans fixed at ``x``."""

    def one(y, w):
        y_s = jax.lax.stop_gradient(y)
        if step_options["solver"] == "emd":
            cost = jnp.sum((x[:, None, :] - y_s[None, :, :]) ** 2, axis=-1)
            plan = exact._solve(cost, b, w, jnp.zeros((), bool), max_iters=exact.DEFAULT_MAX_ITERS).plan
            moved = plan @ y
            value = jnp.sum(plan * jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1))
            return moved, value
        out = ipot(PointCloud(x, y_s), b, w, beta=step_options["beta"], max_iters=step_options["max_iters"],
                   **({} if step_options["tol"] is None else dict(tol=step_options["tol"])))
        f, g, temp = jax.lax.stop_gradient((out.f, out.g, out.plan_epsilon))
        geom = PointCloud(x, y_s)
        moved = geom.apply_plan(f, g, temp, y, 1)
        # <C, T> with T fixed: sum_i |x_i|^2 r_i - 2 <x, T y> + sum_j |y_j|^2 c_j
        rows = geom.apply_plan(f, g, temp, jnp.ones_like(w), 1)
        cols = geom.apply_plan(f, g, temp, jnp.ones_like(b), 0)
        value = jnp.sum(jnp.sum(x ** 2, 1) * rows) - 2.0 * jnp.sum(x * moved) + jnp.sum(jnp.sum(y ** 2, 1) * cols)
        return moved, value

    moved, values = _over_measures(one, ys, ws, stacked)
    return jnp.einsum("k,kid->id", lam, moved) / b[:, None], jnp.sum(lam * values)
