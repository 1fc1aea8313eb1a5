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
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["critic_objective", "clip_weights", "gradient_penalty", "discriminator_loss", "max_abs_weight"]


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
