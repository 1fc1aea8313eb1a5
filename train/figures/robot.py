"""Figures of the ROBOT trainer (:mod:`train.robot`): one run's training curves, and the
error-against-shuffled-share panel of ``scripts/robot_table.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["training_curves", "predictions", "error_against_shuffled", "error_curves"]


def training_curves(history: Sequence[dict], path: str, *, title: str = "") -> str:
    """The training objective (left, log scale) and the validation error 1 - R^2 (right) against step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    logged = [r for r in history if "loss" in r]
    left.semilogy([r["step"] for r in logged], [max(r["loss"], 1e-300) for r in logged])
    left.set_xlabel("step")
    left.set_ylabel("objective")
    evals = [r for r in history if "val_error" in r]
    right.semilogy([r["step"] for r in evals], [r["val_error"] for r in evals], marker="o")
    right.set_xlabel("step")
    right.set_ylabel("validation 1 - R^2")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def predictions(fits: Mapping[str, np.ndarray], measured: np.ndarray, path: str, *, channels: int = 3,
                title: str = "") -> str:
    """Predicted against measured responses on the validation rows: one column of panels per fit
    (``name -> predictions [n_val, p]``), one row per response (the first ``channels``), the
    diagonal dashed; the panels of a row share their axes, log when every value in the row is
    positive (cytometry readings), else linear."""
    measured = np.asarray(measured, float).reshape(len(measured), -1)
    preds = {name: np.asarray(pred, float).reshape(measured.shape) for name, pred in fits.items()}
    rows = min(channels, measured.shape[1])
    fig, axes = plt.subplots(rows, len(fits), figsize=(3.2 * len(fits), 3.0 * rows), constrained_layout=True,
                             squeeze=False, sharex="row", sharey="row")
    for j in range(rows):
        log = np.all(measured[:, j] > 0) and all(np.all(p[:, j] > 0) for p in preds.values())
        lo, hi = measured[:, j].min(), measured[:, j].max()
        for col, (name, pred) in enumerate(preds.items()):
            ax = axes[j, col]
            ax.scatter(measured[:, j], pred[:, j], s=2, alpha=0.4)
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            if log:
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel(f"measured, response {j}")
            ax.set_ylabel("predicted")
            if j == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_against_shuffled(curves: Mapping[str, tuple[Sequence[float], np.ndarray]], path: str, *,
                           ylabel: str = "validation 1 - R^2", title: str = "") -> str:
    """One line per method: ``name -> (shuffled shares, errors [seeds, len(shares)])``; the line is
    the median over seeds and the band the 25-75 % quantiles (log scale)."""
    return error_curves({title: curves}, path, xlabel="share of rows shuffled", ylabel=ylabel)


def error_curves(panels: Mapping[str, Mapping[str, tuple[Sequence[float], np.ndarray]]], path: str, *,
                 xlabel: str, ylabel: str, xscale: str = "linear") -> str:
    """One panel per ``title -> curves``, one line per method in each: ``name -> (x [k], errors
    [seeds, k])``, the median over seeds with the 25-75 % quantiles as a band (log y)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), constrained_layout=True, squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, (x, err) in curves.items():
            err = np.atleast_2d(np.asarray(err, float))
            line, = ax.plot(x, np.median(err, 0), marker="o", label=name)
            if err.shape[0] > 1:
                lo, hi = np.quantile(err, [0.25, 0.75], axis=0)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xscale(xscale)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        ax.set_title(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
