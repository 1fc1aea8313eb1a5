"""WGAN trainer (Arjovsky et al. 2017, the slides' Algorithm 1) and WGAN-GP
(Gulrajani et al. 2017) on the shared loop.

One training step = ``n_critic`` critic ascent steps on
:func:`ot_jax.losses.adversarial.critic_objective` ``E f(x) - E f(g(z))``, each followed by the
Lipschitz constraint, then one generator descent step on ``-E f(g(z))``. The
constraint is weight clipping to ``[-clip, clip]`` (Algorithm 1: RMSProp,
α = 5e-5, c = 0.01, m = 64, n_critic = 5; ``trainer=wgan``), a gradient penalty
``gradient_penalty * E (|∇f(x̂)| - 1)^2`` (``trainer=wgan_gp``, clip null), or a
spectral-normalised critic (``critic.spectral_norm=true``, clip null).

The state is :class:`train.common.AdversarialState` with one critic; the evaluation, snapshots
and figures are :class:`train.generative.GeneratorRun`'s.

``python -m train experiment=wgan_mixture``
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ot_jax.losses.adversarial import clip_weights, critic_step, max_abs_weight
from ot_jax.nn import SpectralVector, power_iteration
from train.data import Marginals
from train.generative import GeneratorRun
from train.loop import Trainer
from train.common import AdversarialState, ema_update, lr_decay_schedule, make_models

__all__ = ["build"]


def build(*, data: Marginals, model: Callable, critic: Callable, optimizer: optax.GradientTransformation,
          seed: int, output_dir: str, n_critic: int = 5, batch_size: int = 64, clip: float | None = 0.01,
          gradient_penalty: float = 0.0, critic_lr_scale: float = 1.0, latent: str = "uniform",
          ema_decay: float = 0.0, lr_decay: str = "none", decay_steps: int = 1, final_lr_fraction: float = 0.01,
          eval_samples: int = 2000, w2_samples: int = 500, snapshot_samples: int = 500,
          probe: Callable | None = None, heldout: Callable | None = None) -> Trainer:
    """The WGAN trainer.

    Args:
      data: one data law (:class:`train.data.Marginals` with one sampler).
      model: partial generator constructor (``ot_jax.nn.Generator``).
      critic: partial critic constructor (``ot_jax.nn.Critic``, ``spectral_norm: false``
        for clipping or the penalty).
      optimizer: optax transformation of both networks (Algorithm 1: RMSProp 5e-5).
      seed, output_dir: the run's seed and directory.
      n_critic: critic steps per generator step.
      batch_size: m, data and generated points per critic and generator step.
      clip: weight clipping bound c (None: no clipping).
      gradient_penalty: weight of the WGAN-GP penalty (0: none).
      critic_lr_scale: the critic's optimiser is ``optimizer`` followed by this scale.
      latent, ema_decay, lr_decay, decay_steps, final_lr_fraction, eval_samples,
        w2_samples, snapshot_samples, probe, heldout: as in :func:`train.minibatch_ot.build`.

    Returns:
      a :class:`train.loop.Trainer`; step metrics ``critic_objective`` (the critic's
      estimate of K W_1 on the last critic batch), ``generator_loss``, ``penalty`` and
      ``max_abs_weight`` (≤ clip when clipping).
    """
    if n_critic < 1 or batch_size < 2:
        raise ValueError(f"need n_critic >= 1 and batch_size >= 2, got {n_critic}, {batch_size}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (or null for no clipping), got {clip}")
    if not gradient_penalty >= 0:
        raise ValueError(f"gradient_penalty must be >= 0, got {gradient_penalty}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    run = GeneratorRun.create(data=data, model=model, seed=seed, latent=latent, probe=probe, heldout=heldout,
                              eval_samples=eval_samples, w2_samples=w2_samples, snapshot_samples=snapshot_samples)
    abstract = nnx.eval_shape(lambda: make_models(data, model, critic, jax.random.PRNGKey(0))[1])
    crit_def = nnx.graphdef(abstract)
    spectral = bool(jax.tree.leaves(nnx.state(abstract, SpectralVector)))
    if clip is None and gradient_penalty == 0 and not spectral:
        raise ValueError("the WGAN critic needs a Lipschitz constraint: set clip (WGAN), gradient_penalty "
                         "(WGAN-GP) or use a spectral-normalised critic")
    generator_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps, final_lr_fraction))
    critic_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps * n_critic, final_lr_fraction),
                            optax.scale(critic_lr_scale))

    def init(key) -> AdversarialState:
        generator, critics = make_models(data, model, critic, key)
        _, g_params, g_rest = nnx.split(generator, nnx.Param, ...)
        _, c_params, c_rest = nnx.split(critics, nnx.Param, ...)
        if clip is not None:
            c_params = clip_weights(c_params, clip)
        return AdversarialState(g_params, g_rest, c_params, c_rest, generator_tx.init(g_params), critic_tx.init(c_params),
                         g_params)

    def critic_fn(c_params, c_rest):
        return nnx.merge(crit_def, c_params, c_rest)[0]

    def critic_update(state: AdversarialState, key):
        kx, kz, kp = jax.random.split(key, 3)
        c_rest = state.critics_rest
        if spectral:
            critics = nnx.merge(crit_def, state.critics, c_rest)
            power_iteration(critics)
            c_rest = nnx.split(critics, nnx.Param, ...)[2]
        real = run.data_batch(kx, batch_size)
        fake = jax.lax.stop_gradient(run.sample(state.generator, state.generator_rest, kz, batch_size))

        out = critic_step(state.critics, state.critics_opt, real, fake, kp,
                          critic_fn=lambda p: critic_fn(p, c_rest), tx=critic_tx, penalty=gradient_penalty, clip=clip)
        return state._replace(critics=out.params, critics_rest=c_rest, critics_opt=out.opt_state), (
            out.objective, out.penalty)

    def step(state: AdversarialState, key):
        kc, kz = jax.random.split(key)
        state, (values, pens) = jax.lax.scan(critic_update, state, jax.random.split(kc, n_critic))
        f = critic_fn(state.critics, state.critics_rest)

        def generator_loss(g_params):
            return -jnp.mean(f(run.sample(g_params, state.generator_rest, kz, batch_size)))

        value, grads = jax.value_and_grad(generator_loss)(state.generator)
        updates, opt = generator_tx.update(grads, state.generator_opt, state.generator)
        params = optax.apply_updates(state.generator, updates)
        ema = ema_update(state.generator_ema, params, ema_decay)
        state = state._replace(generator=params, generator_opt=opt, generator_ema=ema)
        metrics = {"critic_objective": values[-1], "generator_loss": value, "penalty": pens[-1],
                   "max_abs_weight": max_abs_weight(state.critics)}
        return state, metrics

    method = "WGAN" if clip is not None else ("WGAN-GP" if gradient_penalty > 0 else "SN-WGAN")
    return run.trainer(init, step, method)
