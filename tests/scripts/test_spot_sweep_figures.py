"""scripts/spot_sweep_figures.py on fake sweep directories (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.scripts.loader import load_script


@pytest.fixture(scope="module")
def sweep_figures():
    return load_script("spot_sweep_figures")


def _config_yaml(lr, seed, hidden, eta, true_value=5.0):
    # As Hydra writes .hydra/config.yaml: interpolations left unresolved.
    return f"""\
data:
  _target_: train.data.Marginals
  samplers:
  - _target_: ot_jax.data.gaussian
    _partial_: true
    mean: [-2.5, 0.0]
    std: 1.0
  - _target_: ot_jax.data.gaussian
    _partial_: true
    mean: [2.5, 0.0]
    std: 1.0
  n_samples: 100000
model:
  _target_: ot_jax.nn.Generator
  _partial_: true
  latent_dim: 2
  hidden: [{hidden}, {hidden}]
  activation: leaky_relu
  shared_trunk: false
critic:
  _target_: ot_jax.nn.Critic
  _partial_: true
  hidden: ['${{model.hidden.0}}']
  activation: leaky_relu
  spectral_norm: true
optimizer:
  _target_: optax.adam
  learning_rate: {lr}
trainer:
  _target_: train.spot.build
  eta: {eta}
  true_value: {true_value}
  decay_steps: ${{loop.steps}}
loop:
  steps: 300
seed: {seed}
"""


def _write_run(root: Path, name: str, *, lr, seed, w_by_step, hidden=8, eta=1e4, finished=True):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(_config_yaml(lr, seed, hidden, eta))
    lines = []
    for step in range(100, 301, 100):
        record = {"step": step, "transport": 4.0, "gap_0": 0.1, "gap_1": -0.1}
        if step in w_by_step:
            record.update(w_estimate=w_by_step[step], rel_error=abs(w_by_step[step] - 5.0) / 5.0,
                          marginal_sw_0=0.1, marginal_sw_1=0.1)
        lines.append(json.dumps(record))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if finished:
        last = max(w_by_step)
        (run / "metrics.json").write_text(json.dumps(
            {"w_estimate": w_by_step[last], "true_value": 5.0, "rel_error": abs(w_by_step[last] - 5.0) / 5.0,
             "seed": seed, "steps_per_second": 100.0, "compile_seconds": 1.0}))
    return run


@pytest.fixture
def lr_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    # lr 1e-3: three seeds evaluated at steps 200 and 300; lr 1e-4: one seed.
    _write_run(sweep, "optimizer.learning_rate=0.001,seed=0", lr=1e-3, seed=0, w_by_step={200: 4.0, 300: 4.9})
    _write_run(sweep, "optimizer.learning_rate=0.001,seed=1", lr=1e-3, seed=1, w_by_step={200: 4.4, 300: 5.2})
    _write_run(sweep, "optimizer.learning_rate=0.001,seed=2", lr=1e-3, seed=2, w_by_step={200: 4.6, 300: 5.0})
    _write_run(sweep, "optimizer.learning_rate=0.0001,seed=0", lr=1e-4, seed=0, w_by_step={200: 3.0, 300: 4.5})
    _write_run(sweep, "optimizer.learning_rate=0.0001,seed=1", lr=1e-4, seed=1, w_by_step={200: 3.0},
               finished=False)  # no metrics.json: skipped
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_load_runs_skips_unfinished_runs(sweep_figures, lr_sweep, capsys):
    runs = sweep_figures.load_runs(lr_sweep)
    assert len(runs) == 4
    assert "seed=1" in capsys.readouterr().err  # the unfinished run is named on stderr
    run = runs[0]
    assert set(run) >= {"config", "history", "summary", "path"}
    assert run["config"]["critic"]["hidden"] == [8]  # interpolations resolved
    assert run["config"]["trainer"]["decay_steps"] == 300
    assert [r["step"] for r in run["history"]] == [100, 200, 300]


def test_fig3_2_table(sweep_figures, lr_sweep):
    rows = sweep_figures.fig3_2_table(sweep_figures.load_runs([lr_sweep]))
    assert [r["learning_rate"] for r in rows] == [1e-3, 1e-4]  # descending, as in the thesis
    a, b = rows
    final = np.array([4.9, 5.2, 5.0])
    assert a["seeds"] == 3 and a["steps"] == 300 and sorted(a["seed_list"]) == [0, 1, 2]
    assert a["mean_estimate"] == pytest.approx(final.mean())
    assert a["std_estimate"] == pytest.approx(final.std(ddof=1))
    assert a["rel_error_of_mean_pct"] == pytest.approx(100 * abs(final.mean() - 5) / 5)
    per_seed = 100 * np.abs(final - 5) / 5  # 2, 4, 0 %
    assert a["mean_rel_error_pct"] == pytest.approx(per_seed.mean())
    assert a["median_rel_error_pct"] == pytest.approx(2.0)
    assert a["thesis_rel_error_pct"] == 0.6 and b["thesis_rel_error_pct"] == 0.3
    assert b["seeds"] == 1 and b["std_estimate"] == 0.0 and b["mean_estimate"] == pytest.approx(4.5)
    assert b["rel_error_of_mean_pct"] == pytest.approx(10.0)


def test_fig3_3_table(sweep_figures, tmp_path):
    sweep = tmp_path / "widths"
    for seed, w in enumerate([5.5, 4.8, 5.1]):
        _write_run(sweep, f"model.hidden=[2,2],seed={seed}", lr=1e-3, seed=seed, w_by_step={300: w}, hidden=2,
                   eta=1e5)
    other = tmp_path / "widths_wide"
    for seed, w in enumerate([5.05, 4.99]):
        _write_run(other, f"model.hidden=[32,32],seed={seed}", lr=1e-3, seed=seed, w_by_step={300: w}, hidden=32)
    rows = sweep_figures.fig3_3_table(sweep_figures.load_runs([sweep, other]))
    assert [(r["width"], r["eta"], r["seeds"]) for r in rows] == [(2, 1e5, 3), (32, 1e4, 2)]
    assert rows[0]["median_rel_error_pct"] == pytest.approx(4.0)  # errors 10, 4, 2 %
    assert rows[0]["mean_rel_error_pct"] == pytest.approx(16 / 3)
    assert rows[1]["mean_rel_error_pct"] == pytest.approx((1.0 + 0.2) / 2)
    # Two MLPs 2 -> h -> h -> 2: 2h + h + h^2 + h + 2h + 2 parameters each.
    assert rows[0]["generator_parameters"] == 2 * (2 * 2 + 2 + 4 + 2 + 4 + 2)
    assert rows[1]["generator_parameters"] == 2 * (64 + 32 + 32 * 32 + 32 + 64 + 2)


def test_cli_writes_the_figures_and_the_json(sweep_figures, lr_sweep, tmp_path, capsys):
    out, rows = tmp_path / "figs" / "fig3_2.png", tmp_path / "rows.json"
    assert sweep_figures.main(["fig3_2", str(lr_sweep), "--out", str(out), "--json", str(rows)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 10_000 and str(out) in printed
    assert "1e-3" in printed and "0.600 %" in printed  # the thesis column
    assert json.loads(rows.read_text())[0]["seeds"] == 3
    out3 = tmp_path / "figs" / "fig3_3.png"
    assert sweep_figures.main(["fig3_3", str(lr_sweep), "--out", str(out3)]) == 0
    assert out3.stat().st_size > 10_000
