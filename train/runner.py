"""Run one composed config: set the JAX flags, call the experiment, write ``metrics.json``.

Shared by the Hydra entry point (``python -m train``) and the tests (which compose the
config themselves and pass a temporary ``output_dir``).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
from hydra.utils import call
from omegaconf import DictConfig

__all__ = ["run_config", "write_metrics"]


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


def run_config(cfg: DictConfig, output_dir: str) -> dict:
    """Apply ``cfg.x64``, run ``cfg.experiment`` into ``output_dir`` and write its metrics.

    The experiment node is called as ``target(**fields, output_dir=output_dir)`` and
    returns a JSON-able dict of metrics.
    """
    jax.config.update("jax_enable_x64", bool(cfg.x64))
    os.makedirs(output_dir, exist_ok=True)
    metrics = call(cfg.experiment, output_dir=output_dir)
    write_metrics(metrics, output_dir)
    return metrics
