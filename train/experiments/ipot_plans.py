"""Thesis figure 2.4: transport plans of Sinkhorn and IPOT over the exact LP plan.

Same 1-D problem as figure 2.2 (:func:`problems.histograms_1d`). Top row: Sinkhorn
run to convergence at each ``epsilon``; bottom row: IPOT (L = 1) after ``t``
iterations at one ``beta``. Red: the plan ``P: [n, n]``; black wire: the support of
the simplex plan (``ot_jax.emd``), a monotone staircase in 1-D. Per panel: the
transport cost ``<C, P>``, its relative error, and the fraction of the plan's mass
outside the LP support (and outside the support widened by one grid cell).
"""

from __future__ import annotations

import os
import time

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

import ot_jax
from train.experiments.problems import histograms_1d_with_lp
from train.report import format_table

__all__ = ["run", "mass_outside"]


def mass_outside(plan: np.ndarray, support: np.ndarray, widen: int = 0) -> float:
    """Fraction of ``plan: [n, m]`` mass outside the boolean ``support: [n, m]``, optionally
    widened by ``widen`` cells in every direction (a square dilation)."""
    mask = support.copy()
    for di in range(-widen, widen + 1):
        for dj in range(-widen, widen + 1):
            mask |= np.roll(np.roll(support, di, axis=0), dj, axis=1)
    return float(plan[~mask].sum() / plan.sum())


def _plot(path, x, panels, support, n_cols):
    fig = Figure(figsize=(4.2 * n_cols, 8.6), layout="constrained")
    axes = fig.subplots(2, n_cols, squeeze=False)
    rows, cols = np.nonzero(support)  # row-major order: a monotone path for a 1-D LP plan
    for ax, panel in zip(axes.ravel(), panels):
        plan = panel["plan"]
        ax.imshow(plan, origin="lower", cmap="Reds", norm=PowerNorm(0.5, vmin=0.0, vmax=plan.max()),
                  extent=(x[0], x[-1], x[0], x[-1]), interpolation="nearest", aspect="equal")
        ax.plot(x[cols], x[rows], color="k", lw=0.6, alpha=0.85)
        ax.set_title(f"{panel['label']}\n<C,P> rel. err {panel['rel_error']:.1e}, "
                     f"{100 * panel['outside']:.1f}% mass off LP support", fontsize=9.5)
        ax.set_xlabel("target y (b)")
        ax.set_ylabel("source x (a)")
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Thesis Fig. 2.4 — transport plans: Sinkhorn (top, converged) vs IPOT after t iterations "
                 "(bottom)\nred: plan (sqrt colour scale, per panel), black wire: support of the simplex plan")
    fig.savefig(path, dpi=110)


def run(*, n_points: int, relative_epsilons, sinkhorn_tol: float, sinkhorn_max_iters: int, relative_beta: float,
        ipot_iters, support_threshold: float, output_dir: str, seed: int = 0) -> dict:
    """Solve, draw ``ipot_plans.png``, print one line per panel, return the metrics."""
    del seed  # the problem is deterministic
    start = time.perf_counter()
    prob, cost, a, b, max_cost, lp = histograms_1d_with_lp(n_points)
    w_lp, lp_plan = float(lp.cost), np.asarray(lp.plan)
    support = lp_plan > support_threshold * lp_plan.max()

    panels = []
    for eps in relative_epsilons:
        out = ot_jax.sinkhorn(cost, a, b, epsilon=float(eps) * max_cost, tol=sinkhorn_tol,
                              max_iters=sinkhorn_max_iters)
        panels.append(dict(solver="sinkhorn", label=f"Sinkhorn, ε = {float(eps):g}·max C", relative_epsilon=float(eps),
                           iterations=int(out.n_iters), converged=bool(out.converged), plan=np.asarray(out.plan),
                           cost=float(out.cost)))
    for t in ipot_iters:
        # tol=0 with a single check at t: exactly t steps, and the plan returned is P(t).
        out = ot_jax.ipot(cost, a, b, beta=float(relative_beta) * max_cost, inner_iters=1, tol=0.0,
                          max_iters=int(t), check_every=int(t), keep_best=False)
        panels.append(dict(solver="ipot", label=f"IPOT, β = {float(relative_beta):g}·max C, t = {int(t)}",
                           relative_beta=float(relative_beta), iterations=int(out.n_iters), converged=None,
                           plan=np.asarray(out.plan), cost=float(out.cost)))
    for p in panels:
        p["rel_error"] = abs(p["cost"] - w_lp) / abs(w_lp)
        p["outside"] = mass_outside(p["plan"], support)
        p["outside_widened"] = mass_outside(p["plan"], support, widen=1)

    path = os.path.join(output_dir, "ipot_plans.png")
    _plot(path, prob.x, panels, support, max(len(relative_epsilons), len(ipot_iters)))
    elapsed = time.perf_counter() - start
    rows = [[p["label"], p["iterations"], p["cost"], p["rel_error"], p["outside"], p["outside_widened"]] for p in panels]
    print(format_table(["panel", "iters", "<C,P>", "rel error", "mass off LP supp", "off supp +-1 cell"], rows,
                       title=f"Thesis fig. 2.4: n = {n_points}, W_LP = {w_lp:.10g}, LP support: "
                             f"{int(support.sum())} cells"))
    print(f"figure: {path}  ({elapsed:.1f} s)")
    keep = ("solver", "label", "relative_epsilon", "relative_beta", "iterations", "converged", "cost", "rel_error",
            "outside", "outside_widened")
    return dict(experiment="ipot_plans", n_points=n_points, w_lp=w_lp, lp_support_size=int(support.sum()),
                panels=[{k: p[k] for k in keep if k in p} for p in panels], seconds=elapsed)
