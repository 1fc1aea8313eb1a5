"""Figures of one-law generator runs (WGAN, minibatch OT): snapshots over training
drawn over the data (2-D laws) or as image grids, the evaluation curves, and the
latent-grid plot of an image generator with a 2-D latent (thesis fig. 2.6).

The drawing helpers (:func:`draw_points`, :func:`tile_images`) are shared with
``scripts/generator_figures.py``, which assembles thesis figs. 2.5 and 2.6 from sweeps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["generator_figures", "draw_points", "tile_images", "density_grid", "pick_snapshots"]


def density_grid(real: np.ndarray, lims: tuple[float, float, float, float], size: int = 120):
    """``(X, Y, density)`` of a Gaussian KDE of ``real [n, 2]`` on a ``size x size`` grid over ``lims``."""
    from scipy.stats import gaussian_kde

    x0, x1, y0, y1 = lims
    xs, ys = np.linspace(x0, x1, size), np.linspace(y0, y1, size)
    X, Y = np.meshgrid(xs, ys)
    kde = gaussian_kde(real[:3000].T, bw_method=0.08)
    return X, Y, kde(np.stack([X.ravel(), Y.ravel()])).reshape(X.shape)


def limits(real: np.ndarray, margin: float = 0.25) -> tuple[float, float, float, float]:
    """A square box around ``real [n, 2]`` with ``margin`` x its extent on every side."""
    lo, hi = real.min(axis=0), real.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + margin)
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def draw_points(ax, points: np.ndarray, density, lims, title: str = "") -> None:
    """Generated ``points [n, 2]`` (orange) over the data's density contours (thesis fig. 2.5's style)."""
    X, Y, Z = density
    ax.contour(X, Y, Z, levels=6, colors="tab:blue", linewidths=0.6, alpha=0.8)
    ax.scatter(points[:, 0], points[:, 1], s=3, c="tab:orange", alpha=0.7, linewidths=0)
    ax.set_xlim(lims[0], lims[1])
    ax.set_ylim(lims[2], lims[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def tile_images(images: np.ndarray, shape: Sequence[int], n_cols: int, *, pad: int = 1,
                background: float = 0.35) -> np.ndarray:
    """``[n, prod(shape)]`` flat images (``shape = (H, W, C)``) tiled row-major, ``pad`` pixels of
    ``background`` between them, into one array clipped to ``[0, 1]`` (C = 1 squeezed)."""
    h, w, c = shape
    n = images.shape[0]
    rows = -(-n // n_cols)
    H, W = h + pad, w + pad
    canvas = np.full((rows * H + pad, n_cols * W + pad, c), background, np.float32)
    for i, img in enumerate(images.reshape(n, h, w, c)):
        r, k = divmod(i, n_cols)
        canvas[pad + r * H:pad + r * H + h, pad + k * W:pad + k * W + w] = img
    canvas = np.clip(canvas, 0.0, 1.0)
    return canvas[..., 0] if c == 1 else canvas


def pick_snapshots(snapshots: list[tuple[int, np.ndarray]], k: int) -> list[tuple[int, np.ndarray]]:
    """At most ``k`` snapshots, evenly spread and always including the last one."""
    if len(snapshots) <= k:
        return snapshots
    idx = np.unique(np.round(np.linspace(0, len(snapshots) - 1, k)).astype(int))
    return [snapshots[i] for i in idx]


def _curves(ax, history: list[dict]) -> None:
    evals = [r for r in history if "heldout_w2" in r]
    if not evals:
        ax.axis("off")
        return
    steps = [r["step"] for r in evals]
    ax.plot(steps, [r["heldout_w2"] for r in evals], "o-", ms=3, label="held-out $W_2$")
    ax.set_xlabel("step")
    ax.set_ylabel("exact $W_2$ (held-out)")
    twin = ax.twinx()
    twin.plot(steps, [r["std_ratio"] for r in evals], "s--", ms=3, color="tab:green", label="std ratio")
    twin.axhline(1.0, color="tab:green", lw=0.5)
    twin.set_ylabel("std ratio", color="tab:green")
    ax.set_title("evaluation", fontsize=8)


def generator_figures(snapshots: list[tuple[int, np.ndarray]], real: np.ndarray, history: list[dict],
                      point_shape: Sequence[int], output_dir: str, *, title: str,
                      latent_images: np.ndarray | None = None) -> list[str]:
    """Write ``generator.png`` (and ``latent_grid.png`` when ``latent_images`` is given).

    Args:
      snapshots: ``(step, [n, d])`` generated samples (:func:`train.generative.read_snapshots`).
      real: ``[m, d]`` data samples (the contours / the reference grid).
      history: the run's records (evaluation curves).
      point_shape: ``(d,)`` for vectors, ``(H, W, C)`` for images.
      output_dir: where the PNGs go.
      title: the figure's title (the method).
      latent_images: ``[s * s, d]`` images at a latent grid (fig. 2.6), or None.

    Returns:
      the paths written.
    """
    paths = []
    images = len(point_shape) == 3
    shown = pick_snapshots(snapshots, 4 if images else 6)
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.6 * (len(shown) + 1), 2.9), squeeze=False)
    axes = axes[0]
    if images:
        for ax, (step, pts) in zip(axes, shown):
            ax.imshow(tile_images(pts[:64], point_shape, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"step {step}", fontsize=8)
            ax.axis("off")
    elif point_shape[0] == 2:
        lims = limits(real)
        density = density_grid(real, lims)
        for ax, (step, pts) in zip(axes, shown):
            draw_points(ax, pts, density, lims, f"step {step}")
    else:
        for ax, (step, pts) in zip(axes, shown):
            ax.hist(real[:, 0], bins=60, density=True, alpha=0.4, label="data")
            ax.hist(pts[:, 0], bins=60, density=True, alpha=0.6, label="generated")
            ax.set_title(f"step {step} (coordinate 0)", fontsize=8)
    _curves(axes[-1], history)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = os.path.join(output_dir, "generator.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    if latent_images is not None:
        side = int(round(np.sqrt(latent_images.shape[0])))
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.imshow(tile_images(latent_images, point_shape, side), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{title}: images on a {side}x{side} latent grid", fontsize=8)
        ax.axis("off")
        fig.tight_layout()
        path = os.path.join(output_dir, "latent_grid.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
