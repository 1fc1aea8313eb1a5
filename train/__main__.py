"""Hydra entry point: ``python -m train [experiment=<name>] [overrides]``.

Experiments live in ``conf/experiment`` (schemas in :mod:`train.config`); outputs go to
``outputs/<experiment>/<overrides>/`` (multirun: ``multirun/<experiment>/<swept values>/``;
``loop.steps`` and the display settings do not name directories): the resolved config in
``.hydra/``, ``metrics.json`` and the figure; training runs add ``train.log`` (progress
lines), ``metrics.jsonl``, ``metrics.csv`` and ``checkpoints/``. Rerunning the same command
resumes an interrupted run, does nothing on a finished one, and with a larger
``loop.steps`` extends it (:mod:`train.runner`). Without a terminal (``| cat``, nohup,
SLURM) progress comes as plain lines every ``loop.progress_every_s`` seconds
(:mod:`train.loop`). ``python -m train.report DIR`` tabulates finished runs
(:mod:`train.report`). Nothing is written to the working directory.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import train.config  # noqa: F401  (registers the structured schemas)
from train.runner import run_config


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    output_dir = HydraConfig.get().runtime.output_dir
    run_config(cfg, output_dir)
    print(f"outputs: {output_dir}")


if __name__ == "__main__":
    main()
