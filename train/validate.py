"""Check a composed config before anything is built: value ranges, and keys against targets.

* :func:`check_values`: the ranges and choices of the keys people change
  (``loop.*``, ``seed``, ``trainer.*``), all in one table here, with messages such as
  ``loop.steps must be an integer >= 1, got -5``. Types are the schema's job
  (``loop.steps=abc`` already fails at composition, naming the key).
* :func:`check_targets`: structured schemas catch misspelt keys of the nodes they type
  (analyses, trainers); the other groups (data samplers, models, optimisers, costs,
  losses) are typed by the code they call. A key that the target does not accept fails
  here, at start, with the node's path and the accepted names, instead of minutes later
  at instantiation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig

from ot_jax.losses.spot import COUPLINGS
from train.common import LR_DECAYS
from train.generative import LATENTS
from train.soft_knn import GRAD_MODES as KNN_GRAD_MODES, METHODS as KNN_METHODS
from train.soft_beam import MODES as SEQ_MODES
from train.daspot import EMBEDDINGS as DASPOT_EMBEDDINGS
from train.robot import GRAD_MODES as ROBOT_GRAD_MODES, METHODS as ROBOT_METHODS

__all__ = ["check_targets", "check_values", "ConfigKeyError", "ConfigValueError"]

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


class ConfigKeyError(ValueError):
    """A config key that its ``_target_`` does not accept."""


class ConfigValueError(ValueError):
    """A config value out of its key's range or choices."""


def _integer(low: int) -> tuple[str, Callable[[Any], bool]]:
    return f"an integer >= {low}", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(test: Callable[[float], bool], text: str) -> tuple[str, Callable[[Any], bool]]:
    return text, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and test(float(v))


def _one_of(choices: tuple[str, ...]) -> tuple[str, Callable[[Any], bool]]:
    return f"one of {', '.join(choices)}", lambda v: v in choices


# key -> (what a valid value is, test). Keys absent from a config are skipped (an
# analysis has no trainer; a WGAN trainer has no eta). Only training runs check loop.*.
_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "seed": _integer(0),
    "loop.steps": _integer(1),
    "loop.log_every": _integer(1),
    "loop.eval_every": _integer(0),
    "loop.checkpoint_every": _integer(0),
    "loop.keep_checkpoints": _integer(1),
    "loop.progress_every_s": _number(lambda v: v > 0, "a number > 0"),
    "trainer.batch_size": _integer(1),
    "trainer.devices": _integer(1),
    "trainer.n_critic": _integer(1),
    "trainer.eval_samples": _integer(1),
    "trainer.w2_samples": _integer(1),
    "trainer.snapshot_samples": _integer(1),
    "trainer.decay_steps": _integer(1),
    "trainer.eta": _number(lambda v: v > 0, "a number > 0"),
    "trainer.lam": _number(lambda v: v > 0, "a number > 0"),
    "trainer.critic_lr_scale": _number(lambda v: v > 0, "a number > 0"),
    "trainer.gradient_penalty": _number(lambda v: v >= 0, "a number >= 0"),
    "trainer.ema_decay": _number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "trainer.final_lr_fraction": _number(lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "trainer.lr_decay": _one_of(LR_DECAYS),
    "trainer.latent": _one_of(LATENTS),
    "trainer.coupling": _one_of(COUPLINGS),
    "trainer.k": _integer(1),
    "trainer.support_size": _integer(2),
    "trainer.unroll_iters": _integer(1),
    "trainer.epsilon": _number(lambda v: v > 0, "a number > 0"),
    "trainer.vote_floor": _number(lambda v: v > 0, "a number > 0"),
    "trainer.mode": _one_of(SEQ_MODES),
    "trainer.beam_size": _integer(1),
    "trainer.n_digits": _integer(1),
    "trainer.test_size": _integer(1),
    "trainer.warmup_steps": _integer(0),
    "trainer.tf_weight": _number(lambda v: v >= 0, "a number >= 0"),
    "trainer.beam_weight": _number(lambda v: v >= 0, "a number >= 0"),
    "trainer.max_iters": _integer(1),
    "trainer.tol": _number(lambda v: v > 0, "a number > 0"),
    "trainer.block_size": _integer(0),
    "trainer.blocks_per_step": _integer(1),
    "trainer.pretrain_steps": _integer(0),
    "trainer.init": _one_of(("least_squares", "random")),
}
# Keys whose choices depend on the trainer (its _target_): checked after _RANGES.
_TRAINER_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "train.soft_knn.build": {"trainer.method": KNN_METHODS, "trainer.grad_mode": KNN_GRAD_MODES},
    "train.soft_beam.build": {"trainer.grad_mode": KNN_GRAD_MODES[:2]},
    "train.robot.build": {"trainer.method": ROBOT_METHODS, "trainer.grad_mode": ROBOT_GRAD_MODES},
    "train.daspot.build": {"trainer.embedding": DASPOT_EMBEDDINGS},
}
_MISSING = object()


def _select(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_values(cfg: DictConfig) -> None:
    """Raise :class:`ConfigValueError` for the first value out of its key's range or choices.

    Run on the composed root config before anything is built (:func:`train.runner.run_config`).
    The loop's keys are checked for training runs only (a config with a ``trainer``);
    ``eval_every`` and ``checkpoint_every`` must also be multiples of ``log_every`` (the loop
    stops only between compiled chunks of ``log_every`` steps). ``trainer.devices > 1`` must
    not exceed ``jax.device_count()`` and must divide ``trainer.batch_size`` (devices=1 never
    starts JAX's backend here).
    """
    training = _select(cfg, "trainer") not in (None, _MISSING)
    for key, (valid, test) in _RANGES.items():
        if key.startswith(("loop.", "trainer.")) and not training:
            continue
        value = _select(cfg, key)
        if value is _MISSING or (key == "trainer.decay_steps" and _select(cfg, "trainer.lr_decay") == "none"):
            continue
        if not test(value):
            raise ConfigValueError(f"{key} must be {valid}, got {value!r}")
    if training:
        for key, choices in _TRAINER_CHOICES.get(str(_select(cfg, "trainer._target_")), {}).items():
            value = _select(cfg, key)
            if value is not _MISSING and value not in choices:
                raise ConfigValueError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
        mass = _select(cfg, "trainer.mass")
        if mass not in (None, _MISSING) and not (isinstance(mass, (int, float)) and 0 < mass <= 1):
            raise ConfigValueError(f"trainer.mass must be null or a number in (0, 1], got {mass!r}")
        log_every = cfg.loop.log_every
        for key in ("eval_every", "checkpoint_every"):
            if cfg.loop[key] % log_every:
                raise ConfigValueError(f"loop.{key} must be 0 (never) or a multiple of loop.log_every={log_every}, "
                                       f"got {cfg.loop[key]}")
        _check_devices(cfg)


def _check_devices(cfg: DictConfig) -> None:
    devices = _select(cfg, "trainer.devices")
    if devices is _MISSING or devices == 1:
        return
    import jax

    available = jax.device_count()
    if devices > available:
        raise ConfigValueError(f"trainer.devices must be at most jax.device_count() = {available} "
                               f"({jax.devices()[0].platform}), got {devices} (on CPU, emulate devices with "
                               "XLA_FLAGS=--xla_force_host_platform_device_count=N)")
    batch_size = _select(cfg, "trainer.batch_size")
    if batch_size is not _MISSING and batch_size % devices:
        raise ConfigValueError(f"trainer.batch_size={batch_size} must be divisible by trainer.devices={devices} "
                               "(each device gets an equal share of the batch)")


def _parameters(target: Any) -> tuple[set[str], bool]:
    """Accepted keyword names, and whether ``**kwargs`` is taken."""
    if inspect.isclass(target):  # NNX module classes: their metaclass hides __init__'s signature
        target = target.__init__
    params = inspect.signature(target).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def check_targets(node: Any, path: str = "") -> None:
    """Raise :class:`ConfigKeyError` for the first key a ``_target_`` does not accept.

    Walks ``node`` (a DictConfig/ListConfig) recursively; nodes without ``_target_``
    are walked but not checked.
    """
    if isinstance(node, DictConfig):
        target_name = node.get("_target_") if "_target_" in node else None
        if target_name is not None:
            try:
                target = get_object(str(target_name))
            except Exception as err:
                raise ConfigKeyError(f"{path or '<root>'}._target_: cannot import {target_name!r} ({err})") from err
            names, var_kw = _parameters(target)
            unknown = [k for k in node.keys() if k not in _HYDRA_KEYS and k not in names]
            if unknown and not var_kw:
                raise ConfigKeyError(
                    f"config key{'s' if len(unknown) > 1 else ''} {', '.join(f'{path}.{k}'.lstrip('.') for k in unknown)}"
                    f" not accepted by {target_name}; accepted: {', '.join(sorted(names))}")
        for key in node.keys():
            check_targets(node[key], f"{path}.{key}".lstrip("."))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_targets(item, f"{path}[{i}]")
