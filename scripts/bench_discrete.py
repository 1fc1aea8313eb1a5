"""Discrete OT benchmark: ot_jax (IPOT, Sinkhorn) vs OTT-JAX (Sinkhorn) vs POT (exact ``emd2``).

Run by ``make bench`` as ``python scripts/bench_discrete.py``. Everything runs side by
side in one process (except the memory measurement, which runs in subprocesses so
that each peak RSS is isolated); markdown tables go to stdout and to ``--out``
(default ``docs/benchmarks.md``; this script's block of it is rewritten after every section).

Setting (thesis fig. 2.3): ``d = 16`` points uniform in ``[0, 1]^16``, squared
Euclidean cost divided by its max, uniform weights, float32 for the JAX solvers,
POT ``ot.emd2`` in float64 as the exact reference value.

Timing rules: every JAX function is compiled ahead of time (``jit(...).lower().compile()``,
reported in its own column), called once as a warm-up, then timed with
``jax.block_until_ready``; reported times are medians over ``--repeats`` runs.

Sections:
  1. time to relative error 1e-3 / 1e-4 of the exact value (parameter scans, budgeted);
  2. Sinkhorn time per iteration at equal epsilon, dense and lazy;
  3. 1000 batched 64 x 64 problems (``jax.vmap``) vs a POT loop;
  4. peak memory of a lazy PointCloud Sinkhorn at n = 100,000, d = 2 (subprocess).

``--quick`` shrinks every size so the whole script runs in about a minute or two.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import ot_jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import command_line, cpu_model, git_revision, write_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Parameter grids of section 1 (epsilon in units of the mean cost, beta of the max cost).
SINKHORN_EPS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
TOLS = (1e-3, 1e-4, 1e-5)
# IPOT's tol bounds its certified gap, which is looser than its true error: scan from 1e-1.
IPOT_TOLS = (1e-1, 3e-2, 1e-2, 1e-3, 1e-4)
IPOT_BETAS = (0.005, 0.01)
TARGETS = (1e-3, 1e-4)
CHECK_EVERY = 10
POT_MAX_ITERS = 10**9  # POT's default (1e5) stops the network simplex early for n >~ 500


# --------------------------------------------------------------------------- utilities
def log(msg: str) -> None:
    """Progress messages go to stderr so that stdout holds only the tables."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Timing(NamedTuple):
    """Result of :func:`time_call`; ``timing[0], timing[1]`` are (median s, compile s)."""

    seconds: float  # median wall time of one call (compile and warm-up excluded)
    compile_seconds: float  # ahead-of-time compile time; 0.0 when already compiled earlier
    out: Any  # output of the last timed call
    runs: int  # number of timed calls behind the median


_COMPILED: dict = {}


def _signature(args) -> tuple:
    return tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__)))
                 for x in jax.tree_util.tree_leaves(args))


def _compiled(fn: Callable, args) -> tuple[Callable, float]:
    """AOT-compile ``fn`` for the shapes of ``args`` once, warm it up once; cached per (fn, shapes)."""
    key = (fn, _signature(args))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))  # warm-up: one call per distinct compiled function
    _COMPILED[key] = compiled
    return compiled, compile_seconds


def time_call(fn: Callable, *args, repeats: int, jit: bool = True, max_seconds: float | None = None) -> Timing:
    """Median wall time of ``fn(*args)`` over ``repeats`` calls, and its compile time.

    With ``jit=True`` (JAX functions) ``fn`` is compiled ahead of time and warmed up once
    (both excluded from the median; the compile time is returned separately and is 0.0 when
    the same ``fn`` was already compiled for these shapes). With ``jit=False`` (host code such
    as POT) ``fn`` is timed as is. ``max_seconds`` stops repeating once the timed calls
    have used that much time (at least one call is always made).
    """
    call, compile_seconds = _compiled(fn, args) if jit else (fn, 0.0)
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(call(*args))
        times.append(time.perf_counter() - t0)
        if max_seconds is not None and sum(times) >= max_seconds:
            break
    return Timing(statistics.median(times), compile_seconds, out, len(times))


def f32(x) -> np.ndarray:
    """A float32 array (scalars included: no weak types, so compiled shapes match)."""
    return np.asarray(x, np.float32)


def rel_err(value, exact) -> np.ndarray:
    return np.abs(np.asarray(value, np.float64) - exact) / np.abs(exact)


def sq_euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[..., n, m]`` squared distances in float64."""
    sq = (x**2).sum(-1)[..., :, None] + (y**2).sum(-1)[..., None, :] - 2.0 * x @ np.swapaxes(y, -1, -2)
    return np.maximum(sq, 0.0)


def uniform_problem(n: int, d: int, seed: int):
    """Points uniform in [0,1]^d, cost = squared distances / their max (float64), max cost."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(size=(n, d)), rng.uniform(size=(n, d))
    cost = sq_euclidean(x, y)
    return x, y, cost / cost.max(), float(cost.max())


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    return f"{num / den:.3g}x"


def fmt_e(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def error_text(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- solvers
# Each builder is cached so that the same Python function object (the compile-cache key)
# comes back for the same static settings. The section-1 solvers return
# ``(cost <C, P>, n_iters, stopped_by_itself)`` and nothing big: returning the geometry or
# the plan would add an n x m copy to every timed call.
@functools.cache
def ipot_fn(max_iters: int) -> Callable:
    def solve(cost, beta, tol):
        out = ot_jax.ipot(cost, beta=beta, tol=tol, max_iters=max_iters, check_every=CHECK_EVERY)
        return out.cost, out.n_iters, out.status != ot_jax.Status.MAX_ITERS

    return solve


@functools.cache
def sinkhorn_fn(max_iters: int, mode: str = "log") -> Callable:
    def solve(cost, eps, tol):
        out = ot_jax.sinkhorn(cost, epsilon=eps, tol=tol, max_iters=max_iters, check_every=CHECK_EVERY, mode=mode)
        return out.cost, out.n_iters, out.status != ot_jax.Status.MAX_ITERS

    return solve


def _ott():
    """OTT-JAX modules, imported lazily (the memory subprocesses do not need them)."""
    from ott.geometry import geometry, pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn

    return geometry, pointcloud, linear_problem, sinkhorn


def ott_value(out, cost) -> jax.Array:
    """OTT's transport cost ``<C, P>``: ``primal_cost`` when the output has it."""
    return out.primal_cost if hasattr(out, "primal_cost") else jnp.sum(out.matrix * cost)


@functools.cache
def ott_sinkhorn_fn(max_iters: int) -> Callable:
    geometry, _, linear_problem, sinkhorn = _ott()

    def solve(cost, eps, tol):
        geom = geometry.Geometry(cost_matrix=cost, epsilon=eps)
        solver = sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters, inner_iterations=CHECK_EVERY)
        out = solver(linear_problem.LinearProblem(geom))
        return ott_value(out, cost), out.n_iters, out.converged

    return solve


def pot_emd2(cost: np.ndarray) -> float:
    """Exact OT value with POT's network simplex (float64, uniform weights)."""
    import ot

    n, m = cost.shape
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    return float(ot.emd2(a, b, cost, numItermax=POT_MAX_ITERS))


# --------------------------------------------------------------------------- section 1
@dataclasses.dataclass
class Outcome:
    """One table cell group: the fastest setting reaching a target (or why none did)."""

    seconds: float | None = None
    compile_seconds: float = 0.0
    iters: int | None = None
    params: str = "-"
    error: float | None = None
    note: str = ""


@dataclasses.dataclass
class Trial:
    params: str
    seconds: float
    iters: int
    error: float


def iteration_cap(max_iters: int, seconds_left: float, seconds_per_iter: float | None) -> int:
    """``max_iters``, or the largest power of two of iterations that fits in the time left.

    Powers of two keep the number of distinct compiled solvers (``max_iters`` is static) small.
    Returns 0 when not even one round of ``CHECK_EVERY`` iterations fits.
    """
    if seconds_per_iter is None or seconds_per_iter * max_iters <= seconds_left:
        return max_iters
    fit = seconds_left / seconds_per_iter
    return 0 if fit < CHECK_EVERY else min(max_iters, 2 ** int(np.log2(fit)))


def scan(
    make_fn: Callable[[int], Callable],
    cost: jax.Array,
    configs: Sequence[tuple[str, tuple, tuple]],
    exact: float,
    targets: Sequence[float],
    *,
    max_iters: int,
    repeats: int,
    budget: float,
    easier: Callable[[tuple, tuple], bool],
    open_per_group: bool,
    stop_when_stuck: bool = False,
) -> dict[float, Outcome]:
    """Run ``make_fn(max_iters)(cost, *args)`` over ``configs``; the fastest config per target.

    ``make_fn(k)`` returns a solver capped at ``k`` iterations whose output is
    ``(value, n_iters, stopped_by_itself)``. ``configs`` are ``(label, args, rank)``,
    ordered from the cheapest to the most expensive expected run. A config is skipped
    once no target is open: globally (``open_per_group=False``: the Sinkhorn rule, see
    :func:`section_time_to_error`) or within its group ``rank[0]`` (IPOT: each beta gets
    its own tol scan). With ``stop_when_stuck`` the rest of a group is skipped once a
    tighter setting failed to halve the error of the previous one while missing every open
    target (Sinkhorn: the error is then the entropic bias of that eps, which no tol removes).

    Budget guard (``budget`` seconds of wall time per scan, compiles excluded): the scan is
    cut when the time is spent, or when an earlier run of an *easier* config
    (``easier(rank_prev, rank)``, e.g. same tol and larger eps: a lower bound on the next
    run) took longer than what is left; and each run is capped (:func:`iteration_cap`) to
    the iterations that fit in the time left, so one run cannot overshoot the budget by
    much. A run stopped by that cap does not count and ends the scan.
    Each config is run once; a config that reaches a target is re-timed (median over
    ``repeats``, within the budget). Outcomes carry the total compile time of the scan.
    """
    start = time.perf_counter()
    best: dict[float, Outcome] = {}
    reached: dict[Any, set] = {}
    history: list[tuple[tuple, float]] = []  # (rank, seconds) of every run
    trials: list[Trial] = []
    last_error: dict[Any, float] = {}  # rank[0] -> error of its previous setting, or inf when stuck
    compile_seconds, cut = 0.0, ""
    for done, (label, args, rank) in enumerate(configs):
        group = rank[0] if open_per_group else None
        open_targets = [t for t in targets if t not in reached.setdefault(group, set())]
        if not open_targets or last_error.get(rank[0]) == np.inf:
            continue
        left = budget - (time.perf_counter() - start - compile_seconds)
        lower = max((s for r, s in history if easier(r, rank)), default=0.0)
        longest = max(trials, key=lambda tr: tr.iters, default=None)  # least overhead per iteration
        per_iter = longest.seconds / max(longest.iters, 1) if longest else None
        cap = iteration_cap(max_iters, left, per_iter)
        if left <= 0 or lower > left or cap == 0:
            cut = f"scan cut at the {budget:g} s budget after {done}/{len(configs)} settings"
            break
        fn = make_fn(cap)
        first = time_call(fn, cost, *args, repeats=1)
        compile_seconds += first.compile_seconds
        value, iters, stopped = float(first.out[0]), int(first.out[1]), bool(first.out[2])
        err = float(rel_err(value, exact))
        history.append((rank, first.seconds))
        trials.append(Trial(label, first.seconds, iters, err))
        log(f"    {label}: {first.seconds:.3g} s, {iters} iters, rel err {err:.2e}"
            + ("" if cap == max_iters else f" (capped at {cap} iters by the budget)"))
        if cap < max_iters and not stopped:
            cut = f"scan cut at the {budget:g} s budget during {label} (capped at {cap} iters)"
            break
        hits = [t for t in targets if err <= t]
        if not hits:
            stuck = stop_when_stuck and err > 0.5 * last_error.get(rank[0], np.inf)
            last_error[rank[0]] = np.inf if stuck else err
            if stuck:
                log(f"    error not halved by a tighter tol: skipping the rest of {label.split(',')[0]}")
            continue
        last_error[rank[0]] = err
        seconds = first.seconds
        left = budget - (time.perf_counter() - start - compile_seconds)
        if repeats > 1 and left > 0:
            seconds = time_call(fn, cost, *args, repeats=repeats, max_seconds=left).seconds
        for t in hits:
            reached[group].add(t)
            if t not in best or seconds < best[t].seconds:
                best[t] = Outcome(seconds, 0.0, iters, label, err)
    for t in targets:
        if t not in best:
            closest = min(trials, key=lambda tr: tr.error, default=None)
            note = "not reached" + (f" (best {closest.error:.1e} with {closest.params})" if closest else "")
            best[t] = Outcome(note=note + (f"; {cut}" if cut else ""))
        elif cut:
            best[t].note = cut
        best[t].compile_seconds = compile_seconds
    return best


def sinkhorn_configs(mean_cost: float) -> list[tuple[str, tuple, tuple]]:
    """(label, (eps, tol), (eps index, tol index)), eps large -> small, tol loose -> tight."""
    return [
        (f"eps={e:g}xmean, tol={t:g}", (f32(e * mean_cost), f32(t)), (i, j))
        for i, e in enumerate(SINKHORN_EPS)
        for j, t in enumerate(TOLS)
    ]


def ipot_configs(max_cost: float) -> list[tuple[str, tuple, tuple]]:
    """(label, (beta, tol), (beta index, tol index)), tol loose -> tight within each beta."""
    return [
        (f"beta={bt:g}xmax, tol={t:g}", (f32(bt * max_cost), f32(t)), (i, j))
        for i, bt in enumerate(IPOT_BETAS)
        for j, t in enumerate(IPOT_TOLS)
    ]


def section_time_to_error(args) -> str:
    """Section 1: time for each solver to reach a relative error of 1e-3 / 1e-4 of W."""
    sinkhorn_easier = lambda prev, cur: prev[0] <= cur[0] and prev[1] <= cur[1]
    ipot_easier = lambda prev, cur: prev[0] == cur[0] and prev[1] <= cur[1]
    results = {}  # n -> {solver: {target: Outcome}}
    for n in args.sizes:
        log(f"section 1: n = {n}")
        _, _, cost64, _ = uniform_problem(n, args.dim, seed=n)
        pot = time_call(pot_emd2, cost64, repeats=args.repeats, jit=False, max_seconds=args.max_seconds_per_cell)
        exact = pot.out
        log(f"  POT emd2: {pot.seconds:.3g} s, W = {exact:.6g}")
        cost = jnp.asarray(cost64, jnp.float32)
        max_cost, mean_cost = float(cost.max()), float(cost.mean())
        row = {"POT emd2 (float64, exact)": {t: Outcome(pot.seconds, 0.0, None, "numItermax=1e9", 0.0)
                                            for t in TARGETS}}
        common = dict(max_iters=args.max_iters, repeats=args.repeats, budget=args.max_seconds_per_cell)
        log("  ot_jax IPOT")
        row["ot_jax IPOT"] = scan(ipot_fn, cost, ipot_configs(max_cost), exact, TARGETS,
                                  easier=ipot_easier, open_per_group=True, **common)
        # Sinkhorn: eps is scanned from large to small and the scan stops as soon as a setting
        # reaches every target. A larger eps converges in far fewer iterations (the cost of an
        # iteration does not depend on eps) but carries a larger entropic bias, so the first
        # eps accurate enough is (up to the tol choice) the fastest one; smaller eps values
        # would only be slower, and they are the ones that run into max_iters. Within one eps,
        # tol goes from loose to tight for the same reason, and the tighter tols are skipped
        # once tightening stops reducing the error (it is then the bias of that eps).
        for name, make_fn in (("ot_jax Sinkhorn (log)", sinkhorn_fn), ("OTT-JAX Sinkhorn", ott_sinkhorn_fn)):
            log(f"  {name}")
            row[name] = scan(make_fn, cost, sinkhorn_configs(mean_cost), exact, TARGETS,
                             easier=sinkhorn_easier, open_per_group=False, stop_when_stuck=True, **common)
        results[n] = row
        del cost
    return render_time_to_error(results, args)


def render_time_to_error(results: dict, args) -> str:
    parts = [
        "### 1. Time to relative error 1e-3 and 1e-4 of the exact value\n",
        f"d = {args.dim}, uniform points in [0,1]^{args.dim}, squared Euclidean cost / max, uniform weights; "
        "JAX solvers in float32, POT `ot.emd2` in float64 gives the exact value W. Relative error = "
        "|<C, P> - W| / W of the returned plan. Each run stops by its own rule; the table shows the fastest "
        f"setting whose achieved error is <= the target (IPOT: beta in {{{', '.join(f'{b:g}' for b in IPOT_BETAS)}}} "
        f"x max C, tol (a bound on its certified gap) in {{{', '.join(f'{t:g}' for t in IPOT_TOLS)}}}; "
        f"Sinkhorn (both libraries): eps in {{{', '.join(f'{e:g}' for e in SINKHORN_EPS)}}} x mean C, tol in "
        f"{{{', '.join(f'{t:g}' for t in TOLS)}}}, scanned from large to small eps "
        f"and stopped at the first eps reaching the target; max_iters = {args.max_iters}, error checked every "
        f"{CHECK_EVERY} iterations). Time = median of {args.repeats} runs, compile time excluded (own column, "
        f"total over the settings tried). Budget: {args.max_seconds_per_cell:g} s of run time per scan (one solver "
        "at one n, compiles excluded); a scan cut by it is marked.\n",
    ]
    for target in TARGETS:
        rows, ratio_rows = [], []
        for n, row in results.items():
            for solver, outcomes in row.items():
                o = outcomes[target]
                rows.append([n, solver, fmt_s(o.seconds) if o.seconds is not None else o.note,
                             fmt_s(o.compile_seconds) if o.compile_seconds else "-",
                             o.iters if o.iters is not None else "-", o.params, fmt_e(o.error),
                             o.note if o.seconds is not None else ""])
            t = {s: row[s][target].seconds for s in row}
            pot, ipot = t["POT emd2 (float64, exact)"], t["ot_jax IPOT"]
            ratio_rows.append([n, fmt_s(pot), fmt_s(ipot), fmt_s(t["ot_jax Sinkhorn (log)"]),
                               fmt_s(t["OTT-JAX Sinkhorn"]), fmt_ratio(ipot, pot),
                               fmt_ratio(t["OTT-JAX Sinkhorn"], ipot), fmt_ratio(t["ot_jax Sinkhorn (log)"], ipot)])
        parts.append(f"#### Target relative error {target:g}\n")
        parts.append(markdown_table(["n", "solver", "time (s)", "compile (s)", "iterations", "parameters",
                                     "rel. error", "note"], rows))
        parts.append("")
        parts.append(markdown_table(["n", "POT (s)", "IPOT (s)", "ot_jax Sinkhorn (s)", "OTT (s)",
                                     "IPOT / POT", "OTT / IPOT", "ot_jax Sinkhorn / IPOT"], ratio_rows))
        parts.append("")
    return "\n".join(parts)


# --------------------------------------------------------------------------- section 2
@functools.cache
def fixed_iters_fn(library: str, variant: str, iters: int, batch_size: int) -> Callable:
    """A Sinkhorn run of exactly ``iters`` iterations returning ``(f, n_iters)``.

    Only the potentials and the count are returned, so the final cost evaluation is dead
    code and the timing is that of the iterations (and their error checks, every 10).
    ``variant``: ``dense-log``, ``dense-scaling`` (cost matrix) or ``lazy`` (point clouds).
    """
    if library == "ot_jax":
        mode = "scaling" if variant == "dense-scaling" else "log"

        def solve(data, eps):
            geom = ot_jax.PointCloud(*data, batch_size=batch_size) if variant == "lazy" else data
            out = ot_jax.sinkhorn(geom, epsilon=eps, tol=0.0, max_iters=iters, check_every=CHECK_EVERY, mode=mode)
            return out.f, out.n_iters

        return solve
    geometry, pointcloud, linear_problem, sinkhorn = _ott()

    def solve(data, eps):
        if variant == "lazy":
            geom = pointcloud.PointCloud(*data, epsilon=eps, batch_size=batch_size)
        else:
            geom = geometry.Geometry(cost_matrix=data, epsilon=eps)
        solver = sinkhorn.Sinkhorn(lse_mode=variant != "dense-scaling", threshold=-1.0, min_iterations=iters,
                                   max_iterations=iters, inner_iterations=CHECK_EVERY)
        out = solver(linear_problem.LinearProblem(geom))
        return out.f, out.n_iters

    return solve


def per_iteration(library: str, variant: str, data, eps, args, n: int) -> tuple[str, str]:
    """(ms per iteration, compile s) cells; an exception becomes the cell text."""
    fn = fixed_iters_fn(library, variant, args.iters_per_timing, min(n, args.lazy_batch_size))
    try:
        timing = time_call(fn, data, eps, repeats=args.repeats)
    except Exception as exc:  # noqa: BLE001 - the error text is the result (e.g. OTT online mode)
        log(f"    {library} {variant}: {error_text(exc)}")
        return error_text(exc), "-"
    iters = int(timing.out[1])
    cell = f"{1e3 * timing.seconds / max(iters, 1):.3g}"
    if iters != args.iters_per_timing:
        cell += f" (stopped after {iters} iters: non-finite)"
    log(f"    {library} {variant}: {cell} ms/iter")
    return cell, fmt_s(timing.compile_seconds)


def section_iteration_time(args) -> str:
    """Section 2: per-iteration Sinkhorn time, ot_jax vs OTT, at absolute eps on the max-normalised cost."""
    rows = []
    for n in args.iter_sizes:
        log(f"section 2: n = {n}")
        x, y, cost64, max_cost = uniform_problem(n, args.dim, seed=n)
        scale = 1.0 / np.sqrt(max_cost)  # scaled points: their sq-Euclidean cost is the max-normalised one
        inputs = {"dense-log": jnp.asarray(cost64, jnp.float32), "lazy": (jnp.asarray(x * scale, jnp.float32),
                                                                          jnp.asarray(y * scale, jnp.float32))}
        inputs["dense-scaling"] = inputs["dense-log"]
        for variant, label in (("dense-log", "dense, log domain"), ("dense-scaling", "dense, scaling (kernel)"),
                               ("lazy", f"lazy PointCloud (batch_size={min(n, args.lazy_batch_size)})")):
            ours, ours_c = per_iteration("ot_jax", variant, inputs[variant], f32(args.iter_eps), args, n)
            theirs, theirs_c = per_iteration("ott", variant, inputs[variant], f32(args.iter_eps), args, n)
            try:
                ratio = f"{float(theirs) / float(ours):.3g}x"
            except ValueError:
                ratio = "-"
            rows.append([n, label, ours, theirs, ratio, ours_c, theirs_c])
    header = ["n", "geometry / domain", "ot_jax ms/iter", "OTT ms/iter", "OTT / ot_jax",
              "ot_jax compile (s)", "OTT compile (s)"]
    text = (
        "### 2. Sinkhorn iteration time at equal eps\n\n"
        f"eps = {args.iter_eps:g} (absolute) on the max-normalised cost, d = {args.dim}, float32. Each run does "
        f"exactly {args.iters_per_timing} iterations (ot_jax: tol = 0, max_iters = {args.iters_per_timing}, check_every = "
        f"{CHECK_EVERY}; OTT: threshold = -1, min_iterations = max_iterations = {args.iters_per_timing}, "
        f"inner_iterations = {CHECK_EVERY}, lse_mode = False for the scaling row); time per iteration = median "
        f"wall time / iterations run. Lazy: `ot_jax.PointCloud` vs OTT `pointcloud.PointCloud(x, y, epsilon, "
        "batch_size)` (online mode) on points scaled so that their cost is the max-normalised one.\n\n"
    )
    return text + markdown_table(header, rows) + "\n"


# --------------------------------------------------------------------------- section 3
def batched_problems(count: int, n: int, d: int, seed: int) -> np.ndarray:
    """``[count, n, n]`` float64 costs of uniform point clouds, each divided by its max."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(size=(count, n, d)), rng.uniform(size=(count, n, d))
    cost = sq_euclidean(x, y)
    return cost / cost.max(axis=(1, 2), keepdims=True)


def pot_loop(costs: np.ndarray) -> np.ndarray:
    return np.array([pot_emd2(c) for c in costs])


class _Values(NamedTuple):
    cost: jax.Array
    n_iters: jax.Array


@functools.cache
def batched_fn(solver: str, max_iters: int) -> Callable:
    """``jax.vmap`` of one solver over ``[B, n, n]`` costs; scalar parameters shared."""
    if solver == "ipot":

        def one(c, beta, tol):
            out = ot_jax.ipot(c, beta=beta, tol=tol, max_iters=max_iters, check_every=CHECK_EVERY)
            return _Values(out.cost, out.n_iters)

    elif solver == "sinkhorn":

        def one(c, eps, tol):
            out = ot_jax.sinkhorn(c, epsilon=eps, tol=tol, max_iters=max_iters, check_every=CHECK_EVERY)
            return _Values(out.cost, out.n_iters)

    else:
        geometry, _, linear_problem, sinkhorn = _ott()

        def one(c, eps, tol):
            out = sinkhorn.Sinkhorn(threshold=tol, max_iterations=max_iters, inner_iterations=CHECK_EVERY)(
                linear_problem.LinearProblem(geometry.Geometry(cost_matrix=c, epsilon=eps)))
            return _Values(ott_value(out, c), out.n_iters)

    def solve(costs, param, tol):
        out = jax.vmap(one, in_axes=(0, None, None))(costs, param, tol)
        return out.cost, out.n_iters

    return solve


def section_batched(args) -> str:
    """Section 3: many small problems at once (vmap) vs a POT loop, target 1e-3 per problem."""
    count, n, target = args.batch_count, args.batch_n, 1e-3
    log(f"section 3: {count} problems of {n} x {n}")
    costs64 = batched_problems(count, n, args.dim, seed=12345)
    pot = time_call(pot_loop, costs64, repeats=args.repeats, jit=False)
    exact = pot.out
    costs = jnp.asarray(costs64, jnp.float32)

    def run(solver, param, tol, repeats):
        timing = time_call(batched_fn(solver, args.max_iters), costs, f32(param), f32(tol), repeats=repeats,
                           max_seconds=args.max_seconds_per_cell)
        errs, iters = rel_err(timing.out[0], exact), np.asarray(timing.out[1])
        stats = (fmt_e(np.percentile(errs, 95)), fmt_e(errs.max()), f"{np.median(iters):.0f} / {iters.max()}")
        return timing, float(errs.max()), stats

    rows = [["POT `ot.emd2`, Python loop (float64)", fmt_s(pot.seconds), "-", "1x", "exact", "exact", "-", "-"]]
    # IPOT: for each beta, tol from loose to tight, stopping at the first tol whose max error over the
    # batch meets the target; the fastest (beta, tol) meeting it is re-timed (else the most accurate).
    trials, compile_total = [], 0.0  # (beta, tol, seconds of one run, max error)
    for beta in IPOT_BETAS:
        for tol in IPOT_TOLS:
            timing, worst, (p95, _, iters) = run("ipot", beta, tol, repeats=1)
            compile_total += timing.compile_seconds
            log(f"  IPOT beta={beta:g} tol={tol:g}: {timing.seconds:.3g} s, p95 {p95}, max {worst:.1e}, "
                f"iterations median / max {iters}")
            trials.append((beta, tol, timing.seconds, worst))
            if worst <= target:
                break
    good = [t for t in trials if t[3] <= target]
    beta, tol, _, _ = min(good, key=lambda t: t[2]) if good else min(trials, key=lambda t: t[3])
    timing, worst, stats = run("ipot", beta, tol, repeats=args.repeats)
    note = (f"fastest of {len(trials)} (beta, tol) settings tried with max error <= {target:g}" if good
            else f"no setting met {target:g} on every problem: the most accurate one is shown")
    rows.append([f"ot_jax IPOT, vmap (beta={beta:g}xmax, tol={tol:g})", fmt_s(timing.seconds), fmt_s(compile_total),
                 fmt_ratio(pot.seconds, timing.seconds), *stats, note])
    for solver, label in (("sinkhorn", "ot_jax Sinkhorn"), ("ott", "OTT-JAX Sinkhorn")):
        timing, worst, stats = run(solver, args.batch_eps, args.batch_tol, repeats=args.repeats)
        log(f"  {label}: {timing.seconds:.3g} s, p95 / max error {stats[0]} / {stats[1]}")
        rows.append([f"{label}, vmap (eps={args.batch_eps:g}, tol={args.batch_tol:g})", fmt_s(timing.seconds),
                     fmt_s(timing.compile_seconds), fmt_ratio(pot.seconds, timing.seconds), *stats,
                     "fixed eps (absolute, cost max = 1): entropic bias not controlled"])
    header = ["solver", "total time (s)", "compile (s)", "speedup vs POT loop", "p95 rel. error",
              "max rel. error", "iterations (median / max)", "note"]
    text = (
        "### 3. Batched small problems\n\n"
        f"{count} problems of {n} x {n}, d = {args.dim} uniform points, each cost divided by its own max; "
        f"reference: POT `ot.emd2` per problem (float64). Target: relative error <= {target:g} on every problem. "
        "JAX rows solve all problems in one jitted `jax.vmap` call (float32; the loop runs until the slowest "
        f"problem stops). Times are medians of {args.repeats} runs of the whole batch (fewer when the runs "
        f"exceed {args.max_seconds_per_cell:.0f} s).\n\n"
    )
    return text + markdown_table(header, rows) + "\n"


# --------------------------------------------------------------------------- section 4
def peak_rss_mib() -> dict:
    """Peak resident memory of this process in MiB: ``VmHWM`` and ``ru_maxrss``.

    ``ru_maxrss`` is preserved across ``execve`` (getrusage(2)), so a child started by a
    big parent reports at least the parent's peak (seen here: 216 MiB for a bare Python
    child of a 200 MiB parent). ``VmHWM`` (/proc/self/status) is the high-water mark of
    this process's own address space, which starts empty at exec: the isolated number.
    """
    peaks = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}  # KiB on Linux
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    peaks["vmhwm_mib"] = int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return peaks


def memory_child(kind: str, n: int, iters: int) -> dict:
    """Run in a subprocess: baseline (import + inputs) or a lazy Sinkhorn solve; peak RSS."""
    key_x, key_y = jax.random.split(jax.random.PRNGKey(0))
    x = jax.block_until_ready(jax.random.uniform(key_x, (n, 2), jnp.float32))
    y = jax.block_until_ready(jax.random.uniform(key_y, (n, 2), jnp.float32))
    report = {"kind": kind, "n": n}
    if kind == "solve":
        check_every = min(CHECK_EVERY, iters)

        def solve(x, y):
            out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=1e-2, tol=0.0, max_iters=iters,
                                  check_every=check_every)
            return out.cost, out.n_iters

        t0 = time.perf_counter()
        compiled = jax.jit(solve).lower(x, y).compile()
        report["compile_s"] = time.perf_counter() - t0
        report["after_compile_mib"] = peak_rss_mib().get("vmhwm_mib")
        t0 = time.perf_counter()
        cost, n_iters = jax.block_until_ready(compiled(x, y))
        report["solve_s"] = time.perf_counter() - t0
        report["iters"] = int(n_iters)
        report["cost"] = float(cost)
    report.update(peak_rss_mib())
    return report


def run_memory_child(kind: str, n: int, iters: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", kind, "--memory-n", str(n),
           "--memory-iters", str(iters)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section_memory(args) -> str:
    """Section 4: peak RSS of a lazy PointCloud Sinkhorn vs a baseline process, each in a subprocess."""
    n, iters = args.memory_n, args.memory_iters
    log(f"section 4: lazy Sinkhorn at n = {n}, d = 2, {iters} iterations (subprocesses)")
    base = run_memory_child("baseline", n, iters)
    solve = run_memory_child("solve", n, iters)
    log(f"  baseline {base}, solve {solve}")
    dense_mib = n * n * 4 / 2**20
    peak = lambda rep: rep.get("vmhwm_mib", rep["ru_maxrss_mib"])
    rows = []
    for label, rep in (("baseline: import jax + ot_jax, allocate x, y", base),
                       ("lazy PointCloud Sinkhorn solve", solve)):
        if "error" in rep:
            rows.append([label, rep["error"], "-", "-", "-", "-", "-", "-"])
            continue
        per_iter = f"{rep['solve_s'] / rep['iters']:.3g}" if rep.get("iters") else "-"
        after_compile = rep.get("after_compile_mib")
        rows.append([label, f"{peak(rep):.0f}", f"{after_compile:.0f}" if after_compile else "-",
                     f"{rep['ru_maxrss_mib']:.0f}", rep.get("iters", "-"), fmt_s(rep.get("solve_s")), per_iter,
                     fmt_s(rep.get("compile_s"))])
    if "error" not in base and "error" not in solve:
        rows.append(["difference (solve - baseline)", f"{peak(solve) - peak(base):.0f}", "-",
                     f"{solve['ru_maxrss_mib'] - base['ru_maxrss_mib']:.0f}", "-", "-", "-", "-"])
    header = ["process", "peak RSS (MiB, VmHWM)", "peak after compile, before solving (MiB)", "ru_maxrss (MiB)",
              "iterations", "solve time (s)", "s / iteration", "compile (s)"]
    text = (
        f"### 4. Peak memory of a lazy PointCloud Sinkhorn at n = {n:,}, d = 2\n\n"
        f"n = m = {n:,} points uniform in [0,1]^2 (float32), squared Euclidean cost, eps = 1e-2, tol = 0, "
        f"max_iters = {iters} (fixed number of iterations), default block size; each row is a fresh subprocess. "
        "Peak RSS is read at its end (compilation included) as `VmHWM` from /proc/self/status; "
        "`resource.getrusage(RUSAGE_SELF).ru_maxrss` is shown too, but Linux keeps it across `execve`, so in a "
        "child of this (large) benchmark process it is at least the parent's own peak and hides the difference. "
        f"The dense cost matrix alone would take {dense_mib:,.0f} MiB in float32. Solve time includes the final "
        "cost evaluation (one more pass over the cost).\n\n"
    )
    return text + markdown_table(header, rows) + "\n"


# --------------------------------------------------------------------------- report




def header_section(args, started: datetime.datetime) -> str:
    import ot
    import ott

    devices = ", ".join(str(d) for d in jax.devices())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "## Discrete OT: IPOT and Sinkhorn against POT and OTT-JAX (`scripts/bench_discrete.py`)\n",
        "Generated by `make bench`, which runs `python scripts/bench_discrete.py` (defaults below); do not edit by "
        "hand, rerun instead. All solvers run side by side in one process (section 4 in subprocesses).\n",
        f"- command: `{command_line()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- git: {git_revision()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (`os.cpu_count()`); load average at start: {load}",
        f"- JAX backend: {jax.default_backend()}; devices: {devices}",
        f"- versions: python {platform.python_version()}, jax {jax.__version__}, ot_jax {ot_jax.__version__}, "
        f"POT {ot.__version__}, ott-jax {ott.__version__}, numpy {np.__version__}",
        f"- repeats: {args.repeats} (medians); sizes: {' '.join(map(str, args.sizes))}"
        + ("; `--quick` (tiny sizes, smoke test only)" if args.quick else ""),
        "",
    ]
    return "\n".join(lines)


def write_report(path: str, parts: list[str]) -> None:
    """Write this script's block of the report; the other scripts' blocks stay."""
    write_section("discrete", "\n".join(parts), path)


# --------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096],
                   help="n for section 1 (e.g. add 16384 on a GPU)")
    p.add_argument("--iter-sizes", type=int, nargs="+", default=[1024, 4096], help="n for section 2")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    p.add_argument("--max-seconds-per-cell", type=float, default=60.0,
                   help="wall-time budget of one parameter scan (one solver at one n) in section 1")
    p.add_argument("--max-iters", type=int, default=20000, help="iteration cap of the IPOT/Sinkhorn runs")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--iters-per-timing", type=int, default=100, help="iterations per run in section 2")
    p.add_argument("--iter-eps", type=float, default=1e-2, help="absolute eps of section 2")
    p.add_argument("--lazy-batch-size", type=int, default=1024, help="block size of the lazy rows of section 2")
    p.add_argument("--batch-count", type=int, default=1000)
    p.add_argument("--batch-n", type=int, default=64)
    p.add_argument("--batch-eps", type=float, default=1e-2, help="absolute eps of the batched Sinkhorn rows")
    p.add_argument("--batch-tol", type=float, default=1e-3, help="tol of the batched Sinkhorn rows")
    p.add_argument("--memory-n", type=int, default=100_000)
    p.add_argument("--memory-iters", type=int, default=20)
    p.add_argument("--skip-memory", action="store_true", help="skip section 4")
    p.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4], help="sections to run")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (n in {64, 128}, 50 batched problems, memory n = 5000): a smoke test")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks.md"), help="markdown report path")
    p.add_argument("--memory-child", choices=["baseline", "solve"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:  # tiny sizes, unless given explicitly on the command line
        quick = dict(sizes=[64, 128], iter_sizes=[64, 128], batch_count=50, memory_n=5000, iters_per_timing=50)
        for name, value in quick.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.memory_n, args.memory_iters)))
        return
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    parts = [header_section(args, started)]
    sections = {1: section_time_to_error, 2: section_iteration_time, 3: section_batched, 4: section_memory}
    for number in sorted(set(args.sections)):
        if number == 4 and args.skip_memory:
            continue
        text = sections[number](args)
        print(text, flush=True)
        parts.append(text)
        write_report(args.out, parts + [f"_(incomplete: section {number} done)_"])
    parts.append(f"Total wall time of this run: {time.perf_counter() - t0:.0f} s.")
    write_report(args.out, parts)
    log(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
