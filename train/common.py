"""What every trainer shares: model construction, the generator/critics state, learning-rate
schedules and the EMA of the generator. Each trainer module (``spot``, ``wgan``,
``minibatch_ot``, ``density``) holds only its own law and imports the rest from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from train.data import Marginals

__all__ = ["AdversarialState", "CriticSet", "make_models", "make_generator", "lr_decay_schedule", "LR_DECAYS",
           "ema_update", "data_mesh", "shard_batch", "BATCH_AXIS", "spot_critic_step"]

BATCH_AXIS = "batch"  # the mesh axis of data-parallel training (trainer.devices)


class CriticSet(nnx.Module):
    """The K critics λ_1 … λ_K as one module (one Param state, one optimiser)."""

    def __init__(self, critics: Sequence[nnx.Module]):
        self.members = nnx.List(list(critics))

    def __len__(self):
        return len(self.members)

    def __getitem__(self, k):
        return self.members[k]


class AdversarialState(NamedTuple):
    """A generator and its critics with their optimisers (SPOT, WGAN): a pytree of arrays, what Orbax checkpoints."""

    generator: Any  # nnx.State of the generator's nnx.Param
    generator_rest: Any  # its other variables (none for the MLP generators)
    critics: Any  # nnx.State of the critics' nnx.Param
    critics_rest: Any  # their SpectralVector power-iteration state
    generator_opt: Any  # optax state
    critics_opt: Any
    generator_ema: Any  # exponential moving average of ``generator`` (what is evaluated)


def _accepts(factory, name: str) -> bool:
    target = getattr(factory, "func", factory)
    if inspect.isclass(target):  # NNX module classes: their metaclass hides __init__'s signature
        target = target.__init__
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def make_generator(data: Marginals, model: Callable, key: jax.Array) -> nnx.Module:
    """The generator of ``data``'s marginals from the partial constructor ``model``
    (image modules take ``image_shapes``, vector modules ``out_features``)."""
    if _accepts(model, "image_shapes"):
        return model(image_shapes=data.point_shapes, rngs=nnx.Rngs(key))
    return model(out_features=data.dims, rngs=nnx.Rngs(key))


def make_models(data: Marginals, model: Callable, critic: Callable, key: jax.Array):
    """Build the generator and the critics for ``data``'s marginals.

    ``model`` and ``critic`` are partial constructors (``_partial_: true`` configs).
    Image modules take shapes (``image_shapes`` / ``image_shape``), vector modules
    dimensions (``out_features`` / ``in_features``).

    Returns:
      ``(generator, CriticSet)``.
    """
    kg, kc = jax.random.split(key)
    shapes, dims = data.point_shapes, data.dims
    generator = make_generator(data, model, kg)
    critics = []
    for k, (shape, dim) in enumerate(zip(shapes, dims)):
        rngs = nnx.Rngs(jax.random.fold_in(kc, k))
        critics.append(critic(image_shape=shape, rngs=rngs) if _accepts(critic, "image_shape")
                       else critic(in_features=dim, rngs=rngs))
    return generator, CriticSet(critics)


LR_DECAYS = ("none", "cosine", "linear")


def lr_decay_schedule(kind: str, steps: int, final_fraction: float) -> optax.GradientTransformation:
    """Scale updates by a schedule from 1 to ``final_fraction`` over ``steps`` updates."""
    if kind not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {kind!r}")
    if kind == "none":
        return optax.identity()
    if steps < 1 or not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"need decay_steps >= 1 and 0 <= final_lr_fraction <= 1, got {steps}, {final_fraction}")
    if kind == "cosine":
        return optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, steps, alpha=final_fraction))
    return optax.scale_by_schedule(optax.linear_schedule(1.0, final_fraction, steps))


def ema_update(ema, params, decay: float):
    """``decay * ema + (1 - decay) * params``, leaf by leaf (Polyak averaging of the generator)."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def data_mesh(devices: int, batch_size: int) -> Mesh | None:
    """The 1-D mesh of data-parallel training over the first ``devices`` devices (axis :data:`BATCH_AXIS`),
    or None for ``devices=1`` (no mesh: the single-device program, unchanged).

    Raises:
      ValueError: ``devices`` is not an integer in ``[1, jax.device_count()]``, or ``batch_size``
        does not divide by it (the message names ``trainer.devices``).
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"trainer.devices must be an integer >= 1, got {devices!r}")
    if devices == 1:
        return None
    available = jax.device_count()
    if devices > available:
        raise ValueError(f"trainer.devices={devices} exceeds the {available} device(s) JAX sees "
                         f"({jax.devices()[0].platform}); on CPU, emulate more with "
                         "XLA_FLAGS=--xla_force_host_platform_device_count=N")
    if batch_size % devices:
        raise ValueError(f"trainer.batch_size={batch_size} must be divisible by trainer.devices={devices} "
                         "(each device gets an equal share of the batch)")
    return Mesh(np.array(jax.devices()[:devices]), (BATCH_AXIS,))


def shard_batch(tree, mesh: Mesh | None):
    """``tree``'s arrays constrained to be split along their first (batch) axis over ``mesh``
    (inside ``jit``: GSPMD partitions what depends on them); unchanged when ``mesh`` is None."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)



def spot_critic_step(state: AdversarialState, key: jax.Array, *, objective: Callable, critics_def,
                     tx: optax.GradientTransformation, batch: Callable):
    """One ascent step of SPOT's critics (SPOT, DASPOT): a power iteration of their spectral
    normalisation, then a gradient step on ``objective`` with the generator held fixed.

    Args:
      state: the :class:`AdversarialState`.
      key: split into the data batch's key and the objective's (latent) key.
      objective: ``(g_params, g_rest, c_params, c_rest, batch, key) -> (value, terms)``, ``terms.gaps`` the
        marginal terms; the critics ascend ``value``.
      critics_def: the critics' ``nnx.GraphDef``.
      tx: the critics' optimiser.
      batch: ``key -> batch`` of data.

    Returns:
      ``(state, terms.gaps)`` with the critics, their power-iteration state and optimiser state updated.
    """
    from ot_jax.nn import power_iteration

    critics = nnx.merge(critics_def, state.critics, state.critics_rest)
    power_iteration(critics)
    _, _, c_rest = nnx.split(critics, nnx.Param, ...)
    kb, kz = jax.random.split(key)
    data = batch(kb)

    def negative(c_params):
        value, terms = objective(state.generator, state.generator_rest, c_params, c_rest, data, kz)
        return -value, terms

    grads, terms = jax.grad(negative, has_aux=True)(state.critics)
    updates, opt = tx.update(grads, state.critics_opt, state.critics)
    return state._replace(critics=optax.apply_updates(state.critics, updates), critics_rest=c_rest,
                          critics_opt=opt), terms.gaps
