"""ROBOT: regression without correspondence by hypergradients through optimal transport
(Xie et al., ICLR 2021, "A Hypergradient Approach to Robust Regression without Correspondence").

Responses ``y: [n, p]`` and predictions ``f_theta(x): [m, p]`` are observed as unordered sets.
ROBOT fits ``theta`` by descending on the value of the relaxed matching problem

    L(theta) = <C(theta), S*(theta)>,    S*(theta) = argmin_{S in Pi(a, b)} <C(theta), S> - eps H(S),

with ``C_ij = ||y_i - f_theta(x)_j||^2`` (or any cost the caller builds from the model), and its
*hypergradient* ``dL/dtheta = <dC/dtheta, S*> + <C, dS*/dtheta>``, which differentiates through
the plan rather than alternating between ``theta`` and ``S``. ``grad_mode``:

* ``"implicit"`` (default): ``dS*/dtheta`` by implicit differentiation of the Sinkhorn
  optimality conditions (:func:`ot_jax.sinkhorn`'s default; memory as the forward pass);
* ``"unroll"``: backpropagation through the Sinkhorn iterations (memory grows with ``max_iters``);
* ``"stop_gradient"``: the plan held fixed, ``<dC/dtheta, S*>`` only (Sinkhorn's envelope
  gradient of ``<C, S>``): what the hypergradient's second term adds is measured against it.

**Inexact correspondence** (only part of the data has a partner, outliers on either side):
``mass`` < 1 matches only that share of the mass (partial transport; Figueroa & Caffarelli 2010,
Chapel et al. 2020): the rows and the columns each keep ``1 - mass`` unmatched,

    L(theta) = <C, S*>,   S* = argmin { <C, S> - eps H(S) : S >= 0, S 1 <= a, S^T 1 <= b, 1^T S 1 = mass },

so the fit is not pulled by the ``1 - mass`` share of each side that matches worst: unmatched
points cost nothing beyond the mass given up. It is solved as a balanced problem with one dummy
point on each side (mass ``1 - mass`` each; cost 0 to every real point, a prohibitive cost
between the dummies) by the same Sinkhorn solver, so the gradient modes are unchanged; the cost
is materialised as ``[n + 1, m + 1]``. With ``mass`` the two sides may have different sizes.

At evaluation, :func:`recovered_matching` solves the exact assignment problem on the same cost
(the permutation ROBOT's fit implies) and :func:`matching_accuracy` scores it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ot_jax.geometry import PointCloud
from ot_jax.solvers.assignment import assignment
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["GRAD_MODES", "residual_cost", "robot_loss", "recovered_matching", "matching_accuracy"]

GRAD_MODES = ("implicit", "unroll", "stop_gradient")
_SINKHORN_GRAD = {"implicit": "implicit", "unroll": "unroll", "stop_gradient": "envelope"}


def residual_cost(targets: jax.Array, preds: jax.Array) -> PointCloud:
    """The lazy cost ``C_ij = ||targets_i - preds_j||^2`` of ``targets: [n, p]``, ``preds: [m, p]``
    (``[n]`` and ``[m]`` are read as ``p = 1``); never stores ``[n, m]``."""
    targets, preds = jnp.asarray(targets), jnp.asarray(preds)
    targets = targets[:, None] if targets.ndim == 1 else targets
    preds = preds[:, None] if preds.ndim == 1 else preds
    return PointCloud(targets, preds)


def robot_loss(cost, a=None, b=None, *, epsilon, grad_mode: str = "implicit", mass: float | None = None,
               relative_epsilon: bool = False, tol: float = 1e-4, max_iters: int = 2000, init=None,
               throw: bool = False):
    """ROBOT's objective ``<C, S*>`` and the solve.

    Args:
      cost: ``[n, m]`` cost matrix, :class:`~ot_jax.Geometry` or :class:`~ot_jax.PointCloud`
        (:func:`residual_cost`) built from the model's predictions, so that the gradient reaches
        the model's parameters.
      a: ``[n]`` weights of the rows (uniform if None); b: ``[m]`` of the columns. Without
        ``mass`` the correspondence is a bijection: ``n`` must equal ``m``.
      epsilon: entropic regularisation, > 0 (times the mean cost if ``relative_epsilon``; the
        gradient then holds that epsilon constant, so it is the derivative of the objective at the
        fixed epsilon it was solved with, not of the function ``theta -> L`` with a moving epsilon).
      grad_mode: ``"implicit"`` | ``"unroll"`` | ``"stop_gradient"`` (module docstring).
      mass: None (exact correspondence) or the share of the mass matched, in ``(0, 1]``
        (inexact correspondence, partial transport; module docstring).
      relative_epsilon, tol, max_iters, init, throw: as :func:`ot_jax.sinkhorn`
        (``init = previous_result.f, previous_result.g`` warm-starts the next step).

    Returns:
      ``(value, result)``: the scalar objective, differentiable as ``grad_mode`` says, and the
      solver's :class:`~ot_jax.solvers.results.EntropicResult` (plan, potentials, status; with
      ``mass``, of the augmented ``[n + 1, m + 1]`` problem, dummy row and column last).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (50, 2)); y = x @ jnp.array([1.0, -2.0])
        >>> loss = lambda w: robot_loss(residual_cost(y[::-1], x @ w), epsilon=1e-2)[0]
        >>> float(loss(jnp.array([1.0, -2.0]))) < float(loss(jnp.array([1.0, 0.0])))
        True
    """
    if grad_mode not in GRAD_MODES:
        raise ValueError(f"robot_loss: grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
    n, m = cost.shape if hasattr(cost, "shape") else jnp.shape(cost)
    solver_grad = _SINKHORN_GRAD[grad_mode]
    if mass is None:
        if n != m:
            raise ValueError(f"robot_loss: the cost is [{n}, {m}], but exact correspondence (mass=None) matches "
                             f"n responses to n predictions one to one; pass mass < 1 for inexact correspondence "
                             f"(unmatched points on either side)")
        result = sinkhorn(cost, a, b, epsilon=epsilon, relative_epsilon=relative_epsilon, tol=tol,
                          max_iters=max_iters, init=init, grad_mode=solver_grad, throw=throw)
        return result.cost, result
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"robot_loss: mass must be in (0, 1], got {mass}")
    matrix = cost.cost_matrix if hasattr(cost, "cost_matrix") else jnp.asarray(cost)
    dtype = matrix.dtype
    a = jnp.full(n, 1.0 / n, dtype) if a is None else jnp.asarray(a, dtype) / jnp.sum(a)
    b = jnp.full(m, 1.0 / m, dtype) if b is None else jnp.asarray(b, dtype) / jnp.sum(b)
    if relative_epsilon:  # in units of the real pairs' mean cost (the dummies' costs are not costs)
        epsilon = epsilon * jax.lax.stop_gradient(jnp.mean(matrix))
    rest = jnp.asarray(1.0 - mass, dtype)
    prohibitive = jax.lax.stop_gradient(2.0 * jnp.max(matrix) + 50.0 * epsilon)
    augmented = jnp.block([[matrix, jnp.zeros((n, 1), dtype)],
                           [jnp.zeros((1, m), dtype), jnp.reshape(prohibitive, (1, 1))]])
    result = sinkhorn(augmented, jnp.append(a, rest), jnp.append(b, rest), epsilon=epsilon, tol=tol,
                      max_iters=max_iters, init=init, grad_mode=solver_grad, throw=throw)
    plan = result.plan[:n, :m]
    if grad_mode == "stop_gradient":
        plan = jax.lax.stop_gradient(plan)
    value = jnp.sum(plan * matrix)
    return value, result


def recovered_matching(cost) -> jax.Array:
    """``[n]`` int32: the exact assignment of ``cost: [n, m]`` (``n <= m``), row ``i`` matched to
    column ``matching[i]`` (the permutation a fitted model implies; :func:`ot_jax.assignment`)."""
    if hasattr(cost, "cost_matrix"):
        cost = cost.cost_matrix
    return assignment(jax.lax.stop_gradient(jnp.asarray(cost)), method="scipy").permutation


def matching_accuracy(matching: jax.Array, match: jax.Array) -> jax.Array:
    """Share of rows with a partner (``match >= 0``) whose recovered partner ``matching: [n]`` is
    the true one ``match: [n]`` (the permutation recovery rate)."""
    has = match >= 0
    return jnp.sum(jnp.where(has, matching == match, False)) / jnp.maximum(jnp.sum(has), 1)
