"""Reproduce every experiment of the README's experiment table: ``make reproduce``.

Each experiment runs once through the real entry point,
``python -m train experiment=<name> hydra.run.dir=outputs/reproduce/<scale>/<name> [overrides]``,
one after the other (each run has both cores). Then its figures are copied into
``docs/figures/`` and one row per experiment is written into the ``reproduce`` block of
``docs/reproduction.md``: experiment, thesis figure or table, the thesis's number, ours (read
from the run's ``metrics.json``), wall time on this machine, command.

Scales:

* default (**short**): every experiment at the scale of its config file, except the few whose
  documented run is too long for the 3-hour budget on 2 CPU cores; those run shorter
  (``short=`` below: fewer steps) and still show the behaviour the row reports. Their
  figures go to ``docs/figures/reproduce/`` so that they never replace a full-scale figure.
* ``--full``: every experiment at its documented scale, then the multi-run sweeps and
  tables of the README (``make sweeps``,
  ``make density-sweeps``, ``make generator-sweeps``, ``make knn-table``, ``make robot-tables``,
  the domain-adaptation tables).

Figures named in an experiment's ``figures`` map (the thesis figures) are copied under their
``docs/figures/`` names when the run is at its documented scale; every other PNG of a run goes
to ``docs/figures/reproduce/<name>_<file>``.

Resuming: an experiment that finished is skipped (its ``reproduce.json`` stamp holds the
command, exit code, wall time and metrics, and the command has not changed); a failed one is
retried; a training run
stopped midway resumes from its last checkpoint (the trainer's ``resume=true``); an analysis
stopped midway starts again. ``--force NAME`` reruns one, ``--list`` prints the plan.

Usage::

    python scripts/reproduce.py [--full] [--only NAME ...] [--force NAME ...] [--list] [-- OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "scripts")]

from _timing import cpu_model, git_revision, markdown_table, write_section  # noqa: E402
from train.report import fmt  # noqa: E402

OUT = os.path.join("outputs", "reproduce")
REPORT = os.path.join(REPO, "docs", "reproduction.md")
FIGURES = os.path.join(REPO, "docs", "figures")
__all__ = ["Experiment", "EXPERIMENTS", "FULL_TABLES", "run", "figure_targets", "copy_figures", "plan", "table", "main"]


def _fields(*fields: tuple[str, str, str]) -> Callable[[dict], str]:
    """``metrics -> "label value; ..."`` for ``(label, top-level key of metrics.json, format)`` fields."""
    return lambda m: "; ".join(f"{label} {fmt(m.get(key), spec)}" for label, key, spec in fields)


def _per_method(group: str, key: str, spec: str, label: Callable[[str], str] = str,
                keep: Callable[[str], bool] = lambda name: True) -> Callable[[dict], str]:
    """``metrics[group][method][key]`` for the methods of an analysis that have it (and that ``keep``
    accepts), ``"method: value; ..."``."""
    return lambda m: "; ".join(f"{label(name)}: {fmt(v[key], spec)}" for name, v in m.get(group, {}).items()
                               if keep(name) and v.get(key) is not None)


def _ipot_plans(m: dict) -> str:
    return "; ".join(f"{p['label']}: rel. error {fmt(p.get('rel_error'), '.1e')}" for p in m.get("panels", []))


def _ipot_scaling(m: dict) -> str:
    out = []
    for method, r in m.get("results", {}).items():
        sizes = [n for n, v in r.get("per_n", {}).items() if v.get("reached")]
        out.append(f"{method}: reached {m.get('target', 0):.0e} at n = {', '.join(sizes) or 'none'}")
    return "; ".join(out)


_GENERATOR = _fields(("modes", "modes_covered", "d"), ("std ratio", "std_ratio", ".2f"),
                     ("held-out W2", "heldout_w2", ".3f"))
_SPOT = _fields(("estimate", "w_estimate", ".3f"), ("rel. error", "rel_error", ".2%"))
_DENSITY = _fields(("KL(ref ‖ rec)", "kl", ".4f"), ("λ", "lam", "g"))
_DASPOT = _fields(("target acc.", "target_accuracy", ".1%"), ("source only", "source_only_accuracy", ".1%"))
_ROBOT = _fields(("1 − R²: ROBOT", "val_error", ".3g"), ("AltMin", "alt_min_val_error", ".3g"),
                 ("least squares", "least_squares_val_error", ".3g"), ("oracle", "oracle_val_error", ".3g"))


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of the table: ``conf/experiment/<name>.yaml`` run once.

    ``ours``: the row's numbers from the run's ``metrics.json``. ``figures``: run-directory file
    → ``docs/figures/`` name, used at the full scale; the short scale, and files not named here,
    go to ``docs/figures/reproduce/<name>_<file>``. ``short``: overrides of the short scale
    (empty: the documented scale already fits the budget).
    """

    name: str
    thesis: str
    thesis_number: str
    ours: Callable[[dict], str]
    figures: dict[str, str] = dataclasses.field(default_factory=dict)
    short: tuple[str, ...] = ()

    def run_dir(self, full: bool, root: str = OUT) -> str:
        """``<root>/full/<name>`` at the documented scale, ``<root>/short/<name>`` at the short one."""
        return os.path.join(root, "full" if self.full_scale(full) else "short", self.name)

    def command(self, full: bool, root: str = OUT, extra: tuple[str, ...] = ()) -> list[str]:
        """The run's command line (``python`` stands for this interpreter); ``extra``: more overrides."""
        short = () if self.full_scale(full) else self.short
        return ["python", "-m", "train", f"experiment={self.name}", f"hydra.run.dir={self.run_dir(full, root)}",
                *short, *extra]

    def full_scale(self, full: bool) -> bool:
        """Whether the run is at its documented scale (``--full``, or no short scale defined)."""
        return full or not self.short


E = Experiment
EXPERIMENTS: tuple[Experiment, ...] = (
    E("ipot_convergence", "fig. 2.2", "L = 1 converges linearly to the LP value",
      _per_method("methods", "rel_error", ".1e", keep=lambda n: "L=1]" in n or "L=20]" in n or "sinkhorn" in n),
      {"ipot_convergence.png": "fig2_2_ipot_convergence.png"}),
    E("ipot_scaling", "fig. 2.3", "log-log time to 1e-4 relative error against n", _ipot_scaling,
      {"ipot_scaling.png": "fig2_3_ipot_scaling.png"}),
    E("ipot_plans", "fig. 2.4", "IPOT's plan sharp like the LP's, Sinkhorn's blurred", _ipot_plans,
      {"ipot_plans.png": "fig2_4_ipot_plans.png"}),
    E("color_transfer", "fig. 2.7", "IPOT identical to the LP",
      _per_method("methods", "max_diff_to_lp_levels", ".2f",
                  lambda n: f"{n}, largest difference to the LP image (of 255)"), {"color_transfer.png": "fig2_7_color_transfer.png"}),
    E("digit_barycenters", "fig. 2.8", "IPOT sharper than Sinkhorn",
      _per_method("barycenters", "objective_lower", ".5f", lambda n: f"{n} exact objective"),
      {"digit_barycenters.png": "fig2_8_digit_barycenters.png"}),
    E("generator_mixture", "fig. 2.5", "Sinkhorn shrinks as ε grows, IPOT covers the support", _GENERATOR),
    E("wgan_mixture", "fig. 2.5, WGAN", "WGAN worse on small 2-D problems", _GENERATOR),
    E("wgan_gp_mixture", "Gulrajani et al. 2017", "8/8 modes (Gulrajani et al.)", _GENERATOR),
    E("generator_digits", "fig. 2.6", "IPOT covers 10 digits against 6 for Sinkhorn",
      _fields(("digits", "digits_covered", "d"), ("NN precision", "nn_precision", ".2f"),
              ("NN recall", "nn_recall", ".2f"))),
    E("generator_grid", "—", "—", _GENERATOR),
    E("point_cloud_matching", "lecture slides", "EMD matches the target, Chamfer clusters",
      _per_method("fits", "emd", ".2e", lambda n: f"EMD after {n}"),
      {"point_cloud_matching.png": "slides_point_cloud_matching.png"}),
    E("wgan_critic", "slides (Arjovsky et al., fig. 2)", "the GAN discriminator saturates, the WGAN critic does not",
      _per_method("critics", "w1_estimate", ".3f", lambda n: f"{n}, W1 estimate (true 1)"),
      {"wgan_critic.png": "slides_wgan_critic.png"}),
    E("spot_w_distance", "fig. 3.2", "0.6 % error at lr 1e-3", _SPOT),
    E("spot_hidden_units", "fig. 3.3", "robust to width (with η tuned per width)", _SPOT),
    E("spot_pairs_gaussians", "fig. 3.6, upper row", "plots (W2² = 25)", _SPOT,
      {"spot.png": "fig3_6_spot_pairs_gaussians.png"}),
    E("spot_pairs_sine", "fig. 3.6, lower row", "plots", _fields(("estimate", "w_estimate", ".2f")),
      {"spot.png": "fig3_6_spot_pairs_sine.png"}),
    E("spot_digit_pairs", "fig. 3.5", "paired MNIST–MNIST-M digits", _fields(("estimate", "w_estimate", ".3f")),
      {"spot.png": "fig3_5_spot_digit_pairs.png"}),
    E("density_gaussian", "fig. 3.4, Gaussian case", "plots", _DENSITY, short=("loop.steps=3000",)),
    E("density_mixture", "fig. 3.4, mixture case", "plots", _DENSITY, short=("loop.steps=3000",)),
    E("daspot_rotated", "§3.5 (DASPOT)", "state of the art on digit adaptation (MNIST, USPS, SVHN, MNIST-M)", _DASPOT),
    E("daspot_colored", "§3.5 (DASPOT)", "(as daspot_rotated)", _DASPOT),
    E("daspot_textured", "§3.5 (DASPOT)", "(as daspot_rotated)", _DASPOT),
    E("daspot_usps", "§3.5 (DASPOT)", "(as daspot_rotated)", _DASPOT),
    E("soft_knn_digits", "Xie et al. 2020, kNN", "SOFT's kNN above every baseline on MNIST and CIFAR-10",
      _fields(("test acc.", "test_accuracy", ".2%"), ("raw pixels", "pixel_accuracy", ".2%"))),
    E("soft_beam_seq", "Xie et al. 2020, beam search", "BLEU gains over teacher forcing on WMT'14 En–Fr",
      _fields(("beam seq. acc.", "beam_seq_acc", ".3f"), ("greedy", "greedy_seq_acc", ".3f"))),
    E("robot_linear", "Xie et al. 2021, linear", "ROBOT at or above AltMin and stochastic EM", _ROBOT),
    E("robot_mlp", "—", "—", _fields(("1 − R²: ROBOT", "val_error", ".3g"))),
    E("robot_cytometry", "Xie et al. 2021, flow cytometry", "ROBOT on real flow-cytometry data", _ROBOT),
    E("robot_scale", "—", "—", _fields(("1 − R²", "val_error", ".4f"), ("β error", "beta_error", ".4f")),
      short=("loop.steps=125", "loop.log_every=5", "loop.eval_every=25", "loop.checkpoint_every=25")),
)
del E

# --full only: the README's multi-run sweeps and tables (each writes its own figures and docs block).
FULL_TABLES: tuple[tuple[str, list[str]], ...] = (
    ("sweeps", ["make", "sweeps"]),
    ("density-sweeps", ["make", "density-sweeps"]),
    ("generator-sweeps", ["make", "generator-sweeps"]),
    ("knn-table", ["make", "knn-table"]),
    ("robot-tables", ["make", "robot-tables"]),
    ("soft-beam-table", ["python", "scripts/soft_beam_table.py"]),
    ("da-table", ["python", "scripts/da_table.py"]),
    ("daspot-table", ["python", "scripts/daspot_table.py"]),
)


def _read_stamp(run_dir: str) -> dict | None:
    """The ``reproduce.json`` of ``run_dir`` (relative to the repository), or None."""
    try:
        with open(os.path.join(REPO, run_dir, "reproduce.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _finished(run_dir: str, command: list[str]) -> dict | None:
    """The stamp of ``run_dir`` when it records a success of this very command."""
    stamp = _read_stamp(run_dir)
    return stamp if stamp is not None and stamp.get("command") == command and stamp.get("returncode") == 0 else None


def _launch(argv: list[str]) -> int:
    """Run ``argv`` in the repository, output passed through; returns its exit code."""
    return subprocess.run(argv, cwd=REPO).returncode


def run(name: str, command: list[str], run_dir: str, force: bool = False) -> dict:
    """Run ``command`` unless ``run_dir`` records its success; returns the stamp.

    ``force``, or a stamp of another command in ``run_dir``, runs it afresh (``resume=false``);
    a directory without a stamp (an interrupted run) is resumed.

    The stamp (``<run_dir>/reproduce.json``): the command, its return code, wall seconds,
    the finishing time and the run's ``metrics.json`` (empty if it wrote none).
    """
    stamp = _finished(run_dir, command)
    if stamp is not None and not force:
        print(f"[reproduce] {name}: finished earlier in {stamp['seconds']:.0f} s, skipped", flush=True)
        return stamp
    earlier = _read_stamp(run_dir)
    # Afresh when forced or when the directory holds a finished run of another command (its
    # checkpoints belong to that command); otherwise an interrupted run resumes.
    afresh = force or (earlier is not None and earlier.get("command") != command)
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    if afresh and command[0] == "python":
        argv.append("resume=false")
    print(f"[reproduce] {name}: $ {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    returncode = _launch(argv)
    seconds = time.perf_counter() - start
    metrics_path = os.path.join(REPO, run_dir, "metrics.json")
    metrics = {}
    if returncode == 0 and os.path.exists(metrics_path):
        with open(metrics_path) as fh:
            metrics = json.load(fh)
    stamp = {"command": command, "returncode": returncode, "seconds": seconds,
             "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "metrics": metrics}
    os.makedirs(os.path.join(REPO, run_dir), exist_ok=True)
    with open(os.path.join(REPO, run_dir, "reproduce.json"), "w") as fh:
        json.dump(stamp, fh, indent=1)
    print(f"[reproduce] {name}: {'done' if returncode == 0 else f'FAILED (exit {returncode})'} "
          f"in {seconds:.0f} s", flush=True)
    return stamp


def figure_targets(exp: Experiment, full: bool, root: str, figures: str) -> list[tuple[str, str]]:
    """``(source, target)`` paths of the run's PNGs: ``figures/<thesis name>`` for the files of
    ``exp.figures`` at the documented scale, ``figures/reproduce/<name>_<file>`` otherwise."""
    run_dir = os.path.join(REPO, exp.run_dir(full, root))
    sources = sorted(f for f in os.listdir(run_dir) if f.endswith(".png")) if os.path.isdir(run_dir) else []
    return [(os.path.join(run_dir, source),
             os.path.join(figures, exp.figures[source]) if exp.full_scale(full) and source in exp.figures
             else os.path.join(figures, "reproduce", f"{exp.name}_{source}")) for source in sources]


def copy_figures(exp: Experiment, full: bool, root: str, figures: str) -> list[str]:
    """Copy the run's PNGs (see :func:`figure_targets`); returns the copies."""
    copies = []
    for source, target in figure_targets(exp, full, root, figures):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
        copies.append(target)
    return copies


def plan(only: list[str] | None = None) -> list[Experiment]:
    """The experiments to run, in table order (``only``: those names)."""
    names = {e.name for e in EXPERIMENTS}
    unknown = sorted(set(only or ()) - names)
    if unknown:
        raise SystemExit(f"--only: unknown experiment(s) {unknown}; known: {sorted(names)}")
    return [e for e in EXPERIMENTS if not only or e.name in only]


def table(full: bool, root: str = OUT, extra: tuple[str, ...] = (), figures: str = FIGURES,
          report: str = REPORT) -> str:
    """The Markdown table over every experiment: the finished ones with their numbers and links to
    their figures (relative to ``report``), the others marked."""
    body, total, done, failed = [], 0.0, 0, []
    for exp in EXPERIMENTS:
        command = exp.command(full, root, extra)
        stamp = _read_stamp(exp.run_dir(full, root))
        if stamp is None or stamp.get("command") != command:
            ours, seconds = "not run yet", "—"
        elif stamp.get("returncode") != 0:
            ours, seconds = f"failed (exit {stamp.get('returncode')})", f"{stamp['seconds']:.0f} s"
            failed.append(exp.name)
        else:
            links = [f"[{os.path.splitext(os.path.basename(t))[0]}]"
                     f"({os.path.relpath(t, os.path.dirname(os.path.abspath(report)))})"
                     for _, t in figure_targets(exp, full, root, figures) if os.path.exists(t)]
            ours = "; ".join(x for x in (exp.ours(stamp["metrics"]), ", ".join(links)) if x) or "—"
            seconds = f"{stamp['seconds']:.0f} s"
            total += stamp["seconds"]
            done += 1
        scale = "" if exp.full_scale(full) else " (short)"
        body.append([f"`{exp.name}`{scale}", exp.thesis, exp.thesis_number, ours, seconds,
                     f"`{shlex.join(command)}`"])
    head = (f"Measured by `python scripts/reproduce.py{' --full' if full else ''}` on {cpu_model()} "
            f"({os.cpu_count()} cores), revision {git_revision()}: {done} of {len(EXPERIMENTS)} experiments "
            f"finished, {total / 60:.1f} min of runs in all (one at a time; a run resumed after an "
            f"interruption counts its last part only)" + (f"; failed: {', '.join(failed)}" if failed else "") + ".")
    return head + "\n\n" + markdown_table(["experiment", "thesis", "thesis reports", "ours", "time", "command"], body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the documented scale, then the sweeps and tables")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    parser.add_argument("--force", nargs="+", default=[], metavar="NAME", help="rerun these even if finished")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--out", default=OUT, help=f"root of the run directories (default {OUT})")
    parser.add_argument("--report", default=REPORT, help="the Markdown file whose `reproduce` block is written")
    parser.add_argument("--figures", default=FIGURES, help="where the figures are copied")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args(argv)
    experiments, extra = plan(args.only), tuple(args.overrides)
    if args.list:
        for exp in experiments:
            command = exp.command(args.full, args.out, extra)
            stamp = _finished(exp.run_dir(args.full, args.out), command)
            state = f"done ({stamp['seconds']:.0f} s)" if stamp else "to run"
            print(f"{exp.name:22s} {state:14s} {shlex.join(command)}")
        return 0
    start = time.perf_counter()
    failed = []
    for exp in experiments:
        stamp = run(exp.name, exp.command(args.full, args.out, extra), exp.run_dir(args.full, args.out),
                    exp.name in args.force)
        if stamp["returncode"] != 0:
            failed.append(exp.name)
            continue
        for copy in copy_figures(exp, args.full, args.out, args.figures):
            print(f"[reproduce] {exp.name}: -> {os.path.relpath(copy, REPO)}", flush=True)
    write_section("reproduce", table(args.full, args.out, extra, args.figures, args.report), args.report)
    print(f"[reproduce] table written to {os.path.relpath(args.report, REPO)}", flush=True)
    if args.full and not args.only:
        for name, command in FULL_TABLES:
            if run(name, command, os.path.join(args.out, "full", name), name in args.force)["returncode"] != 0:
                failed.append(name)
    print(f"[reproduce] finished in {(time.perf_counter() - start) / 60:.1f} min"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
