"""Lecture slides, point-cloud use case: EMD (auction matching) against Chamfer.

Two 2-D clouds of ``n`` points: a source blob and a target whose mass is uneven
(a dense cluster holding ``cluster_fraction`` of the points, the rest spread on a
ring). Top row: the optimal matching of the initial clouds found by the auction
(``ot_jax.assignment(method="auction")``, a bijection), and the Chamfer
correspondences (every point to its nearest neighbour, both ways: many-to-one).
Bottom row: the source points moved by Adam on each loss for ``n_steps`` steps,
and both distances along the way. The EMD fit reproduces the target's density
(each target point receives exactly one point); the Chamfer fit only needs every
target point to have *some* point nearby, so the dense cluster stays
under-populated and points pile up elsewhere.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

import ot_jax
from train.report import format_table

__all__ = ["run", "two_clouds"]


def two_clouds(rng: np.random.Generator, n: int, cluster_fraction: float):
    """``(source [n, 2], target [n, 2])``: a Gaussian blob, and a dense cluster plus a ring."""
    source = rng.normal(scale=0.25, size=(n, 2)) + np.array([-0.3, -0.2])
    n_cluster = int(round(cluster_fraction * n))
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n - n_cluster)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * (1.0 + 0.03 * rng.normal(size=(n - n_cluster, 1)))
    cluster = rng.normal(scale=0.08, size=(n_cluster, 2)) + np.array([0.45, 0.35])
    return source, np.concatenate([cluster, ring])


def _fit(loss_fn, x0, y, n_steps: int, learning_rate: float, record_every: int):
    """Adam on ``loss_fn(x, y)`` from ``x0``; returns the final points and ``[(step, x)]`` snapshots."""
    opt = optax.adam(learning_rate)

    @jax.jit
    def chunk(x, state):
        def step(carry, _):
            x, state = carry
            grad = jax.grad(loss_fn)(x, y)
            updates, state = opt.update(grad, state, x)
            return (optax.apply_updates(x, updates), state), None

        (x, state), _ = jax.lax.scan(step, (x, state), None, length=record_every)
        return x, state

    x, state = x0, opt.init(x0)
    snapshots = [(0, np.asarray(x))]
    for done in range(record_every, n_steps + 1, record_every):
        x, state = chunk(x, state)
        snapshots.append((done, np.asarray(x)))
    return x, snapshots


def _plot(path, source, target, perm, nn_fwd, nn_bwd, fits, curves, cluster_fraction):
    fig = Figure(figsize=(15, 10), layout="constrained")
    axes = fig.subplots(2, 3)
    lim = (-1.35, 1.35)

    def cloud(ax, pts, **kw):
        ax.scatter(pts[:, 0], pts[:, 1], s=9, **kw)

    ax = axes[0, 0]
    for i, j in enumerate(perm):
        ax.plot([source[i, 0], target[j, 0]], [source[i, 1], target[j, 1]], color="0.6", lw=0.4)
    cloud(ax, source, color="C0", label="source")
    cloud(ax, target, color="C3", label="target")
    ax.set_title("EMD: optimal matching by the auction (a bijection)")
    ax.legend(loc="lower left", fontsize=8)
    ax = axes[0, 1]
    for i, j in enumerate(nn_fwd):
        ax.plot([source[i, 0], target[j, 0]], [source[i, 1], target[j, 1]], color="C0", lw=0.4, alpha=0.6)
    for j, i in enumerate(nn_bwd):
        ax.plot([target[j, 0], source[i, 0]], [target[j, 1], source[i, 1]], color="C3", lw=0.4, alpha=0.6)
    cloud(ax, source, color="C0")
    cloud(ax, target, color="C3")
    hit = np.bincount(nn_fwd, minlength=len(target))
    ax.set_title(f"Chamfer: nearest neighbours both ways\n{int((hit == 0).sum())} of {len(target)} target "
                 f"points are nobody's nearest; max in-degree {int(hit.max())}", fontsize=10)
    ax = axes[0, 2]
    for name, style in (("EMD fit", "C2"), ("Chamfer fit", "C1")):
        steps, emd_vals, chamfer_vals = curves[name]
        ax.plot(steps, emd_vals, color=style, label=f"{name}: EMD to target")
        ax.plot(steps, chamfer_vals, color=style, ls="--", label=f"{name}: Chamfer to target")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_title("distances to the target during the fits")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for ax, name, colour in ((axes[1, 0], "EMD fit", "C2"), (axes[1, 1], "Chamfer fit", "C1")):
        cloud(ax, target, color="C3", alpha=0.35, label="target")
        cloud(ax, fits[name], color=colour, label=name)
        ax.set_title(f"{name} after {curves[name][0][-1]} steps: EMD {curves[name][1][-1]:.2e}, "
                     f"Chamfer {curves[name][2][-1]:.2e}", fontsize=10)
        ax.legend(loc="lower left", fontsize=8)
    ax = axes[1, 2]
    centre = np.array([0.45, 0.35])
    radius = np.linspace(0.0, 2.0, 300)
    for pts, label, colour, width in ((target, "target", "C3", 3.0), (fits["EMD fit"], "EMD fit", "C2", 1.2),
                                      (fits["Chamfer fit"], "Chamfer fit", "C1", 1.2)):
        dist = np.linalg.norm(pts - centre, axis=1)
        ax.plot(radius, [(dist <= r).mean() for r in radius], color=colour, lw=width, label=label)
    ax.axhline(cluster_fraction, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("distance from the cluster centre")
    ax.set_ylabel("fraction of points within")
    ax.set_title("density check: mass near the dense cluster")
    ax.legend(fontsize=8)
    for ax in (*axes[0, :2], *axes[1, :2]):
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
    fig.suptitle("Point clouds: exact matching (EMD, auction) against Chamfer — the slides' use case")
    fig.savefig(path, dpi=100)


def run(*, n_points: int, cluster_fraction: float, n_steps: int, learning_rate: float, record_every: int,
        method: str, output_dir: str, seed: int = 0) -> dict:
    """Match, fit, draw ``point_cloud_matching.png``, print the table, return the metrics."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    source, target = two_clouds(rng, n_points, cluster_fraction)
    x0, y = jnp.asarray(source), jnp.asarray(target)

    cost = np.sum((source[:, None, :] - target[None, :, :]) ** 2, axis=-1)
    solve_start = time.perf_counter()
    match = jax.block_until_ready(ot_jax.assignment(jnp.asarray(cost), method=method))
    solve_s = time.perf_counter() - solve_start
    perm = np.asarray(match.permutation)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    scipy_cost = float(cost[rows, cols].sum())
    nn_fwd, nn_bwd = cost.argmin(axis=1), cost.argmin(axis=0)

    emd = lambda x, y: ot_jax.exact_loss(x, y, method=method)
    chamfer = lambda x, y: ot_jax.chamfer_distance(x, y)
    fits, curves = {}, {}
    for name, loss in (("EMD fit", emd), ("Chamfer fit", chamfer)):
        x, snapshots = _fit(loss, x0, y, n_steps, learning_rate, record_every)
        fits[name] = np.asarray(x)
        curves[name] = ([s for s, _ in snapshots], [float(emd(jnp.asarray(p), y)) for _, p in snapshots],
                        [float(chamfer(jnp.asarray(p), y)) for _, p in snapshots])

    path = os.path.join(output_dir, "point_cloud_matching.png")
    _plot(path, source, target, perm, nn_fwd, nn_bwd, fits, curves, cluster_fraction)
    elapsed = time.perf_counter() - start

    centre = np.array([0.45, 0.35])
    near = lambda pts: float((np.linalg.norm(pts - centre, axis=1) <= 0.25).mean())
    result = dict(experiment="point_cloud_matching", n_points=n_points, method=method,
                  matching_cost=float(match.cost), scipy_cost=scipy_cost, matching_bound=float(match.cost - match.lower_bound),
                  matching_rounds=int(match.n_iters), matching_seconds_with_compile=solve_s,
                  target_unreached_by_chamfer=int((np.bincount(nn_fwd, minlength=n_points) == 0).sum()),
                  target_near_cluster=near(target), fits={})
    rows = []
    for name in fits:
        steps, emd_vals, chamfer_vals = curves[name]
        result["fits"][name] = dict(emd=emd_vals[-1], chamfer=chamfer_vals[-1], near_cluster=near(fits[name]))
        rows.append([name, emd_vals[-1], chamfer_vals[-1], near(fits[name])])
    rows.append(["target", 0.0, 0.0, near(target)])
    print(f"matching: {method} cost {float(match.cost):.10g} (bound {float(match.cost - match.lower_bound):.1e}, "
          f"{int(match.n_iters)} rounds), scipy {scipy_cost:.10g}")
    print(format_table(["cloud", "EMD to target", "Chamfer to target", "fraction within 0.25 of cluster"], rows,
                       title=f"after {n_steps} Adam steps (lr {learning_rate:g}), n = {n_points}"))
    print(f"figure: {path}  ({elapsed:.1f} s)")
    result["seconds"] = elapsed
    return result
