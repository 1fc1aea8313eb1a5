"""Anderson acceleration of a fixed-point map ``x -> F(x)`` (Anderson 1965; Walker & Ni 2011).

Keep the last ``M`` inputs ``x_k`` and outputs ``F(x_k)``; the next iterate is the
combination ``sum_k alpha_k F(x_k)`` whose residuals ``r_k = F(x_k) - x_k`` mix to the
smallest norm, ``min |sum_k alpha_k r_k|`` subject to ``sum_k alpha_k = 1`` (a ridge of
``ridge * trace / M`` keeps the ``M x M`` system well posed). Mixing pauses while the error is
near the rounding floor of the potentials (:func:`update_activity`). For Sinkhorn the map is one
full iteration on the column potential ``g`` (Chizat et al.'s and OTT-JAX's choice); it
commutes with adding a constant, as any affine combination does. Entries outside ``live``
(zero weights, potential ``-inf``) are left out of the residuals and keep ``F(x)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["AndersonHistory", "init_history", "push", "mix", "update_activity"]

RIDGE = {32: 1e-3, 64: 1e-6}  # by float width, relative to the mean squared residual
FLOOR_FACTOR = 1.0


class AndersonHistory(NamedTuple):
    inputs: jax.Array  # [M, m] last M inputs x_k (0 off live entries)
    outputs: jax.Array  # [M, m] their images F(x_k)
    count: jax.Array  # scalar int: pairs pushed so far
    active: jax.Array  # scalar bool: mix (False once the error is down at the rounding floor)


def init_history(memory: int, size: int, dtype) -> AndersonHistory:
    zeros = jnp.zeros((memory, size), dtype)
    return AndersonHistory(zeros, zeros, jnp.zeros((), jnp.int32), jnp.ones((), bool))


def push(history: AndersonHistory, x, fx, live) -> AndersonHistory:
    """Record the pair ``(x, F(x))`` (``[m]`` each) in the oldest slot."""
    slot = history.count % history.inputs.shape[0]
    x, fx = jnp.where(live, x, 0.0), jnp.where(live, fx, 0.0)
    return history._replace(inputs=history.inputs.at[slot].set(x), outputs=history.outputs.at[slot].set(fx),
                            count=history.count + 1)


def update_activity(history: AndersonHistory, error, x, live, eps) -> AndersonHistory:
    """Keep mixing while the marginal ``error`` is above ``FLOOR_FACTOR`` times the error that
    rounding the potential ``x: [m]`` alone causes, ``max |x| * machine epsilon / eps``. Below
    that level the combination's weights amplify the rounding of the recorded potentials (in
    float32 at small ``eps`` it would stall); the plain iteration continues from there."""
    size = jnp.max(jnp.where(live, jnp.abs(x), 0.0))
    floor = size * jnp.finfo(x.dtype).eps / eps
    return history._replace(active=error > FLOOR_FACTOR * floor)


def mix(history: AndersonHistory, fx, live):
    """The Anderson combination of the recorded outputs, or ``fx`` while the memory is not full
    or when the combination is not finite. ``fx: [m]`` is the latest output (already pushed)."""
    memory = history.inputs.shape[0]
    residuals = history.outputs - history.inputs  # [M, m]
    gram = residuals @ residuals.T
    scale = jnp.trace(gram) / memory
    gram = gram + RIDGE[jnp.finfo(gram.dtype).bits] * jnp.maximum(scale, jnp.finfo(gram.dtype).tiny) * jnp.eye(memory, dtype=gram.dtype)
    weights = jnp.linalg.solve(gram, jnp.ones(memory, gram.dtype))
    alpha = weights / jnp.sum(weights)
    # sum_k alpha_k F_k written as fx + sum_k alpha_k (F_k - fx): small differences, no cancellation
    mixed = fx + alpha @ (history.outputs - jnp.where(live, fx, 0.0)[None, :])
    ok = history.active & (history.count >= memory) & jnp.all(jnp.isfinite(alpha)) & jnp.all(jnp.isfinite(mixed))
    return jnp.where(live & ok, mixed, fx)
