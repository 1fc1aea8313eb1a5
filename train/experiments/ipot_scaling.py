"""Thesis figure 2.3: time to reach a relative error of the exact value vs problem size.

For each ``n`` and each of ``repeats`` data sets: ``n`` uniform points in ``[0, 1]^d``
against ``n`` others, uniform weights, squared Euclidean cost divided by its max
(:func:`problems.uniform_clouds`). The exact value ``W`` comes from POT's ``ot.emd2``
in float64 (or ``ot_jax.emd`` when POT is missing). ot_jax solvers run in float32 on
the dense cost matrix, each jit-compiled ahead of time once per ``n`` (compile time
reported apart; ``beta``, ``epsilon`` and ``tol`` are traced, so one compile serves
every setting) and timed with ``jax.block_until_ready``.

"Time to reach ``target``" of a method is the fastest of its runs (over the scanned
stopping tolerances, and for Sinkhorn over epsilons) whose result has an actual
relative error ``|cost - W| / W <= target``; the solvers stop by their own rule.
If no run gets there the method is marked "not reached" for that data set.
"""

from __future__ import annotations

import math
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import ot_jax
from train.experiments.problems import uniform_clouds
from train.report import format_table

__all__ = ["run"]


def _ipot(cost, a, b, beta, tol, *, max_iters):
    out = ot_jax.ipot(cost, a, b, beta=beta, tol=tol, max_iters=max_iters)
    return out.cost, out.n_iters, out.status


def _sinkhorn(cost, a, b, eps, tol, *, max_iters):
    out = ot_jax.sinkhorn(cost, a, b, epsilon=eps, relative_epsilon=True, tol=tol, max_iters=max_iters)
    return out.cost, out.n_iters, out.status


def _compile(fn, n, max_iters):
    """AOT-compile ``fn(cost [n, n], a [n], b [n], param, tol)`` in float32; returns (executable, seconds)."""
    f32 = jax.ShapeDtypeStruct((), jnp.float32)
    start = time.perf_counter()
    exe = jax.jit(lambda c, a, b, p, t: fn(c, a, b, p, t, max_iters=max_iters)).lower(
        jax.ShapeDtypeStruct((n, n), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.float32), f32, f32).compile()
    return exe, time.perf_counter() - start


def _timed(exe, args, param, tol, calls: int = 1, long_call: float = 0.5):
    """Timed call(s) of a compiled solver: returns (seconds, cost, iterations, status).

    The best of ``calls`` identical calls is kept (host noise on 2 cores reaches ~10 ms);
    a call longer than ``long_call`` seconds is not repeated.
    """
    p, t = jnp.asarray(param, jnp.float32), jnp.asarray(tol, jnp.float32)
    best = float("inf")
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        out = jax.block_until_ready(exe(*args, p, t))
        best = min(best, time.perf_counter() - start)
        if best > long_call:
            break
    return best, float(out[0]), int(out[1]), int(out[2])


def _exact(cost64, weights, use_pot, calls: int = 1):
    """Float64 exact value and its solve time (best of ``calls``); POT's ot.emd2 if available, else ot_jax.emd."""
    if use_pot:
        import ot  # noqa: PLC0415  (optional rival)

        best = float("inf")
        for _ in range(max(1, calls)):
            start = time.perf_counter()
            value = float(ot.emd2(weights, weights, cost64, numItermax=10_000_000))
            best = min(best, time.perf_counter() - start)
            if best > 0.5:
                break
        return value, best
    start = time.perf_counter()
    value = float(ot_jax.emd(jnp.asarray(cost64), jnp.asarray(weights), jnp.asarray(weights)).cost)
    return value, time.perf_counter() - start


def _pot_available() -> bool:
    try:
        import ot  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _summary(times, repeats):
    """Median over the data sets, a data set that never reached the target counting as +inf
    (so the median exists only when most of them reached it); min / max of the reached ones."""
    got = [t for t in times if t is not None]
    median = statistics.median([math.inf if t is None else t for t in times]) if times else math.inf
    if not got or not math.isfinite(median):
        return dict(median_time=None, min_time=None, max_time=None, reached=len(got), repeats=repeats)
    return dict(median_time=median, min_time=min(got), max_time=max(got), reached=len(got), repeats=repeats)


def _plot(path, sizes, results, target, dim, repeats, exact_name):
    fig = Figure(figsize=(12.5, 4.8), layout="constrained")
    ax_t, ax_e = fig.subplots(1, 2)
    markers = ["o", "s", "^", "v", "D", "P"]
    for (name, res), mk in zip(results.items(), markers):
        ns = [n for n in sizes if res["per_n"][str(n)]["median_time"] is not None]
        if ns:
            med = np.array([res["per_n"][str(n)]["median_time"] for n in ns])
            lo = med - np.array([res["per_n"][str(n)]["min_time"] for n in ns])
            hi = np.array([res["per_n"][str(n)]["max_time"] for n in ns]) - med
            ax_t.errorbar(ns, med, yerr=[lo, hi], marker=mk, capsize=3, label=name)
        else:
            ax_t.plot([], [], marker=mk, ls="none", label=f"{name}: {target:g} not reached")
        if not res.get("exact"):
            ax_e.plot(sizes, [res["per_n"][str(n)]["best_rel_error"] for n in sizes], marker=mk, label=name)
    ax_t.set_xscale("log", base=2)
    ax_t.set_yscale("log")
    ax_t.set_xlabel("n (= m points)")
    ax_t.set_ylabel(f"time to relative error ≤ {target:g} [s]")
    ax_t.set_title(f"median of {repeats} data sets (bars: min–max of those reaching it); compile excluded",
                   fontsize=10)
    ax_t.legend(fontsize=8)
    ax_t.grid(True, which="both", alpha=0.3)
    ax_e.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
    ax_e.set_xscale("log", base=2)
    ax_e.set_yscale("log")
    ax_e.set_xlabel("n (= m points)")
    ax_e.set_ylabel(r"smallest $|W - W_{exact}| / W_{exact}$ over the runs (median)")
    ax_e.set_title(f"best accuracy among the scanned runs (exact: {exact_name}, float64)", fontsize=10)
    ax_e.legend(fontsize=8)
    ax_e.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Thesis Fig. 2.3 — time to reach {target:g} relative error vs n "
                 f"({dim}-D uniform points, squared Euclidean cost / max; ot_jax in float32, CPU)")
    fig.savefig(path, dpi=110)


def run(*, sizes, dim: int, repeats: int, target: float, relative_betas, tols, relative_epsilons, sinkhorn_tols,
        max_iters: int, use_pot: bool, timing_calls: int, output_dir: str, seed: int = 0) -> dict:
    """Time every method at every size, draw ``ipot_scaling.png``, print the table, return metrics."""
    start_all = time.perf_counter()
    have_pot = use_pot and _pot_available()
    if use_pot and not have_pot:
        print("note: POT is not installed; skipping ot.emd2 and using ot_jax.emd as the exact reference")
    exact_name = "POT ot.emd2" if have_pot else "ot_jax.emd"
    sizes = [int(n) for n in sizes]
    ipot_names = [f"ipot[beta={float(b):g}]" for b in relative_betas]
    names = ipot_names + ["sinkhorn[best eps]"] + ([exact_name + " (f64)"] if have_pot else [])
    raw = {name: {str(n): [] for n in sizes} for name in names}
    compile_s = {name: {} for name in names}
    best_err = {name: {str(n): [] for n in sizes} for name in names}
    rng = np.random.default_rng(seed)
    rows = []

    for n in sizes:
        ipot_exe, compile_s[ipot_names[0]][str(n)] = _compile(_ipot, n, max_iters)
        for name in ipot_names[1:]:
            compile_s[name][str(n)] = compile_s[ipot_names[0]][str(n)]  # one executable serves every beta
        sk_exe, compile_s["sinkhorn[best eps]"][str(n)] = _compile(_sinkhorn, n, max_iters)
        weights = np.full(n, 1.0 / n)
        sinkhorn_hopeless = False
        for rep in range(repeats):
            _, _, cost64 = uniform_clouds(rng, n, dim)
            w_exact, exact_time = _exact(cost64, weights, have_pot, timing_calls)
            if have_pot:
                raw[names[-1]][str(n)].append(dict(repeat=rep, time=exact_time, rel_error=0.0, reached=True))
                best_err[names[-1]][str(n)].append(0.0)
            args = (jnp.asarray(cost64, jnp.float32), jnp.asarray(weights, jnp.float32),
                    jnp.asarray(weights, jnp.float32))
            if rep == 0:  # warm-up calls (first-run allocations), not timed
                _timed(ipot_exe, args, 0.01, 1e-2)
                _timed(sk_exe, args, 1e-2, 1e-2)
            for name, rel_beta in zip(ipot_names, relative_betas):
                beta = float(rel_beta) * float(cost64.max())  # = rel_beta (cost / its max)
                runs = []
                for tol in tols:
                    sec, c, it, st = _timed(ipot_exe, args, beta, tol, timing_calls)
                    err = abs(c - w_exact) / abs(w_exact)
                    runs.append(dict(tol=float(tol), time=sec, iters=it, status=st, rel_error=err, reached=err <= target))
                raw[name][str(n)].append(dict(repeat=rep, runs=runs))
                best_err[name][str(n)].append(min(r["rel_error"] for r in runs))
            runs = []
            if not sinkhorn_hopeless:
                for eps in relative_epsilons:
                    for tol in sinkhorn_tols:  # loosest first; a tighter tol only costs more time
                        sec, c, it, st = _timed(sk_exe, args, eps, tol, timing_calls)
                        err = abs(c - w_exact) / abs(w_exact)
                        runs.append(dict(relative_epsilon=float(eps), tol=float(tol), time=sec, iters=it,
                                         status=st, rel_error=err, reached=err <= target))
                        if err <= target:
                            break
                # Entropic bias does not depend on the data set much: if the first data set
                # never gets there, the other repeats of this n are skipped (marked not reached).
                sinkhorn_hopeless = rep == 0 and not any(r["reached"] for r in runs)
            raw["sinkhorn[best eps]"][str(n)].append(dict(repeat=rep, runs=runs, skipped=not runs))
            if runs:
                best_err["sinkhorn[best eps]"][str(n)].append(min(r["rel_error"] for r in runs))

    results = {}
    for name in names:
        per_n = {}
        for n in sizes:
            times = []
            for rec in raw[name][str(n)]:
                if "runs" in rec:
                    ok = [r["time"] for r in rec["runs"] if r["reached"]]
                    times.append(min(ok) if ok else None)
                else:
                    times.append(rec["time"])
            per_n[str(n)] = _summary(times, repeats)
            errs = best_err[name][str(n)]
            per_n[str(n)]["best_rel_error"] = statistics.median(errs) if errs else float("nan")
            per_n[str(n)]["compile_time"] = compile_s.get(name, {}).get(str(n))
            s = per_n[str(n)]
            rows.append([name, n, "not reached" if s["median_time"] is None else s["median_time"], f"{s['reached']}/{repeats}",
                         s["best_rel_error"], s["compile_time"]])
        results[name] = dict(per_n=per_n, exact=name == exact_name + " (f64)", runs=raw[name])

    path = os.path.join(output_dir, "ipot_scaling.png")
    _plot(path, sizes, results, target, dim, repeats, exact_name)
    elapsed = time.perf_counter() - start_all
    print(format_table(["method", "n", "median time [s]", "reached", "best rel err", "compile [s]"], rows,
                       title=f"Thesis fig. 2.3: time to relative error <= {target:g} (d = {dim}, float32; "
                             f"exact: {exact_name} float64)"))
    print(f"figure: {path}  ({elapsed:.1f} s)")
    return dict(experiment="ipot_scaling", sizes=sizes, dim=dim, repeats=repeats, target=target,
                exact_solver=exact_name, pot_available=have_pot, results=results, seconds=elapsed)
