"""Thesis figure 2.8: barycenters of randomly scaled and shifted digits on a 50x50 grid.

For each digit, ``n_images`` copies of scikit-learn's 8x8 digits (the shipped
stand-in for MNIST), rescaled by half to double size and pasted at random
positions (:func:`problems.scaled_shifted_digits`), equal weights. Every method
runs ``n_iters`` iterations on an ``ot_jax.Grid`` (squared Euclidean cost on
``[0, 1]^2``, separable kernel operations, never a 2500x2500 matrix), as in the
thesis (50 iterations, eps = beta = 1e-3):

* ``sinkhorn``: iterative Bregman projections in the log domain (Benamou et al. 2015);
* ``convolutional``: the same iteration in the scaling domain, i.e. Gaussian
  blurs (Solomon et al. 2015); it needs a larger eps, else the kernel underflows;
* ``ipot``: the proximal point barycenter (thesis Algorithm 2, log domain).

One row per method, one column per digit; the top row shows inputs. The table
gives, per barycenter, the entropy and the share of its mass in its 100
largest pixels (sharpness) and, for ``evaluate_digits``, the exact objective
``(1/K) sum_k W(q, p_k)`` that a barycenter minimises, bracketed by IPOT
(:func:`objective_bracket`: a certified lower bound and an estimate).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import ot_jax
from train.experiments.problems import scaled_shifted_digits
from train.report import format_table

__all__ = ["run", "METHODS"]

# name -> (solver method, kernel mode, label)
METHODS = {
    "sinkhorn": ("sinkhorn", "log", "Sinkhorn (IBP, log domain)"),
    "convolutional": ("sinkhorn", "scaling", "convolutional (Gaussian blurs)"),
    "ipot": ("ipot", "log", "IPOT (Algorithm 2)"),
}


def objective_bracket(grid, q, measures, *, relative_beta: float = 0.01, n_iters: int = 300):
    """The exact objective ``(1/K) sum_k W(q, p_k)`` of a barycenter ``q``, bracketed by IPOT.

    ``q: [n]`` (renormalised to mass 1), ``measures: [K, n]``; one IPOT solve per
    measure, vmapped, ``n_iters`` steps on the grid. Returns ``(lower, estimate)``:
    the mean certified dual bound (the exact objective is ``>= lower``) and the
    mean cost of IPOT's plans (which converges to the exact value; after 300
    steps the two differ by ~3e-4 relative on the digits).
    """
    q = q / jnp.sum(q)
    beta = relative_beta * grid.max_cost()
    out = jax.vmap(lambda p: ot_jax.ipot(grid, q, p, beta=beta, tol=0.0, max_iters=n_iters,
                                         check_every=n_iters))(measures)
    return float(jnp.mean(out.lower_bound)), float(jnp.mean(out.cost))


def _entropy(q: np.ndarray) -> float:
    q = q[q > 0] / q.sum()
    return float(-(q * np.log(q)).sum())


def _top_mass(q: np.ndarray, k: int = 100) -> float:
    return float(np.sort(q.ravel())[::-1][:k].sum() / q.sum())


def run(*, digits, n_images: int, grid_size: int, n_iters: int, methods, relative_regularisation,
        show_inputs: int, evaluate_digits, output_dir: str, seed: int = 0) -> dict:
    """Compute every barycenter, draw ``digit_barycenters.png``, print the table, return the metrics.

    ``relative_regularisation[name]`` is eps (Sinkhorn, convolutional) or beta
    (IPOT) in units of ``max C = 2`` (the squared diagonal of ``[0, 1]^2``).
    """
    start = time.perf_counter()
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    missing = sorted(set(methods) - set(relative_regularisation))
    if missing:
        raise ValueError(f"relative_regularisation has no value for {missing}")
    rng = np.random.default_rng(seed)
    grid = ot_jax.Grid.regular((grid_size, grid_size))
    max_cost = float(grid.max_cost())
    base = max(4, grid_size // 3)  # 16 pixels on the thesis' 50x50 grid, so double size still fits
    inputs = {int(d): scaled_shifted_digits(rng, int(d), n_images, grid=grid_size, base_size=base) for d in digits}

    solvers = {}
    for name in methods:
        method, mode, _ = METHODS[name]
        reg = float(relative_regularisation[name]) * max_cost
        kw = dict(beta=reg) if method == "ipot" else dict(epsilon=reg, mode=mode)
        # tol = 0: exactly n_iters iterations, as in the thesis.
        solvers[name] = jax.jit(lambda p, method=method, kw=kw: ot_jax.barycenter(
            p, grid, method=method, tol=0.0, max_iters=n_iters, check_every=n_iters, **kw))

    evaluate = {int(d) for d in evaluate_digits}
    images, rows, metrics = {}, [], {}
    for name in methods:
        for d, p in inputs.items():
            measures = jnp.asarray(p.reshape(n_images, -1))
            t0 = time.perf_counter()
            out = jax.block_until_ready(solvers[name](measures))
            seconds = time.perf_counter() - t0
            q = np.asarray(out.barycenter).reshape(grid_size, grid_size)
            finite = bool(np.all(np.isfinite(q)))
            images[name, d] = q
            lower = estimate = None
            if finite and d in evaluate:
                lower, estimate = objective_bracket(grid, out.barycenter, measures)
            entry = dict(status=int(out.status), finite=finite, objective_lower=lower, objective_estimate=estimate,
                         entropy=_entropy(q) if finite else None, top100_mass=_top_mass(q) if finite else None,
                         seconds_with_compile=seconds)
            metrics[f"{name}[digit={d}]"] = entry
            rows.append([f"{name}, digit {d}", ot_jax.Status(int(out.status)).name, lower, estimate,
                         entry["entropy"], entry["top100_mass"], seconds])

    path = os.path.join(output_dir, "digit_barycenters.png")
    _plot(path, inputs, images, methods, relative_regularisation, show_inputs, n_images, n_iters)
    elapsed = time.perf_counter() - start
    print(format_table(["barycenter", "status", "objective >=", "objective ~", "entropy", "mass in top 100 px", "seconds (incl. compile)"], rows,
                       title=f"Thesis fig. 2.8: {n_images} scaled/shifted digits per barycenter, "
                             f"{grid_size}x{grid_size} grid, {n_iters} iterations"))
    print(f"figure: {path}  ({elapsed:.1f} s)")
    return dict(experiment="digit_barycenters", grid_size=grid_size, n_images=n_images, n_iters=n_iters,
                relative_regularisation={k: float(relative_regularisation[k]) for k in methods},
                barycenters=metrics, seconds=elapsed)


def _plot(path, inputs, images, methods, relative_regularisation, show_inputs, n_images, n_iters):
    digits = list(inputs)
    n_rows = len(methods) + (1 if show_inputs else 0)
    fig = Figure(figsize=(1.7 * len(digits) + 1.5, 1.8 * n_rows + 0.8), layout="constrained")
    axes = fig.subplots(n_rows, len(digits), squeeze=False)
    row = 0
    if show_inputs:
        for col, d in enumerate(digits):  # a mosaic of the first inputs, summed
            axes[0, col].imshow(inputs[d][:show_inputs].sum(axis=0), cmap="gray_r")
        axes[0, 0].set_ylabel(f"inputs\n({show_inputs} of {n_images})", fontsize=9)
        row = 1
    for name in methods:
        reg = float(relative_regularisation[name])
        symbol = "β" if METHODS[name][0] == "ipot" else "ε"
        for col, d in enumerate(digits):
            q = images[name, d]
            ax = axes[row, col]
            if np.all(np.isfinite(q)):
                ax.imshow(q, cmap="gray_r")
            else:
                ax.text(0.5, 0.5, "underflow\n(NaN/inf)", ha="center", va="center", transform=ax.transAxes)
        axes[row, 0].set_ylabel(f"{METHODS[name][2]}\n{symbol} = {reg:g}·max C", fontsize=9)
        row += 1
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Thesis Fig. 2.8 — barycenters of {n_images} scaled and shifted digits "
                 f"({n_iters} iterations each)")
    fig.savefig(path, dpi=110)
