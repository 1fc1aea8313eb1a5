"""Adversarial objectives: the WGAN critic (Arjovsky et al. 2017; slides' Algorithm 1),
its two Lipschitz constraints, and the standard GAN discriminator it is compared with.

Pure functions of a critic ``f: [n, d] -> [n]`` (any callable, e.g. an
:class:`ot_jax.nn.Critic` without spectral normalisation) and of parameter pytrees:

* :func:`critic_objective` ``E f(real) - E f(fake)``: the critic ascends it, the
  generator descends ``-E f(g(z))``. For a 1-Lipschitz ``f`` its supremum is the
  Kantorovich–Rubinstein dual of ``W_1(real, fake)``.
* :func:`clip_weights`: the original constraint, every weight in ``[-c, c]``. It makes
  ``f`` K-Lipschitz for some unknown K, so the critic estimates ``K W_1``.
* :func:`gradient_penalty` (Gulrajani et al. 2017): ``E (|∇f(x̂)| - 1)^2`` on random
  interpolates ``x̂``; with it the critic estimates ``W_1`` itself.
* :func:`discriminator_loss`: the minimax GAN's binary cross-entropy on logits.
* :func:`critic_loss` and :func:`critic_step`: the one WGAN critic update shared by
  the WGAN trainer and the critic-alone experiment: the gradient of
  ``-(E f(real) - E f(fake)) + penalty * gradient_penalty``, an optax update, then
  the clipping (when ``clip`` is set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["critic_objective", "clip_weights", "gradient_penalty", "discriminator_loss", "max_abs_weight",
           "critic_loss", "critic_step", "CriticStep"]


def _check_pair(real: jax.Array, fake: jax.Array, fn: str) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"{fn}: real and fake must be [n, d] and [m, d], got {real.shape} and {fake.shape}")
    if real.shape[0] == 0 or fake.shape[0] == 0:
        raise ValueError(f"{fn}: empty batch ({real.shape[0]} real, {fake.shape[0]} fake samples)")


def critic_objective(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array) -> jax.Array:
    """``E f(real) - E f(fake)`` (scalar), the WGAN critic's objective (maximised).

    Args:
      critic: ``f: [n, d] -> [n]``.
      real: ``[n, d]`` data samples; fake: ``[m, d]`` generated samples.
    """
    _check_pair(real, fake, "critic_objective")
    return jnp.mean(critic(real)) - jnp.mean(critic(fake))


def clip_weights(params, clip: float):
    """Every leaf of ``params`` clipped to ``[-clip, clip]`` (WGAN's weight clipping, c = 0.01)."""
    if not clip > 0:
        raise ValueError(f"clip_weights: clip must be > 0, got {clip}")
    return jax.tree.map(lambda w: jnp.clip(w, -clip, clip), params)


def max_abs_weight(params) -> jax.Array:
    """``max |w|`` over every leaf of ``params`` (scalar; what weight clipping bounds)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(w)) for w in jax.tree.leaves(params)]))


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
    """WGAN-GP's ``E (|∇f(x̂)|_2 - 1)^2`` at ``x̂ = u real + (1 - u) fake``, ``u ~ U[0, 1]`` per pair.

    Args:
      critic: ``f: [n, d] -> [n]`` (applied row-wise: row i's output depends on row i only).
      real, fake: ``[n, d]`` paired batches (same size).
      key: PRNG key of the interpolation weights.
    """
    _check_pair(real, fake, "gradient_penalty")
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real and fake batches must have the same shape, "
                         f"got {real.shape} and {fake.shape}")
    u = jax.random.uniform(key, (real.shape[0], 1), real.dtype)
    points = u * real + (1.0 - u) * fake
    grads = jax.grad(lambda p: jnp.sum(critic(p)))(points)  # rows are independent: row i is ∇f(x̂_i)
    norms = jnp.sqrt(jnp.sum(grads * grads, axis=1) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


def discriminator_loss(logits_real: jax.Array, logits_fake: jax.Array) -> jax.Array:
    """Minimax GAN discriminator loss ``-E log D(real) - E log(1 - D(fake))``, ``D = sigmoid(logit)``.

    Its minimiser is ``D*(x) = p_real(x) / (p_real(x) + p_fake(x))`` (Goodfellow et al. 2014).
    """
    return jnp.mean(jax.nn.softplus(-logits_real)) + jnp.mean(jax.nn.softplus(logits_fake))


def critic_loss(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                key: jax.Array | None = None, *, penalty: float = 0.0) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The loss a WGAN critic descends: ``-(E f(real) - E f(fake)) + penalty * E (|∇f(x̂)| - 1)^2``.

    Args:
      critic: ``f: [n, d] -> [n]``.
      real: ``[n, d]`` data samples; fake: ``[n, d]`` generated samples (same size when ``penalty > 0``).
      key: PRNG key of the penalty's interpolates (needed when ``penalty > 0``).
      penalty: WGAN-GP weight ``lambda`` (static; ``0``: no penalty, e.g. with clipping).

    Returns:
      ``(loss, (objective, gp))``: scalars; ``objective = E f(real) - E f(fake)``
      and ``gp`` the unweighted penalty (0 without one). A ``has_aux`` loss.
    """
    if not penalty >= 0:
        raise ValueError(f"critic_loss: penalty must be >= 0, got {penalty}")
    objective = critic_objective(critic, real, fake)
    if penalty > 0:
        if key is None:
            raise ValueError("critic_loss: penalty > 0 needs a key for the interpolates")
        gp = gradient_penalty(critic, real, fake, key)
    else:
        gp = jnp.zeros((), objective.dtype)
    return -objective + penalty * gp, (objective, gp)


class CriticStep(NamedTuple):
    """Output of :func:`critic_step`: the new ``params`` and ``opt_state``, and the
    step's scalar ``objective`` ``E f(real) - E f(fake)`` and unweighted ``penalty``."""

    params: Any
    opt_state: Any
    objective: jax.Array
    penalty: jax.Array


def critic_step(params, opt_state, real: jax.Array, fake: jax.Array, key: jax.Array | None = None, *,
                critic_fn: Callable[[Any], Callable[[jax.Array], jax.Array]],
                tx: optax.GradientTransformation, penalty: float = 0.0, clip: float | None = None) -> CriticStep:
    """One WGAN critic ascent step (slides' Algorithm 1; Gulrajani et al. 2017 with ``penalty``).

    Descends :func:`critic_loss` with ``tx``, then clips every weight to
    ``[-clip, clip]`` when ``clip`` is set. Pure: use it under ``jit``/``scan``.

    Args:
      params: the critic's parameter pytree; opt_state: ``tx``'s state for it.
      real: ``[n, d]`` data batch; fake: ``[n, d]`` generated batch (held fixed).
      key: PRNG key of the penalty (needed when ``penalty > 0``).
      critic_fn: ``params -> f`` with ``f: [n, d] -> [n]``.
      tx: the critic's optax optimiser.
      penalty: WGAN-GP weight (static, ``>= 0``).
      clip: weight-clipping bound ``c > 0``, or None.

    Returns:
      :class:`CriticStep`.

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from ot_jax.losses.adversarial import critic_step
        >>> fn = lambda w: (lambda x: x @ w)  # a linear critic f(x) = <w, x>
        >>> tx = optax.sgd(1.0)
        >>> real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))
        >>> out = critic_step(jnp.zeros(2), tx.init(jnp.zeros(2)), real, fake, critic_fn=fn, tx=tx, clip=0.5)
        >>> out.params.tolist(), float(out.objective)
        ([0.5, 0.5], 0.0)
    """
    if clip is not None and not clip > 0:
        raise ValueError(f"critic_step: clip must be > 0 (or None for no clipping), got {clip}")

    def loss(p):
        return critic_loss(critic_fn(p), real, fake, key, penalty=penalty)

    grads, (objective, gp) = jax.grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if clip is not None:
        params = clip_weights(params, clip)
    return CriticStep(params, opt_state, objective, gp)
