"""train.report: the JSON cleaner, the CSV writer and the report over run directories."""

from __future__ import annotations

import csv
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.configs import compose_config
from train.report import find_runs, main, markdown_table, runs_table, to_jsonable, write_csv
from train.runner import run_config


def test_to_jsonable_turns_non_finite_numbers_into_strings_and_arrays_into_lists():
    value = {"nan": float("nan"), 1: (np.float32(2.5), float("-inf")), "a": np.arange(3), "j": jnp.asarray(1.5),
             "nested": [{"x": np.inf}], "s": "text", "none": None, "flag": True}
    out = to_jsonable(value)
    assert out == {"nan": "nan", "1": [2.5, "-inf"], "a": [0, 1, 2], "j": 1.5, "nested": [{"x": "inf"}],
                   "s": "text", "none": None, "flag": True}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_write_csv_puts_step_first_and_takes_the_union_of_the_keys(tmp_path):
    path = write_csv([{"loss": 1.0, "step": 1}, {"step": 2, "loss": float("nan"), "w": [1, 2]}],
                     str(tmp_path / "m.csv"))
    with open(path) as fh:
        rows = list(csv.reader(fh))
    assert rows == [["step", "loss", "w"], ["1", "1.0", ""], ["2", "nan", "[1, 2]"]]


def _job(root, name, overrides, metrics=None, logged_step=None):
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if logged_step is not None:
        (job / "metrics.jsonl").write_text(json.dumps({"step": logged_step, "loss": 1.0}) + "\n")
    return job


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun" / "spot_w_distance"
    _job(root, "trainer.eta=10", ["trainer.eta=10", "loop.steps=100"],
         {"w_estimate": 4.91, "marginal_sw": [0.1, 0.2], "steps": 100, "train_seconds": 2.0, "steps_per_second": 50.0})
    _job(root, "trainer.eta=3", ["trainer.eta=3", "loop.steps=100"],
         {"w_estimate": "nan", "rel_error": 0.5, "steps": 100, "train_seconds": 4.0, "steps_per_second": 25.0})
    _job(root, "trainer.eta=30", ["trainer.eta=30", "loop.steps=100"], logged_step=40)  # still running
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_find_runs_lists_each_finished_job_in_natural_order(sweep):
    runs, unfinished = find_runs([str(sweep)])
    assert [r["job"] for r in runs] == ["trainer.eta=3", "trainer.eta=10"]
    assert runs[1]["overrides"] == {"trainer.eta": "10", "loop.steps": "100"}
    assert "marginal_sw" not in runs[1]["metrics"]  # scalars only
    assert unfinished == [(str(sweep / "trainer.eta=30"), 40)]
    headers, rows = runs_table(runs)
    assert headers == ["job", "trainer.eta", "loop.steps", "w_estimate", "rel_error", "steps", "train_seconds",
                       "steps_per_second"]
    assert rows[0] == ["trainer.eta=3", "3", "100", "nan", 0.5, 100, 4.0, 25.0]
    assert rows[1][4] is None  # no rel_error in that job


def test_report_cli_prints_and_writes_csv_and_markdown(sweep, tmp_path, capsys):
    out_csv, out_md = tmp_path / "t.csv", tmp_path / "t.md"
    assert main([str(sweep), "--csv", str(out_csv), "--markdown", str(out_md)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["job", "trainer.eta", "loop.steps", "w_estimate", "rel_error", "steps",
                                "train_seconds", "steps_per_second"]
    assert lines[2].split() == ["trainer.eta=3", "3", "100", "nan", "0.5", "100", "4", "25"]
    assert lines[3].split() == ["trainer.eta=10", "10", "100", "4.91", "-", "100", "2", "50"]
    assert "not finished" in captured.err and "trainer.eta=30" in captured.err and "step: 40" in captured.err
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["trainer.eta"] for r in rows] == ["3", "10"] and float(rows[1]["w_estimate"]) == 4.91
    assert rows[1]["rel_error"] == ""
    md = out_md.read_text().splitlines()
    assert md[0] == ("| job | trainer.eta | loop.steps | w_estimate | rel_error | steps | train_seconds "
                     "| steps_per_second |")
    assert md[1].count("---:") == 5 and md[3].startswith("| trainer.eta=10 | 10 | 100 | 4.91 | - |")


def test_report_cli_names_unknown_metrics_and_missing_directories(sweep, tmp_path, capsys):
    assert main([str(sweep), "--metrics", "w_estimate,w_estimat"]) == 2
    assert "w_estimat in no metrics.json" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1


def test_markdown_escapes_pipes():
    assert "a\\|b" in markdown_table(["job", "x"], [["a|b", 1.0]])


@pytest.mark.slow  # the fast suite reports on a real two-job sweep (tests/train/test_runs.py)
def test_report_of_a_real_run(tmp_path, capsys):
    cfg = compose_config(["experiment=spot_w_distance", "loop.steps=2", "loop.log_every=1", "loop.eval_every=0",
                          "loop.checkpoint_every=0", "loop.progress=false", "trainer.eval_samples=64",
                          "data.n_samples=1000"])
    metrics = run_config(cfg, str(tmp_path / "job"))
    capsys.readouterr()  # the run's own output
    assert main([str(tmp_path), "--metrics", "w_estimate,steps,steps_per_second"]) == 0
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[0] == "job" and row[2] == "2"
    assert math.isclose(float(row[1]), metrics["w_estimate"], rel_tol=1e-3)
    assert float(row[3]) == pytest.approx(metrics["steps_per_second"], rel=1e-3)
