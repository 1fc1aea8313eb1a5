"""ROBOT for tracking without identities: the dynamics of objects fitted from detections whose
identities are lost (Xie et al. 2021's hypergradient, one block per pair of frames).

The detections ``[T, K, 2]`` (:func:`ot_jax.data.tracking.moving_objects`) give ``T - 1``
blocks: inputs ``x_t = detections[t]``, responses ``y_t = detections[t + 1]``, the pairing
unknown. :func:`tracking_loss` is the mean over frame pairs of ROBOT's objective
``<C_t(A), S_t*(A)>`` with ``C_t[i, j] = ||[x_t[i], 1] A - y_t[j]||^2`` for the affine
dynamics ``A: [3, 2]`` (:func:`ot_jax.losses.robot.robot_loss`, one Sinkhorn problem per
frame pair under ``vmap``); :func:`fit_dynamics` descends it with Adam, annealing ε stage by
stage. The links, their scores and the AltMin tracker: :mod:`ot_jax.tools.tracking`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ot_jax.losses.robot import residual_cost, robot_loss
from ot_jax.tools.tracking import affine, identity_dynamics

__all__ = ["tracking_loss", "fit_dynamics"]


def tracking_loss(dynamics, detections, *, epsilon: float, relative_epsilon: bool = True,
                  grad_mode: str = "implicit", tol: float = 1e-5, max_iters: int = 2000) -> jax.Array:
    """Mean over the ``T - 1`` frame pairs of ROBOT's objective (module docstring).

    Args:
      dynamics: ``[3, 2]`` the affine map, ``x_{t+1} = [x_t, 1] @ dynamics``.
      detections: ``[T, K, 2]``.
      epsilon: the entropic weight; with ``relative_epsilon`` (default) a multiple of each frame
        pair's mean cost, held constant by the gradient (as in
        :func:`ot_jax.losses.robot.robot_loss`, whose ``grad_mode``, ``tol`` and ``max_iters``
        these are), so the gradient is the exact one of the loss at a fixed absolute ε.
    """
    detections = jnp.asarray(detections)

    def one(x, y):
        value, _ = robot_loss(residual_cost(affine(dynamics, x), y), epsilon=epsilon, relative_epsilon=relative_epsilon,
                              grad_mode=grad_mode, tol=tol, max_iters=max_iters)
        return value

    return jnp.mean(jax.vmap(one)(detections[:-1], detections[1:]))


def fit_dynamics(detections, *, epsilons=(1e-1, 1e-2), steps: int = 200, learning_rate: float = 1e-2,
                 grad_mode: str = "implicit", dynamics0=None, tol: float = 1e-5,
                 max_iters: int = 2000) -> tuple[jax.Array, list[float]]:
    """ROBOT's fit of the dynamics: ``steps`` Adam steps of :func:`tracking_loss` at each of
    ``epsilons`` in turn, from ``dynamics0`` (default: no motion).

    Args:
      detections: ``[T, K, 2]``.

    Returns:
      ``(dynamics [3, 2], losses)``: the fitted map and the objective at the last step of each stage.
    """
    detections = jnp.asarray(detections)
    params = identity_dynamics(detections.dtype) if dynamics0 is None else jnp.asarray(dynamics0, detections.dtype)
    opt = optax.adam(learning_rate)
    losses = []
    for epsilon in epsilons:
        def loss(a, epsilon=epsilon):
            return tracking_loss(a, detections, epsilon=epsilon, grad_mode=grad_mode, tol=tol, max_iters=max_iters)

        @jax.jit
        def run(a, state):
            def body(carry, _):
                a, state = carry
                value, grad = jax.value_and_grad(loss)(a)
                updates, state = opt.update(grad, state, a)
                return (optax.apply_updates(a, updates), state), value
            (a, state), values = jax.lax.scan(body, (a, state), None, length=steps)
            return a, values

        params, values = run(params, opt.init(params))
        losses.append(float(values[-1]))
    return params, losses
