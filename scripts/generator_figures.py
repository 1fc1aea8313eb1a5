"""Thesis figs. 2.5 and 2.6 and their tables from generator sweeps (minibatch OT and WGAN runs).

Every finished run directory (``metrics.json`` + ``metrics.jsonl`` + ``snapshots/``)
under the given sweep directories becomes one row: its snapshots over training drawn
over the data (2-D laws, fig. 2.5) or, for images, its latent-grid plot (fig. 2.6).
The printed table has, per method, the final evaluation (held-out exact W2, std
ratio, modes covered and high-quality share, or digits covered and NN
precision/recall) and the **equal-wall-time** comparison: every run's held-out W2
(mean of its last three evaluations) within ``T`` = the shortest run's training time
(compile and evaluations excluded; ``train_seconds`` in ``metrics.jsonl``)::

    make generator-sweeps          # runs the sweeps, then this script
    python scripts/generator_figures.py multirun/fig2_5 --out docs/figures/fig2_5_generators.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from train.report import format_table  # noqa: E402
from train.generative import read_snapshots  # noqa: E402
from train.figures.generator import density_grid, draw_points, limits, pick_snapshots, tile_images  # noqa: E402
from train.loop import read_history  # noqa: E402

__all__ = ["method_label", "load_runs", "table", "main"]


def method_label(config: dict) -> str:
    """A short name of a run's method from its resolved ``.hydra/config.yaml`` (the latent law named when not uniform)."""
    trainer = config["trainer"]
    noise = f" ({trainer['latent']} noise)" if trainer.get("latent", "uniform") != "uniform" else ""
    if trainer["_target_"].endswith("wgan.build"):
        if trainer.get("clip") is not None:
            return "WGAN" + noise
        return ("WGAN-GP" if trainer.get("gradient_penalty") else "SN-WGAN") + noise
    solver = config["loss"]
    name = solver["_target_"].rsplit(".", 1)[-1].removesuffix("_loss")
    if name == "sinkhorn":
        return f"Sinkhorn ε={solver['epsilon']:g}" + (" (rel.)" if solver.get("relative_epsilon") else "") + noise
    if name == "ipot":
        return "IPOT" + (f" β={solver['beta']:g}" if solver.get("beta") is not None else "") + noise
    return {"exact": "exact (EMD)", "sliced": "sliced W2"}.get(name, name) + noise


def load_runs(sweep_dirs: list[str]) -> list[dict]:
    """One dict per finished run: ``dir``, ``label``, ``config``, ``metrics``, ``history``, ``snapshots``."""
    runs = []
    for sweep in sweep_dirs:
        for root, _, files in sorted(os.walk(sweep)):
            if "metrics.jsonl" not in files or not os.path.isdir(os.path.join(root, "snapshots")):
                continue
            if "metrics.json" not in files:
                print(f"skipping {root}: no metrics.json (unfinished run)", file=sys.stderr)
                continue
            with open(os.path.join(root, ".hydra", "config.yaml")) as fh:
                config = yaml.safe_load(fh)
            with open(os.path.join(root, "metrics.json")) as fh:
                metrics = json.load(fh)
            grid = os.path.join(root, "latent_grid.npy")
            runs.append({"dir": root, "label": method_label(config), "config": config, "metrics": metrics,
                         "history": read_history(os.path.join(root, "metrics.jsonl")),
                         "snapshots": read_snapshots(root),
                         "latent_grid": np.load(grid) if os.path.exists(grid) else None})
    return runs


def _at_time(history: list[dict], seconds: float, last: int = 3) -> dict | None:
    """The last evaluation within ``seconds`` of training, with ``heldout_w2`` replaced by the mean
    over the last ``last`` evaluations within it (``heldout_w2_sd``: their standard deviation):
    one 500-point exact W2 has a sampling sd of ~0.03 on the 8 Gaussians."""
    evals = [r for r in history if "heldout_w2" in r and r["train_seconds"] <= seconds * (1 + 1e-9)]
    if not evals:
        return None
    w2 = [r["heldout_w2"] for r in evals[-last:]]
    return {**evals[-1], "heldout_w2": float(np.mean(w2)),
            "heldout_w2_sd": float(np.std(w2, ddof=1)) if len(w2) > 1 else None}


def table(runs: list[dict]) -> tuple[list[str], list[list], float]:
    """Headers, rows and the common time budget ``T`` (seconds) of the per-method table."""
    budget = min(r["history"][-1]["train_seconds"] for r in runs)
    digits = any("digits_covered" in r["metrics"] for r in runs)
    coverage = ["digits covered", "NN precision", "NN recall"] if digits else ["modes covered", "high quality"]
    at_cov = "digits at T" if digits else "modes at T"
    headers = ["method", "steps", "train s", "ms/step", "W2 (final)", "std ratio", *coverage,
               "W2 at T (last 3)", "sd", at_cov, "std ratio at T", "step at T"]
    rows = []
    for run in runs:
        m, last = run["metrics"], run["history"][-1]
        at = _at_time(run["history"], budget)
        cov = ([m.get("digits_covered"), m.get("nn_precision"), m.get("nn_recall")] if digits
               else [f"{m.get('modes_covered')}/{_modes_total(run)}", m.get("high_quality")])
        rows.append([run["label"], m.get("step"), last["train_seconds"], 1e3 * last["train_seconds"] / last["step"],
                     m.get("heldout_w2"), m.get("std_ratio"), *cov,
                     *([None] * 5 if at is None else
                       [at["heldout_w2"], at["heldout_w2_sd"], at.get("digits_covered" if digits else "modes_covered"),
                        at["std_ratio"], at["step"]])])
    return headers, rows, budget


def _modes_total(run: dict):
    last = next((r for r in reversed(run["history"]) if "modes_total" in r), None)
    return None if last is None else last["modes_total"]


def points_figure(runs: list[dict], out: str, title: str, columns: int = 5) -> None:
    """Fig. 2.5: one row per run, its snapshots over the data's density contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = _data_samples(runs[0]["config"])
    lims = limits(real)
    density = density_grid(real, lims)
    fig, axes = plt.subplots(len(runs), columns, figsize=(2.1 * columns, 2.2 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        shown = pick_snapshots(run["snapshots"], columns)
        for ax, (step, pts) in zip(row, shown):
            draw_points(ax, pts, density, lims, f"step {step}")
        for ax in row[len(shown):]:
            ax.axis("off")
        m = run["metrics"]
        row[0].set_ylabel(f"{run['label']}\nmodes {m.get('modes_covered')}, std ×{m.get('std_ratio', 0):.2f}",
                          fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(out, dpi=110)
    plt.close(fig)


def images_figure(runs: list[dict], out: str, title: str) -> None:
    """Fig. 2.6: every run's images on the latent grid, side by side, with its digit coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r["latent_grid"] is not None]
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 4.6), squeeze=False)
    for ax, run in zip(axes[0], runs):
        grid = run["latent_grid"]
        side = int(round(np.sqrt(grid.shape[0])))
        ax.imshow(tile_images(grid, (8, 8, 1), side), cmap="gray_r", vmin=0, vmax=1)
        m = run["metrics"]
        ax.set_title(f"{run['label']}: {m.get('digits_covered')} of 10 digits covered", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _data_samples(config: dict, n: int = 3000) -> np.ndarray:
    """``n`` samples of a run's data law, instantiated from its resolved config."""
    import jax
    from hydra.utils import instantiate

    data = instantiate(config["data"])
    return np.asarray(data.samplers[0](jax.random.PRNGKey(123), n), np.float64)


def w2_floor(config: dict, repeats: int = 5) -> tuple[float, float]:
    """The evaluation's noise floor: mean and standard deviation over ``repeats`` pairs of
    ``heldout_w2`` between two independent batches of held-out data (``trainer.w2_samples``
    points each). A sample of the data law itself scores about this; the standard
    deviation is the scale below which two runs' W2 values are not distinguishable."""
    import jax
    from hydra.utils import instantiate

    from train.gen_metrics import heldout_w2

    node = config["trainer"].get("heldout")
    sampler = instantiate(node) if node is not None else instantiate(config["data"]).samplers[0]
    n = int(config["trainer"]["w2_samples"])
    values = []
    for k in range(repeats):
        a, b = (np.asarray(sampler(jax.random.PRNGKey(2 * k + j), n), np.float64) for j in (100, 101))
        values.append(heldout_w2(a, b))
    return float(np.mean(values)), float(np.std(values, ddof=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", help="multirun directories of generator runs")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "figures", "fig2_5_generators.png"))
    parser.add_argument("--title", default=None)
    parser.add_argument("--json", default=None, help="also write the table rows to this JSON file")
    args = parser.parse_args(argv)
    runs = load_runs(args.sweeps)
    if not runs:
        print(f"no finished generator runs under {args.sweeps}", file=sys.stderr)
        return 1
    order = ["IPOT", "exact", "sliced", "Sinkhorn", "WGAN"]
    runs.sort(key=lambda r: (next((i for i, o in enumerate(order) if r["label"].startswith(o)), 9), r["label"]))
    headers, rows, budget = table(runs)
    title = args.title or "Generators trained with minibatch OT losses and WGAN"
    print(format_table(headers, rows, title=f"{title} (T = {budget:.1f} s of training, the shortest run)"))
    floor = w2_floor(runs[0]["config"])
    print(f"W2 of the data law itself (two independent held-out batches of the same size, 5 pairs): "
          f"{floor[0]:.4g} ± {floor[1]:.2g} (sd)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if all(r["latent_grid"] is not None for r in runs):
        images_figure(runs, args.out, title)
    else:
        points_figure(runs, args.out, title)
    print(f"wrote {args.out}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"headers": headers, "rows": rows, "budget_seconds": budget, "w2_floor": floor}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
