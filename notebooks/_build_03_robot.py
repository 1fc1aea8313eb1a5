"""Write notebooks/03_robot.ipynb (ROBOT on linear regression without correspondence), executed, with its outputs.

Regenerate with:

    .venv/bin/python notebooks/_build_03_robot.py

Edit the cells here, not in the .ipynb: the notebook is stored with the outputs of a
full-size run (plots visible on GitHub); tests/test_notebooks.py checks that its cells
are the ones built here and executes it again (with OT_JAX_NB_SMALL=1 for smaller sizes).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _notebook import build as _build, code, md, write  # noqa: E402

OUT = pathlib.Path(__file__).with_name("03_robot.ipynb")


CELLS = [
    md(
        """
        # ROBOT: regression without correspondence

        Responses `y` and some features `x_paired` are recorded together; other features
        `x_unpaired` come from a platform that lost the order of the samples. ROBOT (Xie et al.,
        ICLR 2021) fits the model by descending on the value of an entropic matching problem,

        $$L(\\theta) = \\langle C(\\theta), S^*(\\theta)\\rangle,\\qquad C_{ij} = (y_i - f_\\theta(x^{p}_i, x^{u}_j))^2,$$

        with the *hypergradient* that differentiates through the plan $S^*$. This notebook:

        1. draws a data set where half of the rows of 3 of 5 features are shuffled;
        2. checks the hypergradient against finite differences;
        3. trains ROBOT (hypergradient), ROBOT with the plan held fixed, and compares with least
           squares, the oracle and AltMin;
        4. plots the validation error along training.

        `OT_JAX_NB_SMALL=1` (the test suite) makes the problem smaller.
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

        from ot_jax.data.unpaired import shuffled_regression
        from ot_jax.losses.robot import matching_accuracy, recovered_matching, residual_cost, robot_loss
        from ot_jax.tools import regression

        SMALL = os.environ.get("OT_JAX_NB_SMALL") == "1"
        N, STEPS = (100, 60) if SMALL else (500, 400)
        data = shuffled_regression(jax.random.PRNGKey(0), N, d_paired=2, d_unpaired=3, shuffled=0.5, snr=100.0)
        print("y", data.y.shape, "x_paired", data.x_paired.shape, "x_unpaired", data.x_unpaired.shape)
        print("rows whose partner moved:", float(jnp.mean(data.match != jnp.arange(N))))
        """
    ),
    md(
        """
        ## 1. The cost of every pairing, and the classical estimators

        For a linear model `y ≈ x_paired b1 + x_unpaired b2 + c`, the cost of pairing response `i`
        with unpaired row `j` is `(r_i - s_j)^2` with `r = y - x_paired b1 - c` and `s = x_unpaired b2`:
        a lazy point-cloud cost (`residual_cost`), never an `n × n` array.
        Validation error is `1 - R^2` on correctly paired rows.
        """
    ),
    code(
        """
        def val_error(beta):
            pred = regression.predict(beta, data.x_val)
            return float(np.sum((pred - data.y_val) ** 2) / np.sum((data.y_val - data.y_val.mean()) ** 2))

        x1, x2, y = (np.asarray(a) for a in (data.x_paired, data.x_unpaired, data.y))
        beta_ls = regression.least_squares(x1, x2, y)
        beta_oracle = regression.least_squares(x1, x2, y, np.asarray(data.match))
        beta_alt, _, alt_iters = regression.alt_min(x1, x2, y)
        for name, b in [("least squares (rows as given)", beta_ls), ("oracle (true matching)", beta_oracle),
                        (f"AltMin ({alt_iters} rounds)", beta_alt)]:
            print(f"{name:32s} 1 - R^2 = {val_error(b):.4f}")
        """
    ),
    md(
        """
        ## 2. The hypergradient is the derivative of the objective

        `robot_loss` returns `<C, S*>` and the Sinkhorn result. With `grad_mode="implicit"`
        (default) its gradient includes `<C, dS*>`, from implicit differentiation of the
        optimality conditions; `"stop_gradient"` holds the plan fixed. Central differences
        (float64) decide which one is the derivative.
        """
    ),
    code(
        """
        def cost_of(beta):
            r = data.y - data.x_paired @ beta[:2] - beta[-1]
            return residual_cost(r, data.x_unpaired @ beta[2:-1])

        # an absolute epsilon (1 % of the mean cost at the start): with relative_epsilon=True the
        # scale is re-read from the cost at every call but held constant in the derivative
        EPS = 1e-2 * float(jnp.mean(cost_of(jnp.asarray(beta_ls)).cost_matrix))

        def loss(beta, grad_mode="implicit"):
            return robot_loss(cost_of(beta), epsilon=EPS, tol=1e-10, max_iters=20000, grad_mode=grad_mode)[0]

        beta0 = jnp.asarray(beta_ls)
        direction = jax.random.normal(jax.random.PRNGKey(1), beta0.shape)
        h = 1e-5
        fd = (loss(beta0 + h * direction) - loss(beta0 - h * direction)) / (2 * h)
        for mode in ("implicit", "stop_gradient"):
            g = jax.grad(loss)(beta0, mode)
            print(f"{mode:14s} directional derivative {float(jnp.vdot(g, direction)):+.8f}   (finite differences {float(fd):+.8f})")
        """
    ),
    md(
        """
        ## 3. Training

        Adam on `beta` from least squares; each step warm-starts Sinkhorn from the previous
        potentials (`init=`), so a step costs a few dozen iterations.
        """
    ),
    code(
        """
        def train(grad_mode, steps=STEPS, lr=1e-2):
            opt = optax.adam(lr)
            beta, state = jnp.asarray(beta_ls), None
            state = opt.init(beta)
            pots = (jnp.zeros(N), jnp.zeros(N))

            @jax.jit
            def step(beta, state, pots):
                def objective(beta):
                    r = data.y - data.x_paired @ beta[:2] - beta[-1]
                    cost = residual_cost(r, data.x_unpaired @ beta[2:-1])
                    return robot_loss(cost, epsilon=1e-2, relative_epsilon=True, init=pots, grad_mode=grad_mode)

                (value, res), g = jax.value_and_grad(objective, has_aux=True)(beta)
                updates, state = opt.update(g, state, beta)
                return optax.apply_updates(beta, updates), state, (res.f, res.g)

            curve = []
            for t in range(steps):
                beta, state, pots = step(beta, state, pots)
                if t % 10 == 9:
                    curve.append((t + 1, val_error(np.asarray(beta))))
            return np.asarray(beta), np.asarray(curve)

        fits = {mode: train(mode) for mode in ("implicit", "stop_gradient")}
        for mode, (beta, curve) in fits.items():
            matching = recovered_matching(residual_cost(data.y - data.x_paired @ beta[:2] - beta[-1],
                                                        data.x_unpaired @ beta[2:-1]))
            print(f"ROBOT ({mode:13s}) 1 - R^2 = {curve[-1, 1]:.4f}, "
                  f"matching recovered {float(matching_accuracy(matching, data.match)):.3f}")
        """
    ),
    code(
        """
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for mode, (_, curve) in fits.items():
            ax.semilogy(curve[:, 0], curve[:, 1], label=f"ROBOT, {mode}")
        for name, b, style in [("least squares", beta_ls, ":"), ("AltMin", beta_alt, "-."), ("oracle", beta_oracle, "--")]:
            ax.axhline(val_error(b), ls=style, color="0.4", lw=1)
            ax.text(STEPS, val_error(b), name, ha="right", va="bottom", fontsize=8)
        ax.set_xlabel("Adam step")
        ax.set_ylabel("validation 1 - R^2")
        ax.legend()
        plt.show()
        """
    ),
    md(
        """
        In one dimension of output the matching is only identified up to near-ties of the
        residuals, so few rows get their exact partner back even at the oracle's coefficients;
        the coefficients and the validation error are what the fit recovers. The trainer
        (`python -m train experiment=robot_linear`) runs the same method with the baselines
        in its report, and `scripts/robot_table.py` over seeds.
        """
    ),
]


def build():
    return _build(CELLS)


if __name__ == "__main__":
    write(build(), OUT)
