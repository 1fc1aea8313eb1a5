"""Write notebooks/01_solvers.ipynb (a short tour of the solvers), executed, with its outputs.

Regenerate with:

    .venv/bin/python notebooks/_build_01_solvers.py

Edit the cells here, not in the .ipynb: the notebook is stored with the outputs of a
full-size run (plots visible on GitHub); tests/test_notebooks.py checks that its cells
are the ones built here and executes it again (with OT_JAX_NB_SMALL=1 for smaller sizes).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _notebook import build as _build, code, md, write  # noqa: E402

OUT = pathlib.Path(__file__).with_name("01_solvers.ipynb")


CELLS = [
    md(
        """
        # A tour of the ot-jax solvers

        One small problem, three solvers, and the three JAX transformations:

        1. exact LP (`emd`) against Sinkhorn at two values of ε and against IPOT;
        2. `jax.jit`: compile once, call again;
        3. `jax.vmap` over a batch of cost matrices, checked against a Python loop;
        4. `jax.grad` of the IPOT cost with respect to the source points, used for gradient descent;
        5. the three transport plans side by side.

        Sizes are tiny so the notebook runs in seconds on a CPU. Set the environment
        variable `OT_JAX_NB_SMALL=1` (the test suite does) to make them smaller still.
        """
    ),
    code(
        """
        import os
        import time

        import jax
        import jax.numpy as jnp
        import matplotlib.pyplot as plt
        import numpy as np

        # float64 so that the comparison with the LP value is meaningful to ~1e-6.
        # Without this line everything runs in float32 (IPOT's default tol is then 1e-3).
        jax.config.update("jax_enable_x64", True)

        import ot_jax

        SMALL = os.environ.get("OT_JAX_NB_SMALL", "") not in ("", "0")
        n, m = (30, 25) if SMALL else (60, 50)
        batch = 8
        print(f"jax {jax.__version__} on {jax.default_backend()}, ot_jax {ot_jax.__version__}, n={n}, m={m}")
        """
    ),
    md(
        """
        ## 1. One problem, four answers

        Two 2-D point clouds with non-uniform weights and the squared Euclidean cost.
        The points are sorted by their first coordinate, so the plans drawn at the end
        are roughly diagonal. `PointCloud` is lazy (it never stores the n×m costs);
        `cost_matrix` materialises them, which `emd` needs anyway.
        """
    ),
    code(
        """
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, 2))
        y = 0.6 * rng.normal(size=(m, 2)) + np.array([2.0, 1.0])
        x, y = x[np.argsort(x[:, 0])], y[np.argsort(y[:, 0])]
        a = rng.uniform(0.5, 1.5, n)
        b = rng.uniform(0.5, 1.5, m)
        x, y, a, b = jnp.asarray(x), jnp.asarray(y), jnp.asarray(a / a.sum()), jnp.asarray(b / b.sum())

        geom = ot_jax.PointCloud(x, y, cost_fn=ot_jax.SqEuclidean())
        C = geom.cost_matrix  # [n, m]
        print(f"cost matrix {C.shape}: max {float(C.max()):.2f}, mean {float(C.mean()):.2f}")
        """
    ),
    md(
        """
        Sinkhorn returns the optimum of the *entropic* problem, biased by O(ε); IPOT
        converges to the exact LP value and reports a certified `lower_bound` (a feasible
        dual value, so `lower_bound <= exact`). Its `cost` is ⟨C, P⟩ for a plan whose
        marginals are exact only up to the tolerance, so it can land a hair below the LP
        value.
        """
    ),
    code(
        """
        exact = ot_jax.emd(C, a, b)
        results = {
            "sinkhorn eps=0.5": ot_jax.sinkhorn(geom, a, b, epsilon=0.5),
            "sinkhorn eps=0.05": ot_jax.sinkhorn(geom, a, b, epsilon=0.05),
            "ipot": ot_jax.ipot(geom, a, b),
        }
        w = float(exact.cost)
        print(f"{'solver':<18} {'cost':>10} {'rel. error':>11} {'lower_bound':>12} {'iters':>6} {'converged':>9}")
        print(f"{'emd (exact)':<18} {w:10.6f} {0.0:11.2e} {float(exact.lower_bound):12.6f} {int(exact.n_iters):6d} {bool(exact.converged)!s:>9}")
        for name, out in results.items():
            cost = float(out.cost)
            print(f"{name:<18} {cost:10.6f} {(cost - w) / w:11.2e} {float(out.lower_bound):12.6f} "
                  f"{int(out.n_iters):6d} {bool(out.converged)!s:>9}")

        ip = results["ipot"]
        print(f"\\nIPOT: lower_bound = {float(ip.lower_bound):.8f} <= exact = {w:.8f}: {bool(ip.lower_bound <= w)}")
        print(f"IPOT: status {ot_jax.Status(int(ip.status)).name}, plan marginal error {float(ip.marginal_error):.1e}")
        """
    ),
    md(
        """
        ## 2. `jax.jit`: compile once

        Static options (`tol`, `max_iters`, `mode`, ...) go in through a closure; arrays,
        and also `epsilon` or `beta`, can be traced arguments. The first call traces and
        compiles; later calls with the same shapes reuse the compiled program.
        """
    ),
    code(
        """
        solve = jax.jit(lambda C, a, b: ot_jax.ipot(C, a, b, tol=1e-6))

        t0 = time.perf_counter()
        jax.block_until_ready(solve(C, a, b))
        t1 = time.perf_counter()
        out = jax.block_until_ready(solve(C, a, b))
        t2 = time.perf_counter()
        print(f"first call (trace + compile + run): {t1 - t0:.2f} s")
        print(f"second call (run only):             {t2 - t1:.4f} s, cost {float(out.cost):.6f}")
        """
    ),
    md(
        """
        ## 3. `jax.vmap` over a batch of cost matrices

        Eight problems that share the weights: the targets are jittered copies of `y`.
        The batched solver should agree with a Python loop over the jitted single-problem
        solver. `emd` vmaps too (its host callback solves the LPs one after another), which
        gives the exact values to compare with.
        """
    ),
    code(
        """
        ys = y[None] + 0.3 * jax.random.normal(jax.random.PRNGKey(1), (batch, m, 2))
        Cs = jax.vmap(lambda yy: ot_jax.SqEuclidean().pairwise(x, yy))(ys)  # [batch, n, m]

        solve_batch = jax.jit(jax.vmap(lambda C: ot_jax.ipot(C, a, b, tol=1e-6).cost))
        batched = np.asarray(solve_batch(Cs))
        looped = np.array([float(solve(Ck, a, b).cost) for Ck in Cs])
        exact_batch = np.asarray(jax.vmap(lambda C: ot_jax.emd(C, a, b).cost)(Cs))

        print("batched:", np.round(batched, 6))
        print("loop:   ", np.round(looped, 6))
        print("vmap == loop:", np.allclose(batched, looped))
        print(f"max relative error to emd: {np.max(np.abs(batched - exact_batch) / exact_batch):.1e}")
        assert np.allclose(batched, looped)
        """
    ),
    md(
        """
        ## 4. `jax.grad`: move the source points toward the targets

        The gradient of the IPOT cost with respect to `x` flows through the `PointCloud`
        (envelope theorem: the plan is held fixed). For the squared Euclidean cost
        `grad_i = 2 a_i (x_i - T_i)` with `T_i` the barycentric image of `x_i`, so dividing by
        `a_i` makes a step of size `lr` move each point `2 lr` of the way to `T_i`. The
        weights differ (`a != b` pointwise), so the cost decreases toward a small positive floor.
        """
    ),
    code(
        """
        def loss(x):
            return ot_jax.ipot(ot_jax.PointCloud(x, y), a, b).cost

        value_and_grad = jax.jit(jax.value_and_grad(loss))
        lr, xs = 0.25, x
        for step in range(6):
            cost, grad = value_and_grad(xs)
            print(f"step {step}: cost {float(cost):.6f}, |grad| {float(jnp.linalg.norm(grad)):.3e}")
            xs = xs - lr * grad / a[:, None]
        """
    ),
    md(
        """
        ## 5. The plans

        The exact plan is a sparse vertex of the transport polytope; Sinkhorn's is blurred
        at the scale of ε; IPOT's sharpens as its temperature `beta / t` shrinks. `.plan`
        materialises the n×m matrix (`.apply(vec, axis)` multiplies by it without storing it).
        """
    ),
    code(
        """
        plans = {
            "exact (emd)": exact.plan,
            "Sinkhorn, eps=0.05": results["sinkhorn eps=0.05"].plan,
            "IPOT": results["ipot"].plan,
        }
        fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
        vmax = float(max(np.max(p) for p in plans.values()))
        for ax, (title, plan) in zip(axes, plans.items()):
            im = ax.imshow(np.asarray(plan), cmap="magma_r", vmin=0.0, vmax=vmax, aspect="auto")
            ax.set_title(title)
            ax.set_xlabel("target j")
        axes[0].set_ylabel("source i")
        fig.colorbar(im, ax=axes, shrink=0.8, label="mass")
        plt.show()
        """
    ),
]


def build():
    return _build(CELLS)


if __name__ == "__main__":
    write(build(), OUT)
