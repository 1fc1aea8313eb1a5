"""Run one composed config: set the JAX flags, run the analysis or the training, write ``metrics.json``.

Shared by the Hydra entry point (``python -m train``) and the tests (which compose the
config themselves and pass a temporary ``output_dir``).

* A config with a ``trainer`` is a training run: every ``_target_`` node is checked
  (:func:`train.validate.check_targets`), the groups ``data``, ``model``, ``critic``,
  ``optimizer``, ``cost`` and ``solver`` are instantiated and handed to the trainer factory
  (``trainer._target_``), and :func:`train.loop.fit` trains it.
* Otherwise ``experiment`` is an analysis, called as ``target(**fields, output_dir=...)``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
from hydra.utils import call, instantiate
from omegaconf import DictConfig, OmegaConf

from train.validate import check_targets

__all__ = ["run_config", "run_training", "build_trainer", "write_metrics", "TRAINING_GROUPS"]

TRAINING_GROUPS = ("data", "model", "critic", "optimizer", "cost", "solver")


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (nan, inf) become strings; numpy scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_metrics(metrics: dict, output_dir: str) -> str:
    """Write ``metrics`` to ``<output_dir>/metrics.json``; returns the path."""
    path = os.path.join(output_dir, "metrics.json")
    with open(path, "w") as fh:
        json.dump(_jsonable(metrics), fh, indent=2, sort_keys=False)
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


def run_training(cfg: DictConfig, output_dir: str) -> dict:
    """Build the trainer of ``cfg``, train it with the generic loop, return the summary."""
    from train.loop import fit

    trainer = build_trainer(cfg, output_dir)
    loop = OmegaConf.to_container(cfg.loop, resolve=True)
    training_nodes = {k: cfg[k] for k in (*TRAINING_GROUPS, "trainer", "loop", "seed", "x64")}
    config_text = OmegaConf.to_yaml(OmegaConf.create(training_nodes), resolve=True)
    result = fit(trainer, seed=int(cfg.seed), output_dir=output_dir, resume=bool(cfg.resume),
                 config_text=config_text, **loop)
    print(f"compile {result.compile_seconds:.2f} s, {result.steps_per_second:.1f} steps/s"
          + (f" (resumed from step {result.resumed_from})" if result.resumed_from else ""))
    return {"trainer": str(cfg.trainer._target_), "seed": int(cfg.seed), **result.summary,
            "resumed_from": result.resumed_from, "compile_seconds": result.compile_seconds,
            "steps_per_second": result.steps_per_second}


def run_config(cfg: DictConfig, output_dir: str) -> dict:
    """Apply ``cfg.x64``, run ``cfg`` into ``output_dir`` and write its metrics (see the module docstring)."""
    jax.config.update("jax_enable_x64", bool(cfg.x64))
    os.makedirs(output_dir, exist_ok=True)
    if cfg.get("trainer") is not None:
        metrics = run_training(cfg, output_dir)
    else:
        if cfg.experiment is None:
            raise ValueError("nothing to run: choose an experiment (experiment=<name>)")
        metrics = call(cfg.experiment, output_dir=output_dir)
    write_metrics(metrics, output_dir)
    return metrics
