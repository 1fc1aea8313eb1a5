"""Figures of the kNN classifiers (:mod:`train.soft_knn`): one run's training curves, and the
accuracy-against-k panel of ``scripts/soft_knn_table.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["training_curves", "accuracy_against_k"]


def training_curves(history: Sequence[dict], path: str, *, title: str = "") -> str:
    """Training loss and batch accuracy (left) and the evaluations' test accuracy (right) against step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    steps = [r["step"] for r in history if "loss" in r]
    left.plot(steps, [r["loss"] for r in history if "loss" in r], label="loss")
    left.plot(steps, [r["batch_accuracy"] for r in history if "loss" in r], label="batch accuracy")
    left.set_xlabel("step")
    left.legend()
    evals = [r for r in history if "test_accuracy" in r]
    right.plot([r["step"] for r in evals], [r["test_accuracy"] for r in evals], marker="o")
    right.set_xlabel("step")
    right.set_ylabel("test accuracy (hard kNN)")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_against_k(curves: Mapping[str, tuple[Sequence[int], np.ndarray]], path: str, *, title: str = "",
                       train_k: int | None = None) -> str:
    """Test accuracy of hard kNN against the evaluation's ``k``, one line per method.

    ``curves``: ``name -> (ks, accuracies [seeds, len(ks)])``; the line is the mean over seeds and
    the band its minimum to maximum.
    """
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for name, (ks, acc) in curves.items():
        acc = np.atleast_2d(np.asarray(acc, float))
        line, = ax.plot(ks, acc.mean(0), marker="o", label=name)
        if acc.shape[0] > 1:
            ax.fill_between(ks, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.2)
    if train_k is not None:
        ax.axvline(train_k, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("k of the hard kNN vote at test time")
    ax.set_ylabel("test accuracy")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({k for ks, _ in curves.values() for k in ks}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
