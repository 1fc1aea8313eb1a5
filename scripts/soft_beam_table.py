"""Soft beam search against teacher forcing on digit addition: the results table and figure.

Runs ``experiment=soft_beam_seq`` (:mod:`train.soft_beam`) in both modes over the seeds,
each run from scratch into ``<out-dir>/<mode>/seed=<s>``, and tabulates the final test
accuracies, mean ± std over the seeds, for

* teacher forcing + greedy decoding,
* teacher forcing + hard beam search (``K`` beams),
* soft beam training + hard beam search (and, for reference, + greedy),

with each run's wall time (process-internal: composition, compilation, training and
evaluations). The Markdown goes to stdout and to the ``soft-beam`` block of
``docs/reproduction.md``; the curves (mean and min-max band over the seeds) to
``docs/figures/soft_beam_curves.png``.

Usage: ``python scripts/soft_beam_table.py [--seeds 0 1 2] [overrides ...]``, where the
overrides are Hydra's (``trainer.epsilon=0.1``, ``loop.steps=3000``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPO, command_line, cpu_model, git_revision, write_section  # noqa: E402

sys.path.insert(0, REPO)
import train.config  # noqa: E402,F401  (registers the schemas)
from train.config import CONF_DIR  # noqa: E402
from train.figures.soft_beam import curves_figure  # noqa: E402
from train.loop import read_history  # noqa: E402
from train.runner import run_config  # noqa: E402

MODES = ("teacher_forcing", "soft_beam")
ROWS = (  # label, mode, decoding
    ("teacher forcing + greedy", "teacher_forcing", "greedy"),
    ("teacher forcing + beam search", "teacher_forcing", "beam"),
    ("soft beam training + beam search", "soft_beam", "beam"),
    ("soft beam training + greedy (reference)", "soft_beam", "greedy"),
)


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def _pm(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out-dir", default=os.path.join(REPO, "outputs", "soft_beam_table"))
    parser.add_argument("--report", default=os.path.join(REPO, "docs", "reproduction.md"))
    parser.add_argument("--figure", default=os.path.join(REPO, "docs", "figures", "soft_beam_curves.png"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    histories: dict[str, list[list[dict]]] = {m: [] for m in MODES}
    cfg = None
    t_all = time.perf_counter()
    for seed in args.seeds:
        for mode in MODES:
            cfg = _compose(["experiment=soft_beam_seq", f"trainer.mode={mode}", f"seed={seed}", "resume=false",
                            "loop.checkpoint_every=0", "loop.progress=false", *args.overrides])
            out = os.path.join(args.out_dir, mode, f"seed={seed}")
            t0 = time.perf_counter()
            metrics = run_config(cfg, out)
            metrics["wall_seconds"] = time.perf_counter() - t0
            runs[mode].append(metrics)
            histories[mode].append(read_history(os.path.join(out, "metrics.jsonl")))
            print(f"{mode} seed {seed}: beam seq acc {metrics['beam_seq_acc']:.3f}, "
                  f"{metrics['wall_seconds']:.1f} s", flush=True)
    total = time.perf_counter() - t_all

    k, eps = int(cfg.trainer.beam_size), float(cfg.trainer.epsilon)
    lines = ["| training + decoding | K | ε | sequence accuracy | token accuracy | wall s per run |",
             "|---|---|---|---|---|---|"]
    for label, mode, decoding in ROWS:
        r = runs[mode]
        lines.append(f"| {label} | {k if decoding == 'beam' else 1} | {f'{eps:g}' if mode == 'soft_beam' else '—'} |"
                     f" {_pm([m[f'{decoding}_seq_acc'] for m in r])} | {_pm([m[f'{decoding}_token_acc'] for m in r])} |"
                     f" {np.mean([m['wall_seconds'] for m in r]):.1f} |")
    gain = [s["beam_seq_acc"] - t["beam_seq_acc"] for s, t in zip(runs["soft_beam"], runs["teacher_forcing"])]
    lines += ["", "Per seed, soft beam training + beam search minus teacher forcing + beam search (sequence "
              "accuracy): " + ", ".join(f"{g:+.3f}" for g in gain) + "."]
    tc = cfg.trainer
    settings = (f"{tc.n_digits}-digit addition (sum most significant digit first), {int(cfg.loop.steps)} steps of "
                f"{tc.batch_size} fresh problems; soft beam training: teacher forcing for {tc.warmup_steps} steps, "
                f"then teacher forcing + soft beam loss (tf_weight {tc.tf_weight:g}, beam_weight "
                f"{tc.beam_weight:g}); test set of {tc.test_size} problems; mean ± std over seeds "
                f"{', '.join(map(str, args.seeds))}")
    markdown = "\n".join([
        f"`{command_line()}` (revision {git_revision()}; {cpu_model()}, {os.cpu_count()} cores; "
        f"{total:.0f} s in all)", "", settings + ".", "", *lines])
    print(markdown)
    write_section("soft-beam", markdown, path=args.report)
    os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
    curves_figure({"teacher forcing": histories["teacher_forcing"], "soft beam training": histories["soft_beam"]},
                  args.figure, title=f"digit addition: teacher forcing vs soft beam training (K = {k}, ε = {eps:g})")
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
