"""Minibatch OT losses for training generators directly, without a critic.

A generator ``g`` is trained by descending ``loss(x, g(z))`` where ``x: [n, d]`` is
a batch of data and ``y = g(z): [m, d]`` a batch of generated points, both with
uniform weights (thesis §2.4.3; Genevay et al. 2018 for Sinkhorn; Deshpande et
al. 2018 for the sliced loss). Every loss has the signature
``loss(key, x, y, *, cost=..., <settings>) -> MinibatchLoss`` so that a trainer can
swap them through a config group (``_partial_: true`` nodes; the settings are
static, the call may sit inside ``jax.jit`` and ``jax.grad``). ``key`` is only
used by :func:`sliced_loss` (its random directions).

The losses:

- :func:`ipot_loss`: ``<C, P>`` for the plan ``P`` of :func:`ot_jax.ipot`
  (inexact proximal point). IPOT converges to an *exact* optimal plan, so the
  value converges to the minibatch OT cost ``W_c(x, y)`` (the LP value).
- :func:`sinkhorn_loss`: the plan ``P_eps`` of :func:`ot_jax.sinkhorn`, with
  ``objective="primal"`` giving ``<C, P_eps>`` (what the thesis trains with),
  ``objective="regularised"`` giving ``<C, P_eps> + eps KL(P_eps | a b^T)``, and
  ``objective="divergence"`` the debiased Sinkhorn divergence
  (:func:`ot_jax.sinkhorn_divergence`, Genevay et al. 2018; Feydy et al. 2019).
- :func:`exact_loss`: the exact minibatch OT cost, by the Hungarian method or the
  auction (equal sizes: with uniform weights the optimal plan is a permutation,
  Birkhoff) or by the LP (``method="lp"``: :func:`ot_jax.emd`, the network simplex on the host,
  any sizes). The trainers' adapter of :func:`ot_jax.losses.point_cloud.exact_loss`
  (same computation, same method names).
- :func:`sliced_loss`: ``SW_p^p``, the mean over random directions ``theta`` of the
  exact 1-D cost ``W_p^p(theta#x, theta#y)`` (sorting), with ``p = 2`` for
  :class:`~ot_jax.SqEuclidean` and ``p = 1`` for :class:`~ot_jax.Euclidean`.

Gradients (envelope theorem). The OT value ``W(C) = min_P <C, P>`` is a minimum
of linear functions of the cost matrix ``C``, so where the optimal plan is unique
``dW/dC = P*`` (Danskin): the gradient with respect to a generated point is
``dW/dy_j = sum_i P*_ij grad_y c(x_i, y_j)``, obtained with the plan held fixed and
no backpropagation through the solver. This is exact for :func:`exact_loss`, for
a converged :func:`ipot_loss` (its plan is the exact plan) and for the
regularised Sinkhorn objective (a minimum too). For the Sinkhorn *primal*
objective ``<C, P_eps(C)>`` the envelope gradient is only the gradient through
the plan's cost with ``P_eps`` held fixed (``P_eps`` does not minimise ``<C, P>``);
that is what the thesis trains with (``grad_mode="envelope"``). The default,
``grad_mode="implicit"``, gives the true gradient of the value by implicit
differentiation of the Sinkhorn optimality conditions (one adjoint solve, memory of
the forward pass); ``grad_mode="unroll"`` backpropagates through the iterations
(the same gradient; memory grows with ``max_iters``).

Shrinkage (the thesis' claim). As ``eps -> infinity`` the Sinkhorn plan tends to
``a b^T = 1 1^T / (n m)``, and with the squared Euclidean cost the primal loss
tends to ``(1/(n m)) sum_ij |x_i - y_j|^2 = |mean x - mean y|^2 + var x + var y``,
which is minimised by collapsing every ``y_j`` onto the data mean: zero variance.
At finite ``eps`` the envelope gradient pulls ``y_j`` toward the barycentric
projection ``m sum_i P_ij x_i``, a local *average* of the data, so the generated
law shrinks toward the mean. IPOT converges to the exact plan (a permutation for
equal batch sizes), whose fixed point is ``y_j = x_sigma(j)``: no shrinkage.

Health. Every loss returns a :class:`MinibatchLoss` carrying its solver's
``status`` (a :class:`~ot_jax.Status`) and ``converged`` (``status == CONVERGED``);
``throw=True`` raises a readable error (also inside ``jit``) on a bad status.

Shapes: ``x: [n, d]``, ``y: [m, d]``; every field of :class:`MinibatchLoss` is a scalar.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from ot_jax.geometry import CostFn, Euclidean, PointCloud, SqEuclidean
from ot_jax.losses import _exact
from ot_jax.solvers import (Status, ipot, raise_on_status, result_repr, sinkhorn, sinkhorn_divergence,
                            sliced_wasserstein)

__all__ = ["MinibatchLoss", "ipot_loss", "sinkhorn_loss", "exact_loss", "sliced_loss"]

_OBJECTIVES = ("primal", "regularised", "divergence")
_EXACT_METHODS = _exact.ASSIGNMENT_METHODS + ("lp",)


class MinibatchLoss(NamedTuple):
    """Output of a minibatch OT loss (a pytree: it can leave ``jit`` and be a ``has_aux`` output).

    Attributes:
      value: scalar loss, differentiable in ``x`` and ``y``.
      status: scalar int32, the solver's :class:`~ot_jax.Status` (``CONVERGED``
        always for the sliced loss).
      converged: scalar bool, ``status == Status.CONVERGED``: the solver met its
        tolerance (IPOT, Sinkhorn) or solved its problem (exact; False e.g. when
        the auction hits its round cap).
      n_iters: scalar int32: solver iterations (IPOT proximal steps, Sinkhorn
        sweeps, auction rounds or Hungarian steps, simplex iterations); 0 for the
        sliced loss.
    """

    value: jax.Array
    status: jax.Array
    converged: jax.Array
    n_iters: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("value", "status", "n_iters"))


def _check_points(x, y, fn: str):
    """``x: [n, d]``, ``y: [m, d]`` as arrays; shape errors (static) raise here.

    Empty batches and (concrete) NaN/inf points are rejected by the solvers themselves.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    for name, v in (("x", x), ("y", y)):
        if v.ndim != 2:
            raise ValueError(f"{fn}: {name} must be a 2-D array of points [n, d], got shape {tuple(v.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{fn}: x has dimension d = {x.shape[1]} but y has d = {y.shape[1]}; they must match")
    return x, y


def _check_static_positive(value, name: str, fn: str):
    """Reject a bad Python-number setting even under ``jit`` (where the solvers only flag it)."""
    if isinstance(value, numbers.Real) and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value}")


def _loss(value, status, n_iters, *, throw: bool, fn: str, parameter: str | None = None) -> MinibatchLoss:
    status = jnp.asarray(status, jnp.int32)
    out = MinibatchLoss(value=value, status=status, converged=status == Status.CONVERGED,
                        n_iters=jnp.asarray(n_iters, jnp.int32))
    return raise_on_status(out, fn, parameter, field="value") if throw else out


def ipot_loss(
    key,
    x,
    y,
    *,
    cost: CostFn = SqEuclidean(),
    beta=None,
    max_iters: int = 200,
    tol: float | None = None,
    check_every: int = 10,
    grad_mode: Literal["envelope", "unroll"] = "envelope",
    throw: bool = False,
) -> MinibatchLoss:
    """Primal cost ``<C, P>`` of the IPOT plan: converges to the exact minibatch OT cost.

    Args:
      key: unused (uniform signature with :func:`sliced_loss`).
      x: ``[n, d]`` data batch; y: ``[m, d]`` generated batch (uniform weights).
      cost: ground cost ``c(x_i, y_j)`` (a :class:`~ot_jax.CostFn` or a function of two points).
      beta: proximal step in cost units (None: ``0.01 x max C``, the solver default).
      max_iters: proximal steps cap (static); tol: stopping tolerance on the
        certified relative gap (None: the solver default, 1e-4 in float64, 1e-3
        in float32); check_every: steps per check (static).
      grad_mode: ``"envelope"`` (default; ``d/dC = P``, the gradient of the exact
        OT value once converged) or ``"unroll"`` (backpropagate through the steps);
        :data:`ot_jax.solvers._entropic.GRAD_MODES`.
      throw: raise (also inside ``jit``) on a bad status.

    Returns:
      :class:`MinibatchLoss` with ``value = <C, P>`` (scalar), IPOT's ``status``,
      ``converged`` and ``n_iters``.

    Examples:
        >>> import jax, ot_jax, ot_jax.losses.minibatch
        >>> x = jax.random.uniform(jax.random.PRNGKey(0), (32, 2))
        >>> y = jax.random.uniform(jax.random.PRNGKey(1), (32, 2))
        >>> out = ot_jax.losses.minibatch.ipot_loss(None, x, y, tol=1e-3, max_iters=1000)
        >>> exact = ot_jax.losses.minibatch.exact_loss(None, x, y)
        >>> bool(out.converged), bool(abs(out.value - exact.value) < 1e-3 * exact.value)
        (True, True)
    """
    fn = "ipot_loss"
    x, y = _check_points(x, y, fn)
    if beta is not None:
        _check_static_positive(beta, "beta", fn)
    out = ipot(PointCloud(x, y, cost_fn=cost), beta=beta, max_iters=max_iters, tol=tol,
               check_every=check_every, grad_mode=grad_mode)
    return _loss(out.cost, out.status, out.n_iters, throw=throw, fn=fn, parameter="beta")


def sinkhorn_loss(
    key,
    x,
    y,
    *,
    cost: CostFn = SqEuclidean(),
    epsilon,
    relative_epsilon: bool = False,
    max_iters: int = 500,
    tol: float = 1e-4,
    objective: Literal["primal", "regularised", "divergence"] = "primal",
    grad_mode: Literal["implicit", "envelope", "unroll"] = "implicit",
    throw: bool = False,
) -> MinibatchLoss:
    """Entropic minibatch OT loss from the Sinkhorn plan ``P_eps``, or the Sinkhorn divergence.

    Args:
      key: unused (uniform signature with :func:`sliced_loss`).
      x: ``[n, d]`` data batch; y: ``[m, d]`` generated batch (uniform weights).
      cost: ground cost ``c(x_i, y_j)``.
      epsilon: regularisation > 0 (times the mean cost if ``relative_epsilon``).
      max_iters: Sinkhorn sweeps cap (static); tol: relative L1 marginal error.
      objective: ``"primal"`` (default, the thesis' loss): ``<C, P_eps>``, biased
        upward and, for large ``eps``, shrinking the generated law (module docstring);
        ``"regularised"``: ``<C, P_eps> + eps KL(P_eps | a b^T)``; ``"divergence"``: the
        debiased ``OT_eps(x, y) - OT_eps(x, x) / 2 - OT_eps(y, y) / 2``
        (:func:`ot_jax.sinkhorn_divergence`; zero at ``y = x``, no shrinkage bias).
      grad_mode: ``"implicit"`` (default): the exact gradient of either objective
        (implicit function theorem); ``"envelope"``: exact for ``"regularised"``
        (Danskin), the plan-fixed gradient ``d/dC = P_eps`` for ``"primal"`` (what the
        thesis trains with; not the derivative of the value); ``"unroll"``:
        backpropagate through the sweeps (exact for both);
        :data:`ot_jax.solvers._entropic.GRAD_MODES`.
      throw: raise (also inside ``jit``) on a bad status.

    Returns:
      :class:`MinibatchLoss` with the scalar value, Sinkhorn's ``status``, ``converged`` and ``n_iters``.

    Examples:
        >>> import jax, ot_jax.losses.minibatch
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
        >>> out = ot_jax.losses.minibatch.sinkhorn_loss(None, x, x, epsilon=1.0, relative_epsilon=True)
        >>> bool(out.converged), bool(out.value > 0.5)  # even y = x is far from 0: the blurred plan
        (True, True)
    """
    fn = "sinkhorn_loss"
    if objective not in _OBJECTIVES:
        raise ValueError(f"{fn}: unknown objective {objective!r}; choose one of {', '.join(map(repr, _OBJECTIVES))}")
    x, y = _check_points(x, y, fn)
    _check_static_positive(epsilon, "epsilon", fn)
    geom = PointCloud(x, y, cost_fn=cost)
    if objective == "divergence":
        eps = epsilon * jax.lax.stop_gradient(geom.mean_cost()) if relative_epsilon else epsilon
        div = sinkhorn_divergence(geom, epsilon=eps, max_iters=max_iters, tol=tol, grad_mode=grad_mode)
        return _loss(div.divergence, div.status, div.xy.n_iters, throw=throw, fn=fn, parameter="epsilon")
    out = sinkhorn(geom, epsilon=epsilon, relative_epsilon=relative_epsilon, max_iters=max_iters, tol=tol,
                   grad_mode=grad_mode)
    value = out.cost if objective == "primal" else out.reg_cost
    return _loss(value, out.status, out.n_iters, throw=throw, fn=fn, parameter="epsilon")


def exact_loss(
    key,
    x,
    y,
    *,
    cost: CostFn = SqEuclidean(),
    method: Literal["hungarian", "auction", "lp"] = "hungarian",
    throw: bool = False,
) -> MinibatchLoss:
    """Exact minibatch OT cost ``W_c(x, y) = min_P <C, P>`` (uniform weights).

    Args:
      key: unused (uniform signature with :func:`sliced_loss`).
      x: ``[n, d]`` data batch; y: ``[m, d]`` generated batch.
      cost: ground cost ``c(x_i, y_j)``.
      method: ``"hungarian"`` (exact) or ``"auction"`` (within ``1e-7 (max C - min C)``):
        :func:`ot_jax.assignment` on the ``[n, n]`` cost matrix, value
        ``assignment cost / n``; they need ``n == m``. ``"lp"``: :func:`ot_jax.emd`
        (network simplex on the host through a callback, any ``n``, ``m``).
        The same names as :func:`ot_jax.losses.point_cloud.exact_loss`, which
        computes the same value (it is this loss without the trainer signature).
      throw: raise (also inside ``jit``) on a bad status.

    Returns:
      :class:`MinibatchLoss`: the scalar value (gradient by the envelope theorem,
      the optimal matching or plan held fixed), the solver's ``status``,
      ``converged`` and ``n_iters``.

    Raises:
      ValueError: unknown method, ``n != m`` with an assignment method, bad shapes.

    Examples:
        >>> import jax.numpy as jnp, ot_jax.losses.minibatch
        >>> x, y = jnp.array([[0.0], [1.0]]), jnp.array([[1.5], [0.0]])
        >>> float(ot_jax.losses.minibatch.exact_loss(None, x, y).value)  # (0^2 + 0.5^2) / 2
        0.125
    """
    fn = "exact_loss"
    _exact.check_method(method, _EXACT_METHODS, fn)
    x, y = _check_points(x, y, fn)
    _exact.check_sizes(method, x.shape[0], y.shape[0], fn)
    value, status, n_iters = _exact.exact_cost(x, y, cost_fn=cost, method=method)
    return _loss(value, status, n_iters, throw=throw, fn=fn, parameter=_exact.PARAMETERS[method])


def sliced_loss(
    key,
    x,
    y,
    *,
    cost: CostFn = SqEuclidean(),
    n_projections: int = 50,
    throw: bool = False,
) -> MinibatchLoss:
    """Sliced Wasserstein loss ``SW_p^p = mean_theta W_p^p(theta#x, theta#y)`` (Deshpande et al. 2018).

    Args:
      key: ``jax.random`` key for the ``n_projections`` directions (uniform on the sphere).
      x: ``[n, d]`` data batch; y: ``[m, d]`` generated batch (uniform weights).
      cost: :class:`~ot_jax.SqEuclidean` (``p = 2``) or :class:`~ot_jax.Euclidean` (``p = 1``).
      n_projections: number of random directions (static, >= 1).
      throw: accepted for the uniform signature; the sliced loss has no iterations
        and cannot fail (``status = CONVERGED``).

    Returns:
      :class:`MinibatchLoss`: scalar ``SW_p^p`` (differentiable through the sorts),
      ``status = CONVERGED``, ``converged = True``, ``n_iters = 0``.

    Raises:
      ValueError: any other cost, bad shapes, empty batches, ``n_projections < 1``.
    """
    fn = "sliced_loss"
    if isinstance(cost, SqEuclidean):
        p = 2.0
    elif isinstance(cost, Euclidean):
        p = 1.0
    else:
        raise ValueError(f"{fn}: cost must be ot_jax.SqEuclidean() (SW_2^2) or ot_jax.Euclidean() (SW_1), "
                         f"got {cost!r}")
    value = sliced_wasserstein(key, x, y, n_projections=n_projections, p=p) ** p
    return _loss(value, Status.CONVERGED, 0, throw=throw, fn=fn)
