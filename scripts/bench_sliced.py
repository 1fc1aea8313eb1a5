"""Sliced Wasserstein: ot_jax vs POT side by side (d = 3, 100 projections, uniform points).

Run: ``python scripts/bench_sliced.py [--sizes 10000 100000 1000000] [--repeats 3]``.
Prints a markdown table: median seconds (jit compile excluded, reported separately).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
import ot

import ot_jax
from _timing import median_time


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--projections", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, jax {jax.__version__} ({jax.default_backend()}), POT {ot.__version__}, float32")
    print("| n | ot_jax (s) | compile (s) | POT (s) | POT / ot_jax |")
    print("|---|---|---|---|---|")
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
        print(f"| {n} | {ours:.3g} | {max(compile_s, 0.0):.3g} | {pot:.3g} | {pot / ours:.2f}x |")


if __name__ == "__main__":
    main()
