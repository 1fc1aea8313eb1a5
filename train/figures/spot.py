"""Figures of a SPOT run: the transport-cost trace and the generated couplings.

2-D marginals are drawn as in thesis fig. 3.6 (data clouds, generated points, and a
line joining the coordinates of each generated K-tuple); image marginals as a grid
of generated tuples (thesis fig. 3.5), one column per marginal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["spot_figure", "plot_pairs_2d", "plot_image_tuples", "plot_trace"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_trace(ax, history: list[dict], *, key: str = "w_estimate", true_value: float | None = None) -> None:
    """The evaluated transport cost against the training step."""
    records = [r for r in history if key in r]
    if records:
        ax.plot([r["step"] for r in records], [r[key] for r in records], color="tab:blue", label="SPOT estimate")
    if true_value is not None:
        ax.axhline(true_value, color="k", ls="--", lw=1, label=f"true W = {true_value:g}")
    ax.set_xlabel("generator step")
    ax.set_ylabel("transport cost E c(G(Z))")
    ax.legend(loc="best", fontsize=8)


def plot_pairs_2d(ax, generated: Sequence[np.ndarray], real: Sequence[np.ndarray], *, n_lines: int = 150,
                  names: Sequence[str] | None = None) -> None:
    """Data (light) and generated (dark) points of 2-D marginals, with pairing lines."""
    for k, (g, r) in enumerate(zip(generated, real)):
        color = COLORS[k % len(COLORS)]
        label = names[k] if names else f"marginal {k + 1}"
        ax.scatter(r[:, 0], r[:, 1], s=4, color=color, alpha=0.15, label=f"{label}: data")
        ax.scatter(g[:, 0], g[:, 1], s=6, color=color, alpha=0.9, marker="x", lw=0.6, label=f"{label}: generated")
    n_lines = min(n_lines, generated[0].shape[0])
    for k in range(len(generated) - 1):
        a, b = generated[k][:n_lines], generated[k + 1][:n_lines]
        ax.plot(np.stack([a[:, 0], b[:, 0]]), np.stack([a[:, 1], b[:, 1]]), color="k", lw=0.3, alpha=0.5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize=7, markerscale=2)


def plot_image_tuples(fig, spec, generated: Sequence[np.ndarray], shapes: Sequence[Sequence[int]], *,
                      n_rows: int = 8, n_pairs_per_row: int = 4) -> None:
    """A grid of generated image tuples: each cell holds the K images of one latent draw."""
    k = len(generated)
    grid = spec.subgridspec(n_rows, n_pairs_per_row * k, wspace=0.05, hspace=0.05)
    for i in range(n_rows):
        for j in range(n_pairs_per_row):
            idx = i * n_pairs_per_row + j
            for m in range(k):
                ax = fig.add_subplot(grid[i, j * k + m])
                img = np.clip(generated[m][idx].reshape(shapes[m]), 0.0, 1.0)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if m == 0 and k > 1:
                    for side in ("left", "top", "bottom"):
                        ax.spines[side].set_color("tab:red")


def spot_figure(history: list[dict], generated: Sequence[np.ndarray], real: Sequence[np.ndarray],
                shapes: Sequence[Sequence[int]], output_dir: str, *, true_value: float | None = None,
                names: Sequence[str] | None = None, filename: str = "spot.png") -> str:
    """Trace (left) and couplings (right) of one run, saved to ``output_dir/filename``.

    Couplings: image tuples, a scatter of the pairs for two 1-D marginals, else the
    first two coordinates of every marginal with pairing lines."""
    images = all(len(s) == 3 for s in shapes)
    fig = plt.figure(figsize=(13, 5.5))
    outer = fig.add_gridspec(1, 2, width_ratios=(1, 1.4))
    plot_trace(fig.add_subplot(outer[0]), history, true_value=true_value)
    if images:
        plot_image_tuples(fig, outer[1], generated, shapes)
    elif all(g.shape[1] == 1 for g in generated) and len(generated) == 2:
        ax = fig.add_subplot(outer[1])
        ax.scatter(generated[0][:, 0], generated[1][:, 0], s=4, alpha=0.5, color="tab:purple")
        label = names if names else ("marginal 1", "marginal 2")
        ax.set_xlabel(label[0])
        ax.set_ylabel(label[1])
        ax.set_title("generated pairs (G_1(Z), G_2(Z)) of two 1-D marginals")
    else:
        ax = fig.add_subplot(outer[1])
        plot_pairs_2d(ax, [g[:, :2] for g in generated], [r[:, :2] for r in real], names=names)
        ax.set_title("generated couplings (lines join the coordinates of one G(Z))")
    fig.tight_layout()
    path = os.path.join(output_dir, filename)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
