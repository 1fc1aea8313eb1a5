"""Exact OT benchmark: ``ot_jax.emd`` (network simplex, numba) against POT's ``ot.emd2``, one process.

Run by ``make bench`` as ``python scripts/bench_exact.py``; writes the block ``exact`` of
``docs/benchmarks.md`` (``_timing.write_section``).

Problems: ``n = m`` points uniform in ``[0, 1]^d``, squared Euclidean cost (``ot.dist``),
float64, uniform weights or weights uniform in [0.1, 1] normalised (``numpy.random.default_rng``).
Each row: median wall seconds over ``--repeats`` interleaved calls (POT, ot_jax, POT, ...),
ot_jax timed as a user calls it (``ot_jax.emd(cost, a, b)`` eagerly: validation, the host
callback, the dense plan back as a JAX array); the one-time compile (numba's, cached on disk
after the first process, and XLA's) is timed separately on a small problem. Relative error
against POT's value and the certificate (the smallest reduced cost ``C - f - g`` over all
pairs, relative to ``max C``) are printed for every row.

Section 2: ``jit(vmap(emd))`` over ``--batch`` problems of 64 x 64 (one host call) against a
Python loop over ``ot.emd2``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import jax
import numpy as np
import ot

import ot_jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import command_line, cpu_model, git_revision, write_section  # noqa: E402


def _problem(n: int, d: int, weights: str, seed: int):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(size=(n, d)), rng.uniform(size=(n, d))
    cost = ot.dist(x, y)
    if weights == "uniform":
        a = b = np.full(n, 1.0 / n)
    else:
        a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, n)
        a, b = a / a.sum(), b / b.sum()
    return cost, a, b


def _time(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - start, out


def single_problems(args) -> str:
    rows = ["| n | d | weights | POT `emd2` s | ot_jax `emd` s | ratio (ours / POT) | rel. error | min reduced cost / max C | pivots |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n in args.sizes:
        for d in args.dims:
            for weights in ("uniform", "random"):
                cost, a, b = _problem(n, d, weights, seed=n + d)
                pot_times, our_times = [], []
                for _ in range(args.repeats):
                    t, ref = _time(lambda: ot.emd2(a, b, cost, numItermax=10**8))
                    pot_times.append(t)
                    t, out = _time(lambda: ot_jax.emd(cost, a, b))
                    our_times.append(t)
                pot, ours = float(np.median(pot_times)), float(np.median(our_times))
                f, g = np.asarray(out.f), np.asarray(out.g)
                reduced = min(float(np.min(cost[i:i + 256] - f[i:i + 256, None] - g[None, :]))
                              for i in range(0, n, 256)) / cost.max()
                err = abs(float(out.cost) - ref) / ref
                status = ot_jax.Status(int(out.status)).name
                rows.append(f"| {n} | {d} | {weights} | {pot:.3f} | {ours:.3f} | {ours / pot:.2f} | {err:.1e} | "
                            f"{reduced:.1e} | {int(out.n_iters)}{'' if status == 'CONVERGED' else ' ' + status} |")
                print(rows[-1], flush=True)
    return "\n".join(rows) + "\n"


def batched_problems(args) -> str:
    n = 64
    problems = [_problem(n, 2, "random", seed=10_000 + k) for k in range(args.batch)]
    costs = np.stack([p[0] for p in problems])
    a = np.stack([p[1] for p in problems])
    b = np.stack([p[2] for p in problems])
    solve = jax.jit(jax.vmap(lambda c, x, y: ot_jax.emd(c, x, y).cost))
    compile_s, _ = _time(lambda: solve.lower(costs, a, b).compile())
    solve(costs, a, b)
    pot_times, our_times = [], []
    for _ in range(args.repeats):
        t, ref = _time(lambda: np.array([ot.emd2(a[k], b[k], costs[k]) for k in range(args.batch)]))
        pot_times.append(t)
        t, ours = _time(lambda: solve(costs, a, b))
        our_times.append(t)
    pot, mine = float(np.median(pot_times)), float(np.median(our_times))
    err = float(np.max(np.abs(np.asarray(ours) - ref) / ref))
    return "\n".join([
        "| problems | POT loop s | ot_jax `jit(vmap(emd))` s | ratio (ours / POT) | compile s | max rel. error |",
        "|---|---|---|---|---|---|",
        f"| {args.batch} x {n} x {n} | {pot:.3f} | {mine:.3f} | {mine / pot:.2f} | {compile_s:.2f} | {err:.1e} |",
    ]) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    compile_s, _ = _time(lambda: ot_jax.emd(*_problem(8, 2, "random", 0)))  # numba (or its disk cache) + XLA
    single = single_problems(args)
    batched = batched_problems(args)
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    import numba

    text = "\n".join([
        "## Exact OT: `ot_jax.emd` against POT's `emd2` (`scripts/bench_exact.py`)\n",
        "Generated by `make bench`, which runs `python scripts/bench_exact.py` (defaults below); do not edit "
        "by hand, rerun instead.\n",
        f"- command: `{command_line()}` at {git_revision()}",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average at start: {load_start}; at the end: {load_end}",
        f"- versions: python {platform.python_version()}, jax {jax.__version__}, ot_jax {ot_jax.__version__}, "
        f"POT {ot.__version__}, numba {numba.__version__}, numpy {np.__version__}",
        f"- first call in this process (numba's compile or its disk cache, plus XLA's compile): {compile_s:.2f} s, "
        "not in the table",
        f"- float64, squared Euclidean cost of uniform points in [0, 1]^d; median wall seconds of {args.repeats} "
        "interleaved calls; ot_jax called eagerly as a user does (validation, host callback, dense plan returned). "
        "Both solvers are single-threaded network simplexes.",
        "",
        "### One problem of size n x n\n",
        single,
        f"### Batched: {args.batch} problems of 64 x 64, non-uniform weights\n",
        batched,
    ])
    print()
    print(text)
    if not args.no_write:
        write_section("exact", text)


if __name__ == "__main__":
    main()
