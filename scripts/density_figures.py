"""Thesis fig. 3.4 and its table from density-recovery sweeps (``python -m train -m experiment=density_*``).

Every run directory under the given sweep directories that holds a
``density_grid.npz`` and a ``metrics.json`` (:mod:`train.density`) becomes one row of
the figure (sorted by λ): the generated marginals over the targets, the recovered
joint density and the reference plan's density. The printed table has, per λ, the
KL divergence from the reference to the recovered density, the mean absolute
log-density error, the cross-covariance against the reference's, the transport
cost ``E|x − y|²`` and the W1 distance of each generated marginal to its data::

    python -m train -m experiment=density_gaussian trainer.lam=0.1,0.5,1.0 hydra.sweep.dir=multirun/fig3_4_gaussian
    python scripts/density_figures.py multirun/fig3_4_gaussian --out docs/figures/fig3_4_density_gaussian.png

``make density-sweeps`` runs both cases (Gaussian and mixture).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from train.figures.density import density_grid_figure  # noqa: E402
from train.report import format_table  # noqa: E402

__all__ = ["load_runs", "table", "main"]


def load_runs(sweep_dirs: list[str]) -> list[dict]:
    """One dict per finished run: the ``density_grid.npz`` arrays plus ``metrics`` (its ``metrics.json``)."""
    runs = []
    for sweep in sweep_dirs:
        for root, _, files in sorted(os.walk(sweep)):
            if "density_grid.npz" not in files:
                continue
            if "metrics.json" not in files:
                print(f"skipping {root}: no metrics.json (unfinished run)", file=sys.stderr)
                continue
            with np.load(os.path.join(root, "density_grid.npz")) as data:
                run = {k: data[k] for k in data.files}
            with open(os.path.join(root, "metrics.json")) as fh:
                run["metrics"] = json.load(fh)
            run["dir"] = root
            runs.append(run)
    return sorted(runs, key=lambda r: float(r["lam"]))


def table(runs: list[dict]) -> tuple[list[str], list[list]]:
    """Headers and rows of the per-λ table."""
    headers = ["λ", "steps", "KL(ref‖rec)", "mean |Δlog p|", "cross-cov", "ref cross-cov", "rel. err %",
               "E|x−y|²", "ref E|x−y|²", "W1(x)", "W1(y)", "steps/s"]
    rows = []
    for run in runs:
        m = run["metrics"]
        ref = m["reference"]
        rows.append([float(run["lam"]), m["step"], m["kl"], m["mean_abs_log_error"], m["cross_cov"],
                     ref["cross_cov"], 100 * m["cross_cov_rel_error"], m["transport_eval"], ref["transport"],
                     m["w1_x"], m["w1_y"], m.get("steps_per_second")])
    return headers, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", help="multirun directories of density runs")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "figures", "fig3_4_density.png"))
    parser.add_argument("--title", default=None)
    parser.add_argument("--json", default=None, help="also write the table rows to this JSON file")
    args = parser.parse_args(argv)
    runs = load_runs(args.sweeps)
    if not runs:
        print(f"no finished density runs under {args.sweeps}", file=sys.stderr)
        return 1
    method = str(runs[0]["method"])
    title = args.title or f"Recovered plan densities against the reference ({method})"
    headers, rows = table(runs)
    print(format_table(headers, rows, title=title))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    density_grid_figure(runs, args.out, title=title)
    print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"headers": headers, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
