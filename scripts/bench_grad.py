"""Gradient benchmark: one ``value_and_grad`` of entropic OT w.r.t. the points, by mode, vs OTT-JAX.

Run by ``make bench`` as ``python scripts/bench_grad.py``. Setting: ``x, y`` uniform
in ``[0, 1]^2``, squared Euclidean cost, uniform weights, float32, ``epsilon = 0.01``
(absolute), stopping tolerance 1e-3 on the L1 marginal error for both libraries
(OTT-JAX's ``threshold``), lazy point clouds. Rows:

- ot_jax ``grad_mode="implicit"`` (default): ``d cost / dx`` and ``d reg_cost / dx``
  (both go through the adjoint conjugate-gradient solve);
- ot_jax ``"envelope"``: ``d reg_cost / dx`` with the potentials held fixed (no solve);
- ot_jax ``"unroll"``: ``d cost / dx`` through the iterations (a scan over ``max_iters``);
- OTT-JAX ``Sinkhorn(use_danskin=False)`` with its default ``ImplicitDiff``:
  ``d reg_ot_cost / dx``.

Every row runs in its own subprocess, so its peak resident memory (``ru_maxrss``)
is its own; the function is compiled ahead of time (compile column), called once,
then timed (median of ``--repeats``). The markdown table goes to stdout and to the
``grad`` block of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPORT, command_line, cpu_model, git_revision, write_section  # noqa: E402

EPSILON = 0.01
TOL = 1e-3
MAX_ITERS = 2000
ROWS = (
    ("ot_jax implicit", "cost"),
    ("ot_jax implicit", "reg_cost"),
    ("ot_jax envelope", "reg_cost"),
    ("ot_jax unroll", "cost"),
    ("OTT-JAX implicit", "reg_ot_cost"),
)


def run_one(method: str, output: str, n: int, repeats: int) -> dict:
    """Time one configuration in this process (called in a subprocess)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import ot_jax

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(n, 2)), jnp.float32)
    y = jnp.asarray(rng.uniform(size=(n, 2)), jnp.float32)

    if method.startswith("ot_jax"):
        mode = method.split()[1]

        def loss(x):
            out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=EPSILON, tol=TOL, max_iters=MAX_ITERS,
                                  grad_mode=mode)
            return getattr(out, output), out.n_iters
    else:
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn

        solver = sinkhorn.Sinkhorn(threshold=TOL, max_iterations=MAX_ITERS, use_danskin=False)

        def loss(x):
            geom = pointcloud.PointCloud(x, y, epsilon=EPSILON)
            out = solver(linear_problem.LinearProblem(geom))
            return out.reg_ot_cost, out.n_iters

    fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
    start = time.perf_counter()
    compiled = fn.lower(x).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (value, iters), grad = jax.block_until_ready(compiled(x))
        times.append(time.perf_counter() - start)
    return {
        "seconds": float(np.median(times)),
        "compile_s": compile_s,
        "value": float(value),
        "iters": int(iters),
        "grad_norm": float(jnp.linalg.norm(grad)),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 20000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=REPORT)
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "OUTPUT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, output, n = args.one
        print(json.dumps(run_one(method, output, int(n), args.repeats)))
        return

    import jax
    import ott

    lines = [
        "## Gradients: one value_and_grad w.r.t. the points, by grad_mode, vs OTT-JAX (`scripts/bench_grad.py`)",
        "",
        f"Command: `{command_line()}`; revision {git_revision()}; {cpu_model()}, {os.cpu_count()} cores, "
        f"{platform.system()}; jax {jax.__version__} ({jax.default_backend()}), ott-jax {ott.__version__}.",
        f"x, y uniform in [0, 1]^2, squared Euclidean, float32, epsilon = {EPSILON}, tol = {TOL} (L1 marginal "
        "error), lazy point clouds. Median of "
        f"{args.repeats} calls after one warm-up (one call past n = 10,000); compile time apart; peak RSS of "
        "the row's own process (a dense n x n float32 matrix at n = 20,000 alone is 1600 MB).",
        "",
        "| n | method | differentiates | time (s) | ratio to OTT-JAX | compile (s) | iterations | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in args.sizes:
        results = {}
        # Past n = 10,000 one call lasts about a minute on a CPU: one timed call after the warm-up.
        repeats = args.repeats if n <= 10000 else 1
        for method, output in ROWS:
            if method == "ot_jax unroll" and n > 2000:
                results[(method, output)] = None  # a scan over max_iters steps of [n] states x blocks: skipped
                continue
            try:  # a row that runs past 15 minutes is reported, not waited for
                proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", method, output, str(n),
                                       "--repeats", str(repeats)], capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                results[(method, output)] = {"error": "stopped after 15 min"}
                continue
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                lines_err = [line for line in proc.stderr.splitlines() if "Error" in line] or ["killed"]
                results[(method, output)] = {"error": lines_err[-1].split(": ", 1)[-1][:80]}
                continue
            results[(method, output)] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"n={n} {method} {output}: {results[(method, output)]}", file=sys.stderr, flush=True)
        ott_row = results.get(("OTT-JAX implicit", "reg_ot_cost")) or {}
        for (method, output), r in results.items():
            if r is None:
                lines.append(f"| {n} | {method} | `{output}` | skipped (memory grows with max_iters) | | | | |")
            elif "error" in r:
                lines.append(f"| {n} | {method} | `{output}` | failed: {r['error']} | | | | |")
            else:
                ratio = r["seconds"] / ott_row["seconds"] if ott_row.get("seconds") else float("nan")
                lines.append(f"| {n} | {method} | `{output}` | {r['seconds']:.3f} | {ratio:.2f} | "
                             f"{r['compile_s']:.1f} | {r['iters']} | {r['peak_mb']:.0f} |")
        write_section("grad", "\n".join(lines), args.out)  # after every size: a long run keeps its rows
    print("\n".join(lines))


if __name__ == "__main__":
    main()
