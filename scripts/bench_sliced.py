"""Sliced Wasserstein: ot_jax vs POT side by side (d = 3, 100 projections, uniform points).

Run by ``make bench`` as ``python scripts/bench_sliced.py`` (sizes 10^4, 10^5, 10^6).
Prints a markdown table (median seconds, jit compile excluded and reported
separately) and writes it to the ``sliced`` block of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax
import numpy as np
import ot

import ot_jax
from _timing import command_line, cpu_model, git_revision, median_time, write_section


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--projections", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    lines = [
        "## Sliced Wasserstein against POT (`scripts/bench_sliced.py`)",
        "",
        f"- command: `{command_line()}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; git: {git_revision()}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__} ({jax.default_backend()}), "
        f"POT {ot.__version__}, python {platform.python_version()}",
        f"- setting: n points uniform in [0,1]^3 against n points uniform in [0.5,1.5]^3, float32, "
        f"{args.projections} random directions, p = 2; medians of {args.repeats} runs; jit compile excluded "
        "(own column). POT: `ot.sliced_wasserstein_distance` (NumPy backend).",
        "",
        "| n | ot_jax (s) | compile (s) | POT (s) | POT / ot_jax |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    key = jax.random.PRNGKey(0)
    for n in args.sizes:
        rng = np.random.default_rng(n)
        x = rng.uniform(size=(n, 3)).astype(np.float32)
        y = (rng.uniform(size=(n, 3)) + 0.5).astype(np.float32)
        solve = jax.jit(lambda k, x, y: ot_jax.sliced_wasserstein(k, x, y, n_projections=args.projections))
        start = time.perf_counter()
        jax.block_until_ready(solve(key, x, y))
        compile_s = time.perf_counter() - start
        ours = median_time(lambda: solve(key, x, y), args.repeats)
        compile_s -= ours
        pot = median_time(lambda: ot.sliced_wasserstein_distance(x, y, n_projections=args.projections, seed=0),
                          args.repeats)
        row = f"| {n:,} | {ours:.3g} | {max(compile_s, 0.0):.3g} | {pot:.3g} | {pot / ours:.2f}x |"
        print(row, flush=True)
        lines.append(row)
    if not args.no_write:
        write_section("sliced", "\n".join(lines))


if __name__ == "__main__":
    main()
