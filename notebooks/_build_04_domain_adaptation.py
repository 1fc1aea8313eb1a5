"""Write notebooks/04_domain_adaptation.ipynb (OT domain adaptation on the rotated moons), executed, with its outputs.

Regenerate with:

    .venv/bin/python notebooks/_build_04_domain_adaptation.py

Edit the cells here, not in the .ipynb: the notebook is stored with the outputs of a
full-size run (plots visible on GitHub); tests/test_notebooks.py checks that its cells
are the ones built here and executes it again (with OT_JAX_NB_SMALL=1 for smaller sizes).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _notebook import build as _build, code, md, write  # noqa: E402

OUT = pathlib.Path(__file__).with_name("04_domain_adaptation.ipynb")


CELLS = [
    md(
        """
        # Domain adaptation by optimal transport: the rotated moons

        A classifier is trained on labelled source data and must work on a target whose
        distribution moved (here: the same two moons, rotated). OT domain adaptation (Courty et
        al. 2017) couples the source and target samples by a transport plan, moves the source
        onto the target along it, and classifies the target with the moved source. This notebook:

        1. draws the moons and a target rotated by 60°;
        2. fits the exact, entropic and class-regularised plans (`ot_jax.tools.da`) and checks one
           against POT's `ot.da`;
        3. scores each by 1-NN on the mapped source, and JDOT (`ot_jax.tools.jdot`), which fits the
           plan and a target classifier together;
        4. plots the plans and the mapped source.

        `OT_JAX_NB_SMALL=1` (the test suite) makes the samples smaller.
        """
    ),
    code(
        """
        import os

        import jax
        import matplotlib.pyplot as plt
        import numpy as np

        jax.config.update("jax_enable_x64", True)

        from ot_jax import Status
        from ot_jax.data import rotated_moons
        from ot_jax.geometry import nearest_neighbors
        from ot_jax.tools import da, jdot

        SMALL = os.environ.get("OT_JAX_NB_SMALL") == "1"
        N = 60 if SMALL else 150
        d = rotated_moons(jax.random.PRNGKey(0), N, N, angle=60.0, noise=0.1)
        xs, ys, xt, yt = (np.asarray(v) for v in d)

        def one_nn(train_x, train_y, query):
            return train_y[np.asarray(nearest_neighbors(query, train_x)[0])]

        print("source-only 1-NN accuracy on the target:", np.mean(one_nn(xs, ys, xt) == yt))
        """
    ),
    md(
        """
        ## 1. Plans, mappings, labels

        `fit_transport` returns a `Transport` pytree; `transform` is the barycentric mapping
        `T(xs_i) = Σ_j P_ij xt_j / Σ_j P_ij`; `transform_labels` gives each target point the class
        shares of the mass it receives. Sinkhorn's `epsilon` and the class weight `eta` are in units
        of the cost divided by its maximum (`norm="max"`). The class-regularised plans (`"lpl1"`,
        `"l1l2"`) discourage a target point from receiving mass from two classes.
        """
    ),
    code(
        """
        options = {
            "exact": dict(method="emd"),
            "Sinkhorn": dict(method="sinkhorn", epsilon=0.01, norm="max"),
            "Lp-L1": dict(method="lpl1", epsilon=0.01, eta=0.1, norm="max"),
            "group lasso": dict(method="l1l2", epsilon=0.01, eta=0.1, norm="max"),
        }
        fits = {name: da.fit_transport(xs, xt, ys, **kw) for name, kw in options.items()}
        for name, fitted in fits.items():
            mapped = np.asarray(da.transform(fitted))
            by_nn = np.mean(one_nn(mapped, ys, xt) == yt)
            by_labels = np.mean(np.argmax(np.asarray(da.transform_labels(fitted)), 1) == yt)
            print(f"{name:12s} {Status(int(fitted.status)).name:9s} 1-NN on the mapped source {by_nn:.3f}, "
                  f"label propagation {by_labels:.3f}")

        result = jdot.jdot(xs, ys, xt, alpha=1.0, gamma=2.0, ridge=1e-2, n_iters=10)
        print(f"JDOT         accuracy {np.mean(np.argmax(np.asarray(jdot.predict(result, xt)), 1) == yt):.3f}; "
              f"objective {float(result.objective[0]):.4f} -> {float(result.objective[-1]):.4f}")
        """
    ),
    md(
        """
        ## 2. The same plan as POT

        POT's `SinkhornTransport` with the same parameters gives the same plan and mapping (POT
        iterates until its own tolerance; ours until the marginal error is below `tol`).
        """
    ),
    code(
        """
        import ot

        pot = ot.da.SinkhornTransport(reg_e=0.01, norm="max", tol=1e-12, max_iter=100000).fit(Xs=xs, ys=ys, Xt=xt)
        tight = da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=0.01, norm="max", tol=1e-11, max_iters=100000)
        print("max |plan - POT's plan|:", np.abs(np.asarray(tight.plan) - pot.coupling_).max())
        print("max |mapping - POT's mapping|:", np.abs(np.asarray(da.transform(tight)) - pot.transform(Xs=xs)).max())
        """
    ),
    md(
        """
        ## 3. Pictures

        Left: source (circles, by class) and target (grey); the lines are the largest plan entries.
        Right: the source mapped onto the target by each plan.
        """
    ),
    code(
        """
        colors = np.array(["tab:blue", "tab:orange"])
        fig, axes = plt.subplots(1, 1 + len(fits), figsize=(4 * (1 + len(fits)), 3.6), constrained_layout=True)
        plan = np.asarray(fits["exact"].plan)
        ax = axes[0]
        for i, j in zip(*np.nonzero(plan > 0.5 / N)):
            ax.plot([xs[i, 0], xt[j, 0]], [xs[i, 1], xt[j, 1]], color="0.8", lw=0.5, zorder=0)
        ax.scatter(*xt.T, c="0.5", s=10, label="target")
        ax.scatter(*xs.T, c=colors[ys], s=10, label="source")
        ax.set_title("exact plan")
        for ax, (name, fitted) in zip(axes[1:], fits.items()):
            mapped = np.asarray(da.transform(fitted))
            ax.scatter(*xt.T, c="0.85", s=10)
            ax.scatter(*mapped.T, c=colors[ys], s=10)
            ax.set_title(f"mapped source: {name}")
        for ax in axes:
            ax.set_aspect("equal")
            ax.set_xticks([]); ax.set_yticks([])
        plt.show()
        """
    ),
    md(
        """
        The exact plan is a permutation here (equal sizes, uniform weights), so its mapping puts
        every source point on a target point and 1-NN on the mapped source is label propagation.
        The entropic plans average over several target points and pull each class toward its
        target moon's centre. At small rotations the source classifier is already right and a
        plan that mixes the classes can only lose accuracy; `python scripts/da_table.py` runs all the methods (and POT's) over
        rotations and seeds.
        """
    ),
]


def build():
    return _build(CELLS)


if __name__ == "__main__":
    write(build(), OUT)
