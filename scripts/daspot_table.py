"""DASPOT on the digit shifts: target accuracy of ``D_Y`` against the source-only classifier,
mean ± std over seeds, one ``python -m train experiment=daspot_<shift>`` run per cell.

Each run trains DASPOT (``train/daspot.py``) on scikit-learn's digits → a shifted domain
(``train.data.digit_adaptation``: 719 labelled source images, 719 unlabelled target images, the
359 held-out target test images score), and its report trains the source-only classifier
(the same architecture on the source images in the target's format). Extra Hydra overrides
(``--set key=value ...``) apply to every run. The runs go under ``--out``; ``--reuse`` reads a
finished run's metrics instead of training again when its configuration matches.

Usage: ``python scripts/daspot_table.py [--shifts rotated colored textured usps] [--seeds 0 1 2]
[--set trainer.embedding=shared ...] [--no-write]``; writes the ``daspot`` block of
``docs/reproduction.md`` and copies the figures of the first seed of each shift to
``docs/figures/<block>_<shift>*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPO, command_line, cpu_model, git_revision, markdown_table, write_section  # noqa: E402

DOC = os.path.join(REPO, "docs", "reproduction.md")
FIGURES = os.path.join(REPO, "docs", "figures")
SHIFTS = ("rotated", "colored", "textured", "usps")
LABELS = {"rotated": "digits → rotated 30°", "colored": "digits → coloured", "textured": "digits → textured (MNIST-M-like)",
          "usps": "digits → USPS-like 16×16"}


def compose(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from train.config import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def run(shift, seed, extra, out, reuse):
    """The metrics of one run (``reuse``: those of a finished run with the same resolved config)."""
    from omegaconf import OmegaConf

    from train.runner import run_config

    cfg = compose([f"experiment=daspot_{shift}", f"seed={seed}", "loop.progress=false", *extra])
    run_dir = os.path.join(out, shift, f"seed={seed}")
    stamp = OmegaConf.to_yaml(OmegaConf.create({k: cfg[k] for k in ("data", "trainer", "loop", "optimizer", "seed")}),
                              resolve=True)
    stamp_path = os.path.join(run_dir, "daspot_table_config.yaml")
    metrics_path = os.path.join(run_dir, "daspot_table_metrics.json")  # the run's metrics.json + wall time
    if reuse and os.path.exists(metrics_path) and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        with open(metrics_path) as fh:
            return json.load(fh), run_dir
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)  # a fresh run: no checkpoint of another configuration is resumed
    t0 = time.perf_counter()
    m = run_config(cfg, run_dir)
    m["wall_seconds"] = time.perf_counter() - t0
    with open(stamp_path, "w") as fh:
        fh.write(stamp)
    with open(metrics_path, "w") as fh:
        json.dump(m, fh, default=float)
    return m, run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=SHIFTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides of every run")
    parser.add_argument("--out", default=os.path.join(REPO, "outputs", "daspot_table"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--block", default="daspot", help="the docs/reproduction.md block written")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args(argv)

    rows, first = [], {}
    for shift in args.shifts:
        runs = []
        for seed in args.seeds:
            m, run_dir = run(shift, seed, args.set, args.out, args.reuse)
            runs.append(m)
            first.setdefault(shift, run_dir)
            print(f"{shift} seed {seed}: DASPOT {m['target_accuracy']:.3f}, source only {m['source_only_accuracy']:.3f}, "
                  f"{m.get('wall_seconds', float('nan')):.0f} s", flush=True)

        def cell(key):
            values = 100 * np.array([r[key] for r in runs])
            return f"{values.mean():.1f} ± {values.std():.1f}"

        covered = np.mean([r["generated_classes"] for r in runs])
        rows.append([LABELS[shift], cell("source_only_accuracy"), cell("target_accuracy"), cell("agreement"),
                     f"{covered:.1f}", f"{np.median([r['train_seconds'] for r in runs]):.0f}"])
    table = markdown_table(["shift", "source only %", "DASPOT %", "D_X, D_Y agree on generated pairs %",
                            "classes generated", "s / run"], rows)
    steps = compose([f"experiment=daspot_{args.shifts[0]}", *args.set]).loop.steps
    note = (f"Target accuracy on the 359 held-out target test images, mean ± std over seeds {args.seeds}; "
            f"{steps} generator steps per run; classes generated: how many classes D_X finds in at least 2 % "
            f"of the generated source images (mean over seeds). "
            f"`{command_line()}` at {git_revision()} on {cpu_model()}.")
    text = table + "\n\n" + note
    for shift in args.shifts:
        name = f"{args.block}_{shift}".replace("-", "_")
        text += f"\n\n![DASPOT {shift}: generated pairs](figures/{name}.png)"
        if not args.no_write:
            os.makedirs(FIGURES, exist_ok=True)
            shutil.copy(os.path.join(first[shift], "daspot.png"), os.path.join(FIGURES, f"{name}.png"))
            emb = os.path.join(first[shift], "daspot_embeddings.png")
            if os.path.exists(emb):
                shutil.copy(emb, os.path.join(FIGURES, f"{name}_embeddings.png"))
                text += f"\n\n![DASPOT {shift}: embeddings](figures/{name}_embeddings.png)"
    print(text)
    if not args.no_write:
        write_section(args.block, text, DOC)


if __name__ == "__main__":
    main()
