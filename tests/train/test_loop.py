"""The generic training loop: exact resume, divergence stop, schedule checks, records."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from train.loop import Trainer, TrainingDiverged, fit, read_history


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
