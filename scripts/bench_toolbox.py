"""Unbalanced and partial OT, Sinkhorn divergence, Gromov-Wasserstein, free-support barycenters, low-rank Sinkhorn, Gaussian closed forms: ot_jax vs POT and OTT-JAX side by side, with their agreement.

Run by ``make bench`` as ``python scripts/bench_toolbox.py``. Each row solves one
problem with ot_jax and with the rival at matched parameters in this process (float64,
n = m points uniform in [0, 1]^2 against [0.5, 1.5]^2, squared Euclidean cost), and
reports median seconds (jit compile excluded, in its own column), the speed ratio and
the largest difference between the two answers. Gromov-Wasserstein rows (``--gw-sizes``)
compare two point clouds in R^2 and R^3 through their normalised squared-distance
matrices. Writes the ``toolbox`` block of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
import ott  # noqa: E402
from ott.geometry import geometry as ott_geometry  # noqa: E402
from ott.geometry import pointcloud as ott_pointcloud  # noqa: E402
from ott.problems.linear import linear_problem  # noqa: E402
from ott.problems.quadratic import quadratic_problem  # noqa: E402
from ott.solvers.quadratic import gromov_wasserstein as ott_gw  # noqa: E402
from ott.solvers.linear import sinkhorn as ott_sinkhorn  # noqa: E402
from ott.solvers.linear import sinkhorn_lr as ott_sinkhorn_lr  # noqa: E402
from ott.tools import sinkhorn_divergence as ott_divergence  # noqa: E402

import ot_jax  # noqa: E402
from _timing import command_line, cpu_model, git_revision, markdown_table, median_time, write_section  # noqa: E402

EPS = 0.05
RHO = 1.0
TOL = 1e-9


def _problem(n):
    rng = np.random.default_rng(n)
    x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2)) + 0.5
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, n)
    return x, y, a / a.sum(), 1.3 * b / b.sum(), ot.dist(x, y)


def _timed(fn, repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    run = median_time(fn, repeats)
    return out, run, max(first - run, 0.0)


def _row(name, n, ours, compile_s, rival_name, rival, agreement):
    return [name, f"{n:,}", f"{ours:.3g}", f"{compile_s:.3g}", rival_name, f"{rival:.3g}", f"{rival / ours:.2f}x",
            agreement]


def bench_unbalanced(n, repeats):
    x, y, a, b, cost = _problem(n)
    solve = jax.jit(lambda c, a, b: ot_jax.sinkhorn(c, a, b, epsilon=EPS, reg_m=RHO, tol=TOL, max_iters=100000).plan)
    plan, ours, compile_s = _timed(lambda: solve(cost, a, b), repeats)
    # POT's log-domain unbalanced Sinkhorn (its scaling method underflows at this epsilon).
    pot_fn = lambda: ot.unbalanced.sinkhorn_unbalanced(a, b, cost, EPS, RHO, method="sinkhorn_stabilized",
                                                       stopThr=TOL, numItermax=100000)
    ref = pot_fn()
    pot = median_time(pot_fn, repeats)
    rows = [_row("unbalanced Sinkhorn (`sinkhorn(reg_m=1)`)", n, ours, compile_s, "POT `sinkhorn_unbalanced`", pot,
                 f"plan {np.abs(np.asarray(plan) - ref).max():.1e}")]
    # OTT-JAX regularises by the entropy of P: the shifted cost makes it our problem.
    shifted = cost - EPS * (np.log(a)[:, None] + np.log(b)[None, :])
    tau = RHO / (RHO + EPS)
    ott_solve = jax.jit(lambda c, a, b: ott_sinkhorn.Sinkhorn(threshold=TOL, max_iterations=100000)(
        linear_problem.LinearProblem(ott_geometry.Geometry(cost_matrix=c, epsilon=EPS), a=a, b=b, tau_a=tau,
                                     tau_b=tau)).matrix)
    ref_ott, ott_s, _ = _timed(lambda: ott_solve(shifted, a, b), repeats)
    rows.append(_row("unbalanced Sinkhorn", n, ours, compile_s, "OTT-JAX `tau_a, tau_b`", ott_s,
                     f"plan {np.abs(np.asarray(plan) - np.asarray(ref_ott)).max():.1e}"))
    return rows


def bench_divergence(n, repeats):
    x, y, a, b, _ = _problem(n)
    b = b / b.sum()
    solve = jax.jit(lambda x, y, a, b: ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=EPS, tol=TOL,
                                                                  max_iters=100000).divergence)
    value, ours, compile_s = _timed(lambda: solve(x, y, a, b), repeats)
    ott_solve = jax.jit(lambda x, y, a, b: ott_divergence.sinkhorn_divergence(
        ott_pointcloud.PointCloud, x, y, a=a, b=b, epsilon=EPS,
        solve_kwargs=dict(threshold=TOL, max_iterations=100000))[0])
    ref, ott_s, _ = _timed(lambda: ott_solve(x, y, a, b), repeats)
    return [_row("Sinkhorn divergence (lazy point clouds)", n, ours, compile_s, "OTT-JAX `sinkhorn_divergence`", ott_s,
                 f"value {abs(float(value) - float(ref)):.1e}")]


def bench_partial(n, repeats):
    _, _, a, b, cost = _problem(n)
    mass = 0.5
    solve = lambda: ot_jax.partial_emd(cost, a, b, mass=mass).plan
    plan, ours, compile_s = _timed(solve, repeats)
    ref = ot.partial.partial_wasserstein(a, b, cost, m=mass)
    pot = median_time(lambda: ot.partial.partial_wasserstein(a, b, cost, m=mass), repeats)
    rows = [_row("exact partial (`partial_emd`, mass 0.5)", n, ours, compile_s, "POT `partial_wasserstein`", pot,
                 f"cost {abs(float((np.asarray(plan) * cost).sum()) - float((ref * cost).sum())):.1e}")]
    eps = 0.2
    solve = jax.jit(lambda c, a, b: ot_jax.partial_sinkhorn(c, a, b, mass=mass, epsilon=eps, tol=TOL,
                                                            max_iters=100000).plan)
    plan, ours, compile_s = _timed(lambda: solve(cost, a, b), repeats)
    pot_fn = lambda: ot.partial.entropic_partial_wasserstein(a, b, cost, eps, m=mass, numItermax=100000, stopThr=TOL)
    ref = pot_fn()
    pot = median_time(pot_fn, repeats)
    rows.append(_row(f"entropic partial (`partial_sinkhorn`, ε = {eps})", n, ours, compile_s,
                     "POT `entropic_partial_wasserstein`", pot, f"plan {np.abs(np.asarray(plan) - ref).max():.1e}"))
    return rows


GW_EPS = 5e-3


def _spaces(n):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    cost_x, cost_y = ot.dist(x, x), ot.dist(y, y)
    features = ot.dist(x, y[:, :2])
    return cost_x / cost_x.max(), cost_y / cost_y.max(), features / features.max()


def bench_gromov(n, repeats):
    cost_x, cost_y, features = _spaces(n)
    a = b = np.full(n, 1.0 / n)
    rows = []
    solve = jax.jit(lambda cx, cy: ot_jax.gromov_wasserstein(cx, cy).plan)
    plan, ours, compile_s = _timed(lambda: solve(cost_x, cost_y), repeats)
    pot_fn = lambda: ot.gromov.gromov_wasserstein(cost_x, cost_y, a, b)
    ref = pot_fn()
    rows.append(_row("GW, conditional gradient (`gromov_wasserstein`)", n, ours, compile_s,
                     "POT `gromov_wasserstein`", median_time(pot_fn, repeats),
                     f"plan {np.abs(np.asarray(plan) - ref).max():.1e}"))
    solve = jax.jit(lambda cx, cy, m: ot_jax.gromov_wasserstein(cx, cy, cost_xy=m, alpha=0.5).plan)
    plan, ours, compile_s = _timed(lambda: solve(cost_x, cost_y, features), repeats)
    pot_fn = lambda: ot.gromov.fused_gromov_wasserstein(features, cost_x, cost_y, a, b, alpha=0.5)
    ref = pot_fn()
    rows.append(_row("fused GW, α = 0.5, conditional gradient", n, ours, compile_s,
                     "POT `fused_gromov_wasserstein`", median_time(pot_fn, repeats),
                     f"plan {np.abs(np.asarray(plan) - ref).max():.1e}"))
    solve = jax.jit(lambda cx, cy: ot_jax.gromov_wasserstein(cx, cy, epsilon=GW_EPS).plan)
    plan, ours, compile_s = _timed(lambda: solve(cost_x, cost_y), repeats)
    pot_fn = lambda: ot.gromov.entropic_gromov_wasserstein(cost_x, cost_y, a, b, epsilon=GW_EPS)
    ref = pot_fn()
    rows.append(_row(f"entropic GW, ε = {GW_EPS:g}", n, ours, compile_s, "POT `entropic_gromov_wasserstein`",
                     median_time(pot_fn, repeats), f"plan {np.abs(np.asarray(plan) - ref).max():.1e}"))
    # OTT-JAX linearises with L ⊗ T (half the gradient), so its epsilon is half ours for the same plans.
    ott_solver = ott_gw.GromovWasserstein(ott_sinkhorn.Sinkhorn(threshold=1e-9, max_iterations=100000),
                                          epsilon=GW_EPS / 2, threshold=1e-9, max_iterations=1000, warm_start=True)
    ott_solve = jax.jit(lambda cx, cy: ott_solver(quadratic_problem.QuadraticProblem(
        ott_geometry.Geometry(cost_matrix=cx), ott_geometry.Geometry(cost_matrix=cy))).matrix)
    ref_ott, ott_s, _ = _timed(lambda: ott_solve(cost_x, cost_y), repeats)
    rows.append(_row(f"entropic GW, ε = {GW_EPS:g}", n, ours, compile_s, "OTT-JAX `GromovWasserstein` (ε/2)", ott_s,
                     f"plan {np.abs(np.asarray(plan) - np.asarray(ref_ott)).max():.1e}"))
    return rows


def bench_free_barycenter(n, repeats):
    """K = 5 measures of n points in R^2 (shifted Gaussians), a barycenter of n / 2 points."""
    rng = np.random.default_rng(n)
    ys = np.stack([rng.normal(size=(n, 2)) + np.array([i, i % 2]) for i in range(5)])
    ws = np.stack([rng.dirichlet(np.ones(n)) for _ in range(5)])
    init = rng.normal(size=(n // 2, 2))
    solve = jax.jit(lambda y, w, x0: ot_jax.free_support_barycenter(y, x0, point_weights=w).locations)
    locations, ours, compile_s = _timed(lambda: solve(ys, ws, init), repeats)
    pot_fn = lambda: ot.lp.free_support_barycenter(list(ys), list(ws), init)
    ref = pot_fn()
    return [_row("free-support barycenter, K = 5 (`free_support_barycenter`, emd)", n, ours, compile_s,
                 "POT `free_support_barycenter`", median_time(pot_fn, repeats),
                 f"locations {np.abs(np.asarray(locations) - ref).max():.1e}")]


def bench_gromov_barycenter(n, repeats, n_spaces=3):
    """GW barycenter of 3 point clouds of n points (normalised squared distances), n / 4 points,
    square loss, conditional-gradient plans; POT's defaults (inner relative tolerance 1e-5, ours 1e-9)."""
    rng = np.random.default_rng(n)
    costs = []
    for s in range(n_spaces):
        x = rng.normal(size=(n, 2)) * (1 + 0.3 * s)
        cost = ot.dist(x, x)
        costs.append(cost / cost.max())
    xi = rng.normal(size=(n // 4, 2))
    init = ot.dist(xi, xi)
    init /= init.max()
    stacked = np.stack(costs)
    # At most 50 outer steps in both: on the larger problem the iteration wanders without settling,
    # identically in both libraries, and would run to POT's 1000.
    solve = jax.jit(lambda c, c0: ot_jax.gromov_barycenter(c, c0, max_iters=50).cost_matrix)
    bary, ours, compile_s = _timed(lambda: solve(stacked, init), repeats)
    pot_fn = lambda: ot.gromov.gromov_barycenters(n // 4, costs, lambdas=[1 / n_spaces] * n_spaces, init_C=init,
                                                  max_iter=50, tol=1e-9)
    ref = pot_fn()
    return [_row(f"GW barycenter, {n_spaces} spaces, n/4 points (`gromov_barycenter`)", n, ours, compile_s,
                 "POT `gromov_barycenters`", median_time(pot_fn, repeats),
                 f"C {np.abs(np.asarray(bary) - ref).max():.1e}")]


def bench_low_rank(n, repeats, rank=10):
    """Two Gaussian clouds of n points in R^2, rank-10 plans, epsilon = 0 (OTT-JAX's default)."""
    rng = np.random.default_rng(n)
    x, y = jnp.asarray(rng.normal(size=(n, 2))), jnp.asarray(0.5 * rng.normal(size=(n, 2)) + 1.0)
    solve = jax.jit(lambda x, y: ot_jax.low_rank_sinkhorn(ot_jax.PointCloud(x, y), rank=rank).cost)
    cost, ours, compile_s = _timed(lambda: solve(x, y), repeats)
    ott_solver = ott_sinkhorn_lr.LRSinkhorn(rank=rank, threshold=1e-6, max_iterations=5000, min_iterations=100)
    ott_solve = jax.jit(lambda x, y: ott_solver(linear_problem.LinearProblem(ott_pointcloud.PointCloud(x, y))).primal_cost)
    ref, ott_s, _ = _timed(lambda: ott_solve(x, y), repeats)
    return [_row(f"low-rank Sinkhorn, rank {rank} (`low_rank_sinkhorn`, lazy)", n, ours, compile_s,
                 "OTT-JAX `LRSinkhorn`", ott_s, f"cost {float(cost):.4f} vs {float(ref):.4f}")]


def _gaussians(d, k, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    roots = rng.normal(size=(k, d, d)) / np.sqrt(d)
    covs = roots @ np.swapaxes(roots, 1, 2) + 0.1 * np.eye(d)
    return means, covs


def bench_gaussian(d, repeats, k=10):
    """Closed forms between Gaussians in R^d (random SPD covariances), jitted, against POT's
    ``ot.gaussian`` (NumPy/SciPy) on the same matrices."""
    means, covs = _gaussians(d, k, d)
    rows = []
    w2 = jax.jit(ot_jax.gaussian_w2)
    value, ours, compile_s = _timed(lambda: w2(means[0], covs[0], means[1], covs[1]), repeats)
    pot_fn = lambda: ot.gaussian.bures_wasserstein_distance(means[0], means[1], covs[0], covs[1])
    rows.append(_row("Gaussian W2 (`gaussian_w2`)", d, ours, compile_s, "POT `bures_wasserstein_distance`",
                     median_time(pot_fn, repeats), f"value {abs(float(value) - float(pot_fn())):.1e}"))
    monge = jax.jit(ot_jax.tools.gaussian.gaussian_monge_map)
    (linear, _), ours, compile_s = _timed(lambda: monge(means[0], covs[0], means[1], covs[1]), repeats)
    pot_fn = lambda: ot.gaussian.bures_wasserstein_mapping(means[0], means[1], covs[0], covs[1])
    rows.append(_row("Gaussian Monge map (`gaussian_monge_map`)", d, ours, compile_s,
                     "POT `bures_wasserstein_mapping`", median_time(pot_fn, repeats),
                     f"A {np.abs(np.asarray(linear) - pot_fn()[0]).max():.1e}"))
    bary = jax.jit(lambda m, c: ot_jax.tools.gaussian.gaussian_barycenter(m, c).cov)
    cov, ours, compile_s = _timed(lambda: bary(means, covs), repeats)
    pot_fn = lambda: ot.gaussian.bures_wasserstein_barycenter(means, covs, num_iter=1000, eps=1e-12)
    rows.append(_row(f"Bures-Wasserstein barycenter, K = {k} (`gaussian_barycenter`)", d, ours, compile_s,
                     "POT `bures_wasserstein_barycenter`", median_time(pot_fn, repeats),
                     f"cov {np.abs(np.asarray(cov) - pot_fn()[1]).max():.1e}"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--gw-sizes", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--lr-sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--gaussian-dims", type=int, nargs="+", default=[16, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        for bench in (bench_unbalanced, bench_divergence, bench_partial):
            rows += bench(n, args.repeats)
            print(markdown_table(["problem", "n", "ot_jax (s)", "compile (s)", "rival", "rival (s)",
                                  "rival / ot_jax", "largest difference"], rows[-2:]), flush=True)
    for n in args.gw_sizes:
        rows += bench_gromov(n, args.repeats) + bench_gromov_barycenter(n, args.repeats) \
            + bench_free_barycenter(n, args.repeats)
        print(markdown_table(["problem", "n", "ot_jax (s)", "compile (s)", "rival", "rival (s)", "rival / ot_jax",
                              "largest difference"], rows[-6:]), flush=True)
    for n in args.lr_sizes:
        rows += bench_low_rank(n, args.repeats)
        print(markdown_table(["problem", "n", "ot_jax (s)", "compile (s)", "rival", "rival (s)", "rival / ot_jax",
                              "largest difference"], rows[-1:]), flush=True)
    for d in args.gaussian_dims:
        rows += bench_gaussian(d, args.repeats)
        print(markdown_table(["problem", "n", "ot_jax (s)", "compile (s)", "rival", "rival (s)", "rival / ot_jax",
                              "largest difference"], rows[-3:]), flush=True)
    lines = [
        "## Unbalanced, partial, Sinkhorn divergence, Gromov-Wasserstein, free-support barycenters, low-rank, "
        "Gaussian closed forms against POT and OTT-JAX "
        "(`scripts/bench_toolbox.py`)",
        "",
        f"- command: `{command_line()}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; git: {git_revision()}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__} ({jax.default_backend()}), "
        f"POT {ot.__version__}, OTT-JAX {ott.__version__}, python {platform.python_version()}",
        f"- setting: float64; n = m points uniform in [0,1]^2 against [0.5,1.5]^2, squared Euclidean cost, random "
        f"weights (b has 1.3 times the mass of a, normalised to 1 for the divergence); ε = {EPS}, reg_m = {RHO}, "
        f"every solver to tolerance {TOL:g} in its own stopping rule; medians of {args.repeats} runs, jit compile "
        "excluded (own column). POT's unbalanced solver is `method=\"sinkhorn_stabilized\"` (the scaling one "
        "underflows at this ε); OTT-JAX's unbalanced problem is given the cost shifted by `-ε log(a_i b_j)`, which "
        "makes its entropy-regularised problem ours. Gromov-Wasserstein: two Gaussian clouds in R^2 and R^3, "
        "squared distances divided by their maximum, uniform weights, square loss, default tolerances of each "
        f"library (POT's and ours 1e-9), initial plan a b^T; entropic ε = {GW_EPS:g} (OTT-JAX: ε/2, since it "
        "linearises with half the gradient). GW barycenter: 3 Gaussian clouds of n points in R^2 "
        "(normalised squared distances), a structure on n/4 points from a random start, square loss, outer tolerance 1e-9 and at most 50 "
        "outer steps in both (at n = 300 the iteration wanders without settling and runs to that cap: the two "
        "libraries' steps agree to eight digits for the first 30 steps, then rounding differences grow and the "
        "structures drift apart, hence the large difference in that row); POT's inner CG relative tolerance 1e-5, "
        "ours 1e-9. Free-support barycenter: 5 measures of n points (shifted Gaussians, "
        "Dirichlet weights), n/2 free points from a random start, POT's stopping rule and defaults. Low-rank: two "
        "Gaussian clouds in R^2, rank 10, ε = 0, ours to its default relative cost change of 1e-3 per 10 steps (k-means "
        "hubs), OTT-JAX to its threshold 1e-6 with at least 100 iterations (random start); the last column gives "
        "both transport costs (lower is better). Gaussian rows: the `n` column is the dimension d; random SPD "
        "covariances `R Rᵀ/d + 0.1 I`, ours jitted (input checks run only on concrete inputs, so not inside "
        "`jit`), POT's NumPy/SciPy functions; the barycenter of 10 Gaussians to POT's `eps=1e-12` and our "
        "default relative tolerance 1e-12.",
        "",
        markdown_table(["problem", "n", "ot_jax (s)", "compile (s)", "rival", "rival (s)", "rival / ot_jax",
                        "largest difference"], rows),
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("toolbox", "\n".join(lines))


if __name__ == "__main__":
    main()
