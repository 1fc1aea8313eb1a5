"""The ROBOT trainer (train/robot.py): a short run through the config path with its baselines in
the report, AltMin and blocks, and bad settings."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from tests.train.configs import compose_config
from train.runner import build_trainer, run_config

SMALL = ["experiment=robot_linear", "data.n=120", "data.n_val=200", "loop.steps=60", "loop.log_every=20",
         "loop.eval_every=60", "loop.checkpoint_every=0", "loop.progress=false", "trainer.max_iters=300"]


def test_short_run_beats_least_squares_and_reports_the_baselines(tmp_path):
    metrics = run_config(compose_config(SMALL), str(tmp_path))
    assert metrics["trainer"] == "train.robot.build" and metrics["method"] == "robot"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40, 60]
    assert records[-1]["loss"] < records[0]["loss"]
    # the oracle knows the matching; ROBOT starts at least squares on the rows as given and improves on it
    assert metrics["oracle_val_error"] < metrics["val_error"] < metrics["least_squares_val_error"], metrics
    assert metrics["beta_error"] < metrics["least_squares_beta_error"]
    for key in ("alt_min", "stochastic_em"):
        assert np.isfinite(metrics[f"{key}_val_error"]) and 0 <= metrics[f"{key}_matching_accuracy"] <= 1
    assert (tmp_path / "robot.png").stat().st_size > 10_000
    assert (tmp_path / "predictions.png").stat().st_size > 10_000  # ROBOT, least squares, oracle


@pytest.mark.parametrize("overrides", [
    ["trainer.method=alt_min"],
    ["trainer.grad_mode=stop_gradient", "trainer.block_size=20", "trainer.blocks_per_step=2"],
    ["model=regression_mlp", "trainer.init=random", "data.teacher=mlp"],
    ["data.outliers=0.1", "trainer.mass=0.9"],
])
def test_other_methods_take_a_finite_step(tmp_path, overrides):
    trainer = build_trainer(compose_config([*SMALL, "trainer.baselines=false", *overrides]), str(tmp_path))
    state0 = trainer.init(jax.random.PRNGKey(0))
    state, metrics = jax.jit(trainer.step)(state0, jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics["loss"]))
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), state.params, state0.params)
    assert max(jax.tree.leaves(moved)) > 0
    out = trainer.evaluate(state, None)
    assert np.isfinite(out["val_error"]) and 0 <= out["matching_accuracy"] <= 1


@pytest.mark.parametrize("overrides, match", [
    (["trainer.grad_mode=envelope"], "grad_mode"),
    (["trainer.method=em"], "method"),
    (["trainer.mass=1.5"], "mass"),
    (["trainer.block_size=7"], "block_size"),
    (["trainer.epsilon=0"], "epsilon"),
    (["trainer.method=alt_min", "trainer.mass=0.9"], "alt_min"),
])
def test_bad_settings_raise(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        run_config(compose_config([*SMALL, *overrides]), str(tmp_path))


CYTOMETRY_LOOP = ["experiment=robot_cytometry", "data.well_size=25", "trainer.blocks_per_step=10", "loop.steps=40",
                  "loop.log_every=20", "loop.eval_every=0", "loop.checkpoint_every=0", "loop.progress=false"]
CYTOMETRY = [*CYTOMETRY_LOOP, "data.n=500", "data.n_val=200"]


@pytest.mark.slow  # a cytometry training run (~18 s); test_cytometry_from_an_events_file and the short linear run stay fast
def test_cytometry_run_improves_on_least_squares_with_baselines_within_wells(tmp_path):
    metrics = run_config(compose_config(CYTOMETRY), str(tmp_path))
    assert metrics["oracle_val_error"] < metrics["val_error"] < metrics["least_squares_val_error"], metrics
    # AltMin assigns within wells (its matching stays inside them); stochastic EM is not run with blocks
    assert 0 <= metrics["alt_min_matching_accuracy"] <= 1 and "stochastic_em_val_error" not in metrics
    assert metrics["oracle_matching_accuracy"] > 0.9


def test_cytometry_from_an_events_file(tmp_path):
    from ot_jax.data.cytometry import simulate_cytometry
    from ot_jax.data.fcs import write_fcs

    sim = simulate_cytometry(jax.random.PRNGKey(0), 500, well_size=50, n_val=10, n_targets=2)
    x = np.asarray(sim.x_unpaired)[np.asarray(sim.match)]
    names = ["FL1-A", "FL2-A", "FL3-A", "FL4-A", "FL5-A", "B-FL1-A", "B-FL2-A"]
    path = tmp_path / "cells.fcs"
    write_fcs(path, np.concatenate([x, np.asarray(sim.y)], 1) * 1e4, names)
    cfg = compose_config([*CYTOMETRY_LOOP, "data=cytometry_file", f"data.path={path}",
                          "data.inputs=[FL1-A,FL2-A,FL3-A,FL4-A,FL5-A]", "data.targets=[B-FL1-A,B-FL2-A]",
                          "data.n_val=200", "data.well_size=100", "data.unit=10000", "trainer.blocks_per_step=2",
                          "trainer.baselines=false"])
    trainer = build_trainer(cfg, str(tmp_path / "run"))  # the training step itself: the test above
    out = trainer.evaluate(trainer.init(jax.random.PRNGKey(0)), None)
    assert np.isfinite(out["val_error"]) and 0 <= out["matching_accuracy"] <= 1
