"""Figure of the sequence runs (:mod:`train.soft_beam`): training loss and test accuracies.

One figure with two panels: the teacher-forcing cross-entropy against the step, and the
test sequence accuracy of greedy decoding (dashed) and hard beam search (solid), one
colour per run group; groups with several seeds are drawn as their mean with a band
(min to max).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["curves_figure"]

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _series(histories: Sequence[list[dict]], key: str):
    """``(steps, values [seeds, steps])`` over the records that hold ``key`` (common steps only)."""
    per_run = [{r["step"]: r[key] for r in h if key in r} for h in histories]
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    return np.asarray(steps), np.asarray([[p[s] for s in steps] for p in per_run], float)


def _band(ax, steps, values, **kw):
    if not len(steps):
        return
    line, = ax.plot(steps, values.mean(axis=0), **kw)
    if len(values) > 1:
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)


def curves_figure(groups: Mapping[str, list[dict] | Sequence[list[dict]]], path: str, *, title: str = "") -> str:
    """Draw ``groups`` (name -> one history, or a list of histories: seeds) into ``path``; returns it."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (name, runs) in enumerate(groups.items()):
        runs = [runs] if runs and isinstance(runs[0], dict) else list(runs)
        color = COLORS[i % len(COLORS)]
        _band(ax_loss, *_series(runs, "tf_loss"), color=color, label=name)
        _band(ax_acc, *_series(runs, "beam_seq_acc"), color=color, label=f"{name}: beam search")
        _band(ax_acc, *_series(runs, "greedy_seq_acc"), color=color, ls="--", label=f"{name}: greedy")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("teacher-forcing cross-entropy")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=8)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("test sequence accuracy")
    ax_acc.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
