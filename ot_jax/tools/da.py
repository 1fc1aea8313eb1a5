"""Domain adaptation by optimal transport (OTDA; Courty, Flamary, Tuia & Rakotomamonjy 2017).

A labelled source sample ``xs: [n, d]`` (labels ``ys: [n]``, ints in ``[0, n_classes)``) and an
unlabelled target sample ``xt: [m, d]`` are coupled by a transport plan ``P: [n, m]`` between
their empirical measures ``a`` and ``b`` (uniform unless given), for the cost
``C_ij = c(xs_i, xt_j)`` (squared Euclidean by default, without the 1/2: POT's ``"sqeuclidean"``).
:func:`fit_transport` returns a :class:`Transport` pytree; the functions below use it:

* :func:`transform`: the barycentric mapping of the source onto the target,
  ``T(xs_i) = sum_j P_ij xt_j / sum_j P_ij``. New source points ``x`` (``out_of_sample=``):
  ``"nearest"`` moves ``x`` with the displacement of its nearest training source point ``k``,
  ``T(xs_k) + x - xs_k`` (Ferradans et al. 2014; POT's rule for the exact plan); ``"entropic"``
  (Sinkhorn only) extends the entropic plan itself, ``T(x) = sum_j w_j(x) xt_j`` with
  ``w(x) = softmax_j((g_j - c(x, xt_j)) / epsilon)`` (the entropic map of Pooladian & Niles-Weed
  2021; POT's default ``"continuous"`` map for Sinkhorn). Both give ``T(xs_i)`` on the training points.
* :func:`inverse_transform`: the same from the target back onto the source (``P^T``).
* :func:`transform_labels`: label propagation to the target (Redko et al. 2019),
  ``scores_jc = sum_i P_ij [ys_i = c] / sum_i P_ij``: ``[m, n_classes]`` class proportions of the
  mass each target point receives; ``argmax`` is the predicted label.
* :func:`inverse_transform_labels`: target labels propagated back to the source.

Methods (``method=``):

* ``"emd"``: the exact plan (:func:`ot_jax.emd`).
* ``"sinkhorn"``: entropic OT, ``min <C, P> + epsilon sum P log P`` (:func:`ot_jax.sinkhorn`;
  ``epsilon`` is POT's ``reg_e``, in the units of the normalised cost). The cost is never
  stored for a point cloud (``norm`` ``None``, ``"max"`` or ``"mean"`` and no target labels).
* ``"ipot"``: the exact plan by proximal point iterations (:func:`ot_jax.ipot`), lazy like Sinkhorn.
  IPOT's ``tol`` certifies the transport *value*; the plan, and the mapping with it, settles more
  slowly: pass a smaller ``tol`` (1e-6 in float64) when the mapping matters.
* ``"lpl1"``: class-regularised entropic OT, ``min <C, P> + epsilon sum P log P + eta
  sum_{j, c} (sum_{i: ys_i = c} P_ij)^(1/2)``: the non-convex l_p-l_1 group penalty (p = 1/2)
  that makes each target point receive mass from one class; solved by majorisation-minimisation
  as in Courty et al. 2017 and POT's ``sinkhorn_lpl1_mm``: ``outer_iters`` Sinkhorn problems on
  ``C + eta W``, ``W_ij = p (sum_{i': ys_i' = ys_i} P_i'j + 1e-3)^(p - 1)`` from the previous plan
  (``W = 0`` first). Needs ``ys``. The inner Sinkhorn problems of ``"lpl1"`` and ``"l1l2"``
  are warm-started from the previous one and run with Anderson acceleration (memory 5).
* ``"l1l2"``: class-regularised entropic OT with the convex group lasso, ``min <C, P> + epsilon
  sum P log P + eta sum_{j, c} ||P_{I_c, j}||_2`` (``I_c``: the source rows of class ``c``), by
  generalised conditional gradient (Rakotomamonjy, Flamary & Courty 2015; POT's
  ``sinkhorn_l1l2_gl``): from ``P = a b^T``, each of at most ``outer_iters`` steps solves Sinkhorn
  on the linearised cost ``C + eta grad Omega(P)``, then moves ``P`` towards that plan by the
  step in ``[0, 1]`` that minimises the whole objective (bisection on its derivative; POT uses an
  Armijo search on the objective without the entropy), and stops when the objective changes by
  less than ``tol`` relatively (at most ``outer_iters`` steps, default 100). The returned plan
  is the last linearised Sinkhorn plan, which equals the iterate at the fixed point (the
  minimiser: the objective is strictly convex).
  Needs ``ys``.

``norm`` divides the cost by a scalar before the regularisation parameters apply (POT's
``norm``: ``"max"``, ``"mean"``, ``"median"``; the plan of ``C / s`` with ``epsilon`` is the plan of
``C`` with ``s * epsilon``, so the geometry keeps the raw cost and ``epsilon``, ``eta`` and
``beta`` are scaled instead). Target labels ``yt`` (``-1``: unknown) make the problem
semi-supervised: a labelled source and target pair of different classes costs at least
``limit_max * max C`` (POT's ``limit_max``; always finite here, default 10).

Derivatives: the mappings and labels of ``"sinkhorn"`` are differentiable in ``xs`` and ``xt``
(implicit differentiation of the plan; the ``norm`` scale is held constant); those of ``"emd"``
with the plan held constant (it is piecewise constant in the points, so this is the derivative
almost everywhere); ``"ipot"``, ``"lpl1"`` and ``"l1l2"`` raise a ``ValueError`` when
differentiated through their plan (wrap them in ``jax.lax.stop_gradient``).

Everything is a pure function of arrays and works under ``jit`` (``method``, ``n_classes`` and
the iteration counts static) and ``vmap``. :class:`OTDA` wraps the same functions in the
``fit`` / ``transform`` / ``transform_labels`` interface of scikit-learn and POT's ``ot.da``.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from ot_jax.tools import da
    >>> xs = jax.random.normal(jax.random.PRNGKey(0), (50, 2))
    >>> fitted = da.fit_transport(xs, xs + jnp.array([3.0, -1.0]))
    >>> [round(float(v), 4) for v in jnp.mean(da.transform(fitted) - xs, axis=0)]
    [3.0, -1.0]
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_point_pair, check_points, check_same_dim, is_concrete
from ot_jax.geometry import Geometry, PointCloud, nearest_neighbors
from ot_jax.geometry.costs import SqEuclidean
from ot_jax.solvers.exact import emd
from ot_jax.solvers.ipot import ipot
from ot_jax.solvers.results import ExactResult, Status, raise_on_status
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["METHODS", "NORMS", "Transport", "fit_transport", "transform", "inverse_transform", "transform_labels",
           "inverse_transform_labels", "lpl1_penalty", "group_lasso", "OTDA"]

METHODS = ("emd", "sinkhorn", "ipot", "lpl1", "l1l2")
"""The transport estimators of :func:`fit_transport`."""
NORMS = (None, "max", "mean", "median")
"""Cost normalisations of :func:`fit_transport`."""

_LPL1_P = 0.5        # the exponent p of the l_p-l_1 penalty (Courty et al. 2017; POT)
_LPL1_FLOOR = 1e-3   # added to the class masses before the power p - 1 (POT's epsilon)
# Anderson memory of the inner Sinkhorn solves of "lpl1" and "l1l2". Each solve is warm-started
# from the last one; plain iterations still dominate at small epsilon: on 719 -> 719 digits
# (rotated target, epsilon 0.01, eta 0.1, norm "max", float64) "lpl1" took 11,240 Sinkhorn
# iterations, 15.7 s; with memory 5, 720 iterations, 1.0 s, same objective to 1e-8.
_INNER_ANDERSON = 5


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["xs", "xt", "ys", "a", "b", "solution", "cost_scale"],
                   meta_fields=["method", "n_classes", "cost_fn"])
@dataclasses.dataclass(frozen=True)
class Transport:
    """A fitted transport between a source and a target sample (:func:`fit_transport`).

    Attributes:
      xs: ``[n, d]`` source samples; xt: ``[m, d]`` target samples.
      ys: ``[n]`` int source labels, or None.
      a: ``[n]`` source weights; b: ``[m]`` target weights.
      solution: the solver's result: :class:`~ot_jax.solvers.results.ExactResult` (``"emd"``) or
        :class:`~ot_jax.solvers.results.EntropicResult` (the others; the plan is kept as potentials).
        Its ``cost`` is in the raw cost's units; for ``"lpl1"`` and ``"l1l2"`` it is the last
        Sinkhorn problem's, whose cost matrix includes the linearised class term.
      cost_scale: scalar the cost was divided by (``norm``; 1 without).
      method: (static) the estimator, one of :data:`METHODS`.
      n_classes: (static) number of classes of ``ys`` (0 without labels).
      cost_fn: (static) the ground cost of two points.
    """

    xs: jax.Array
    xt: jax.Array
    ys: jax.Array | None
    a: jax.Array
    b: jax.Array
    solution: object
    cost_scale: jax.Array
    method: str = "emd"
    n_classes: int = 0
    cost_fn: object = SqEuclidean()

    @property
    def plan(self) -> jax.Array:
        """``[n, m]`` the transport plan (materialised)."""
        return self.solution.plan

    @property
    def status(self) -> jax.Array:
        """Scalar int :class:`~ot_jax.solvers.results.Status` of the solve."""
        return self.solution.status

    @property
    def converged(self) -> jax.Array:
        """Scalar bool, ``status == CONVERGED``."""
        return self.solution.converged

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m, ...]``) or ``P^T vec`` (axis=0, ``vec: [n, ...]``)."""
        if isinstance(self.solution, ExactResult):
            plan = self.solution.plan
            return (plan if axis == 1 else plan.T) @ vec
        return self.solution.apply(vec, axis)

    def __repr__(self) -> str:
        n, m = self.xs.shape[0], self.xt.shape[0]
        return f"Transport(method={self.method!r}, n={n}, m={m}, n_classes={self.n_classes}, solution={self.solution!r})"


def _labels(y, size: int, name: str, fn: str, n_classes: int | None, allow_missing: bool):
    """``y`` as an int array ``[size]``, checked (when concrete) to lie in ``[0, n_classes)`` (or -1)."""
    y = jnp.asarray(y)
    if y.shape != (size,):
        raise ValueError(f"{fn}: {name} must be a vector of {size} labels (one per sample), got shape {tuple(y.shape)}")
    if jnp.issubdtype(y.dtype, jnp.floating):
        if is_concrete(y) and not np.all(np.equal(np.mod(np.asarray(y), 1), 0)):
            raise ValueError(f"{fn}: {name} must hold integer class labels, got non-integer values")
    elif not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{fn}: {name} must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(jnp.int32)
    if is_concrete(y):
        v = np.asarray(y)
        low = -1 if allow_missing else 0
        if v.min() < low:
            what = "-1 (unknown) or a class in [0, n_classes)" if allow_missing else "classes in [0, n_classes)"
            raise ValueError(f"{fn}: {name} must hold {what}; found {int(v.min())}")
        if n_classes is not None and v.max() >= n_classes:
            raise ValueError(f"{fn}: {name} holds label {int(v.max())}, outside [0, n_classes = {n_classes})")
    return y


def _n_classes(ys, n_classes, fn: str) -> int:
    if n_classes is not None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
            raise ValueError(f"{fn}: n_classes must be an integer >= 1, got {n_classes!r}")
        return int(n_classes)
    if not is_concrete(ys):
        raise ValueError(f"{fn}: pass n_classes (static) when ys is traced (inside jit or vmap)")
    return int(np.max(np.asarray(ys))) + 1


def _cost_scale(geom, norm, fn: str):
    if norm not in NORMS:
        raise ValueError(f"{fn}: norm must be one of {NORMS}, got {norm!r}")
    if norm is None:
        return jnp.ones((), geom.dtype)
    if norm == "max":
        s = geom.max_cost()
    elif norm == "mean":
        s = geom.mean_cost()
    else:
        s = jnp.median(geom.cost_matrix)
    return jax.lax.stop_gradient(jnp.where(s > 0, s, 1.0))


def lpl1_penalty(plan, ys, n_classes: int) -> jax.Array:
    """The l_p-l_1 group penalty ``sum_{j, c} (sum_{i: ys_i = c} P_ij)^(1/2)`` of ``plan: [n, m]``."""
    masses = jax.nn.one_hot(ys, n_classes, dtype=plan.dtype).T @ plan  # [C, m]
    return jnp.sum(jnp.sqrt(masses))


@functools.partial(jax.jit, static_argnames=("outer_iters", "tol", "max_iters"))
def _lpl1(cost, a, b, onehot, epsilon, eta, *, outer_iters, tol, max_iters):
    """Majorisation-minimisation of the l_p-l_1 class-regularised entropic OT (see the module doc)."""
    def solve(w, init):
        return sinkhorn(Geometry(cost + eta * w), a, b, epsilon=epsilon, init=init, tol=tol, max_iters=max_iters,
                        anderson=_INNER_ANDERSON, grad_mode="envelope")

    def step(carry, _):
        w, f, g, bad = carry
        out = solve(w, (f, g))
        masses = onehot.T @ out.plan  # [C, m]: the mass each target point gets from each class
        w = _LPL1_P * (onehot @ (masses + _LPL1_FLOOR)) ** (_LPL1_P - 1.0)
        return (w, out.f, out.g, bad | ~out.converged), None

    n, m = cost.shape
    carry = (jnp.zeros_like(cost), jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype), jnp.zeros((), bool))
    (w, f, g, bad), _ = jax.lax.scan(step, carry, None, length=outer_iters - 1)
    out = solve(w, (f, g))
    status = jnp.where(bad & out.converged, Status.MAX_ITERS, out.status).astype(out.status.dtype)
    return dataclasses.replace(out, status=status, converged=status == Status.CONVERGED)


def group_lasso(plan, ys, n_classes: int) -> jax.Array:
    """The group lasso ``sum_{j, c} ||P_{I_c, j}||_2`` of ``plan: [n, m]`` over the source classes ``ys``."""
    onehot = jax.nn.one_hot(ys, n_classes, dtype=plan.dtype)
    return jnp.sum(jnp.sqrt(onehot.T @ (plan * plan)))


@functools.partial(jax.jit, static_argnames=("outer_iters", "tol", "max_iters", "line_steps"))
def _l1l2(cost, a, b, onehot, epsilon, eta, *, outer_iters, tol, max_iters, line_steps: int = 40):
    """Generalised conditional gradient for the group-lasso class-regularised entropic OT (module doc)."""
    def grad_penalty(plan):
        norms = jnp.sqrt(onehot.T @ (plan * plan))  # [C, m]
        return plan / jnp.maximum(onehot @ norms, 1e-12)

    def objective(plan):
        return (jnp.sum(cost * plan) + eta * jnp.sum(jnp.sqrt(onehot.T @ (plan * plan)))
                + epsilon * jnp.sum(jnp.where(plan > 0, plan * jnp.log(plan), 0.0)))

    def slope(plan, delta):  # d/dalpha of the objective at plan, along delta
        return jnp.sum((cost + eta * grad_penalty(plan) + epsilon * (jnp.log(plan) + 1.0)) * delta)

    def linearised(plan, init):
        return sinkhorn(Geometry(cost + eta * grad_penalty(plan)), a, b, epsilon=epsilon, init=init, tol=tol,
                        max_iters=max_iters, anderson=_INNER_ANDERSON, grad_mode="envelope")

    def line_search(plan, delta):  # the objective is convex along the segment: bisect its slope on [0, 1]
        def bisect(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            up = slope(plan + mid * delta, delta) > 0
            return jnp.where(up, lo, mid), jnp.where(up, mid, hi)
        lo, hi = jax.lax.fori_loop(0, line_steps, bisect, (jnp.zeros((), cost.dtype), jnp.ones((), cost.dtype)))
        return jnp.where(slope(plan + delta, delta) <= 0, 1.0, 0.5 * (lo + hi))

    def cond(state):
        return (state[4] < outer_iters) & ~state[5]

    def body(state):
        plan, value, f, g, it, _, bad = state
        out = linearised(plan, (f, g))
        delta = out.plan - plan
        plan = plan + line_search(plan, delta) * delta
        new = objective(plan)
        done = jnp.abs(value - new) <= tol * jnp.abs(new)
        return plan, new, out.f, out.g, it + 1, done, bad | ~out.converged

    n, m = cost.shape
    plan0 = a[:, None] * b[None, :]
    state = (plan0, objective(plan0), jnp.zeros(n, cost.dtype), jnp.zeros(m, cost.dtype), jnp.zeros((), jnp.int32),
             jnp.zeros((), bool), jnp.zeros((), bool))
    plan, _, f, g, it, done, bad = jax.lax.while_loop(cond, body, state)
    out = linearised(plan, (f, g))
    status = jnp.where(out.converged & (bad | ~done), Status.MAX_ITERS, out.status).astype(out.status.dtype)
    return dataclasses.replace(out, status=status, converged=status == Status.CONVERGED)


def fit_transport(xs, xt, ys=None, yt=None, *, method: str = "emd", a=None, b=None, epsilon=1.0, eta=0.1,
                  beta=None, norm: str | None = None, cost_fn=None, limit_max: float = 10.0,
                  n_classes: int | None = None, outer_iters: int | None = None, tol: float | None = None,
                  max_iters: int | None = None, throw: bool = False) -> Transport:
    """Fit a transport plan from the source ``(xs, ys)`` to the target ``xt`` (see the module doc).

    Args:
      xs: ``[n, d]`` source samples; xt: ``[m, d]`` target samples.
      ys: ``[n]`` int source labels in ``[0, n_classes)`` (needed by ``"lpl1"`` and
        :func:`transform_labels`); yt: ``[m]`` int target labels, ``-1`` for unknown (semi-supervised).
      method: one of :data:`METHODS`.
      a: ``[n]`` source weights; b: ``[m]`` target weights (uniform if None).
      epsilon: entropic regularisation of ``"sinkhorn"`` and ``"lpl1"`` (> 0, normalised cost units).
      eta: weight of the class penalty of ``"lpl1"`` and ``"l1l2"`` (>= 0, normalised cost units).
      beta: IPOT's proximal step (normalised cost units; default ``0.01 * max C``).
      norm: cost normalisation, one of :data:`NORMS` (``"median"`` materialises the cost).
      cost_fn: ground cost of two points (default squared Euclidean).
      limit_max: with ``yt``, labelled pairs of different classes cost ``>= limit_max * max C``.
      n_classes: number of classes (static; default ``max(ys) + 1``, required under ``jit``).
      outer_iters: majorisation steps of ``"lpl1"`` (default 10, POT's), the cap on
        conditional-gradient steps of ``"l1l2"`` (default 100; it stops when the objective settles).
        Static, >= 1.
      tol, max_iters: the solver's stopping rule (default: Sinkhorn ``tol = 1e-6``, 5000
        iterations; IPOT its own defaults; EMD its pivot cap); ``"l1l2"`` also stops its outer
        steps at a relative change of the objective ``<= tol``.
      throw: raise when the solve did not converge (also inside ``jit``).

    Returns:
      :class:`Transport`; ``status`` is the solver's (``"lpl1"``: the last Sinkhorn problem's, or
      ``MAX_ITERS`` when an earlier one stopped at its cap; ``"l1l2"``: also ``MAX_ITERS`` when the
      outer steps ran out before the objective settled).
    """
    fn = "fit_transport"
    if method not in METHODS:
        raise ValueError(f"{fn}: method must be one of {METHODS}, got {method!r}")
    xs, xt = check_point_pair(xs, xt, ("xs", "xt"), fn)
    dtype = xs.dtype
    n, m = xs.shape[0], xt.shape[0]
    if ys is None:
        if method in ("lpl1", "l1l2"):
            raise ValueError(f"{fn}: method {method!r} regularises by class: pass the source labels ys")
        if yt is not None:
            raise ValueError(f"{fn}: target labels yt need source labels ys")
        classes = 0
    else:
        classes = _n_classes(ys, n_classes, fn)
        ys = _labels(ys, n, "ys", fn, classes, allow_missing=False)
    if yt is not None:
        yt = _labels(yt, m, "yt", fn, classes, allow_missing=True)
    if outer_iters is None:
        outer_iters = 100 if method == "l1l2" else 10
    if isinstance(outer_iters, bool) or not isinstance(outer_iters, (int, np.integer)) or outer_iters < 1:
        raise ValueError(f"{fn}: outer_iters must be an integer >= 1, got {outer_iters!r}")
    for name, value, low in (("epsilon", epsilon, 0.0), ("eta", eta, None), ("limit_max", limit_max, 0.0)):
        if is_concrete(value):
            v = float(np.asarray(value))
            if not np.isfinite(v) or (v <= low if low is not None else v < 0):
                want = "> 0" if low is not None else ">= 0"
                raise ValueError(f"{fn}: {name} must be a finite number {want}, got {v}")

    cost_fn = SqEuclidean() if cost_fn is None else cost_fn
    geom = PointCloud(xs, xt, cost_fn)
    cost_fn = geom.cost_fn
    scale = _cost_scale(geom, norm, fn)
    dense = method in ("emd", "lpl1", "l1l2") or yt is not None or norm == "median"
    if dense:
        cost = geom.cost_matrix
        if yt is not None:
            known = (ys[:, None] >= 0) & (yt[None, :] >= 0)
            penalty = jnp.where(known & (ys[:, None] != yt[None, :]), limit_max * jnp.max(cost), 0.0)
            cost = jnp.maximum(cost, penalty)
        geom = Geometry(cost)

    kw = {} if max_iters is None else {"max_iters": max_iters}
    if method == "emd":
        solution = emd(geom, a, b, **kw)
    elif method == "ipot":
        solution = ipot(geom, a, b, beta=None if beta is None else beta * scale, tol=tol, **kw)
    elif method == "sinkhorn":
        solution = sinkhorn(geom, a, b, epsilon=epsilon * scale, tol=1e-6 if tol is None else tol,
                            max_iters=5000 if max_iters is None else max_iters)
    else:
        a_ = jnp.full(n, 1.0 / n, dtype) if a is None else jnp.asarray(a, dtype)
        b_ = jnp.full(m, 1.0 / m, dtype) if b is None else jnp.asarray(b, dtype)
        solve = _lpl1 if method == "lpl1" else _l1l2
        solution = solve(geom.cost_matrix, a_, b_, jax.nn.one_hot(ys, classes, dtype=dtype), epsilon * scale,
                         eta * scale, outer_iters=int(outer_iters), tol=1e-6 if tol is None else tol,
                         max_iters=5000 if max_iters is None else max_iters)
    if throw:
        raise_on_status(solution, fn)
    a_out = jnp.full(n, 1.0 / n, dtype) if a is None else jnp.asarray(a, dtype)
    b_out = jnp.full(m, 1.0 / m, dtype) if b is None else jnp.asarray(b, dtype)
    return Transport(xs=xs, xt=xt, ys=ys, a=a_out, b=b_out, solution=solution, cost_scale=scale, method=method,
                     n_classes=classes, cost_fn=cost_fn)


def _normalised(mass, values):
    """``values / mass`` row-wise, 0 where the mass is 0 (POT's ``nan_to_num``)."""
    safe = jnp.where(mass > 0, mass, 1.0)
    return jnp.where((mass > 0).reshape(mass.shape + (1,) * (values.ndim - 1)),
                     values / safe.reshape(safe.shape + (1,) * (values.ndim - 1)), 0.0)


def _out_of_sample(fitted: Transport, x, mapped, out_of_sample, axis: int, fn: str, name: str):
    """Map new points ``x: [k, d]`` of one side (axis=1: source, 0: target) onto the other."""
    train, other = (fitted.xs, fitted.xt) if axis == 1 else (fitted.xt, fitted.xs)
    x = check_points(x, name, fn)
    check_same_dim(x, train, fn)
    x = x.astype(train.dtype)
    if out_of_sample is None:
        out_of_sample = "entropic" if fitted.method == "sinkhorn" else "nearest"
    if out_of_sample == "nearest":
        idx, _ = nearest_neighbors(x, train)
        return mapped[idx] + x - train[idx]
    if out_of_sample != "entropic":
        raise ValueError(f"{fn}: out_of_sample must be 'nearest' or 'entropic', got {out_of_sample!r}")
    if fitted.method != "sinkhorn":
        raise ValueError(f"{fn}: out_of_sample='entropic' extends a Sinkhorn plan; this transport is "
                         f"{fitted.method!r} (use 'nearest')")
    sol = fitted.solution
    eps = sol.plan_epsilon
    potential = sol.g if axis == 1 else sol.f
    geom = PointCloud(x, other, fitted.cost_fn)
    h = -eps * geom.lse(potential, eps, axis=1)  # normalises each row of the extended plan to 1
    return geom.apply_plan(h, potential, eps, other, axis=1)


def transform(fitted: Transport, xs=None, *, out_of_sample: str | None = None) -> jax.Array:
    """``[k, d]`` source points mapped onto the target: the barycentric mapping of the training source
    (``xs=None``, ``k = n``), or new points ``xs: [k, d]`` mapped by ``out_of_sample`` (``"nearest"``
    or ``"entropic"``; default ``"entropic"`` for Sinkhorn, ``"nearest"`` otherwise)."""
    rows = fitted.apply(jnp.ones(fitted.xt.shape[0], fitted.xt.dtype), axis=1)
    mapped = _normalised(rows, fitted.apply(fitted.xt, axis=1))
    if xs is None:
        return mapped
    return _out_of_sample(fitted, xs, mapped, out_of_sample, 1, "transform", "xs")


def inverse_transform(fitted: Transport, xt=None, *, out_of_sample: str | None = None) -> jax.Array:
    """``[k, d]`` target points mapped back onto the source (``xt=None``: the training target; new
    points as in :func:`transform`, with ``f`` and the source in place of ``g`` and the target)."""
    cols = fitted.apply(jnp.ones(fitted.xs.shape[0], fitted.xs.dtype), axis=0)
    mapped = _normalised(cols, fitted.apply(fitted.xs, axis=0))
    if xt is None:
        return mapped
    return _out_of_sample(fitted, xt, mapped, out_of_sample, 0, "inverse_transform", "xt")


def transform_labels(fitted: Transport, ys=None) -> jax.Array:
    """``[m, n_classes]`` source labels propagated to the target: the share of each class in the mass each
    target point receives (rows sum to 1 where the point receives mass). ``ys``: ``[n]`` labels
    (default the fitted ones)."""
    fn = "transform_labels"
    if ys is None:
        if fitted.ys is None:
            raise ValueError(f"{fn}: this transport was fitted without labels; pass ys")
        ys, classes = fitted.ys, fitted.n_classes
    else:
        classes = _n_classes(ys, None if fitted.n_classes == 0 else fitted.n_classes, fn)
        ys = _labels(ys, fitted.xs.shape[0], "ys", fn, classes, allow_missing=False)
    cols = fitted.apply(jnp.ones(fitted.xs.shape[0], fitted.xs.dtype), axis=0)
    onehot = jax.nn.one_hot(ys, classes, dtype=fitted.xs.dtype)
    return _normalised(cols, fitted.apply(onehot, axis=0))


def inverse_transform_labels(fitted: Transport, yt, n_classes: int | None = None) -> jax.Array:
    """``[n, n_classes]`` target labels ``yt: [m]`` propagated back to the source."""
    fn = "inverse_transform_labels"
    classes = _n_classes(yt, n_classes if n_classes is not None else (fitted.n_classes or None), fn)
    yt = _labels(yt, fitted.xt.shape[0], "yt", fn, classes, allow_missing=False)
    rows = fitted.apply(jnp.ones(fitted.xt.shape[0], fitted.xt.dtype), axis=1)
    onehot = jax.nn.one_hot(yt, classes, dtype=fitted.xt.dtype)
    return _normalised(rows, fitted.apply(onehot, axis=1))


class OTDA:
    """The scikit-learn / POT ``ot.da`` interface over :func:`fit_transport` and the functions above.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from ot_jax.tools.da import OTDA
        >>> xs = jax.random.normal(jax.random.PRNGKey(0), (40, 2)); ys = (xs[:, 0] > 0).astype(int)
        >>> model = OTDA(method="sinkhorn", epsilon=0.1, norm="max").fit(xs, ys, xs + 2.0)
        >>> model.transform_labels().shape, bool(model.transport_.converged)
        ((40, 2), True)
    """

    def __init__(self, method: str = "emd", **options):
        if method not in METHODS:
            raise ValueError(f"OTDA: method must be one of {METHODS}, got {method!r}")
        unknown = set(options) - _FIT_OPTIONS
        if unknown:
            raise ValueError(f"OTDA: unknown option(s) {sorted(unknown)}; known: {sorted(_FIT_OPTIONS)}")
        self.method = method
        self.options = options
        self.transport_: Transport | None = None

    def fit(self, xs, ys=None, xt=None, yt=None) -> "OTDA":
        """Fit the plan from ``(xs, ys)`` to ``xt`` (target labels ``yt`` optional); returns self."""
        if xt is None:
            raise ValueError("OTDA.fit: pass the target samples xt")
        self.transport_ = fit_transport(xs, xt, ys, yt, method=self.method, **self.options)
        return self

    def _fitted(self, what: str) -> Transport:
        if self.transport_ is None:
            raise ValueError(f"OTDA.{what}: call fit first")
        return self.transport_

    @property
    def coupling_(self) -> jax.Array:
        """``[n, m]`` the plan (POT's name)."""
        return self._fitted("coupling_").plan

    def transform(self, xs=None, *, out_of_sample: str | None = None) -> jax.Array:
        """See :func:`transform`."""
        return transform(self._fitted("transform"), xs, out_of_sample=out_of_sample)

    def inverse_transform(self, xt=None, *, out_of_sample: str | None = None) -> jax.Array:
        """See :func:`inverse_transform`."""
        return inverse_transform(self._fitted("inverse_transform"), xt, out_of_sample=out_of_sample)

    def transform_labels(self, ys=None) -> jax.Array:
        """See :func:`transform_labels`."""
        return transform_labels(self._fitted("transform_labels"), ys)

    def inverse_transform_labels(self, yt) -> jax.Array:
        """See :func:`inverse_transform_labels`."""
        return inverse_transform_labels(self._fitted("inverse_transform_labels"), yt)


_FIT_OPTIONS = {"a", "b", "epsilon", "eta", "beta", "norm", "cost_fn", "limit_max", "n_classes", "outer_iters", "tol",
                "max_iters", "throw"}
