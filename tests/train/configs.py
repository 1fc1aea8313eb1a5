"""Shared by the trainer tests: compose ``conf/config.yaml`` with overrides."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import train.config  # noqa: F401  (registers the schemas)

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def compose_config(overrides):
    """The composed root config (a fresh Hydra instance, cleared afterwards)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()

