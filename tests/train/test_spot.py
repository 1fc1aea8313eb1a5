"""SPOT trainer on the shared loop: learning, exact resume after a real kill, NaN stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ot_jax.data import gaussian
from tests.train.configs import ROOT, compose_config
from train.data import Marginals
from train.loop import TrainingDiverged, fit
from train.runner import build_trainer


@pytest.mark.slow  # a 27 s convergence run; the fast suite runs the trainer in test_experiments.py
def test_short_spot_run_moves_the_w_estimate_toward_5(tmp_path, float32):
    cfg = compose_config(["experiment=spot_w_distance", "trainer.ema_decay=0.99", "data.n_samples=20000"])
    trainer = build_trainer(cfg, str(tmp_path))
    start = trainer.evaluate(trainer.init(jax.random.split(jax.random.PRNGKey(0), 3)[0]), jax.random.PRNGKey(1))
    result = fit(trainer, seed=0, output_dir=str(tmp_path), steps=2000, log_every=250, eval_every=250,
                 progress=False)
    errors = [r["rel_error"] for r in result.history if "rel_error" in r]
    assert float(start["rel_error"]) > 0.5, start  # the untrained generator is far from W = 5
    print("start", float(start["rel_error"]), "errors", errors)
    # Minimax training oscillates: judge the last 1000 steps' evaluations, not one iterate.
    assert np.mean(errors[-4:]) < 0.1 and np.mean(errors[-4:]) < float(start["rel_error"]) / 5, errors
    # The critics' gaps (lower bounds of W1 to each data marginal) end near 0.
    last = result.history[-1]
    assert abs(last["gap_0"]) < 0.3 and abs(last["gap_1"]) < 0.3, last
    assert (tmp_path / "spot.png").stat().st_size > 10_000


def test_nan_in_the_data_stops_the_run_and_keeps_the_checkpoint(tmp_path, float32):
    def poisoned(key, n):  # one NaN point in the fixed data set of mu
        return gaussian(key, n, mean=[-2.5, 0.0]).at[0].set(jnp.nan)

    data = Marginals(samplers=[poisoned, lambda key, n: gaussian(key, n, mean=[2.5, 0.0])], n_samples=100_000)  # ~0.6 % of steps draw it
    cfg = compose_config(["experiment=spot_w_distance"])
    trainer = build_trainer(cfg, str(tmp_path), data=data)
    with pytest.raises(TrainingDiverged, match="non-finite.*last good checkpoint") as info:
        fit(trainer, seed=0, output_dir=str(tmp_path), steps=2000, log_every=20, checkpoint_every=20,
            progress=False)
    print(info.value)
    kept = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert kept and f"step {kept[-1]}" in str(info.value)
    restored = ocp.CheckpointManager(str(tmp_path / "checkpoints")).restore(kept[-1])
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored) if np.asarray(leaf).dtype.kind == "f")


def _command(run_dir):
    return [sys.executable, "-m", "train", "experiment=spot_w_distance", "loop.steps=4000", "loop.log_every=100",
            "loop.eval_every=1000", "loop.checkpoint_every=500", "loop.progress=false", "data.n_samples=20000",
            f"hydra.run.dir={run_dir}"]


def _final_parameters(run_dir):
    manager = ocp.CheckpointManager(str(run_dir / "checkpoints"))
    return manager.latest_step(), jax.tree.leaves(manager.restore(manager.latest_step()))


@pytest.mark.slow  # three processes; the fast suite resumes in-process (test_loop.py, test_runs.py)
def test_kill_and_rerun_gives_bit_identical_parameters(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = subprocess.run(_command(full), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen(_command(killed), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed / "checkpoints" / "1000").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no clean-up, as after a crash or a pre-emption
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"

    again = subprocess.run(_command(killed), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((killed / "metrics.json").read_text())
    assert 1000 <= metrics["resumed_from"] < 4000
    step_a, leaves_a = _final_parameters(full)
    step_b, leaves_b = _final_parameters(killed)
    assert step_a == step_b == 4000 and len(leaves_a) == len(leaves_b)
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert json.loads((full / "metrics.json").read_text())["w_estimate"] == metrics["w_estimate"]


def test_spot_figure_draws_pairs_of_1d_marginals(tmp_path):
    from train.figures.spot import spot_figure
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    history = [{"step": s, "w_estimate": 4.0 + 0.1 * s} for s in (1, 2, 3)]
    path = spot_figure(history, [x, 2 * x + 1], [x, x + 2], [(1,), (1,)], str(tmp_path), names=["mu", "nu"])
    assert os.path.getsize(path) > 10_000
