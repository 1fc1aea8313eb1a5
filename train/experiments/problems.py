"""Problems shared by the IPOT experiments (thesis section 2.4).

* :func:`histograms_1d`: two smooth 1-D densities on a regular grid of ``[0, 1]``
  (figures 2.2 and 2.4): a two-bump Gaussian mixture and a single skewed bump.
* :func:`uniform_clouds`: two clouds of uniform points in ``[0, 1]^d`` with the
  squared Euclidean cost divided by its max (figure 2.3).

Everything is NumPy float64; callers cast to the dtype they time or solve in.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Histograms1D", "histograms_1d", "histograms_1d_with_lp", "uniform_clouds", "scaled_shifted_digits"]


class Histograms1D(NamedTuple):
    """A 1-D OT problem on one grid: ``x: [n]``, ``a: [n]``, ``b: [n]``, ``cost: [n, n]``."""

    x: np.ndarray
    a: np.ndarray
    b: np.ndarray
    cost: np.ndarray


def _normalise(w: np.ndarray, floor: float) -> np.ndarray:
    w = w / w.max() + floor  # a small floor keeps every weight > 0 (no empty bins)
    return w / w.sum()


def histograms_1d(n: int = 100, floor: float = 1e-3) -> Histograms1D:
    """Two smooth histograms on ``x = linspace(0, 1, n)`` and ``C_ij = |x_i - x_j|^2``.

    ``a``: mixture ``0.55 N(0.22, 0.07^2) + 0.45 N(0.62, 0.09^2)`` (two bumps);
    ``b``: skewed single bump ``x^5 (1 - x)^1.5`` (a Beta(6, 2.5) shape, mode ~0.77).
    Both are positive (``floor`` x their max is added) and sum to 1. ``max C = 1``.

    Returns: :class:`Histograms1D` with ``x, a, b: [n]``, ``cost: [n, n]``.
    """
    if n < 2:
        raise ValueError(f"histograms_1d needs n >= 2, got {n}")
    x = np.linspace(0.0, 1.0, n)
    gauss = lambda mu, s: np.exp(-0.5 * ((x - mu) / s) ** 2)
    a = _normalise(0.55 * gauss(0.22, 0.07) + 0.45 * gauss(0.62, 0.09), floor)
    b = _normalise(x**5 * (1.0 - x) ** 1.5, floor)
    cost = (x[:, None] - x[None, :]) ** 2
    return Histograms1D(x, a, b, cost)


def histograms_1d_with_lp(n: int):
    """:func:`histograms_1d` as JAX arrays with its exact solution.

    Returns ``(prob, cost [n, n], a [n], b [n], max_cost, lp)`` with ``lp = ot_jax.emd(cost, a, b)``.
    """
    import jax.numpy as jnp

    import ot_jax

    prob = histograms_1d(n)
    cost, a, b = jnp.asarray(prob.cost), jnp.asarray(prob.a), jnp.asarray(prob.b)
    return prob, cost, a, b, float(jnp.max(cost)), ot_jax.emd(cost, a, b)


def uniform_clouds(rng: np.random.Generator, n: int, d: int = 16):
    """``x, y: [n, d]`` uniform in ``[0, 1]^d``; ``cost: [n, n]`` squared Euclidean / its max.

    Returns ``(x, y, cost)``; the weights are uniform (``1/n``), left to the solvers.
    """
    x, y = rng.uniform(size=(n, d)), rng.uniform(size=(n, d))
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return x, y, cost / cost.max()


def scaled_shifted_digits(rng: np.random.Generator, digit: int, n_images: int, grid: int = 50,
                          base_size: int = 16, scale_range: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """Thesis fig. 2.8 input: ``n_images`` copies of one digit, randomly rescaled and shifted.

    scikit-learn's 8x8 digits (the shipped stand-in for MNIST) are upsampled to
    ``base_size`` pixels, rescaled by a factor drawn uniformly from ``scale_range``
    (half to double size, as in the thesis) and pasted at a uniform random
    position of a ``grid x grid`` canvas.

    Returns:
      ``[n_images, grid, grid]`` nonnegative float64 images, each summing to 1.
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    pool = digits.images[digits.target == digit]
    if len(pool) == 0:
        raise ValueError(f"no digit {digit!r} in scikit-learn's digits (choose 0..9)")
    if not base_size * scale_range[1] <= grid:
        raise ValueError(f"a digit of {base_size} x {scale_range[1]} pixels does not fit a {grid}-pixel grid")
    out = np.zeros((n_images, grid, grid))
    picks = rng.choice(len(pool), size=n_images, replace=n_images > len(pool))
    for k, idx in enumerate(picks):
        size = int(round(base_size * rng.uniform(*scale_range)))
        img = np.clip(zoom(pool[idx], size / 8.0, order=1), 0.0, None)
        h, w = img.shape
        top, left = rng.integers(0, grid - h + 1), rng.integers(0, grid - w + 1)
        out[k, top:top + h, left:left + w] = img
    return out / out.sum(axis=(1, 2), keepdims=True)
