"""The kNN table of the SOFT top-k experiment (Xie et al. 2020, kNN experiment) on scikit-learn's digits.

Runs ``experiment=soft_knn_digits`` (:mod:`train.soft_knn`) for every trained method and seed,
and hard kNN on the raw pixels, then writes:

* a Markdown table, test accuracy mean ± std over the seeds (population std) with the
  per-seed values, ``k``, ``epsilon``, training steps and wall time per run (compile and
  evaluations included), to stdout and to the ``soft-knn`` block of ``docs/reproduction.md``;
* ``docs/figures/soft_knn_accuracy_k.png``: test accuracy of hard kNN against the ``k`` used
  at test time (the networks are trained at the experiment's ``k``), mean and min-max band
  over the seeds;
* the runs themselves under ``--out`` (default ``outputs/soft_knn_table``, ``_<name>`` appended), one
  ``<method>/seed=<s>`` run directory each (``metrics.json``, ``metrics.csv``, ``soft_knn.png``).

Methods: the soft vote trained through SOFT's implicit gradient, through ``unroll_iters``
unrolled Sinkhorn iterations, and through a straight-through hard top-k (hard forward pass,
SOFT backward pass); the same network trained with cross-entropy on a linear head (head
discarded, kNN on the embedding); and kNN on the raw pixels (no training, no seed).

Usage: ``python scripts/soft_knn_table.py [--seeds 0 1 2] [--steps 2000] [--methods ...] [--no-write]
[--name NAME] [-- extra hydra overrides]``, e.g. ``... -- trainer.k=5``. ``--name textured --
data.transform=textured`` writes the block ``soft-knn-textured`` and the figure
``soft_knn_accuracy_k_textured.png`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPO, command_line, cpu_model, git_revision, write_section  # noqa: E402

METHODS = {  # directory name: (label, overrides)
    "soft_implicit": ("soft kNN, SOFT top-k (implicit gradient)", []),
    "soft_unroll": ("soft kNN, unrolled Sinkhorn top-k", ["trainer.grad_mode=unroll"]),
    "straight_through": ("soft kNN, straight-through hard top-k", ["trainer.grad_mode=straight_through"]),
    "cross_entropy": ("cross-entropy embedding (linear head discarded)", ["trainer.method=cross_entropy"]),
}
DOC = os.path.join(REPO, "docs", "reproduction.md")
FIGURE = os.path.join(REPO, "docs", "figures", "soft_knn_accuracy_k.png")


def compose(overrides):
    """The composed config of ``experiment=soft_knn_digits`` with ``overrides``."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from train.config import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=["experiment=soft_knn_digits", *overrides])
    finally:
        GlobalHydra.instance().clear()


def run_one(overrides, out_dir):
    """Run one config into ``out_dir``; returns ``(metrics.json content, wall seconds)``."""
    from train.runner import run_config

    cfg = compose(overrides)
    t0 = time.perf_counter()
    metrics = run_config(cfg, out_dir)
    return metrics, time.perf_counter() - t0


def pixel_row(cfg):
    """Hard kNN on the raw pixels at ``trainer.k`` and at every ``trainer.eval_ks``."""
    import jax
    from hydra.utils import instantiate

    from train.soft_knn import knn_accuracy

    jax.config.update("jax_enable_x64", bool(cfg.x64))
    data = instantiate(cfg.data)
    ks = sorted({int(cfg.trainer.k), *map(int, cfg.trainer.eval_ks)})
    acc = {k: knn_accuracy(data.x_train, data.y_train, data.x_test, data.y_test, k, data.n_classes) for k in ks}
    return acc, data


def mean_std(values):
    values = np.asarray(values, float)
    return f"{100 * values.mean():.2f} ± {100 * values.std():.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="loop.steps (default: the experiment's)")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--out", default=None, help="run directories (default: outputs/soft_knn_table[_NAME])")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/ (table on stdout only)")
    parser.add_argument("--name", default="", help="suffix of the docs block (soft-knn-<name>) and of the figure")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = os.path.join(REPO, "outputs", "soft_knn_table" + (f"_{args.name}" if args.name else ""))

    base = ["loop.progress=false", "loop.checkpoint_every=0", "resume=false", *args.overrides]
    if args.steps is not None:
        base.append(f"loop.steps={args.steps}")
    cfg = compose(base)
    k, eps, steps = int(cfg.trainer.k), float(cfg.trainer.epsilon), int(cfg.loop.steps)
    ks = sorted(map(int, cfg.trainer.eval_ks))
    t0 = time.perf_counter()
    pixel, data = pixel_row(cfg)
    pixel_seconds = time.perf_counter() - t0

    rows, curves, runs = [], {}, {}
    for name in args.methods:
        label, overrides = METHODS[name]
        accs, per_k, walls, trains = [], [], [], []
        for seed in args.seeds:
            out_dir = os.path.join(args.out, name, f"seed={seed}")
            metrics, wall = run_one([*base, *overrides, f"seed={seed}"], out_dir)
            accs.append(metrics["test_accuracy"])
            per_k.append([metrics[f"test_accuracy_k{kk}"] for kk in ks])
            walls.append(wall)
            trains.append(metrics["train_seconds"])
            print(f"{name} seed {seed}: test accuracy {100 * metrics['test_accuracy']:.2f} %, "
                  f"{wall:.1f} s", flush=True)
        runs[name] = {"test_accuracy": accs, "wall_seconds": walls, "train_seconds": trains}
        curves[label] = (ks, np.asarray(per_k))
        is_ce = name == "cross_entropy"
        grad = {"soft_unroll": f"unroll ({int(cfg.trainer.unroll_iters)} iterations)",
                "straight_through": "straight-through", "soft_implicit": "implicit"}.get(name, "—")
        rows.append([label, grad, k, "—" if is_ce else f"{eps:g}", mean_std(accs),
                     ", ".join(f"{100 * a:.2f}" for a in accs), steps, f"{np.mean(walls):.1f}",
                     f"{np.mean(trains):.1f}"])
    rows.append([f"raw pixels (no training, {data.x_train.shape[0]} training points)", "—", k, "—",
                 f"{100 * pixel[k]:.2f}", "(deterministic)", 0, f"{pixel_seconds:.1f}", "—"])
    curves["raw pixels"] = (ks, np.asarray([[pixel[kk] for kk in ks]]))

    headers = ["method", "top-k gradient", "k", "ε", f"test accuracy % (mean ± std, {len(args.seeds)} seeds)",
               "per seed", "steps", "wall s / run", "training s / run"]
    table = "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                      + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
    n_test = data.x_test.shape[0]
    note = (f"{data.name} (scikit-learn, 8×8): {data.x_train.shape[0]} training and {n_test} test images, the "
            f"loader's fixed split; one test image is {100 / n_test:.2f} points of accuracy. Hard kNN "
            f"(k = {k}) against the full training set in the learned embedding; seeds {args.seeds}. "
            f"`{command_line()}` at {git_revision()} on {cpu_model()} "
            f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}.")
    markdown = table + "\n\n" + note + "\n"
    print(markdown)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as fh:
        fh.write(markdown)
    with open(os.path.join(args.out, "runs.json"), "w") as fh:
        json.dump({"k": k, "epsilon": eps, "steps": steps, "seeds": args.seeds, "pixel": pixel, "runs": runs},
                  fh, indent=2)

    from train.figures.soft_knn import accuracy_against_k

    suffix = f"_{args.name}" if args.name else ""
    figure = (FIGURE.replace(".png", f"{suffix}.png") if not args.no_write
              else os.path.join(args.out, f"soft_knn_accuracy_k{suffix}.png"))
    os.makedirs(os.path.dirname(figure), exist_ok=True)
    accuracy_against_k(curves, figure, train_k=k,
                       title=f"{data.name}: hard kNN test accuracy (trained at k = {k}, ε = {eps:g})")
    if not args.no_write:
        write_section("soft-knn" + (f"-{args.name}" if args.name else ""), markdown, path=DOC)
    print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
