"""Assignment: ot_jax auction, Hungarian and scipy methods vs scipy's linear_sum_assignment (uniform random costs).

Run: ``python scripts/bench_assignment.py [--sizes 512 1024 2048 4096] [--repeats 3]``.

Two markdown tables, printed and written to the ``assignment`` block of
``docs/benchmarks.md`` (``_timing.write_section``):

1. one ``n x n`` problem per size: scipy, then ot_jax's Hungarian, auction and
   ``method="scipy"`` (scipy's solver behind ``jax.pure_callback``: the cost of the
   host call), median wall seconds of interleaved runs (all of them, then again), jit
   compile time excluded (ahead-of-time ``lower().compile()``, own column), the
   ratio to scipy, the auction's achieved gap ``cost - optimum`` and its
   reported bound;
2. ``jit(vmap(...))`` over a batch of small problems (default 256 of 64 x 64)
   for every method against a Python loop of scipy.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax
import numpy as np
import scipy
import scipy.optimize

import ot_jax
from _timing import command_line, cpu_model, write_section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def compiled(method: str, example, batched: bool = False):
    """Ahead-of-time compiled ``cost -> AssignmentResult``; returns ``(fn, compile seconds)``."""
    fn = lambda c: ot_jax.assignment(c, method=method)  # noqa: E731
    fn = jax.jit(jax.vmap(fn) if batched else fn)
    start = time.perf_counter()
    exe = fn.lower(example).compile()
    return exe, time.perf_counter() - start


def wall(fn) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process, all threads)`` of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return time.perf_counter() - start, time.process_time() - cpu


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def single_problems(args, dtype):
    header = ["n", "method", "time (s)", "vs scipy", "CPU time vs scipy", "compile (s)", "cost - optimum",
              "reported bound", "note"]
    rows = []
    for n in args.sizes:
        cost = np.random.default_rng(n).uniform(size=(n, n)).astype(dtype)
        cost64 = cost.astype(np.float64)
        on_device = jax.device_put(cost)  # JAX callers hold jax.Arrays: no host-to-device copy in the timings
        r, c = scipy.optimize.linear_sum_assignment(cost64)
        best = cost64[r, c].sum()
        methods = ["scipy", "auction"] + (["hungarian"] if n <= args.hungarian_max_n else [])
        exes, compile_s, outs = {}, {}, {}
        for method in methods:
            exes[method], compile_s[method] = compiled(method, cost)
            outs[method] = jax.block_until_ready(exes[method](on_device))
        times = {name: [] for name in ["reference", *methods]}
        for _ in range(args.repeats):  # interleaved, so that load changes hit every method alike
            times["reference"].append(wall(lambda: scipy.optimize.linear_sum_assignment(cost64)))
            for method in methods:
                times[method].append(wall(lambda: exes[method](on_device)))
        med = {name: float(np.median([w for w, _ in t])) for name, t in times.items()}
        cpu = {name: float(np.median([c for _, c in t])) for name, t in times.items()}
        rows.append([n, "scipy linear_sum_assignment", f"{med['reference']:.3g}", "1", "1", "-", "0 (reference)",
                     "-", ""])
        for method in ("scipy", "hungarian", "auction"):
            label = f"ot_jax {method}"
            if method not in methods:
                rows.append([n, label, "-", "-", "-", "-", "-", "-",
                             f"skipped (n > --hungarian-max-n {args.hungarian_max_n})"])
                continue
            out = outs[method]
            value = cost64[np.arange(n), np.asarray(out.permutation)].sum()
            note = {"auction": f"{int(out.n_iters)} bidding rounds", "hungarian": f"{int(out.n_iters)} augmenting steps",
                    "scipy": "host call"}[method]
            if not bool(out.converged):
                note += ", NOT converged"
            rows.append([n, label, f"{med[method]:.3g}", f"{med[method] / med['reference']:.2f}x",
                         f"{cpu[method] / cpu['reference']:.2f}x", f"{compile_s[method]:.2f}", f"{value - best:.1e}",
                         f"{float(out.cost - out.lower_bound):.1e}", note])
        print(f"n={n} done: " + ", ".join(f"{k} {v:.3g}s" for k, v in med.items()), flush=True)
    return markdown_table(header, rows)


def batched_problems(args, dtype):
    batch, n = args.batch, args.batch_n
    costs = np.random.default_rng(0).uniform(size=(batch, n, n)).astype(dtype)
    costs64 = costs.astype(np.float64)
    on_device = jax.device_put(costs)

    def scipy_loop():
        return [c[scipy.optimize.linear_sum_assignment(c)].sum() for c in costs64]

    best = np.array(scipy_loop())
    exes, compile_s, outs = {}, {}, {}
    methods = ("scipy", "hungarian", "auction")
    for method in methods:
        exes[method], compile_s[method] = compiled(method, costs, batched=True)
        outs[method] = jax.block_until_ready(exes[method](on_device))
    times = {name: [] for name in ("reference", *methods)}
    for _ in range(args.repeats):
        times["reference"].append(wall(scipy_loop))
        for method in methods:
            times[method].append(wall(lambda: exes[method](on_device)))
    med = {name: float(np.median([w for w, _ in t])) for name, t in times.items()}
    header = ["problems", "method", "time (s)", "vs scipy loop", "compile (s)", "max cost - optimum", "note"]
    rows = [[f"{batch} x ({n}x{n})", "scipy linear_sum_assignment, Python loop", f"{med['reference']:.3g}", "1",
             "-", "0 (reference)", ""]]
    for method in methods:
        out = outs[method]
        values = np.take_along_axis(costs64, np.asarray(out.permutation)[:, :, None], axis=2)[:, :, 0].sum(1)
        steps = np.asarray(out.n_iters)
        note = (f"{'rounds' if method == 'auction' else 'steps'} per problem: max {steps.max()}, mean {steps.mean():.0f}"
                if method != "scipy" else "one host call for the batch")
        if not bool(np.all(out.converged)):
            note += ", NOT all converged"
        rows.append([f"{batch} x ({n}x{n})", f"ot_jax {method}, jit(vmap)", f"{med[method]:.3g}",
                     f"{med[method] / med['reference']:.2f}x", f"{compile_s[method]:.2f}",
                     f"{(values - best).max():.1e}", note])
    print("batched done: " + ", ".join(f"{k} {v:.3g}s" for k, v in med.items()), flush=True)
    return markdown_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--hungarian-max-n", type=int, default=4096,
                        help="skip the Hungarian method above this n (it is O(n^3) and sequential)")
    parser.add_argument("--batch", type=int, default=256, help="problems in the vmap table")
    parser.add_argument("--batch-n", type=int, default=64, help="size of each problem in the vmap table")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    dtype = np.dtype(args.dtype)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    single = single_problems(args, dtype)
    batched = batched_problems(args, dtype)
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join([
        "## Linear assignment: auction, Hungarian and scipy methods against scipy (`scripts/bench_assignment.py`)\n",
        "Generated by `make bench`, which runs `python scripts/bench_assignment.py` (defaults below); do not edit "
        "by hand, rerun instead.\n",
        f"- command: `{command_line()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (`os.cpu_count()`); load average at start: {load_start}; "
        f"at the end: {load_end}",
        f"- JAX backend: {jax.default_backend()}",
        f"- versions: python {platform.python_version()}, jax {jax.__version__}, ot_jax {ot_jax.__version__}, "
        f"scipy {scipy.__version__}, numpy {np.__version__}",
        f"- costs: {args.dtype}, uniform on [0, 1) (`numpy.random.default_rng(n)`); scipy always solves the "
        "float64 matrix and gives the optimum. Auction with its defaults (`eps_scale=8`, "
        "`eps_final` such that bound = 1e-7 x (max C - min C)).",
        f"- time: median wall seconds of {args.repeats} interleaved runs (scipy, then ot_jax's scipy, auction and "
        "Hungarian methods, then again, "
        "in one process; ot_jax gets the costs as a `jax.Array` already on the device, scipy as a NumPy array), "
        "jit compile excluded (ahead-of-time `lower().compile()`, own column). "
        "The cores are shared with other work: compare the ratios, which are taken back to back. "
        "scipy runs on one thread; XLA may use both cores for the large steps of the auction, hence the "
        "CPU-time ratio (process CPU seconds, all threads, medians) next to the wall-time one.",
        "",
        "### One problem of size n x n\n",
        single,
        f"### Batched: `jit(vmap(assignment))` over {args.batch} problems of {args.batch_n} x {args.batch_n}\n",
        batched,
    ])
    print()
    print(text)
    if not args.no_write:
        write_section("assignment", text)


if __name__ == "__main__":
    main()
