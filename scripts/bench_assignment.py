"""Assignment: ot_jax Hungarian and auction vs scipy's linear_sum_assignment (uniform random costs).

Run: ``python scripts/bench_assignment.py [--sizes 512 1024] [--repeats 3]``.
Prints a markdown table: median seconds, jit compile excluded (reported separately).
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np
import scipy.optimize

import ot_jax
from _timing import median_time


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(f"CPU cores: {os.cpu_count()}, jax {jax.__version__} ({jax.default_backend()}), float64")
    print("| n | scipy (s) | hungarian (s) | auction (s) | hungarian / scipy | auction / scipy | auction gap |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        cost = np.random.default_rng(n).uniform(size=(n, n))
        rows, cols = scipy.optimize.linear_sum_assignment(cost)
        best = cost[rows, cols].sum()
        scipy_s = median_time(lambda: scipy.optimize.linear_sum_assignment(cost), args.repeats)
        times, gap = {}, None
        for method in ("hungarian", "auction"):
            solve = jax.jit(lambda c, method=method: ot_jax.assignment(c, method=method).cost)
            value = float(solve(cost))  # compile
            times[method] = median_time(lambda: solve(cost), args.repeats)
            if method == "auction":
                gap = value - best
        print(f"| {n} | {scipy_s:.3g} | {times['hungarian']:.3g} | {times['auction']:.3g} | "
              f"{times['hungarian'] / scipy_s:.1f}x | {times['auction'] / scipy_s:.0f}x | {gap:.1e} |")


if __name__ == "__main__":
    main()
