"""Barycenter benchmark: time per iteration of the IPOT and Sinkhorn barycenters (ot_jax) vs POT.

Run: ``python scripts/bench_barycenter.py [--size 50] [--measures 10] [--repeats 3]``.

Setting: ``K`` synthetic images (rings of random centre and radius, plus a 1e-6
floor) on an ``S x S`` grid of ``[0, 1]^2``, squared Euclidean cost, uniform
weights, float32 everywhere (POT gets float32 NumPy arrays). Two geometries for
ot_jax: the dense ``[S^2, S^2]`` cost matrix (:class:`ot_jax.Geometry`) and the
separable :class:`ot_jax.Grid` (never stores ``[S^2, S^2]``). POT: ``ot.barycenter``
(``method="sinkhorn"``, dense kernel, scaling domain) and
``ot.bregman.convolutional_barycenter2d`` (Solomon et al.'s separable blur).

Timing: every JAX function is compiled ahead of time (``jit(...).lower().compile()``,
reported in its own column) and run once as a warm-up; each timed run does a fixed
number of iterations (``tol = 0``; ot_jax checks its stopping rule every 10
iterations, included in the time), and the table reports the median over
``--repeats`` runs divided by the iteration count. The block ``barycenter`` of
``docs/benchmarks.md`` is rewritten (``scripts/_timing.write_section``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import ot

import ot_jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import command_line, cpu_model, git_revision, median_time, write_section  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rings(size: int, count: int, seed: int = 0) -> np.ndarray:
    """``[count, size, size]`` float32 images of rings, each summing to 1."""
    rng = np.random.default_rng(seed)
    g = np.linspace(0.0, 1.0, size)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    out = []
    for _ in range(count):
        cx, cy = rng.uniform(0.3, 0.7, 2)
        radius = rng.uniform(0.1, 0.2)
        img = np.exp(-(((np.hypot(xx - cx, yy - cy) - radius) / 0.03) ** 2)) + 1e-6
        out.append(img / img.sum())
    return np.stack(out).astype(np.float32)


def compile_ours(measures, geom, iters, **kw):
    """(run, compile seconds): ``run()`` does ``iters`` iterations of ``ot_jax.barycenter`` (compiled ahead)."""
    fn = jax.jit(lambda p, g: ot_jax.barycenter(p, g, tol=0.0, max_iters=iters, **kw).barycenter)
    start = time.perf_counter()
    compiled = fn.lower(measures, geom).compile()
    compile_s = time.perf_counter() - start
    run = lambda: compiled(measures, geom)
    jax.block_until_ready(run())  # warm-up
    return run, compile_s


def interleaved_medians(runs, repeats):
    """Median seconds of each ``run()``, timing the runs in turn (round robin), so that load
    from other processes hits every solver alike."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            times[i].append(median_time(run, 1))
    return [float(np.median(t)) for t in times]





def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50, help="grid side S (n = S^2 points)")
    parser.add_argument("--measures", type=int, default=10, help="number of measures K")
    parser.add_argument("--epsilon", type=float, default=4e-3, help="Sinkhorn eps (cost units; max C = 2)")
    parser.add_argument("--dense-iters", type=int, default=30, help="iterations per timed run, dense cost")
    parser.add_argument("--grid-iters", type=int, default=300, help="iterations per timed run, Grid")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.timezone.utc)
    size, k, eps = args.size, args.measures, args.epsilon
    n = size * size
    images = rings(size, k)
    measures = jnp.asarray(images.reshape(k, n))
    grid = ot_jax.Grid.regular((size, size), dtype=jnp.float32)
    cost = np.asarray(grid.cost_matrix, dtype=np.float32)
    dense = ot_jax.Geometry(jnp.asarray(cost))
    a_pot = np.ascontiguousarray(images.reshape(k, n).T)  # POT wants [n, K]

    rows = []  # (geometry, solver, seconds per iteration, compile seconds, iterations per run)
    pot = {
        "dense": ("POT ot.barycenter (sinkhorn)",
                  lambda: ot.barycenter(a_pot, cost, eps, method="sinkhorn", numItermax=args.dense_iters,
                                        stopThr=0.0, warn=False)),
        "Grid": ("POT convolutional_barycenter2d",
                 lambda: ot.bregman.convolutional_barycenter2d(images, eps, numItermax=args.grid_iters, stopThr=0.0,
                                                               warn=False)),
    }
    for label, geom, iters in (("dense", dense, args.dense_iters), ("Grid", grid, args.grid_iters)):
        names, runs, compiles = [], [], []
        for solver, kw in (("ot_jax IPOT (log)", dict(method="ipot")),
                           ("ot_jax Sinkhorn (log)", dict(method="sinkhorn", epsilon=eps)),
                           ("ot_jax Sinkhorn (scaling)", dict(method="sinkhorn", epsilon=eps, mode="scaling"))):
            run, compile_s = compile_ours(measures, geom, iters, **kw)
            names.append(solver)
            runs.append(run)
            compiles.append(compile_s)
        names.append(pot[label][0])
        runs.append(pot[label][1])
        compiles.append(None)
        runs[-1]()  # warm-up
        for solver, seconds, compile_s in zip(names, interleaved_medians(runs, args.repeats), compiles):
            rows.append((label, solver, seconds / iters, compile_s, iters))
            print(rows[-1], flush=True)

    # Iterations and time to the default tolerance on the Grid (float32: 1e-3), for scale.
    conv_rows = []
    for solver, kw in (("ot_jax IPOT (log)", dict(method="ipot")),
                       ("ot_jax Sinkhorn (log)", dict(method="sinkhorn", epsilon=eps))):
        fn = jax.jit(lambda p, g, kw=kw: ot_jax.barycenter(p, g, **kw))
        out = fn(measures, grid)
        jax.block_until_ready(out.barycenter)
        seconds = median_time(lambda: fn(measures, grid).barycenter, args.repeats)
        errors = np.asarray(out.errors)
        best = float(errors[errors >= 0].min())  # the returned iterate's error (IPOT keeps the best)
        conv_rows.append((solver, int(out.n_iters), ot_jax.Status(int(out.status)).name, best, seconds))
        print(conv_rows[-1], flush=True)

    per = {(g, s): t for g, s, t, _, _ in rows}
    lines = [
        "## Barycenters: IPOT vs Sinkhorn per iteration (`scripts/bench_barycenter.py`)\n",
        f"- command: `{command_line()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- git: {git_revision()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (`os.cpu_count()`); "
        f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- JAX backend: {jax.default_backend()}; versions: python {platform.python_version()}, jax {jax.__version__}, "
        f"ot_jax {ot_jax.__version__}, POT {ot.__version__}, numpy {np.__version__}",
        f"- problem: K = {k} ring images on a {size} x {size} grid of [0, 1]^2 (n = {n}), squared Euclidean cost "
        f"(max C = 2), uniform weights, float32; Sinkhorn eps = {eps:g}, IPOT beta = 0.01 x max C. "
        f"Median of {args.repeats} runs of a fixed number of iterations (ot_jax checks its stopping rule every 10, "
        "included), divided by the count, the solvers of a geometry timed in turn (round robin) so that load from "
        "other processes hits them alike; compile time (ahead of time) excluded and reported.",
        "",
        "| geometry | solver | ms / iteration | compile (s) | iterations per run |",
        "|---|---|---|---|---|",
    ]
    for geom_label, solver, per_iter, compile_s, iters in rows:
        compile_txt = "-" if compile_s is None else f"{compile_s:.2f}"
        lines.append(f"| {geom_label} | {solver} | {1e3 * per_iter:.3g} | {compile_txt} | {iters} |")
    lines += ["", "| geometry | IPOT / Sinkhorn (log) per iteration | target |", "|---|---|---|"]
    for geom_label in ("dense", "Grid"):
        ratio = per[(geom_label, "ot_jax IPOT (log)")] / per[(geom_label, "ot_jax Sinkhorn (log)")]
        lines.append(f"| {geom_label} | {ratio:.2f}x | <= 1.5x |")
    lines += ["", f"To the default tolerance on the Grid (float32, tol 1e-3; Sinkhorn eps = {eps:g}, which blurs):", "",
              "| solver | iterations | status | error of the result | time (s) |", "|---|---|---|---|---|"]
    for solver, iters, status, best, seconds in conv_rows:
        lines.append(f"| {solver} | {iters} | {status} | {best:.2g} | {seconds:.3g} |")
    lines += ["", "Errors: Sinkhorn, the L1 disagreement of the plans' row marginals; IPOT, the larger of that and "
              "the relative gap to a certified lower bound of the exact objective (module docstring of "
              "`ot_jax/solvers/barycenter.py`). IPOT in float32 stops with STALLED when beta / t reaches "
              "100 x machine-eps x max C."]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("barycenter", markdown)


if __name__ == "__main__":
    main()
