"""Run one composed config: set the JAX flags, run the analysis or the training, write ``metrics.json``.

Shared by the Hydra entry point (``python -m train``) and the tests (which compose the
config themselves and pass a temporary ``output_dir``).

* A config with a ``trainer`` is a training run: every ``_target_`` node is checked
  (:func:`train.validate.check_targets`), the groups ``data``, ``model``, ``critic``,
  ``optimizer``, ``cost`` and ``loss`` are instantiated and handed to the trainer factory
  (``trainer._target_``), and :func:`train.loop.fit` trains it.
* Otherwise ``experiment`` is an analysis, called as ``target(**fields, output_dir=...)``.

Training runs in a run directory that already holds checkpoints (``resume=true``):

* **Config stamp.** The checkpoints are stamped with the resolved training config
  (``data``, ``model``, ``critic``, ``optimizer``, ``cost``, ``loss``, ``trainer``,
  ``loop``, ``seed``, ``x64``) less the loop settings that do not change the result
  (:data:`UNSTAMPED_LOOP_KEYS`: ``loop.steps`` and the display settings) and less
  ``trainer.devices`` (:data:`UNSTAMPED_TRAINER_KEYS`); resuming under a different one is
  refused with each differing key and both values.
* **Devices.** ``trainer.devices`` is where the run is placed, not what it computes: a run
  checkpointed with ``trainer.devices=8`` resumes with ``trainer.devices=1`` (or back), the
  restored state placed on the new devices. It is the same run up to float rounding (a sum
  over the batch is reduced in another order), so that resume is not bit-identical to an
  uninterrupted run. ``trainer.devices`` is also left out of the run directory's name.
* **Finished.** When ``metrics.json`` records ``steps == loop.steps`` and the latest
  checkpoint is at that step, nothing runs: the run directory is left as it is (byte for
  byte) and a line says the run is complete.
* **Extension.** A larger ``loop.steps`` trains on from the final checkpoint. Trainer fields
  whose value is the interpolation ``${loop.steps}`` (the learning-rate decay's
  ``trainer.decay_steps``) keep the value stamped when the run started, and a line in
  ``train.log`` says so: the steps already taken keep their schedule, and a decayed learning
  rate stays at its final value past the old total. To decay over the new total instead,
  start afresh (``resume=false``).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import jax
from hydra.utils import call, instantiate
from omegaconf import DictConfig, OmegaConf

from train.report import to_jsonable
from train.validate import check_targets, check_values

__all__ = ["run_config", "run_training", "build_trainer", "write_metrics", "stamp_text", "TRAINING_GROUPS",
           "UNSTAMPED_LOOP_KEYS", "UNSTAMPED_TRAINER_KEYS"]

TRAINING_GROUPS = ("data", "model", "critic", "optimizer", "cost", "loss")
STAMPED_NODES = (*TRAINING_GROUPS, "trainer", "loop", "seed", "x64")
# Loop settings left out of the checkpoints' config stamp: changing them never changes the parameters.
UNSTAMPED_LOOP_KEYS = ("steps", "progress", "progress_every_s", "tensorboard", "keep_checkpoints")
# Trainer settings left out of the stamp: where a run is placed, not what it computes (trainer.devices
# changes the parameters only by float rounding: a run checkpointed on 8 devices resumes on 1, and back).
UNSTAMPED_TRAINER_KEYS = ("devices",)
STEPS_INTERPOLATION = "${loop.steps}"


def write_metrics(metrics: dict, output_dir: str) -> str:
    """Write ``metrics`` to ``<output_dir>/metrics.json``; returns the path."""
    path = os.path.join(output_dir, "metrics.json")
    with open(path, "w") as fh:
        json.dump(to_jsonable(metrics), fh, indent=2, sort_keys=False)
        fh.write("\n")
    return path


def build_trainer(cfg: DictConfig, output_dir: str, **replace: Any):
    """Check ``cfg`` and build its :class:`train.loop.Trainer` (``replace`` swaps built groups, e.g. ``data``)."""
    check_targets(cfg)
    if cfg.experiment is not None:
        raise ValueError("a config has either a trainer (training run) or an experiment node (analysis), not both")
    pieces = {g: instantiate(cfg[g]) for g in TRAINING_GROUPS if cfg[g] is not None and g not in replace}
    # Built objects are passed in Python (Hydra would turn dataclasses such as Marginals back into configs).
    return instantiate(cfg.trainer, _partial_=True)(seed=int(cfg.seed), output_dir=output_dir, **pieces, **replace)


def stamp_text(cfg: DictConfig) -> str:
    """The YAML the checkpoints of ``cfg``'s run are stamped with (see the module docstring)."""
    nodes = OmegaConf.to_container(OmegaConf.create({k: cfg[k] for k in STAMPED_NODES}), resolve=True)
    for key in UNSTAMPED_LOOP_KEYS:
        nodes["loop"].pop(key, None)
    for key in UNSTAMPED_TRAINER_KEYS:
        if isinstance(nodes.get("trainer"), dict):
            nodes["trainer"].pop(key, None)
    return OmegaConf.to_yaml(OmegaConf.create(nodes))


def _following_steps(cfg: DictConfig) -> list[str]:
    """The dotted keys of the stamped nodes whose value is the interpolation ``${loop.steps}``."""
    found = []

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif node == STEPS_INTERPOLATION:
            found.append(prefix[:-1])

    for name in STAMPED_NODES:
        if name != "loop" and isinstance(cfg[name], DictConfig):
            walk(OmegaConf.to_container(cfg[name], resolve=False), f"{name}.")
    return found


def _pin_to_stamp(cfg: DictConfig, output_dir: str) -> DictConfig:
    """``cfg``, or a copy whose ``${loop.steps}`` fields hold the values of the run directory's stamp."""
    from train.loop import log_line, read_config_stamp

    stamp = read_config_stamp(output_dir) if cfg.resume and cfg.loop.checkpoint_every else None
    if stamp is None:
        return cfg
    pins = {key: stamp[key] for key in _following_steps(cfg)
            if key in stamp and stamp[key] != OmegaConf.select(cfg, key)}
    if not pins:
        return cfg
    pinned = copy.deepcopy(cfg)  # the composed config stays as loaded
    for key, value in pins.items():
        OmegaConf.update(pinned, key, value, merge=False)
        log_line(output_dir, f"{key} follows loop.steps but stays {value}, its value when this run started "
                             f"(loop.steps is now {cfg.loop.steps}): the steps already taken keep their schedule "
                             f"(a schedule over {key} ends at step {value})")
    return pinned


def _finished_metrics(cfg: DictConfig, output_dir: str, config_text: str) -> dict | None:
    """The metrics of a run directory that already holds this run to ``loop.steps`` (None: work to do)."""
    from train.loop import latest_checkpoint

    path = os.path.join(output_dir, "metrics.json")
    if not (cfg.resume and cfg.loop.checkpoint_every and os.path.exists(path)):
        return None
    with open(path) as fh:
        metrics = json.load(fh)
    steps = int(cfg.loop.steps)
    if metrics.get("steps") != steps or latest_checkpoint(output_dir, config_text=config_text) != steps:
        return None
    return metrics


def run_training(cfg: DictConfig, output_dir: str) -> dict:
    """Build the trainer of ``cfg``, train it with the generic loop, write and return ``metrics.json``'s
    content (a finished run directory is left untouched: its metrics are returned as they are)."""
    from train.loop import fit, log_line

    cfg = _pin_to_stamp(cfg, output_dir)
    config_text = stamp_text(cfg)
    steps = int(cfg.loop.steps)
    finished = _finished_metrics(cfg, output_dir, config_text)
    if finished is not None:
        log_line(output_dir, f"run complete at step {steps}/{steps} in {output_dir}; nothing to do "
                             "(raise loop.steps to extend)")
        return finished
    trainer = build_trainer(cfg, output_dir)
    loop = OmegaConf.to_container(cfg.loop, resolve=True)
    result = fit(trainer, seed=int(cfg.seed), output_dir=output_dir, resume=bool(cfg.resume),
                 config_text=config_text, **loop)
    metrics = {"trainer": str(cfg.trainer._target_), "seed": int(cfg.seed), **result.summary, "steps": steps,
               "resumed_from": result.resumed_from, "compile_seconds": result.compile_seconds,
               "train_seconds": result.train_seconds, "steps_per_second": result.steps_per_second}
    write_metrics(metrics, output_dir)
    return metrics


def run_config(cfg: DictConfig, output_dir: str) -> dict:
    """Apply ``cfg.x64``, run ``cfg`` into ``output_dir`` and write its metrics (see the module docstring)."""
    check_values(cfg)
    jax.config.update("jax_enable_x64", bool(cfg.x64))
    os.makedirs(output_dir, exist_ok=True)
    if cfg.get("trainer") is not None:
        return run_training(cfg, output_dir)
    if cfg.experiment is None:
        raise ValueError("nothing to run: choose an experiment (experiment=<name>)")
    metrics = call(cfg.experiment, output_dir=output_dir)
    write_metrics(metrics, output_dir)
    return metrics
