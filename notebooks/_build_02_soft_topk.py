"""Write notebooks/02_soft_topk.ipynb (SOFT top-k, sorting and ranks), executed, with its outputs.

Regenerate with:

    .venv/bin/python notebooks/_build_02_soft_topk.py

Edit the cells here, not in the .ipynb: the notebook is stored with the outputs of a
full-size run (plots visible on GitHub); tests/test_notebooks.py checks that its cells
are the ones built here and executes it again (with OT_JAX_NB_SMALL=1 for smaller sizes).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _notebook import build as _build, code, md, write  # noqa: E402

OUT = pathlib.Path(__file__).with_name("02_soft_topk.ipynb")


CELLS = [
    md(
        """
        # SOFT top-k, sorting and ranks

        Top-k, sorting and ranking are optimal transport onto a few anchors; with entropy they become
        smooth (Xie et al. 2020; Cuturi, Teboul & Vert 2019). This notebook:

        1. draws the soft top-k indicator against ε beside the hard mask;
        2. checks its gradient against finite differences (float64);
        3. checks soft sort and soft ranks against `jnp.sort` and `argsort` as ε → 0;
        4. trains a tiny embedding through a soft kNN vote on the 8×8 digits.

        `OT_JAX_NB_SMALL=1` (the test suite) makes everything smaller.
        """
    ),
    code(
        """
        import os

        import jax
        import jax.numpy as jnp
        import matplotlib.pyplot as plt
        import numpy as np
        import optax

        jax.config.update("jax_enable_x64", True)
        import ot_jax

        SMALL = os.environ.get("OT_JAX_NB_SMALL") == "1"
        scores = jnp.sort(jnp.linspace(0.0, 1.0, 20) + 0.02 * jax.random.normal(jax.random.PRNGKey(0), (20,)))
        k = 5
        """
    ),
    md(
        """
        ## 1. The indicator against ε

        `soft_topk(scores, k, epsilon=...)` is in `[0, 1]` and sums to `k`; as ε shrinks it becomes the mask of
        `jax.lax.top_k`.
        """
    ),
    code(
        """
        _, idx = jax.lax.top_k(scores, k)
        hard = jnp.zeros(20).at[idx].set(1.0)
        fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
        ax.step(np.arange(20), hard, where="mid", color="k", lw=2, label="hard top-k")
        for eps in (1e-1, 3e-2, 1e-2, 1e-4):
            soft = ot_jax.soft_topk(scores, k, epsilon=eps)
            ax.plot(soft, marker="o", ms=3, label=f"ε = {eps:g}, sum {float(soft.sum()):.4f}")
        ax.set_xlabel("score rank (ascending)")
        ax.legend(fontsize=8)
        plt.show()
        print("largest gap to the hard mask at eps=1e-4:", float(jnp.max(jnp.abs(ot_jax.soft_topk(scores, k, epsilon=1e-4) - hard))))
        """
    ),
    md(
        """
        ## 2. The gradient

        The default gradient is implicit differentiation of the Sinkhorn optimality conditions. Central
        differences of `<w, soft_topk(x)>` along a random direction (float64):
        """
    ),
    code(
        """
        w = jax.random.normal(jax.random.PRNGKey(1), (20,))
        f = lambda x: jnp.vdot(w, ot_jax.soft_topk(x, k, epsilon=3e-2, tol=1e-12, max_iters=20000))
        d = jax.random.normal(jax.random.PRNGKey(2), (20,))
        h = 1e-6
        fd = (f(scores + h * d) - f(scores - h * d)) / (2 * h)
        print("implicit gradient:", float(jnp.vdot(jax.grad(f)(scores), d)), "  finite differences:", float(fd))
        """
    ),
    md(
        """
        ## 3. Soft sort and soft ranks

        With `m = n` anchors the plan sorts: `soft_sort` is increasing and `soft_rank` counts the values below
        each one. Both tend to the hard versions as ε → 0.
        """
    ),
    code(
        """
        x = jax.random.normal(jax.random.PRNGKey(3), (30 if SMALL else 200,))
        hard_sort, hard_rank = jnp.sort(x), jnp.argsort(jnp.argsort(x))
        for eps in (1e-2, 1e-3, 1e-4):
            s = ot_jax.soft_sort(x, epsilon=eps, normalize="none", tol=1e-6, max_iters=50000)
            r = ot_jax.soft_rank(x, epsilon=eps, normalize="none", tol=1e-6, max_iters=50000)
            print(f"eps={eps:g}: max |soft_sort - sort| = {float(jnp.max(jnp.abs(s - hard_sort))):.2e}, "
                  f"max |soft_rank - rank| = {float(jnp.max(jnp.abs(r - hard_rank))):.2e}")
        """
    ),
    md(
        """
        ## 4. A soft kNN vote trains an embedding

        `ot_jax.losses.knn.soft_vote` casts the kNN vote of the soft top-k indicator over a support set; its
        cross-entropy trains a linear embedding of the 8×8 digits (a few steps), and hard kNN in the
        embedding is scored on held-out images. The full experiment is
        `python -m train experiment=soft_knn_digits`.
        """
    ),
    code(
        """
        from sklearn.datasets import load_digits
        from ot_jax.losses.knn import knn_predict, soft_vote, sq_distances, vote_loss

        digits = load_digits()
        xs = jnp.asarray(digits.data / 16.0)
        ys = jnp.asarray(digits.target)
        train_x, train_y, test_x, test_y = xs[:1400], ys[:1400], xs[1400:], ys[1400:]
        W = 0.1 * jax.random.normal(jax.random.PRNGKey(4), (64, 16))
        opt = optax.adam(1e-2)
        state = opt.init(W)

        @jax.jit
        def step(W, state, key):
            perm = jax.random.permutation(key, 1400)
            q, s = perm[:100], perm[100:300]
            def loss(W):
                scores = -sq_distances(train_x[q] @ W, train_x[s] @ W)
                return vote_loss(soft_vote(scores, train_y[s], 9, 10, epsilon=1e-2), train_y[q])
            value, g = jax.value_and_grad(loss)(W)
            up, state = opt.update(g, state, W)
            return optax.apply_updates(W, up), state, value

        def accuracy(W):
            return float(jnp.mean(knn_predict(train_x @ W, train_y, test_x @ W, 9, 10) == test_y))

        print("hard kNN accuracy, random embedding:", accuracy(W))
        for t in range(30 if SMALL else 200):
            W, state, value = step(W, state, jax.random.PRNGKey(t))
        print(f"after training through the soft vote: {accuracy(W):.4f} (loss {float(value):.3f})")
        """
    ),
]


def build():
    return _build(CELLS)


if __name__ == "__main__":
    write(build(), OUT)
