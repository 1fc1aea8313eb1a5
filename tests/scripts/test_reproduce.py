"""scripts/reproduce.py (``make reproduce``): the plan covers every experiment, finished runs are
skipped, failures are recorded and retried, the table and figures land where they should."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.scripts.loader import load_script

ROOT = Path(__file__).resolve().parents[2]
reproduce = load_script("reproduce")


def test_the_plan_is_every_experiment_of_conf_and_of_the_readme_table():
    names = [e.name for e in reproduce.EXPERIMENTS]
    assert len(names) == len(set(names))
    assert set(names) == {p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")}
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| experiment | reproduces |")
    experiment_table = readme[start:readme.index("\n\n", start)]
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \|", experiment_table, re.M))
    assert rows <= set(names), sorted(rows - set(names))  # every row is run ...
    missing = [n for n in names if f"`{n}`" not in experiment_table]  # ... and every run has a row (or a mention)
    assert not missing, missing


def test_short_scale_runs_elsewhere_and_adds_its_overrides():
    density = next(e for e in reproduce.EXPERIMENTS if e.name == "density_gaussian")
    assert density.short, "density_gaussian's documented run does not fit the budget"
    short, full = density.command(False, "r"), density.command(True, "r")
    assert short[:4] == ["python", "-m", "train", "experiment=density_gaussian"]
    assert "hydra.run.dir=r/short/density_gaussian" in short and "hydra.run.dir=r/full/density_gaussian" in full
    assert set(density.short) <= set(short) and not set(density.short) & set(full)
    plain = next(e for e in reproduce.EXPERIMENTS if e.name == "ipot_plans")
    assert plain.command(False, "r") == plain.command(True, "r")  # no short scale: one run serves both


def _fake_run(returncode, calls, metrics=None):
    def fake(argv):
        calls.append(argv)
        run_dir = Path(next(a for a in argv if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        run_dir.mkdir(parents=True, exist_ok=True)
        if returncode == 0:
            (run_dir / "metrics.json").write_text(json.dumps(metrics or {}))
            (run_dir / "spot.png").write_bytes(b"png")
        return returncode

    return fake


def test_finished_runs_are_skipped_failures_recorded_and_retried(tmp_path, monkeypatch, capsys):
    out, report, figures = tmp_path / "runs", tmp_path / "report.md", tmp_path / "figures"
    args = ["--only", "spot_pairs_gaussians", "--out", str(out), "--report", str(report), "--figures", str(figures)]
    calls = []
    monkeypatch.setattr(reproduce, "_launch", _fake_run(1, calls))
    assert reproduce.main(args) == 1
    stamp = json.loads((out / "full" / "spot_pairs_gaussians" / "reproduce.json").read_text())
    assert stamp["returncode"] == 1 and stamp["command"][:4] == ["python", "-m", "train",
                                                                  "experiment=spot_pairs_gaussians"]
    assert "failed (exit 1)" in report.read_text()

    monkeypatch.setattr(reproduce, "_launch",
                        _fake_run(0, calls, {"w_estimate": 24.98, "rel_error": 0.0008}))
    assert reproduce.main(args) == 0  # a failure is retried
    assert len(calls) == 2
    text = report.read_text()
    assert "<!-- bench:reproduce -->" in text and "1 of" in text
    row = next(line for line in text.splitlines() if line.startswith("| `spot_pairs_gaussians`"))
    assert "estimate 24.980; rel. error 0.08%" in row and "fig. 3.6" in row
    assert "[fig3_6_spot_pairs_gaussians](figures/fig3_6_spot_pairs_gaussians.png)" in row  # linked from the report
    assert "not run yet" in text  # every other experiment has a row too
    assert (figures / "fig3_6_spot_pairs_gaussians.png").read_bytes() == b"png"  # the thesis figure's name

    assert reproduce.main(args) == 0  # finished: skipped, the table kept
    assert len(calls) == 2 and "skipped" in capsys.readouterr().out
    assert reproduce.main([*args, "--force", "spot_pairs_gaussians"]) == 0
    assert len(calls) == 3 and calls[-1][-1] == "resume=false"
    assert reproduce.main([*args, "--", "seed=1"]) == 0  # another command: afresh, not resumed
    assert len(calls) == 4 and calls[-1][-2:] == ["seed=1", "resume=false"]


def test_a_short_scale_figure_never_replaces_a_full_scale_one(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(reproduce, "_launch", _fake_run(0, calls, {"kl": 0.01, "lam": 0.5}))
    figures = tmp_path / "figures"
    assert reproduce.main(["--only", "density_gaussian", "--out", str(tmp_path / "runs"),
                           "--report", str(tmp_path / "r.md"), "--figures", str(figures)]) == 0
    assert "loop.steps=3000" in calls[0]
    assert [p.relative_to(figures).as_posix() for p in figures.rglob("*.png")] == [
        "reproduce/density_gaussian_spot.png"]
    assert "KL(ref ‖ rec) 0.0100; λ 0.5" in (tmp_path / "r.md").read_text()


def test_unknown_names_are_refused():
    with pytest.raises(SystemExit, match="unknown experiment"):
        reproduce.main(["--only", "no_such_experiment", "--list"])


@pytest.mark.slow  # one real analysis run through python -m train (~15 s)
def test_a_real_tiny_run(tmp_path):
    args = ["--only", "ipot_plans", "--out", str(tmp_path / "runs"), "--report", str(tmp_path / "r.md"),
            "--figures", str(tmp_path / "figures"), "--", "experiment.n_points=24",
            "experiment.relative_epsilons=[0.1]", "experiment.ipot_iters=[5]"]
    assert reproduce.main(args) == 0
    assert (tmp_path / "figures" / "fig2_4_ipot_plans.png").stat().st_size > 10_000
    row = next(line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| `ipot_plans`"))
    assert "rel. error" in row
