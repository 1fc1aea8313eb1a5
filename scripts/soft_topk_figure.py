"""The soft top-k indicator against epsilon for one score vector: docs/figures/soft_topk_epsilon.png.

Twenty nearly evenly spaced scores (a fixed draw), k = 5: :func:`ot_jax.soft_topk` at several epsilon beside the hard
``jax.lax.top_k`` mask, scores sorted left to right. Usage: ``python scripts/soft_topk_figure.py [--out PATH]``
(part of ``make figures``).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ot_jax  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "figures", "soft_topk_epsilon.png")
EPSILONS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    scores = jnp.sort(jnp.linspace(0.0, 1.0, 20) + 0.02 * jax.random.normal(jax.random.PRNGKey(0), (20,)))
    k = 5
    _, idx = jax.lax.top_k(scores, k)
    hard = np.zeros(20)
    hard[np.asarray(idx)] = 1.0
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    pos = np.arange(20)
    ax.step(pos, hard, where="mid", color="k", lw=2, label="hard top-k (jax.lax.top_k)")
    for eps in EPSILONS:
        soft = np.asarray(ot_jax.soft_topk(scores, k, epsilon=eps))
        ax.plot(pos, soft, marker="o", ms=3, label=f"soft_topk, ε = {eps:g} (sum {soft.sum():.3f})")
    ax.set_xticks(pos, [f"{v:.2f}" for v in np.asarray(scores)], rotation=90, fontsize=7)
    ax.set_xlabel("score (sorted)")
    ax.set_ylabel("top-k indicator")
    ax.set_title(f"SOFT top-k of 20 scores, k = {k}: sharper as ε → 0")
    ax.legend(fontsize=7, loc="upper left")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
