"""Figures of the DASPOT trainer: generated pairs with the accuracy curves, and embeddings before/after."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from train.figures.spot import plot_image_tuples  # noqa: E402

__all__ = ["daspot_figure", "embedding_figure", "pca_2d"]


def daspot_figure(history: list[dict], generated: Sequence[np.ndarray], labels: np.ndarray,
                  shapes: Sequence[Sequence[int]], output_dir: str, *, names: Sequence[str] = ("source", "target"),
                  filename: str = "daspot.png") -> str:
    """Target accuracy and pair agreement over training (left), generated pairs ``(G_X(z), G_Y(z))`` (right,
    each source image outlined in red; the title lists ``D_X``'s labels of the first row)."""
    fig = plt.figure(figsize=(13, 5.5))
    outer = fig.add_gridspec(1, 2, width_ratios=(1, 1.4))
    ax = fig.add_subplot(outer[0])
    evals = [r for r in history if "target_accuracy" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["target_accuracy"] for r in evals], "o-", label="target accuracy of D_Y")
        ax.plot([r["step"] for r in evals], [r["agreement_eval"] for r in evals], "s--",
                label="D_X, D_Y agree on generated pairs")
    ax.set_ylim(0, 1)
    ax.set_xlabel("generator step")
    ax.legend(loc="lower right")
    ax.set_title(f"DASPOT {names[0]} → {names[1]}")
    plot_image_tuples(fig, outer[1], generated, shapes)
    fig.text(0.72, 0.97, "generated pairs; D_X labels, first row: " + " ".join(map(str, labels[:4])),
             ha="center", va="top")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path = os.path.join(output_dir, filename)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pca_2d(points: np.ndarray) -> np.ndarray:
    """``[n, e] -> [n, 2]``: the centred points on their two leading principal axes."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embedding_figure(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray],
                     labels: tuple[np.ndarray, np.ndarray], output_dir: str, *,
                     names: Sequence[str] = ("source", "target"), filename: str = "daspot_embeddings.png") -> str:
    """PCA of the source and target embeddings (one PCA per panel, fitted on both domains), coloured by
    class: ``before`` = the source-only network's embedding of both, ``after`` = ``(D_e,X(x), D_e,Y(y))``."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (source, target), title in zip(axes, (before, after), ("source-only network", "DASPOT")):
        xy = pca_2d(np.concatenate([source, target]))
        s, t = xy[: len(source)], xy[len(source):]
        ax.scatter(s[:, 0], s[:, 1], c=labels[0], cmap="tab10", vmin=0, vmax=9, s=8, marker="o", alpha=0.5,
                   label=names[0])
        ax.scatter(t[:, 0], t[:, 1], c=labels[1], cmap="tab10", vmin=0, vmax=9, s=18, marker="x", label=names[1])
        ax.set_title(f"{title}: embeddings (PCA), colour = class")
        ax.legend(loc="best")
    fig.tight_layout()
    path = os.path.join(output_dir, filename)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
