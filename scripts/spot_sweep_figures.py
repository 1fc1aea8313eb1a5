"""Thesis figs. 3.2 and 3.3 from SPOT multirun sweeps (``python -m train -m ...``).

Each sweep job writes a run directory (``.hydra/config.yaml``, ``metrics.jsonl``,
``metrics.json``); this script reads every run directory under the given sweep
directories and draws:

* ``fig3_2``: SPOT's estimate of W against the generator step, one panel per
  learning rate (``optimizer.learning_rate``, descending as in the thesis): the mean
  over seeds with a +-1 std band (sample std, ddof = 1) and the true value (dashed).
  Sweep::

      python -m train -m experiment=spot_w_distance optimizer.learning_rate=1e-3,1e-4,1e-5 \\
          seed=0,1,2,3,4 hydra.sweep.dir=multirun/fig3_2
      python scripts/spot_sweep_figures.py fig3_2 multirun/fig3_2

* ``fig3_3``: box plots of the final per-seed relative error (%) against the hidden
  units per layer (``model.hidden[0]``, log2 axis), one box per (width, ``trainer.eta``).
  Sweeps (one per eta, as in the thesis) are read together::

      python scripts/spot_sweep_figures.py fig3_3 multirun/fig3_3_eta1e5 multirun/fig3_3_eta1e4

Both print a table (``--json PATH`` also writes its rows, e.g. for the README) and
save a PNG (default ``docs/figures/fig3_2_spot_w_vs_step.png`` /
``docs/figures/fig3_3_spot_hidden_units.png``).

Relative errors are ``|W_hat - W| / |W|`` with ``W = trainer.true_value`` of the
run's config (else ``true_value`` of its ``metrics.json``), from the run's last
evaluation (``w_estimate`` in ``metrics.jsonl``). Runs without ``metrics.json``
(unfinished or crashed) are skipped, with a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from train.report import format_table, to_jsonable  # noqa: E402

__all__ = ["load_runs", "fig3_2_table", "fig3_3_table", "fig3_2_figure", "fig3_3_figure", "main",
           "THESIS_REL_ERROR_PCT"]

# Thesis §3.6.1 / fig. 3.2: relative error of SPOT's W estimate (%) per learning rate.
THESIS_REL_ERROR_PCT = {1e-3: 0.6, 1e-4: 0.3, 1e-5: 0.3}
DEFAULT_OUT = {"fig3_2": os.path.join(REPO, "docs", "figures", "fig3_2_spot_w_vs_step.png"),
               "fig3_3": os.path.join(REPO, "docs", "figures", "fig3_3_spot_hidden_units.png")}


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- loading


def _number(value):
    """JSON values as written by the loop: non-finite floats are strings ('nan', 'inf')."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _read_jsonl(path: str) -> list[dict]:
    records = []
    with open(path) as fh:
        for line in fh:
            if line.strip():
                records.append({k: _number(v) for k, v in json.loads(line).items()})
    return records


def _read_config(path: str) -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime resolvers: keep it as written
        return OmegaConf.to_container(cfg, resolve=False)


def _run_dirs(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.isfile(os.path.join(dirpath, ".hydra", "config.yaml")) and \
                os.path.isfile(os.path.join(dirpath, "metrics.jsonl")):
            found.append(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in (".hydra", "checkpoints", "tensorboard"))
    return found


def load_runs(sweep_dirs) -> list[dict]:
    """Every finished run directory under ``sweep_dirs`` (a path or a list of paths).

    A run directory holds ``.hydra/config.yaml`` and ``metrics.jsonl``; one without
    ``metrics.json`` is unfinished and skipped (noted on stderr).

    Returns:
      A list (sorted by path) of dicts: ``config`` (the config as a plain dict,
      interpolations resolved), ``history`` (the ``metrics.jsonl`` records), ``summary``
      (``metrics.json``) and ``path``.
    """
    if isinstance(sweep_dirs, (str, os.PathLike)):
        sweep_dirs = [sweep_dirs]
    runs, seen = [], set()
    for root in sweep_dirs:
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"no such sweep directory: {root}")
        for path in _run_dirs(root):
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            if not os.path.isfile(os.path.join(path, "metrics.json")):
                _warn(f"skipping {path}: no metrics.json (unfinished or failed run)")
                continue
            with open(os.path.join(path, "metrics.json")) as fh:
                summary = {k: _number(v) for k, v in json.load(fh).items()}
            runs.append({"config": _read_config(os.path.join(path, ".hydra", "config.yaml")),
                         "history": _read_jsonl(os.path.join(path, "metrics.jsonl")),
                         "summary": summary, "path": path})
    return sorted(runs, key=lambda r: r["path"])


# ---------------------------------------------------------------------------------------------- helpers


def _get(config: dict, dotted: str, default=None):
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return default
    return node


def _true_value(run: dict):
    value = _get(run["config"], "trainer.true_value")
    if value is None:
        value = run["summary"].get("true_value")
    return None if value is None else float(value)


def _evaluations(run: dict) -> list[tuple[int, float]]:
    """``(step, w_estimate)`` of the run's evaluations (finite ones), by step."""
    out = {}
    for r in run["history"]:
        w = r.get("w_estimate")
        if isinstance(w, (int, float)) and math.isfinite(w):
            out[int(r["step"])] = float(w)
    return sorted(out.items())


def _final(run: dict):
    """``(step, w_estimate)`` of the run's last evaluation (``metrics.json`` if the log has none)."""
    evals = _evaluations(run)
    if evals:
        return evals[-1]
    w = run["summary"].get("w_estimate")
    if isinstance(w, (int, float)):
        return int(run["summary"].get("step", 0)), float(w)
    return None


def _rel_pct(w: float, true_value) -> float | None:
    return None if true_value is None else 100.0 * abs(w - true_value) / abs(true_value)


def _sample_std(x: np.ndarray, axis=0):
    return np.std(x, axis=axis, ddof=1) if x.shape[axis] > 1 else np.zeros_like(np.mean(x, axis=axis))


def format_lr(lr: float) -> str:
    """``1e-3``, ``2.5e-4``, ``1e5``: the thesis' way of writing learning rates (and eta)."""
    mantissa, exponent = f"{lr:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def thesis_rel_error_pct(lr: float):
    for known, pct in THESIS_REL_ERROR_PCT.items():
        if math.isclose(lr, known, rel_tol=1e-9):
            return pct
    return None


def _seeds(group):
    return [int(_get(r["config"], "seed", r["summary"].get("seed", -1))) for r in group]


# ---------------------------------------------------------------------------------------------- fig. 3.2


def _lr_groups(runs) -> list[dict]:
    """Per learning rate (descending): the seeds' W estimates on the evaluation steps they share."""
    groups = defaultdict(list)
    for run in runs:
        lr = _get(run["config"], "optimizer.learning_rate")
        if lr is None:
            _warn(f"skipping {run['path']}: no optimizer.learning_rate in its config")
            continue
        if not _evaluations(run):
            _warn(f"skipping {run['path']}: no w_estimate in metrics.jsonl")
            continue
        groups[float(lr)].append(run)
    out = []
    for lr in sorted(groups, reverse=True):
        group = groups[lr]
        evals = [dict(_evaluations(r)) for r in group]
        steps = sorted(set.intersection(*(set(e) for e in evals)))
        if not steps:
            _warn(f"learning rate {format_lr(lr)}: the runs share no evaluation step; skipped")
            continue
        if any(max(e) != steps[-1] for e in evals):
            _warn(f"learning rate {format_lr(lr)}: runs of different lengths; using the {len(steps)} evaluation "
                  f"steps they share (up to {steps[-1]})")
        seeds = _seeds(group)
        if len(set(seeds)) < len(seeds):
            _warn(f"learning rate {format_lr(lr)}: repeated seeds {sorted(seeds)}")
        trues = {_true_value(r) for r in group}
        if len(trues) > 1:
            _warn(f"learning rate {format_lr(lr)}: runs disagree on the true value {sorted(map(str, trues))}")
        w = np.array([[e[s] for s in steps] for e in evals], dtype=float)  # [seeds, steps]
        out.append({"learning_rate": lr, "runs": group, "seeds": seeds, "steps": np.array(steps), "w": w,
                    "true_value": _true_value(group[0])})
    return out


def fig3_2_table(runs) -> list[dict]:
    """One row per learning rate (descending); relative errors in percent.

    Keys: ``learning_rate``, ``seeds`` (count), ``seed_list``, ``steps`` (the final
    evaluation step shared by the seeds), ``true_value``, ``mean_estimate``,
    ``std_estimate`` (sample std over seeds, 0 for one seed), ``rel_error_of_mean_pct``
    (of the seed-mean estimate), ``mean_rel_error_pct`` / ``median_rel_error_pct`` (of
    the per-seed errors), ``thesis_rel_error_pct`` (None when the thesis has none).
    """
    rows = []
    for g in _lr_groups(runs):
        final = g["w"][:, -1]
        true = g["true_value"]
        mean = float(np.mean(final))
        per_seed = None if true is None else 100.0 * np.abs(final - true) / abs(true)
        rows.append({
            "learning_rate": g["learning_rate"],
            "seeds": len(final),
            "seed_list": g["seeds"],
            "steps": int(g["steps"][-1]),
            "true_value": true,
            "mean_estimate": mean,
            "std_estimate": float(_sample_std(final)),
            "rel_error_of_mean_pct": _rel_pct(mean, true),
            "mean_rel_error_pct": None if per_seed is None else float(np.mean(per_seed)),
            "median_rel_error_pct": None if per_seed is None else float(np.median(per_seed)),
            "thesis_rel_error_pct": thesis_rel_error_pct(g["learning_rate"]),
        })
    return rows


def _pct(value, digits=3):
    return "-" if value is None else f"{value:#.{digits}g} %"


def print_fig3_2_table(rows) -> str:
    headers = ["LR", "seeds", "steps", "estimate (mean ± std)", "true W", "rel. err. of mean",
               "mean rel. err.", "median rel. err.", "thesis"]
    body = [[format_lr(r["learning_rate"]), r["seeds"], r["steps"],
             f"{r['mean_estimate']:.4f} ± {r['std_estimate']:.4f}",
             "-" if r["true_value"] is None else f"{r['true_value']:g}",
             _pct(r["rel_error_of_mean_pct"]), _pct(r["mean_rel_error_pct"]), _pct(r["median_rel_error_pct"]),
             _pct(r["thesis_rel_error_pct"])] for r in rows]
    text = format_table(headers, body, title="SPOT estimate of W at the final step, per learning rate "
                                             "(relative errors |W_hat - W| / W)")
    print(text)
    return text


def fig3_2_figure(runs, out: str) -> str:
    """Thesis fig. 3.2: mean W estimate (±1 std over seeds) vs step, one panel per learning rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _lr_groups(runs)
    if not groups:
        raise ValueError("no run with optimizer.learning_rate and w_estimate evaluations")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], groups):
        mean, std = g["w"].mean(axis=0), _sample_std(g["w"])
        n = len(g["seeds"])
        ax.plot(g["steps"], mean, color="tab:blue", lw=1.5, label=f"SPOT, mean of {n} seed{'s' * (n != 1)}")
        if n > 1:
            ax.fill_between(g["steps"], mean - std, mean + std, color="tab:blue", alpha=0.25, lw=0, label="±1 std")
        if g["true_value"] is not None:
            ax.axhline(g["true_value"], color="k", ls="--", lw=1, label=f"true W = {g['true_value']:g}")
        ax.set_title(f"LR = {format_lr(g['learning_rate'])} ({n} seed{'s' * (n != 1)})")
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("estimated W  (E c(G_X(Z), G_Y(Z)))")
    axes[0][0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------------------------------------- fig. 3.3

_PARAM_CACHE: dict[str, int | None] = {}


def generator_parameters(config: dict) -> int | None:
    """Number of generator parameters of a SPOT config (built abstractly; None if it cannot be built)."""
    if not all(isinstance(config.get(k), dict) for k in ("data", "model", "critic")):
        return None
    key = json.dumps([config["data"], config["model"], config["critic"]], sort_keys=True, default=str)
    if key not in _PARAM_CACHE:
        try:
            import jax
            from flax import nnx
            from hydra.utils import instantiate
            from omegaconf import OmegaConf

            from train.common import make_models

            data, model, critic = (instantiate(OmegaConf.create(config[k])) for k in ("data", "model", "critic"))
            generator, _ = nnx.eval_shape(lambda: make_models(data, model, critic, jax.random.PRNGKey(0)))
            leaves = jax.tree.leaves(nnx.state(generator, nnx.Param))
            _PARAM_CACHE[key] = int(sum(math.prod(leaf.shape) for leaf in leaves))
        except Exception as err:  # a config this script cannot build: leave the column out
            _warn(f"cannot count generator parameters ({type(err).__name__}: {err})")
            _PARAM_CACHE[key] = None
    return _PARAM_CACHE[key]


def _width_groups(runs) -> list[dict]:
    groups = defaultdict(list)
    for run in runs:
        width = _get(run["config"], "model.hidden.0")
        if width is None:
            _warn(f"skipping {run['path']}: no model.hidden[0] in its config")
            continue
        if _final(run) is None:
            _warn(f"skipping {run['path']}: no w_estimate")
            continue
        if _true_value(run) is None:
            _warn(f"skipping {run['path']}: no true value (trainer.true_value)")
            continue
        eta = _get(run["config"], "trainer.eta")
        groups[(int(width), None if eta is None else float(eta))].append(run)
    out = []
    for (width, eta) in sorted(groups, key=lambda k: (k[0], -math.inf if k[1] is None else k[1])):
        group = groups[(width, eta)]
        finals = [_final(r) for r in group]
        errors = np.array([_rel_pct(w, _true_value(r)) for r, (_, w) in zip(group, finals)])
        steps = sorted({s for s, _ in finals})
        lrs = sorted({_get(r["config"], "optimizer.learning_rate") for r in group}, key=str)
        if len(lrs) > 1:
            _warn(f"width {width}, eta {eta}: runs with different learning rates {lrs} in one box")
        if len(steps) > 1:
            _warn(f"width {width}, eta {eta}: runs end at different steps {steps}")
        out.append({"width": width, "eta": eta, "runs": group, "seeds": _seeds(group), "errors_pct": errors,
                    "steps": steps[-1]})
    return out


def fig3_3_table(runs, *, count_parameters: bool = True) -> list[dict]:
    """One row per (hidden width, eta), by width; relative errors in percent.

    Keys: ``width`` (``model.hidden[0]``), ``eta``, ``seeds`` (count), ``seed_list``,
    ``steps`` (the last final step), ``median_rel_error_pct``, ``mean_rel_error_pct``,
    ``errors_pct`` (per seed), and ``generator_parameters`` when ``count_parameters``
    (None if the config cannot be built).
    """
    rows = []
    for g in _width_groups(runs):
        row = {"width": g["width"], "eta": g["eta"], "seeds": len(g["errors_pct"]), "seed_list": g["seeds"],
               "steps": g["steps"], "median_rel_error_pct": float(np.median(g["errors_pct"])),
               "mean_rel_error_pct": float(np.mean(g["errors_pct"])),
               "errors_pct": [float(e) for e in g["errors_pct"]]}
        if count_parameters:
            row["generator_parameters"] = generator_parameters(g["runs"][0]["config"])
        rows.append(row)
    return rows


def print_fig3_3_table(rows) -> str:
    with_params = any(r.get("generator_parameters") is not None for r in rows)
    headers = ["width", "eta", "seeds", "steps", "median rel. err.", "mean rel. err."]
    if with_params:
        headers.append("generator params")
    body = []
    for r in rows:
        line = [r["width"], "-" if r["eta"] is None else format_lr(r["eta"]), r["seeds"], r["steps"],
                _pct(r["median_rel_error_pct"]), _pct(r["mean_rel_error_pct"])]
        if with_params:
            line.append(r.get("generator_parameters"))
        body.append(line)
    text = format_table(headers, body, title="SPOT: final relative error of the W estimate vs hidden units per layer")
    print(text)
    return text


def fig3_3_figure(runs, out: str) -> str:
    """Thesis fig. 3.3: box plots of the per-seed final relative error (%) vs hidden width (log2 axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _width_groups(runs)
    if not groups:
        raise ValueError("no run with model.hidden and a w_estimate")
    etas = sorted({g["eta"] for g in groups if g["eta"] is not None})
    per_width = defaultdict(list)
    for g in groups:
        per_width[g["width"]].append(g)
    several = any(len(v) > 1 for v in per_width.values())  # one width swept under several etas
    colors = {eta: plt.cm.tab10(i % 10) for i, eta in enumerate(etas)}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    rng = np.random.default_rng(0)
    for width, gs in per_width.items():
        for j, g in enumerate(gs):
            offset = (j - (len(gs) - 1) / 2) * 0.3 if len(gs) > 1 else 0.0
            pos = math.log2(width) + offset
            color = colors.get(g["eta"], "tab:blue") if several else "tab:blue"
            ax.boxplot(g["errors_pct"], positions=[pos], widths=0.25 if len(gs) > 1 else 0.5, showfliers=False,
                       patch_artist=True, boxprops=dict(facecolor=color, alpha=0.35),
                       medianprops=dict(color="k"), manage_ticks=False)
            jitter = rng.uniform(-0.06, 0.06, len(g["errors_pct"]))
            ax.scatter(pos + jitter, g["errors_pct"], s=12, color=color, zorder=3, lw=0)
    widths = sorted(per_width)
    eta_per_width = {w: {g["eta"] for g in gs} for w, gs in per_width.items()}
    tick_eta = not several and len(etas) > 1  # one eta per width, differing across widths (the thesis' sweeps)
    labels = [f"{w}\n\u03b7={format_lr(next(iter(eta_per_width[w])))}"
              if tick_eta and None not in eta_per_width[w] else str(w) for w in widths]
    ax.set_xticks([math.log2(w) for w in widths], labels)
    ax.set_xlim(math.log2(widths[0]) - 0.7, math.log2(widths[-1]) + 0.7)
    errors = np.concatenate([g["errors_pct"] for g in groups])
    positive = errors[errors > 0]
    if positive.size == errors.size and positive.max() / positive.min() > 30:
        ax.set_yscale("log")
    if several:
        for eta in etas:
            ax.scatter([], [], color=colors[eta], label=f"\u03b7 = {format_lr(eta)}")
        ax.legend(fontsize=8)
    counts = sorted({len(g["errors_pct"]) for g in groups})
    ax.set_title(f"SPOT: error vs hidden units ({'/'.join(map(str, counts))} seeds per width)", fontsize=10)
    ax.set_xlabel("hidden units per layer (log2 scale)"
                  + (f"; \u03b7 = {format_lr(etas[0])}" if len(etas) == 1 else ""), fontsize=9)
    ax.set_ylabel("relative error of the W estimate (%)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------------------------------------- CLI


def _save(fig, out: str) -> str:
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def _dump_json(rows, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(to_jsonable(rows), fh, indent=2)
        fh.write("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="figure", required=True)
    for name, help_text in (("fig3_2", "W estimate vs step, one panel per learning rate"),
                            ("fig3_3", "relative error vs hidden units (box plots)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("sweep_dirs", nargs="+", help="multirun sweep directories (hydra.sweep.dir)")
        p.add_argument("--out", default=DEFAULT_OUT[name],
                       help=f"PNG path (default: {os.path.relpath(DEFAULT_OUT[name], REPO)})")
        p.add_argument("--json", help="also write the table rows to this JSON file")
    args = parser.parse_args(argv)

    runs = load_runs(args.sweep_dirs)
    if not runs:
        _warn(f"no finished run directory (.hydra/config.yaml + metrics.jsonl + metrics.json) under "
              f"{', '.join(args.sweep_dirs)}")
        return 1
    print(f"{len(runs)} finished runs under {', '.join(args.sweep_dirs)}")
    if args.figure == "fig3_2":
        rows = fig3_2_table(runs)
        print_fig3_2_table(rows)
        path = fig3_2_figure(runs, args.out)
    else:
        rows = fig3_3_table(runs)
        print_fig3_3_table(rows)
        path = fig3_3_figure(runs, args.out)
    if args.json:
        _dump_json(rows, args.json)
        print(f"table rows -> {args.json}")
    print(f"figure -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
