"""Eager-call latency: ``sinkhorn`` / ``ipot`` called from plain Python, no user ``jax.jit``.

Run by ``make bench`` as ``python scripts/bench_eager.py``. What a user feels in a
notebook: the first call (tracing and compiling included) and a repeated call
(median of ``--repeats``) of the solver and of ``jax.grad`` of its ``reg_cost``
with respect to the points, on a small problem (12×10 points in 2-D, float64,
``epsilon = 0.05``, ``tol = 1e-10``). OTT-JAX's ``solve`` is timed the same way.
The markdown table goes to stdout and to the ``eager`` block of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import command_line, cpu_model, git_revision, median_time, write_section  # noqa: E402

import ot_jax  # noqa: E402

EPSILON = 0.05
TOL = 1e-10


def first_and_repeat(fn, repeats: int) -> tuple[float, float]:
    """Seconds of the first call of ``fn()`` and the median of ``repeats`` more."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    return first, median_time(fn, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(12, 2)))
    y = jnp.asarray(rng.uniform(size=(10, 2)))

    def ot_sinkhorn(x):
        return ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=EPSILON, tol=TOL)

    def ot_ipot(x):
        return ot_jax.ipot(ot_jax.PointCloud(x, y))

    rows = [
        ("ot_jax sinkhorn", lambda: ot_sinkhorn(x).reg_cost),
        ("ot_jax sinkhorn, grad", lambda: jax.grad(lambda x: ot_sinkhorn(x).reg_cost)(x)),
        ("ot_jax ipot", lambda: ot_ipot(x).cost),
        ("ot_jax ipot, grad", lambda: jax.grad(lambda x: ot_ipot(x).cost)(x)),
    ]
    try:
        from ott.geometry import pointcloud
        from ott.solvers import linear

        def ott_sinkhorn(x):
            geom = pointcloud.PointCloud(x, y, epsilon=EPSILON)
            return linear.solve(geom, threshold=TOL, lse_mode=True).reg_ot_cost

        rows += [
            ("OTT-JAX solve", lambda: ott_sinkhorn(x)),
            ("OTT-JAX solve, grad", lambda: jax.grad(ott_sinkhorn)(x)),
        ]
    except ImportError:
        pass

    lines = [
        "| call | first call (s) | repeated call, median (ms) |",
        "|---|---:|---:|",
    ]
    for name, fn in rows:
        first, repeat = first_and_repeat(fn, args.repeats)
        lines.append(f"| {name} | {first:.2f} | {1e3 * repeat:.1f} |")
        print(lines[-1], flush=True)
    header = (
        f"Eager calls (no user `jax.jit`), 12×10 points, float64, epsilon={EPSILON}, tol={TOL}; "
        f"median of {args.repeats}. CPU: {cpu_model()}, jax {jax.__version__}, ot_jax {git_revision()}.\n"
        f"Command: `{command_line()}`\n\n"
    )
    table = header + "\n".join(lines)
    print(table)
    if not args.no_report:
        write_section("eager", table)


if __name__ == "__main__":
    main()
