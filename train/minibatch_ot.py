"""Generators trained directly with a minibatch OT loss (thesis §2.4.3; Deshpande et
al. 2018 for the sliced loss): no critic.

One step draws a data batch ``x [b, d]`` and a generated batch ``g(z) [b, d]`` and
descends ``loss(key, x, g(z), cost=cost).value``. The loss is a config group
(``loss/ipot``, ``loss/sinkhorn``, ``loss/sinkhorn_divergence``, ``loss/emd``, ``loss/sliced``: the
functions of :mod:`ot_jax.losses.minibatch`), differentiated by the envelope theorem
(through the plan's cost with the plan held fixed) unless the loss config asks
to unroll. The thesis' claim, measured by the evaluations of
:class:`train.generative.GeneratorRun`: with Sinkhorn at moderate ε the generated
law shrinks toward the data mean; with IPOT (exact OT) it covers the support.

``python -m train experiment=generator_mixture loss=sinkhorn loss.epsilon=0.1``
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from train.data import Marginals
from train.generative import GeneratorRun
from train.loop import Trainer
from train.common import data_mesh, ema_update, lr_decay_schedule, shard_batch

__all__ = ["build", "GeneratorState"]


class GeneratorState(NamedTuple):
    """The training state (a pytree of arrays; what Orbax checkpoints)."""

    generator: Any  # nnx.State of the generator's nnx.Param
    generator_rest: Any  # its other variables
    generator_opt: Any  # optax state
    generator_ema: Any  # exponential moving average of ``generator`` (what is evaluated)


def build(*, data: Marginals, model: Callable, optimizer: optax.GradientTransformation, loss: Callable,
          cost: Callable, seed: int, output_dir: str, batch_size: int = 64, latent: str = "uniform",
          ema_decay: float = 0.0, lr_decay: str = "none", decay_steps: int = 1, final_lr_fraction: float = 0.01,
          eval_samples: int = 2000, w2_samples: int = 500, snapshot_samples: int = 500,
          probe: Callable | None = None, heldout: Callable | None = None, devices: int = 1) -> Trainer:
    """The minibatch-OT generator trainer.

    Args:
      data: one data law (:class:`train.data.Marginals` with one sampler).
      model: partial generator constructor (``ot_jax.nn.Generator``).
      optimizer: optax transformation of the generator.
      loss: ``loss(key, x [b, d], y [b, d], cost=cost) -> MinibatchLoss``
        (:mod:`ot_jax.losses.minibatch`, ``_partial_`` config nodes).
      cost: ground cost (``ot_jax.SqEuclidean()`` in the thesis).
      seed, output_dir: the run's seed and directory.
      batch_size: data and generated points per step.
      latent: ``"uniform"`` on ``[0, 1]^k`` (thesis) or ``"normal"``.
      ema_decay: evaluate an exponential moving average of the parameters (0: the parameters).
      lr_decay, decay_steps, final_lr_fraction: optional learning-rate decay (as in SPOT).
      eval_samples, w2_samples, snapshot_samples, probe, heldout: the evaluation
        (:class:`train.generative.GeneratorRun`).
      devices: data-parallel training over the first ``devices`` devices: the data batch
        and the generated batch are split over a 1-D mesh, parameters and optimiser state
        replicated (:func:`train.common.data_mesh`); ``batch_size`` must divide by it.
        1 (default): no mesh, the single-device program. ``loss=exact`` solves on the
        host (a ``pure_callback``, compiled with sharding ``{maximal device=0}``): under a
        mesh XLA gathers the cost matrix onto device 0 for it and splits the plan
        again (logging "Involuntary full rematerialization"); the rest stays sharded.

    Returns:
      a :class:`train.loop.Trainer` with state :class:`GeneratorState`; step metrics
      ``loss``, ``converged`` (share of steps whose solver met its tolerance) and ``n_iters``.
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    mesh = data_mesh(devices, batch_size)
    run = GeneratorRun.create(data=data, model=model, seed=seed, latent=latent, probe=probe, heldout=heldout,
                              eval_samples=eval_samples, w2_samples=w2_samples, snapshot_samples=snapshot_samples)
    tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps, final_lr_fraction))

    def init(key) -> GeneratorState:
        params, rest = run.init(key, model)
        return GeneratorState(params, rest, tx.init(params), params)

    def step(state: GeneratorState, key):
        kx, kz, ks = jax.random.split(key, 3)
        x = shard_batch(run.data_batch(kx, batch_size), mesh)

        def loss_fn(params):
            y = shard_batch(run.sample(params, state.generator_rest, kz, batch_size), mesh)
            out = loss(ks, x, y, cost=cost)
            return out.value, out

        (value, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.generator)
        updates, opt = tx.update(grads, state.generator_opt, state.generator)
        params = optax.apply_updates(state.generator, updates)
        ema = ema_update(state.generator_ema, params, ema_decay)
        metrics = {"loss": value, "converged": out.converged.astype(value.dtype),
                   "n_iters": out.n_iters.astype(value.dtype)}
        return GeneratorState(params, state.generator_rest, opt, ema), metrics

    name = getattr(loss, "func", loss).__name__.removesuffix("_loss")
    return dataclasses.replace(run.trainer(init, step, f"minibatch OT generator ({name})"), mesh=mesh)
