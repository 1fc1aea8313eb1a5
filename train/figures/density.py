"""Figures of density recovery (thesis fig. 3.4): marginals and heat maps of the recovered plan density.

One row per λ: the generated marginals (histograms) over the target densities, the
recovered joint density ``p_γ(x, y)`` and the reference plan's density on the same
grid and colour scale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from train.density_reference import PlanReference, density_metrics  # noqa: E402

__all__ = ["density_figure", "plot_density_row", "density_grid_figure"]


def plot_density_row(axes: Sequence, xs: np.ndarray, ys: np.ndarray, recovered: np.ndarray, reference: np.ndarray,
                     samples_x: np.ndarray, samples_y: np.ndarray, *, lam: float, kl: float | None = None,
                     method: str = "reference") -> None:
    """Three panels: marginals, recovered density, reference density (``[nx, ny]`` log-densities)."""
    ax_m, ax_r, ax_ref = axes
    ref_p, rec_p = np.exp(reference), np.exp(recovered)
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    ax_m.plot(xs, ref_p.sum(1) * dy, color="tab:blue", lw=1.5, label="μ (target)")
    ax_m.plot(ys, ref_p.sum(0) * dx, color="tab:orange", lw=1.5, label="ν (target)")
    bins_x = np.linspace(xs[0], xs[-1], 60)
    bins_y = np.linspace(ys[0], ys[-1], 60)
    ax_m.hist(samples_x, bins=bins_x, density=True, color="tab:blue", alpha=0.35, label="G_X(Z)")
    ax_m.hist(samples_y, bins=bins_y, density=True, color="tab:orange", alpha=0.35, label="G_Y(Z)")
    ax_m.set_title(f"λ = {lam:g}: marginals", fontsize=9)
    ax_m.legend(fontsize=6, loc="upper left")
    vmax = float(ref_p.max())
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    # zoom on the reference's mass: its marginals' 0.05 % and 99.95 % quantiles
    cx, cy = np.cumsum(ref_p.sum(1)), np.cumsum(ref_p.sum(0))
    cx, cy = cx / cx[-1], cy / cy[-1]
    box = (np.interp([5e-4, 1 - 5e-4], cx, xs), np.interp([5e-4, 1 - 5e-4], cy, ys))
    for ax, p, title in ((ax_r, rec_p, "recovered p_γ" + (f" (KL {kl:.3f})" if kl is not None else "")),
                         (ax_ref, ref_p, method)):
        ax.imshow(p.T, origin="lower", extent=extent, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_xlim(*box[0])
        ax.set_ylim(*box[1])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("y")


def density_figure(reference: PlanReference, recovered: np.ndarray, samples_x: np.ndarray, samples_y: np.ndarray,
                   out_dir: str, *, lam: float, metrics: dict | None = None) -> str:
    """``<out_dir>/density.png``: one row of :func:`plot_density_row`; returns the path."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    plot_density_row(axes, reference.xs, reference.ys, recovered, reference.log_density, samples_x, samples_y,
                     lam=lam, kl=None if metrics is None else metrics["kl"], method=f"reference ({reference.method})")
    fig.tight_layout()
    path = os.path.join(out_dir, "density.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def density_grid_figure(runs: Sequence[dict], path: str, *, title: str) -> str:
    """Thesis fig. 3.4 from several runs' ``density_grid.npz`` contents (one row per run, sorted by λ)."""
    runs = sorted(runs, key=lambda r: float(r["lam"]))
    fig, axes = plt.subplots(len(runs), 3, figsize=(12, 3.3 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        reference = PlanReference(run["xs"], run["ys"], run["reference"], float(run["lam"]), str(run["method"]))
        kl = density_metrics(reference, run["recovered"])["kl"]
        plot_density_row(row, run["xs"], run["ys"], run["recovered"], run["reference"], run["samples_x"],
                         run["samples_y"], lam=float(run["lam"]), kl=kl, method=str(run["method"]))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
