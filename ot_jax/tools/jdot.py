"""JDOT: joint distribution optimal transport for domain adaptation (Courty, Flamary, Habrard &
Rakotomamonjy, NeurIPS 2017).

A labelled source ``(xs: [n, d], ys)`` and an unlabelled target ``xt: [m, d]``. JDOT fits a
predictor ``f`` on the target by coupling source samples with target samples *and their
predictions*: with ``Y: [n, p]`` the source responses (one-hot classes for classification),

    J(P, f) = sum_ij P_ij (alpha ||xs_i - xt_j||^2 + ||Y_i - f(xt_j)||^2) + ridge ||w||^2,

over plans ``P`` with marginals ``a``, ``b`` and ridge-regularised predictors ``f(x) = phi(x) w``
(``model="linear"``: ``phi(x) = [x, 1]``; ``model="rbf"``: kernel ridge on the target points,
``f(x) = sum_j k(x, xt_j) A_j`` with ``k(x, x') = exp(-gamma ||x - x'||^2)`` and ``ridge A^T K A``).
Block-coordinate descent, as in the paper: the first plan uses the feature cost alone, then each
of ``n_iters`` iterations (1) fits ``f`` to the plan, a weighted ridge regression of the
barycentric responses ``Yhat_j = sum_i P_ij Y_i / b_j`` with weights ``b_j``, and (2) solves the
plan for the joint cost under that ``f``. With the exact plan (``method="emd"``) both steps are
exact minimisations, so ``J`` never increases (``objective`` records it after every iteration).

References: Courty et al., "Joint distribution optimal transportation for domain adaptation",
NeurIPS 2017 (their ``jdot_krr`` is the kernel-ridge form used here).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_point_pair, check_points, check_same_dim, is_concrete
from ot_jax.geometry import Geometry
from ot_jax.geometry.costs import SqEuclidean
from ot_jax.solvers.exact import emd
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["JDOTResult", "jdot", "predict"]

_MODELS = ("linear", "rbf")


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["weights", "xt", "gamma", "plan", "objective", "converged"],
                   meta_fields=["model", "classification"])
@dataclasses.dataclass(frozen=True)
class JDOTResult:
    """Output of :func:`jdot`.

    Attributes:
      weights: ``[d + 1, p]`` (linear: features then intercept) or ``[m, p]`` (rbf: one row per
        target point) coefficients of the predictor.
      xt: ``[m, d]`` the target points (the kernel centres of ``"rbf"``).
      gamma: scalar kernel width of ``"rbf"``.
      plan: ``[n, m]`` the last plan.
      objective: ``[n_iters]`` ``J(P, f)`` after each iteration (the plan's cost under the new ``f``
        plus the ridge term).
      converged: scalar bool, every plan solve converged.
      model: (static) ``"linear"`` or ``"rbf"``; classification: (static) responses are classes.
    """

    weights: jax.Array
    xt: jax.Array
    gamma: jax.Array
    plan: jax.Array
    objective: jax.Array
    converged: jax.Array
    model: str = "rbf"
    classification: bool = True


def _features(model, x, xt, gamma):
    if model == "linear":
        return jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    return jnp.exp(-gamma * SqEuclidean().pairwise(x, xt))


def predict(result: JDOTResult, x) -> jax.Array:
    """``[k, p]`` predictions ``f(x)`` at ``x: [k, d]`` (class scores for classification: ``argmax``
    over the last axis is the label)."""
    x = check_points(x, "x", "jdot.predict")
    check_same_dim(x, result.xt, "jdot.predict")
    return _features(result.model, x.astype(result.xt.dtype), result.xt, result.gamma) @ result.weights


def _fit(model, xt, targets, b, ridge, gamma):
    """Weighted ridge: ``min_w sum_j b_j ||phi(xt_j) w - targets_j||^2 + ridge R(w)``."""
    phi = _features(model, xt, xt, gamma)
    if model == "linear":
        penalty = jnp.diag(jnp.concatenate([jnp.ones(xt.shape[1]), jnp.zeros(1)]).astype(xt.dtype))
        w = jnp.linalg.solve(phi.T @ (b[:, None] * phi) + ridge * penalty, phi.T @ (b[:, None] * targets))
        return w, ridge * jnp.sum(w[:-1] ** 2)
    # kernel ridge, R(A) = tr(A^T K A): the normal equations K (diag(b) K + ridge I) A = K diag(b) T
    # are solved by (diag(b) K + ridge I) A = diag(b) T.
    a_ = jnp.linalg.solve(b[:, None] * phi + ridge * jnp.eye(phi.shape[0], dtype=phi.dtype), b[:, None] * targets)
    return a_, ridge * jnp.sum(a_ * (phi @ a_))


def jdot(xs, ys, xt, *, alpha: float = 1.0, ridge: float = 1e-2, model: str = "rbf", gamma: float = 1.0,
         n_iters: int = 10, method: str = "emd", epsilon: float = 1e-2, n_classes: int | None = None,
         classification: bool = True, a=None, b=None) -> JDOTResult:
    """Fit a target predictor by JDOT's block-coordinate descent (see the module doc).

    Args:
      xs: ``[n, d]`` source samples; xt: ``[m, d]`` target samples.
      ys: ``[n]`` int classes in ``[0, n_classes)`` (``classification=True``), or ``[n]`` / ``[n, p]``
        real responses (``classification=False``).
      alpha: weight of the feature distance in the joint cost (> 0).
      ridge: ridge penalty of the predictor (> 0).
      model: ``"linear"`` or ``"rbf"`` (kernel ridge with ``gamma``).
      n_iters: block-coordinate iterations (static, >= 1).
      method: plan solver, ``"emd"`` (exact; ``J`` decreases monotonically) or ``"sinkhorn"``
        (``epsilon`` times the mean joint cost).
      n_classes: number of classes (static; default ``max(ys) + 1``).
      a: ``[n]``, b: ``[m]`` sample weights (uniform if None).

    Returns:
      :class:`JDOTResult`; :func:`predict` evaluates the predictor.
    """
    fn = "jdot"
    xs, xt = check_point_pair(xs, xt, ("xs", "xt"), fn)
    dtype = xs.dtype
    n, m = xs.shape[0], xt.shape[0]
    if model not in _MODELS:
        raise ValueError(f"{fn}: model must be one of {_MODELS}, got {model!r}")
    if method not in ("emd", "sinkhorn"):
        raise ValueError(f"{fn}: method must be 'emd' or 'sinkhorn', got {method!r}")
    if isinstance(n_iters, bool) or not isinstance(n_iters, (int, np.integer)) or n_iters < 1:
        raise ValueError(f"{fn}: n_iters must be an integer >= 1, got {n_iters!r}")
    for name, value in (("alpha", alpha), ("ridge", ridge), ("gamma", gamma), ("epsilon", epsilon)):
        if is_concrete(value) and not (np.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value!r}")
    ys = jnp.asarray(ys)
    if ys.shape[0] != n or ys.ndim not in (1, 2) or (classification and ys.ndim != 1):
        want = f"[{n}] class labels" if classification else f"[{n}] or [{n}, p] responses"
        raise ValueError(f"{fn}: ys must be {want} (one per source sample), got shape {tuple(ys.shape)}")
    if classification:
        if not jnp.issubdtype(ys.dtype, jnp.integer):
            raise ValueError(f"{fn}: ys must hold integer class labels (or pass classification=False), "
                             f"got dtype {ys.dtype}")
        if n_classes is None:
            if not is_concrete(ys):
                raise ValueError(f"{fn}: pass n_classes (static) when ys is traced")
            n_classes = int(np.max(np.asarray(ys))) + 1
        if is_concrete(ys) and (np.min(np.asarray(ys)) < 0 or np.max(np.asarray(ys)) >= n_classes):
            raise ValueError(f"{fn}: ys must hold classes in [0, n_classes = {n_classes})")
        targets_src = jax.nn.one_hot(ys, n_classes, dtype=dtype)
    else:
        targets_src = (ys[:, None] if ys.ndim == 1 else ys).astype(dtype)
        if is_concrete(targets_src) and not np.all(np.isfinite(np.asarray(targets_src))):
            raise ValueError(f"{fn}: ys contains NaN or inf")
    a = jnp.full(n, 1.0 / n, dtype) if a is None else jnp.asarray(a, dtype)
    b = jnp.full(m, 1.0 / m, dtype) if b is None else jnp.asarray(b, dtype)
    gamma = jnp.asarray(gamma, dtype)
    feature_cost = alpha * SqEuclidean().pairwise(xs, xt)

    def solve(cost):
        if method == "emd":
            out = emd(Geometry(cost), a, b)
        else:
            out = sinkhorn(Geometry(cost), a, b, epsilon=epsilon, relative_epsilon=True, tol=1e-6,
                           grad_mode="envelope")
        return out.plan, out.converged

    def joint_cost(weights):
        preds = _features(model, xt, xt, gamma) @ weights  # [m, p]
        return feature_cost + SqEuclidean().pairwise(targets_src, preds)

    def step(carry, _):
        plan, ok = carry
        cols = jnp.sum(plan, axis=0)
        barycentric = (plan.T @ targets_src) / jnp.where(cols > 0, cols, 1.0)[:, None]
        weights, penalty = _fit(model, xt, barycentric, cols, ridge, gamma)
        cost = joint_cost(weights)
        objective = jnp.sum(plan * cost) + penalty
        plan, converged = solve(cost)
        return (plan, ok & converged), (weights, objective)

    plan0, ok0 = solve(feature_cost)
    (plan, ok), (weights, objective) = jax.lax.scan(step, (plan0, ok0), None, length=int(n_iters))
    # the objective recorded at iteration k is J(P_k, f_k); the last plan P_{K+1} is optimal for f_K
    return JDOTResult(weights=weights[-1], xt=xt, gamma=gamma, plan=plan, objective=objective, converged=ok,
                      model=model, classification=classification)
