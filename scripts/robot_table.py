"""The tables and figure of ROBOT (Xie et al. 2021) on linear regression without correspondence.

Four studies, each over seeds, every method on the same data set per seed:

* ``--study protocol`` (the authors' synthetic protocol, ``experiment=robot_linear``): n = 1000,
  d = 5 (2 features paired with y, 3 from a platform that lost the order), half of the rows
  shuffled, SNR 100, error 1 - R^2 on 1000 correctly paired validation rows. Methods: ROBOT
  with the hypergradient (implicit), ROBOT with the plan held fixed (stop-gradient), AltMin
  with gradient steps, and from the same runs' reports least squares, the oracle, AltMin
  (assign, refit) and stochastic EM. Writes the ``robot-protocol`` block of
  ``docs/reproduction.md``.
* ``--study shuffled``: the share of shuffled rows from 0 to 1 (``--n``, default 200; d = 5
  split as above), the same methods; writes the ``robot-shuffled`` block and
  ``docs/figures/robot_error_vs_shuffled.png`` (median and quartiles over seeds).

The runs go under ``--out`` (default ``outputs/robot_<study>``), one ``<method>/...`` run
directory each. Usage: ``python scripts/robot_table.py --study protocol [--seeds 0 ... 9]
[--steps N] [--no-write] [-- extra hydra overrides]``; ``--study protocol --experiment robot_mlp``
runs the nonlinear experiment (block ``robot-mlp``; no closed-form baselines: instead the same
network fitted to the rows as given only, and fitted on the true pairs, the oracle).

* ``--study grid``: d in {5, 20} (2/5 of the features paired) x n in {100, 1000, 10000} at SNR
  100, and d x SNR in {10, 100, 1000} at n = 1000, half of the rows shuffled; the coefficient
  error and the matching recovered by ROBOT, AltMin (gradient steps) and the report's
  baselines; writes the ``robot-grid`` block and ``docs/figures/robot_error_vs_noise.png``.
* ``--study wells`` (``experiment=robot_cytometry``, simulated flow cytometry): the validation
  error against the size of the wells within which the order of the events is lost (25, 50,
  100 cells), ROBOT (implicit and stop-gradient) beside least squares, the oracle and AltMin
  within wells; writes the ``robot-cytometry`` block.
* ``--study scale`` (``experiment=robot_scale``, n = 100,000 in blocks of 1,000): seconds per
  epoch of ROBOT and of AltMin with gradient steps, and the exact-assignment baselines (least
  squares, oracle, AltMin to a fixed point, within the blocks) on the same data; seed 0 by
  default; writes the ``robot-scale`` block.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPO, command_line, cpu_model, git_revision, markdown_table, write_section  # noqa: E402

TRAINED = {  # directory name: (label, overrides)
    "robot": ("ROBOT (hypergradient, implicit)", []),
    "robot_stop_gradient": ("ROBOT, plan held fixed (stop-gradient)", ["trainer.grad_mode=stop_gradient",
                                                                        "trainer.baselines=false"]),
    "alt_min_steps": ("AltMin, gradient steps", ["trainer.method=alt_min", "trainer.baselines=false"]),
}
TRAINED_LABELS = [label for label, _ in TRAINED.values()]


def nonlinear_references(cfg):
    """Reference runs for a model without closed-form baselines (``trainer.baselines=false``): the
    same network fitted only to the rows as given (its ``pretrain_steps``), and fitted on the true
    pairs for as many steps as ROBOT takes (the oracle: the same data with no row shuffled)."""
    p, steps = cfg.trainer.pretrain_steps, cfg.loop.steps
    return {
        "rows_as_given": (f"fit to the rows as given ({p} steps)", [f"loop.steps={p}", f"trainer.pretrain_steps={p}"]),
        "oracle_fit": (f"oracle (the same fit on the true pairs, {steps} steps)",
                       ["data.shuffled=0", f"trainer.pretrain_steps={steps}"]),
    }
BASELINES = {  # metrics prefix in the ROBOT run's report: label
    "least_squares": "least squares (rows as given)",
    "oracle": "oracle (least squares, true matching)",
    "alt_min": "AltMin (assign, refit to a fixed point)",
    "stochastic_em": "stochastic EM",
}
DOC = os.path.join(REPO, "docs", "reproduction.md")
EXPERIMENT = "robot_linear"  # --experiment
FIGURE = os.path.join(REPO, "docs", "figures", "robot_error_vs_shuffled.png")


def compose(overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from train.config import CONF_DIR

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=[f"experiment={EXPERIMENT}", *overrides])
    finally:
        GlobalHydra.instance().clear()


def finished_run(cfg, run_dir):
    """The metrics of a finished run of ``cfg`` in ``run_dir``, or None (absent, or another
    configuration: data size, features, steps, seed, method or solver differ)."""
    import json

    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        m = json.load(fh)
    want = {"seed": cfg.seed, "method": cfg.trainer.method, "grad_mode": cfg.trainer.grad_mode,
            "epsilon": cfg.trainer.epsilon, "n": cfg.data.n, "d_paired": cfg.data.d_paired,
            "d_unpaired": cfg.data.d_unpaired, "steps": cfg.loop.steps,
            "pretrain_steps": cfg.trainer.pretrain_steps}
    if cfg.trainer.method != "robot":  # the plan's gradient mode is ROBOT's alone
        del want["grad_mode"]
    return m if all(m.get(k) == v for k, v in want.items()) else None


def run_methods(base, seeds, out, methods=None, reuse=False, trained=TRAINED):
    """``{method label: {metric: [per seed]}}`` over the trained methods (``methods``: names of
    ``trained``, default all) and the report's baselines. ``reuse``: read the metrics of a run
    already finished in its directory with the same configuration instead of training again
    (its seconds are then compile + training time, without the baselines)."""
    from train.runner import run_config

    results = {}
    for name, (label, overrides) in trained.items():
        if methods is not None and name not in methods:
            continue
        for seed in seeds:
            cfg, run_dir = compose([*base, *overrides, f"seed={seed}"]), os.path.join(out, name, f"seed={seed}")
            t0 = time.perf_counter()
            m = finished_run(cfg, run_dir) if reuse else None
            reused = m is not None
            if not reused:
                m = run_config(cfg, run_dir)
                wall = time.perf_counter() - t0
            else:
                wall = m["compile_seconds"] + m["train_seconds"]
            row = results.setdefault(label, {})
            for key in ("val_error", "beta_error", "matching_accuracy"):
                row.setdefault(key, []).append(m.get(key, np.nan))
            row.setdefault("seconds", []).append(wall)
            row.setdefault("train_seconds", []).append(m["train_seconds"])
            print(f"{name} seed {seed}: 1-R^2 {m['val_error']:.4g}, {wall:.1f} s" + (" (reused)" * reused), flush=True)
            if name == "robot" and "oracle_val_error" in m:
                for prefix, blabel in BASELINES.items():
                    if f"{prefix}_val_error" not in m:  # stochastic EM: not run with blocks
                        continue
                    brow = results.setdefault(blabel, {})
                    for key in ("val_error", "beta_error", "matching_accuracy", "seconds"):
                        brow.setdefault(key, []).append(m[f"{prefix}_{key}"])
    return results


def fmt(values, digits=3):
    v = np.asarray(values, float)
    if np.all(np.isnan(v)):
        return "—"
    return f"{np.median(v):.{digits}g} ({np.mean(v):.{digits}g} ± {np.std(v):.{digits}g})"


def protocol(args, base):
    cfg = compose(base)
    trained = TRAINED if cfg.trainer.baselines else {**TRAINED, **nonlinear_references(cfg)}
    results = run_methods(base, args.seeds, args.out, reuse=args.reuse, trained=trained)
    headers = ["method", "1 − R² (validation)", "‖β̂ − β‖/‖β‖", "matching recovered", "s / run"]
    rows = [[label, fmt(r["val_error"]), fmt(r["beta_error"]), fmt(r["matching_accuracy"], 2),
             f"{np.mean(r['seconds']):.1f}"] for label, r in results.items()]
    table = markdown_table(headers, rows)
    d = cfg.data
    start = (f", the first {cfg.trainer.pretrain_steps} fitting the rows as given" if cfg.trainer.pretrain_steps
             else " from least squares")
    note = (f"`experiment={EXPERIMENT}`: {d.teacher} teacher, n = {d.n}, d = {d.d_paired} paired + {d.d_unpaired} "
            f"shuffled features, {100 * d.shuffled:.0f} % of the rows shuffled, SNR {d.snr:g}; ROBOT: "
            f"ε = {cfg.trainer.epsilon:g} × mean cost, {cfg.loop.steps} Adam steps (lr {cfg.optimizer.learning_rate:g})"
            f"{start}. Median (mean ± "
            f"std) over seeds {args.seeds}; 'matching recovered' is the share of responses whose exact assignment "
            f"under the fitted model is their true partner. `{command_line()}` at {git_revision()} on {cpu_model()}.")
    return table + "\n\n" + note


def shuffled(args, base):
    from train.figures.robot import error_against_shuffled

    shares = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    sized = [*base, f"data.n={args.n}", f"data.n_val={args.n}"]
    cfg = compose(sized)
    trained = TRAINED if cfg.trainer.baselines else {**TRAINED, **nonlinear_references(cfg)}
    per_share = [run_methods([*sized, f"data.shuffled={s}"], args.seeds, os.path.join(args.out, f"shuffled={s}"),
                             reuse=args.reuse, trained=trained) for s in shares]
    labels = list(per_share[0])
    curves = {lab: (shares, np.asarray([r[lab]["val_error"] for r in per_share]).T) for lab in labels}
    figure = FIGURE if cfg.data.teacher == "linear" else FIGURE.replace("robot_error", f"robot_{cfg.data.teacher}_error")
    os.makedirs(os.path.dirname(figure), exist_ok=True)
    if not args.no_write:
        error_against_shuffled(curves, figure, title=f"{cfg.data.teacher} teacher, n = {args.n}, "
                                                     f"d = {cfg.data.d_paired} paired + {cfg.data.d_unpaired} shuffled, "
                                                     f"SNR {cfg.data.snr:g}")
    headers = ["method", *[f"{100 * s:.0f} %" for s in shares]]
    rows = [[lab, *[f"{np.median(r[lab]['val_error']):.3g}" for r in per_share]] for lab in labels]
    table = markdown_table(headers, rows)
    note = (f"`experiment={EXPERIMENT}`: validation 1 − R², median over seeds {args.seeds}, against the share of "
            f"rows shuffled; n = {args.n}, {cfg.loop.steps} Adam steps. `{command_line()}` at {git_revision()} on "
            f"{cpu_model()}.")
    return table + "\n\n" + note + f"\n\n![error against shuffled share](figures/{os.path.basename(figure)})"


GRID_D = (5, 20)  # --study grid: features, 2/5 of them paired with y
GRID_N = (100, 1000, 10000)
GRID_SNR = (10.0, 100.0, 1000.0)
GRID_BLOCK = 1000  # n above this: correspondence lost within blocks of this size, one block per step
GRID_FIGURE = os.path.join(REPO, "docs", "figures", "robot_error_vs_noise.png")


def grid_overrides(d, n, snr):
    """The overrides of one cell of the grid study (half of the rows shuffled)."""
    paired = 2 * d // 5
    out = [f"data.d_paired={paired}", f"data.d_unpaired={d - paired}", f"data.n={n}", "data.n_val=1000",
           f"data.snr={snr}"]
    if n > GRID_BLOCK:
        out += [f"data.block_size={GRID_BLOCK}", f"trainer.block_size={GRID_BLOCK}", "trainer.blocks_per_step=1"]
    return out


def grid(args, base):
    """d x n at SNR 100 and d x SNR at n = 1000: the coefficient error and the matching recovered
    by ROBOT, AltMin (gradient steps) and the report's baselines."""
    from train.figures.robot import error_curves

    cells = sorted({(d, n, 100.0) for d in GRID_D for n in GRID_N} | {(d, 1000, s) for d in GRID_D for s in GRID_SNR})
    results = {}
    for d, n, snr in cells:
        results[d, n, snr] = run_methods([*base, *grid_overrides(d, n, snr)], args.seeds,
                                         os.path.join(args.out, f"d={d},n={n},snr={snr:g}"),
                                         methods=("robot", "alt_min_steps"), reuse=args.reuse)
    labels = list(results[cells[0]])

    def table(columns, header):
        def cell(c, lab):
            r = results[c].get(lab)
            if r is None:
                return "—"
            return f"{np.median(r['beta_error']):.3g} / {np.median(r['matching_accuracy']):.2f}"

        rows = [[lab, *[cell(c, lab) for c in columns]] for lab in labels]
        return "\n".join(["| method | " + " | ".join(header(c) for c in columns) + " |", "|" + "---|" * (len(columns) + 1)]
                         + ["| " + " | ".join(row) + " |" for row in rows])

    by_n = table([(d, n, 100.0) for d in GRID_D for n in GRID_N], lambda c: f"d = {c[0]}, n = {c[1]}")
    by_snr = table([(d, 1000, s) for d in GRID_D for s in GRID_SNR], lambda c: f"d = {c[0]}, SNR {c[2]:g}")
    seconds = [[lab, *[f"{np.mean(results[d, n, 100.0][lab]['train_seconds']):.1f}" for d in GRID_D for n in GRID_N]]
               for lab in TRAINED_LABELS if lab in labels]
    time_table = "\n".join(["| training s / run | " + " | ".join(f"d = {d}, n = {n}" for d in GRID_D for n in GRID_N) + " |",
                            "|" + "---|" * (len(GRID_D) * len(GRID_N) + 1)] + ["| " + " | ".join(r) + " |" for r in seconds])
    if not args.no_write:
        panels = {f"d = {d} ({2 * d // 5} paired), n = 1000": {
            lab: (GRID_SNR, np.asarray([results[d, 1000, s][lab]["beta_error"] for s in GRID_SNR]).T) for lab in labels}
            for d in GRID_D}
        error_curves(panels, GRID_FIGURE, xlabel="SNR", ylabel="||beta_hat - beta|| / ||beta||", xscale="log")
    cfg = compose(base)
    note = (f"`experiment={EXPERIMENT}` with d features of which 2/5 stay paired with y, half of the rows "
            f"shuffled; each cell: median over seeds {args.seeds} of ‖β̂ − β‖/‖β‖ / the share of responses whose "
            f"exact assignment under the fitted model is their true partner. n = {max(GRID_N)}: the correspondence "
            f"is lost within blocks of {GRID_BLOCK} rows (one block per step; the baselines assign within blocks, "
            f"stochastic EM is not run). ROBOT: ε = {cfg.trainer.epsilon:g} × mean cost, {cfg.loop.steps} Adam steps "
            f"(lr {cfg.optimizer.learning_rate:g}) from least squares. `{command_line()}` at {git_revision()} on "
            f"{cpu_model()}.")
    return (by_n + "\n\n" + by_snr + "\n\n" + time_table + "\n\n" + note
            + "\n\n![coefficient error against noise](figures/robot_error_vs_noise.png)")


def wells(args, base):
    """The cytometry study: validation error against the well size (order lost within wells)."""
    sizes = [25, 50, 100]
    per_size = [run_methods([*base, f"data.well_size={w}"], args.seeds, os.path.join(args.out, f"well={w}"),
                            methods=("robot", "robot_stop_gradient")) for w in sizes]
    labels = list(per_size[0])
    headers = ["method", *[f"wells of {w}" for w in sizes], "s / run (wells of 50)"]
    rows = [[lab, *[fmt(r[lab]["val_error"]) for r in per_size], f"{np.mean(per_size[1][lab]['seconds']):.1f}"]
            for lab in labels]
    match_rows = [[lab, *[f"{np.median(r[lab]['matching_accuracy']):.2f}" for r in per_size]] for lab in labels]
    table = markdown_table(headers, rows)
    match_table = "\n".join(["| matching recovered | " + " | ".join(headers[1:-1]) + " |", "|" + "---|" * len(sizes)
                             + "---|"] + ["| " + " | ".join(row) + " |" for row in match_rows])
    cfg = compose(base)
    note = (f"`experiment={EXPERIMENT}` (simulated instruments, {cfg.data.n_channels} detectors each, "
            f"n = {cfg.data.n} cells, every well fully shuffled): validation 1 − R², median (mean ± std) over "
            f"seeds {args.seeds}; ROBOT: ε = {cfg.trainer.epsilon:g} × mean cost, {cfg.trainer.blocks_per_step} "
            f"wells per step, {cfg.loop.steps} Adam steps (lr {cfg.optimizer.learning_rate:g}) from least squares. "
            f"`{command_line()}` at {git_revision()} on {cpu_model()}.")
    return table + "\n\n" + match_table + "\n\n" + note


def scale(args, base):
    """The scale study: ROBOT and AltMin (gradient steps) at n = 100,000 for one epoch, with the
    exact-assignment baselines within the same blocks."""
    from train.runner import run_config

    cfg = compose(base)
    n, block, per_step = cfg.data.n, cfg.trainer.block_size, cfg.trainer.blocks_per_step
    epoch_steps = n // (block * per_step)
    steps = args.steps or epoch_steps
    rows = []
    for name in ("robot", "alt_min_steps"):
        label, overrides = TRAINED[name]
        extra = ["trainer.baselines=true"] if name == "robot" else []
        for seed in args.seeds:
            m = run_config(compose([*base, *overrides, *extra, f"loop.steps={steps}", f"seed={seed}"]),
                           os.path.join(args.out, name, f"seed={seed}"))
            per_epoch = m["train_seconds"] * epoch_steps / steps
            rows.append([f"{label}, seed {seed}", f"{per_epoch:.1f} s / epoch ({steps} steps)",
                         f"{m['val_error']:.3g}", f"{m['matching_accuracy']:.3f}"])
            print(rows[-1], flush=True)
            if name == "robot":
                for prefix, blabel in BASELINES.items():
                    if f"{prefix}_val_error" in m:
                        rows.append([f"{blabel}, seed {seed}", f"{m[prefix + '_seconds']:.1f} s in all",
                                     f"{m[prefix + '_val_error']:.3g}", f"{m[prefix + '_matching_accuracy']:.3f}"])
    headers = ["method", "time", "1 − R² (validation)", "matching recovered"]
    table = markdown_table(headers, rows)
    note = (f"`experiment={EXPERIMENT}`: n = {n} rows, correspondence lost within blocks of {block}, {per_step} "
            f"blocks per step (one epoch: {epoch_steps} steps), linear teacher, d = {cfg.data.d_paired} paired + "
            f"{cfg.data.d_unpaired} shuffled, every row of a block shuffled; the trained methods' time is "
            f"training time (compilation excluded) scaled to one epoch, the baselines' the whole fit (AltMin: "
            f"exact assignments of every block per iteration, to a fixed point). "
            f"`{command_line()}` at {git_revision()} on {cpu_model()}.")
    return table + "\n\n" + note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=["protocol", "shuffled", "grid", "wells", "scale"], required=True)
    parser.add_argument("--experiment", default="robot_linear",
                        help="robot_linear | robot_mlp (protocol and shuffled studies); --study wells / scale set their own")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0..9 (protocol), 0 (scale), 0..2 (shuffled, grid, wells)")
    parser.add_argument("--steps", type=int, default=None, help="loop.steps (default: the experiment's)")
    parser.add_argument("--n", type=int, default=200, help="--study shuffled: rows per data set")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--reuse", action="store_true",
                        help="--study grid, protocol, shuffled: read runs already finished under --out with the same configuration")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run (after --)")
    args = parser.parse_args(argv)
    global EXPERIMENT
    EXPERIMENT = args.experiment
    if args.study in ("wells", "scale"):
        EXPERIMENT = args.experiment = {"wells": "robot_cytometry", "scale": "robot_scale"}[args.study]
    if args.seeds is None:
        args.seeds = {"protocol": list(range(10)), "scale": [0]}.get(args.study, [0, 1, 2])
    args.out = args.out or os.path.join(REPO, "outputs", f"robot_{args.study}")
    base = ["loop.progress=false", "loop.checkpoint_every=0", "loop.eval_every=0", "resume=false", *args.overrides]
    if args.steps is not None:
        base.append(f"loop.steps={args.steps}")
    text = {"protocol": protocol, "shuffled": shuffled, "grid": grid, "wells": wells, "scale": scale}[args.study](args, base)
    print(text)
    if not args.no_write:
        block = {("robot_mlp", "protocol"): "robot-mlp", ("robot_mlp", "shuffled"): "robot-mlp-shuffled",
                 ("robot_cytometry", "wells"): "robot-cytometry",
                 ("robot_scale", "scale"): "robot-scale"}.get((args.experiment, args.study), f"robot-{args.study}")
        write_section(block, text, DOC)


if __name__ == "__main__":
    main()
