"""Training runs through the runner and the entry point: train.log, finished runs, extension, stamps, sweeps."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.train.configs import ROOT, compose_config
from train.runner import run_config

TINY = ["experiment=spot_w_distance", "loop.steps=20", "loop.log_every=10", "loop.eval_every=0",
        "loop.checkpoint_every=10", "loop.progress=false", "data.n_samples=1000", "trainer.eval_samples=64"]
PROGRESS = re.compile(r"\] step (\d+)/(\d+) \(\d+%\), [\d.e+]+ steps/s, ETA \S+ \| .*objective ")


def _run(run_dir, *overrides):
    return run_config(compose_config([*TINY, *overrides]), str(run_dir))


def _steps_logged(text):
    return [int(m.group(1)) for m in map(PROGRESS.search, text.splitlines()) if m]


def _final_parameters(run_dir):
    manager = ocp.CheckpointManager(str(run_dir / "checkpoints"))
    return manager.latest_step(), [np.asarray(x) for x in jax.tree.leaves(manager.restore(manager.latest_step()))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A SPOT run trained to step 20 (no learning-rate decay), never modified: copy it to change it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    _run(run_dir)
    return run_dir


def _copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "run")


def test_a_run_logs_progress_to_train_log_and_writes_metrics_csv(finished):
    log = (finished / "train.log").read_text()
    assert _steps_logged(log) == [10, 20]  # progress=false: stdout silent, train.log complete
    rows = (finished / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["10", "20"]
    metrics = json.loads((finished / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["train_seconds"] > 0 and metrics["steps_per_second"] > 0


def test_rerunning_a_finished_run_changes_nothing(finished, tmp_path, capsys):
    run_dir = _copy(finished, tmp_path)
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "metrics.jsonl", "metrics.csv")}
    # Display settings are not part of the stamp: changing them does not block the check.
    metrics = _run(run_dir, "loop.progress=true", "loop.progress_every_s=5")
    out = capsys.readouterr().out
    assert f"run complete at step 20/20 in {run_dir}; nothing to do (raise loop.steps to extend)" in out
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    assert metrics == json.loads(before["metrics.json"])


def test_a_larger_step_count_extends_the_run_as_if_uninterrupted(finished, tmp_path):
    run_dir = _copy(finished, tmp_path)
    extended = _run(run_dir, "loop.steps=40")
    assert extended["resumed_from"] == 20 and extended["steps"] == 40
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 4
    assert "continue from checkpoint step 20 to step 40" in (run_dir / "train.log").read_text()

    straight = _run(tmp_path / "straight", "loop.steps=40")
    step_a, leaves_a = _final_parameters(run_dir)
    step_b, leaves_b = _final_parameters(tmp_path / "straight")
    assert step_a == step_b == 40
    for a, b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(a, b)
    assert extended["w_estimate"] == straight["w_estimate"]


@pytest.mark.slow  # the fast suite extends a run without decay (bit-identical) above
def test_an_extension_keeps_the_decay_schedule_the_run_started_with(tmp_path):
    decay = ["trainer.lr_decay=cosine"]
    _run(tmp_path / "run", *decay)
    stamp = (tmp_path / "run" / "checkpoints" / "config.yaml").read_text()
    extended = _run(tmp_path / "run", *decay, "loop.steps=40")
    assert extended["resumed_from"] == 20
    log = (tmp_path / "run" / "train.log").read_text()
    assert "trainer.decay_steps follows loop.steps but stays 20" in log
    assert (tmp_path / "run" / "checkpoints" / "config.yaml").read_text() == stamp
    # = a run to 40 whose decay was set to end at 20 from the start
    pinned = _run(tmp_path / "pinned", *decay, "loop.steps=40", "trainer.decay_steps=20")
    for a, b in zip(_final_parameters(tmp_path / "run")[1], _final_parameters(tmp_path / "pinned")[1]):
        np.testing.assert_array_equal(a, b)
    assert extended["w_estimate"] == pinned["w_estimate"]


def test_resuming_under_another_config_names_the_keys(finished, tmp_path):
    run_dir = _copy(finished, tmp_path)
    with pytest.raises(RuntimeError, match="different config") as info:
        _run(run_dir, "optimizer.learning_rate=0.0001", "trainer.eta=20")
    message = str(info.value)
    assert "optimizer.learning_rate: 0.001 (checkpoint) vs 0.0001 (now)" in message
    assert "trainer.eta: 30.0 (checkpoint) vs 20.0 (now)" in message
    assert "resume=false" in message


@pytest.mark.slow  # a multirun of subprocesses (~16 s); progress lines of one run are checked fast by the train.log test
def test_piped_sweep_prints_progress_lines_and_reports(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "train", "-m", *TINY, "loop.progress=true", "trainer.eta=10,30",
           f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _steps_logged(proc.stdout) == [10, 20, 10, 20], proc.stdout[-3000:]  # two jobs, plain lines
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2 and all("loop.steps" not in p.name for p in jobs)
    for job in jobs:
        assert _steps_logged((job / "train.log").read_text()) == [10, 20]

    table = tmp_path / "table.csv"
    report = subprocess.run([sys.executable, "-m", "train.report", str(sweep), "--csv", str(table),
                             "--metrics", "w_estimate,steps"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0].split()[0] == "job" and lines[0].split()[-2:] == ["w_estimate", "steps"]
    assert "trainer.eta" in lines[0] and len([ln for ln in lines if "trainer.eta=" in ln]) == 2
    rows = table.read_text().splitlines()
    assert len(rows) == 3 and rows[0].endswith("trainer.eta,w_estimate,steps")
    etas = [row.split(",")[-3] for row in rows[1:]]
    assert etas == ["10", "30"]
    for row, job in zip(rows[1:], jobs):
        assert float(row.split(",")[-2]) == json.loads((job / "metrics.json").read_text())["w_estimate"]
