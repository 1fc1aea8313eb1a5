"""The generic training loop: exact resume, extension, divergence stop, schedule checks, records, progress."""

from __future__ import annotations

import csv
import io
import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from train.loop import Trainer, TrainingDiverged, config_differences, fit, read_history


def noisy_quadratic(nan_at: int | None = None, interrupt_at: int | None = None) -> Trainer:
    """Adam on E ||w - t + noise||^2: a stochastic run whose result depends on every key."""
    tx = optax.adam(0.05)
    target = jnp.arange(4.0)

    def init(key):
        w = jax.random.normal(key, (4,))
        return {"w": w, "opt": tx.init(w), "count": jnp.zeros((), jnp.int32)}

    def step(state, key):
        noise = jax.random.normal(key, (4,))
        loss, grad = jax.value_and_grad(lambda w: jnp.sum((w - target + noise) ** 2))(state["w"])
        updates, opt = tx.update(grad, state["opt"], state["w"])
        w = optax.apply_updates(state["w"], updates)
        count = state["count"] + 1
        if nan_at is not None:
            w = jnp.where(count == nan_at, jnp.nan, w)
        return {"w": w, "opt": opt, "count": count}, {"loss": loss}

    def evaluate(state, key):
        if interrupt_at is not None and int(state["count"]) == interrupt_at:
            raise KeyboardInterrupt("simulated kill")
        return {"distance": jnp.linalg.norm(state["w"] - target)}

    return Trainer(init=init, step=step, evaluate=evaluate, report=lambda s, h: {"final": h[-1]["distance"]})


SCHEDULE = dict(steps=100, log_every=10, eval_every=20, checkpoint_every=20)


def test_interrupted_run_resumes_bit_identically(tmp_path):
    full = fit(noisy_quadratic(), seed=3, output_dir=str(tmp_path / "full"), progress=False, **SCHEDULE)
    assert full.resumed_from == 0 and int(full.state["count"]) == 100
    assert full.compile_seconds > 0 and full.steps_per_second > 0

    run = str(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        fit(noisy_quadratic(interrupt_at=60), seed=3, output_dir=run, progress=False, **SCHEDULE)
    resumed = fit(noisy_quadratic(), seed=3, output_dir=run, progress=False, **SCHEDULE)
    assert resumed.resumed_from == 40  # the kill came before step 60's checkpoint
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The history on disk is the uninterrupted one (records after the checkpoint were replaced),
    # except for the measured training time, which grows monotonically across the resume.
    def untimed(path):
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in read_history(path)]

    assert untimed(str(tmp_path / "full" / "metrics.jsonl")) == untimed(run + "/metrics.jsonl")
    seconds = [r["train_seconds"] for r in read_history(run + "/metrics.jsonl")]
    assert all(b > a for a, b in zip(seconds, seconds[1:]))
    assert [r["step"] for r in resumed.history] == list(range(10, 101, 10))
    assert resumed.summary["final"] == full.summary["final"]


def test_a_different_seed_gives_a_different_run(tmp_path):
    a = fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path / "a"), progress=False, steps=20, log_every=10)
    b = fit(noisy_quadratic(), seed=1, output_dir=str(tmp_path / "b"), progress=False, steps=20, log_every=10)
    assert not np.array_equal(a.state["w"], b.state["w"])


def test_resume_false_starts_afresh(tmp_path):
    run = str(tmp_path / "run")
    fit(noisy_quadratic(), seed=0, output_dir=run, progress=False, **SCHEDULE)
    again = fit(noisy_quadratic(), seed=0, output_dir=run, progress=False, resume=False, **SCHEDULE)
    assert again.resumed_from == 0


def test_resume_refuses_another_config(tmp_path):
    run = str(tmp_path / "run")
    fit(noisy_quadratic(), seed=0, output_dir=run, progress=False, config_text="lr: 1", **SCHEDULE)
    with pytest.raises(RuntimeError, match="different config"):
        fit(noisy_quadratic(), seed=0, output_dir=run, progress=False, config_text="lr: 2", **SCHEDULE)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"steps 51\.\.60.*last good checkpoint \(step 40\)"):
        fit(noisy_quadratic(nan_at=55), seed=0, output_dir=str(run), progress=False, **SCHEDULE)
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 40
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 50 and all(np.isfinite(r["loss"]) for r in records)


@pytest.mark.parametrize("schedule, match", [
    (dict(steps=100, log_every=10, eval_every=15), "eval_every"),
    (dict(steps=100, log_every=10, checkpoint_every=25), "checkpoint_every"),
    (dict(steps=100, log_every=0), "log_every"),
])
def test_schedule_must_align_with_the_chunks(tmp_path, schedule, match):
    with pytest.raises(ValueError, match=match):
        fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, **schedule)


def test_tensorboard_events_are_written(tmp_path):
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, steps=20, log_every=10,
        tensorboard=True)
    assert any((tmp_path / "tensorboard").iterdir())


def test_snapshots_follow_the_evaluations_and_survive_a_resume(tmp_path):
    import dataclasses
    import os

    def snapshot(state, step, output_dir):
        with open(os.path.join(output_dir, f"snap_{step}.txt"), "w") as fh:
            fh.write(str(int(state["count"])))

    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        fit(dataclasses.replace(noisy_quadratic(interrupt_at=60), snapshot=snapshot), seed=3, output_dir=run,
            progress=False, **SCHEDULE)
    fit(dataclasses.replace(noisy_quadratic(), snapshot=snapshot), seed=3, output_dir=run, progress=False,
        **SCHEDULE)
    snaps = sorted(int(f[5:-4]) for f in os.listdir(run) if f.startswith("snap_"))
    assert snaps == [20, 40, 60, 80, 100]  # step 60's file is rewritten by the resumed run
    for step in snaps:
        with open(os.path.join(run, f"snap_{step}.txt")) as fh:
            assert int(fh.read()) == step


# --- progress, extension, stamp, metrics.csv -------------------------------------------------------------------

PROGRESS_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] step (\d+)/(\d+) \(\d+%\), [\d.e+]+ steps/s, "
                           r"ETA \S+ \| .*loss ")


def _progress_steps(text):
    return [int(m.group(1)) for m in map(PROGRESS_LINE.match, text.splitlines()) if m]


def test_without_a_terminal_progress_lines_go_to_stdout_and_train_log(tmp_path, capsys):
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), steps=50, log_every=10, progress_every_s=0)
    out = capsys.readouterr().out
    assert _progress_steps(out) == [10, 20, 30, 40, 50]
    log = (tmp_path / "train.log").read_text()
    assert _progress_steps(log) == [10, 20, 30, 40, 50]
    assert "train 50 steps into" in log and "finished step 50/50" in log
    assert "distance" in log.splitlines()[-2]  # the evaluation's metrics are in the last progress line


def test_progress_lines_are_spaced_but_the_first_and_last_chunks_always_get_one(tmp_path, capsys):
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), steps=50, log_every=10, progress_every_s=3600)
    assert _progress_steps(capsys.readouterr().out) == [10, 50]


def test_progress_false_is_silent_on_stdout_but_keeps_train_log(tmp_path, capsys):
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), steps=30, log_every=10, progress=False,
        progress_every_s=0)
    assert capsys.readouterr().out == ""
    assert _progress_steps((tmp_path / "train.log").read_text()) == [10, 20, 30]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_a_bar_replaces_the_lines(tmp_path, monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), steps=30, log_every=10, progress_every_s=0)
    shown = screen.getvalue()
    assert "30/30" in shown and "|" in shown and _progress_steps(shown) == []  # a tqdm bar, no plain lines
    assert _progress_steps((tmp_path / "train.log").read_text()) == [10, 20, 30]


def test_a_finished_run_extends_to_more_steps_bit_identically(tmp_path):
    schedule = dict(log_every=10, eval_every=20, checkpoint_every=20, progress=False)
    full = fit(noisy_quadratic(), seed=5, output_dir=str(tmp_path / "full"), steps=80, **schedule)
    run = str(tmp_path / "run")
    short = fit(noisy_quadratic(), seed=5, output_dir=run, steps=40, config_text="a: 1", **schedule)
    assert short.resumed_from == 0 and [r["step"] for r in short.history][-1] == 40
    longer = fit(noisy_quadratic(), seed=5, output_dir=run, steps=80, config_text="a: 1", **schedule)
    assert longer.resumed_from == 40 and int(longer.state["count"]) == 80
    steps = [r["step"] for r in read_history(run + "/metrics.jsonl")]
    assert steps == list(range(10, 81, 10))  # continued, not duplicated
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(longer.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert longer.summary["final"] == full.summary["final"]
    assert longer.train_seconds > short.train_seconds > 0


def test_a_checkpoint_past_steps_is_refused(tmp_path):
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, **SCHEDULE)
    with pytest.raises(ValueError, match=r"checkpoint at step 100, past steps=60.*resume=false"):
        fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, **{**SCHEDULE, "steps": 60})


def test_a_config_mismatch_names_each_key_with_both_values(tmp_path):
    old = "optimizer:\n  learning_rate: 0.001\n  b1: 0.5\nseed: 0\n"
    new = "optimizer:\n  learning_rate: 0.0001\n  b1: 0.5\nx64: true\n"
    fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, config_text=old, **SCHEDULE)
    with pytest.raises(RuntimeError, match="different config") as info:
        fit(noisy_quadratic(), seed=0, output_dir=str(tmp_path), progress=False, config_text=new, **SCHEDULE)
    message = str(info.value)
    assert "optimizer.learning_rate: 0.001 (checkpoint) vs 0.0001 (now)" in message
    assert "seed: 0 (checkpoint) vs absent (now)" in message and "x64: absent (checkpoint) vs true (now)" in message
    assert "b1" not in message


def test_config_differences_is_empty_for_equal_configs_written_differently():
    assert config_differences("a: {b: 1, c: [1, 2]}", "a:\n  c: [1, 2]\n  b: 1\n") == []
    assert config_differences("a: {b: 1}", "a: {b: '1'}") == ['a.b: 1 (checkpoint) vs "1" (now)']


def _csv_records(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_metrics_csv_mirrors_metrics_jsonl_across_a_resume(tmp_path):
    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        fit(noisy_quadratic(interrupt_at=60), seed=3, output_dir=run, progress=False, **SCHEDULE)
    interrupted = _csv_records(run + "/metrics.csv")
    assert [int(r["step"]) for r in interrupted] == [10, 20, 30, 40, 50]  # written even when stopped
    fit(noisy_quadratic(), seed=3, output_dir=run, progress=False, **SCHEDULE)
    rows = _csv_records(run + "/metrics.csv")
    records = read_history(run + "/metrics.jsonl")
    with open(run + "/metrics.csv") as fh:
        header = next(csv.reader(fh))
    assert header[0] == "step" and set(header) == {k for r in records for k in r}
    assert len(rows) == len(records) == 10
    for row, record in zip(rows, records):
        for key in header:
            if key in record:
                assert float(row[key]) == pytest.approx(record[key], rel=1e-12), key
            else:
                assert row[key] == ""  # e.g. distance only at the evaluations
