"""Thesis figure 2.2: convergence of IPOT to the exact Wasserstein distance.

Two 1-D histograms on ``n`` grid points (:func:`problems.histograms_1d`), cost
``|x - y|^2``. For each ``beta`` (one panel) and each number of inner sweeps ``L``:
``|W_t - W_LP|`` against the iteration ``t = 1..T``, where ``W_t = <C, P(t)>`` and
``W_LP`` is the simplex value (``ot_jax.emd``). Sinkhorn curves (public
``ot_jax.sinkhorn``) show the entropic bias plateau. Dense IPOT curves come from a
transcription of Algorithm 1 (:func:`traces.ipot_trace`); ``ot_jax.ipot`` itself is
evaluated at ``check_points`` and ``T`` (markers), and the table and ``metrics.json``
report the library's values at ``T``.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
from matplotlib.figure import Figure

from train.experiments.problems import histograms_1d_with_lp
from train.report import format_table
from train.experiments.traces import ipot_cost_at, ipot_trace, sinkhorn_trace

__all__ = ["run"]

_FLOOR = 1e-16  # |W_t - W_LP| is drawn at least at this value (log axis)


def _plot(path, x, a, b, t_axis, w_lp, curves, markers, sinkhorn, betas, inner_iters):
    """curves[(beta, L)]: [T] costs; markers[(beta, L)]: {t: cost}; sinkhorn[eps]: [T] costs."""
    n_panels = len(betas) + 1
    ncols = 2 if n_panels <= 4 else 3
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = {L: c for L, c in zip(inner_iters, ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"] * 4)}
    styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]
    for ax, beta in zip(axes, betas):
        for L in inner_iters:
            err = np.maximum(np.abs(curves[beta, L] - w_lp), _FLOOR)
            ax.plot(t_axis, err, color=colours[L], lw=0.8, label=f"IPOT, L = {L}")
            ts = sorted(markers[beta, L])
            ax.plot(ts, [max(abs(markers[beta, L][t] - w_lp), _FLOOR) for t in ts], "o", mfc="none",
                    color=colours[L], ms=6, mew=1.2)
        for (eps, costs), ls in zip(sinkhorn.items(), styles):
            ax.plot(t_axis, np.maximum(np.abs(costs - w_lp), _FLOOR), color="k", ls=ls, lw=1.2,
                    label=f"Sinkhorn, ε = {eps:g}·max C")
        ax.set_yscale("log")
        ax.set_ylim(1e-14, 1.0)
        ax.set_xlim(0, t_axis[-1])
        ax.set_title(f"IPOT with β = {beta:g}·max C")
        ax.set_xlabel("iteration t")
        ax.set_ylabel(r"$|W_t - W_{LP}|$")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].plot([], [], "o", mfc="none", color="0.3", label="ot_jax.ipot at t (markers)")
    axes[0].legend(fontsize=8, loc="lower left", ncol=2)
    ax = axes[len(betas)]
    ax.plot(x, a, color="C0", label="a: two bumps")
    ax.plot(x, b, color="C3", label="b: skewed bump")
    ax.set_title(f"the two input margins (n = {len(x)})")
    ax.set_xlabel("x")
    ax.set_ylabel("mass per bin")
    ax.legend(fontsize=9)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(f"Thesis Fig. 2.2 — IPOT converges to the LP value ($W_{{LP}}$ = {w_lp:.6g}, "
                 r"c(x, y) = $|x - y|^2$); Sinkhorn stays biased")
    fig.savefig(path, dpi=110)


def run(*, n_points: int, n_iters: int, relative_betas, inner_iters, relative_epsilons, check_points,
        output_dir: str, seed: int = 0) -> dict:
    """Trace the curves, draw ``ipot_convergence.png``, print the table, return the metrics.

    Metrics: ``w_lp`` and per method (``ipot[beta=..,L=..]``, ``sinkhorn[eps=..]``) the
    final cost at ``T = n_iters``, absolute and relative error, iterations.
    """
    del seed  # the problem is deterministic
    start = time.perf_counter()
    prob, cost, a, b, max_cost, lp = histograms_1d_with_lp(n_points)
    w_lp = float(lp.cost)
    betas = [float(rb) for rb in relative_betas]
    inner_iters = [int(L) for L in inner_iters]
    points = sorted({int(t) for t in check_points if 0 < int(t) < n_iters} | {int(n_iters)})

    curves, markers, methods, rows = {}, {}, {}, []
    max_diff = 0.0
    for L in inner_iters:
        for beta in betas:
            curves[beta, L] = np.asarray(ipot_trace(cost, a, b, beta * max_cost, L, n_iters=n_iters))
            markers[beta, L] = {}
        for t in points:
            for beta in betas:
                value = float(ipot_cost_at(cost, a, b, beta * max_cost, inner_iters=L, n_iters=t))
                markers[beta, L][t] = value
                max_diff = max(max_diff, abs(value - curves[beta, L][t - 1]) / abs(w_lp))
    for beta in betas:
        for L in inner_iters:
            final = markers[beta, L][n_iters]
            name = f"ipot[beta={beta:g},L={L}]"
            methods[name] = dict(solver="ipot", relative_beta=beta, inner_iters=L, iterations=n_iters,
                                 final_cost=final, abs_error=abs(final - w_lp), rel_error=abs(final - w_lp) / abs(w_lp))
            rows.append(["IPOT", f"beta={beta:g}", L, n_iters, final, abs(final - w_lp), abs(final - w_lp) / abs(w_lp)])
    sinkhorn = {}
    for eps in relative_epsilons:
        eps = float(eps)
        sinkhorn[eps] = np.asarray(sinkhorn_trace(cost, a, b, eps * max_cost, n_iters=n_iters))
        final = float(sinkhorn[eps][-1])
        methods[f"sinkhorn[eps={eps:g}]"] = dict(solver="sinkhorn", relative_epsilon=eps, iterations=n_iters,
                                                 final_cost=final, abs_error=abs(final - w_lp),
                                                 rel_error=abs(final - w_lp) / abs(w_lp))
        rows.append(["Sinkhorn", f"eps={eps:g}", "-", n_iters, final, abs(final - w_lp), abs(final - w_lp) / abs(w_lp)])

    t_axis = np.arange(1, n_iters + 1)
    path = os.path.join(output_dir, "ipot_convergence.png")
    _plot(path, prob.x, prob.a, prob.b, t_axis, w_lp, curves, markers, sinkhorn, betas, inner_iters)
    elapsed = time.perf_counter() - start

    print(format_table(
        ["method", "param (x max C)", "L", "iters", "final cost", "abs error", "rel error"], rows,
        title=f"Thesis fig. 2.2: n = {n_points}, W_LP = {w_lp:.10g} (ot_jax.emd, network simplex), "
              f"errors at t = {n_iters}"))
    print(f"ot_jax.ipot vs Algorithm-1 trace at t in {points}: max |difference| / W_LP = {max_diff:.2e}")
    print(f"figure: {path}  ({elapsed:.1f} s)")
    return dict(experiment="ipot_convergence", n_points=n_points, n_iters=n_iters, w_lp=w_lp,
                w_lp_solver="ot_jax.emd", max_cost=max_cost, check_points=points,
                max_rel_diff_library_vs_trace=max_diff, methods=methods, seconds=elapsed)
