"""Reference entropic transport plans between 1-D laws, on a grid, and the metrics of a recovered density.

The density trainer (:mod:`train.density`) learns the plan of
``min E|x − y|² + λ KL(γ | μ ⊗ ν)``; its ground truth is

* **Gaussian marginals**: the closed form :func:`ot_jax.gaussian_entropic_plan`;
* **any 1-D densities** (the thesis' Gaussian mixtures): a fine-grid log-domain
  Sinkhorn plan with ``epsilon = λ`` (:func:`ot_jax.sinkhorn`), whose cell masses
  divided by the cell area converge to the continuous plan's density as the grid
  is refined (the discrete problem with weights ``a_i = μ(x_i) dx`` has the same
  Gibbs form ``exp((f_i + g_j − C_ij)/λ) a_i b_j``).

A :class:`PlanReference` holds the reference log-density on a tensor grid; a
reference builder is called as ``builder(lam=λ)`` by the trainer (configs pass it
with ``_partial_: true``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import ot_jax

__all__ = ["PlanReference", "gaussian_reference", "mixture_reference", "sinkhorn_reference",
           "mixture_log_density", "density_metrics"]


@dataclasses.dataclass(frozen=True)
class PlanReference:
    """A joint density ``p(x, y)`` of two 1-D laws on a tensor grid.

    Attributes:
      xs: ``[nx]`` equally spaced x nodes; ys: ``[ny]`` y nodes.
      log_density: ``[nx, ny]`` log ``p(x_i, y_j)``, normalised so the cell masses
        ``p dx dy`` sum to 1 on the grid.
      lam: the entropic weight λ of the plan.
      method: how it was computed (``"closed form"`` or ``"sinkhorn n×n"``).
    """

    xs: np.ndarray
    ys: np.ndarray
    log_density: np.ndarray
    lam: float
    method: str

    @property
    def cell(self) -> float:
        """Area ``dx dy`` of one grid cell."""
        return float((self.xs[1] - self.xs[0]) * (self.ys[1] - self.ys[0]))

    @property
    def masses(self) -> np.ndarray:
        """``[nx, ny]`` cell masses (sum to 1)."""
        return np.exp(self.log_density) * self.cell

    @property
    def points(self) -> np.ndarray:
        """``[nx * ny, 2]`` the grid nodes ``(x_i, y_j)``, row-major (i outer)."""
        gx, gy = np.meshgrid(self.xs, self.ys, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """Densities ``[nx]`` of x and ``[ny]`` of y."""
        p = self.masses
        return p.sum(1) / (self.xs[1] - self.xs[0]), p.sum(0) / (self.ys[1] - self.ys[0])

    def moments(self) -> dict[str, float]:
        """Means, variances, the cross-covariance and ``E|x − y|²`` under the grid plan."""
        p = self.masses
        gx, gy = np.meshgrid(self.xs, self.ys, indexing="ij")
        mx, my = float((p * gx).sum()), float((p * gy).sum())
        return {"mean_x": mx, "mean_y": my, "var_x": float((p * (gx - mx) ** 2).sum()),
                "var_y": float((p * (gy - my) ** 2).sum()), "cross_cov": float((p * (gx - mx) * (gy - my)).sum()),
                "transport": float((p * (gx - gy) ** 2).sum())}


def _grid(center: float, half_width: float, n: int) -> np.ndarray:
    if n < 2:
        raise ValueError(f"grid_size must be >= 2, got {n}")
    return np.linspace(center - half_width, center + half_width, n)


def _normalised(log_p: np.ndarray, cell: float) -> np.ndarray:
    log_p = np.asarray(log_p, dtype=np.float64)
    top = log_p.max()
    return log_p - (top + math.log(np.exp(log_p - top).sum() * cell))


def _check_lam(lam) -> float:
    lam = float(lam)
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite number > 0, got {lam}")
    return lam


def gaussian_reference(*, mean_x: float, var_x: float, mean_y: float, var_y: float, lam: float,
                       grid_size: int = 200, width: float = 5.0) -> PlanReference:
    """The closed-form entropic plan between ``N(mean_x, var_x)`` and ``N(mean_y, var_y)`` on a grid.

    The grid spans ``mean ± width · std`` on each axis (``grid_size`` nodes).
    """
    lam = _check_lam(lam)
    if not (var_x > 0 and var_y > 0):
        raise ValueError(f"variances must be > 0, got {var_x}, {var_y}")
    with jax.enable_x64(True):
        mean, cov = ot_jax.gaussian_entropic_plan(jnp.array([mean_x], jnp.float64), jnp.array([[var_x]], jnp.float64),
                                                  jnp.array([mean_y], jnp.float64), jnp.array([[var_y]], jnp.float64),
                                                  lam=lam)
        mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    xs = _grid(mean_x, width * math.sqrt(var_x), grid_size)
    ys = _grid(mean_y, width * math.sqrt(var_y), grid_size)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    diff = np.stack([gx - mean[0], gy - mean[1]], -1)
    prec = np.linalg.inv(cov)
    log_p = -0.5 * np.einsum("...i,ij,...j->...", diff, prec, diff) - 0.5 * math.log(np.linalg.det(2 * math.pi * cov))
    return PlanReference(xs, ys, _normalised(log_p, (xs[1] - xs[0]) * (ys[1] - ys[0])), lam, "closed form")


def mixture_log_density(x, *, means: Sequence[float], variances: float | Sequence[float],
                        weights: Sequence[float] | None = None) -> np.ndarray:
    """Log-density of the 1-D Gaussian mixture ``Σ w_k N(means_k, variances_k)`` at ``x: [n]``."""
    means = np.asarray(means, np.float64)
    variances = np.broadcast_to(np.asarray(variances, np.float64), means.shape)
    weights = np.full(means.shape, 1.0 / means.size) if weights is None else np.asarray(weights, np.float64)
    if np.any(variances <= 0) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError("mixture: variances must be > 0 and weights >= 0 with a positive sum")
    weights = weights / weights.sum()
    x = np.asarray(x, np.float64)[:, None]
    comp = -0.5 * (x - means) ** 2 / variances - 0.5 * np.log(2 * math.pi * variances) + np.log(weights)
    top = comp.max(1, keepdims=True)
    return (top + np.log(np.exp(comp - top).sum(1, keepdims=True)))[:, 0]


def sinkhorn_reference(*, log_mu: Callable, log_nu: Callable, xs: np.ndarray, ys: np.ndarray, lam: float,
                       tol: float = 1e-10, max_iters: int = 100_000) -> PlanReference:
    """The entropic plan between densities ``mu`` on ``xs`` and ``nu`` on ``ys`` by log-domain Sinkhorn, ε = λ.

    Args:
      log_mu, log_nu: ``[n] -> [n]`` log-densities of the marginals (up to constants).
      xs, ys: equally spaced grids covering the marginals' mass.
      lam: ε of Sinkhorn on the cost ``(x − y)²``.
      tol: marginal-error tolerance of Sinkhorn (float64).

    Raises:
      RuntimeError: Sinkhorn did not reach ``tol`` within ``max_iters``.
    """
    lam = _check_lam(lam)
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    la, lb = np.asarray(log_mu(xs), np.float64), np.asarray(log_nu(ys), np.float64)
    a, b = np.exp(la - la.max()), np.exp(lb - lb.max())
    a, b = a / a.sum(), b / b.sum()
    with jax.enable_x64(True):
        cost = jnp.asarray((xs[:, None] - ys[None, :]) ** 2)
        out = ot_jax.sinkhorn(cost, jnp.asarray(a), jnp.asarray(b), epsilon=lam, tol=tol, max_iters=max_iters)
        if not bool(out.converged):
            raise RuntimeError(f"sinkhorn_reference: Sinkhorn did not converge to tol={tol} in {max_iters} "
                               f"iterations (lam={lam}, grid {xs.size}x{ys.size})")
        plan = np.asarray(out.plan, np.float64)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    with np.errstate(divide="ignore"):
        log_p = np.log(plan) - math.log(cell)
    log_p = np.maximum(log_p, -745.0)  # exp underflow in float64: keep finite
    return PlanReference(xs, ys, _normalised(log_p, cell), lam, f"sinkhorn {xs.size}x{ys.size}")


def mixture_reference(*, means_x: Sequence[float], var_x: float, means_y: Sequence[float], var_y: float,
                      lam: float, grid_size: int = 300, width: float = 5.0) -> PlanReference:
    """Fine-grid Sinkhorn plan between two equal-weight 1-D Gaussian mixtures (thesis fig. 3.4, lower rows).

    Each grid spans ``[min mean − width·std, max mean + width·std]``.
    """
    sx, sy = math.sqrt(var_x), math.sqrt(var_y)
    xs = np.linspace(min(means_x) - width * sx, max(means_x) + width * sx, grid_size)
    ys = np.linspace(min(means_y) - width * sy, max(means_y) + width * sy, grid_size)
    return sinkhorn_reference(log_mu=lambda x: mixture_log_density(x, means=means_x, variances=var_x),
                              log_nu=lambda y: mixture_log_density(y, means=means_y, variances=var_y),
                              xs=xs, ys=ys, lam=lam)


def density_metrics(reference: PlanReference, log_density: np.ndarray) -> dict[str, float]:
    """Compare a recovered log-density on the reference grid with the reference.

    Args:
      reference: the grid and the reference log-density ``[nx, ny]``.
      log_density: ``[nx, ny]`` the recovered log-density at the same nodes (not
        renormalised: mass the recovered law puts off the grid counts as error).

    Returns:
      ``kl``: KL(reference ‖ recovered) ``= Σ p_ref (log p_ref − log p_rec) dx dy`` (nats);
      ``mean_abs_log_error``: ``Σ p_ref |log p_ref − log p_rec| dx dy``;
      ``recovered_mass``: ``Σ p_rec dx dy`` (1 when the recovered law lives on the grid).
    """
    log_density = np.asarray(log_density, np.float64)
    if log_density.shape != reference.log_density.shape:
        raise ValueError(f"log_density has shape {log_density.shape}, the grid is {reference.log_density.shape}")
    p = reference.masses
    diff = reference.log_density - log_density
    return {"kl": float((p * diff).sum()), "mean_abs_log_error": float((p * np.abs(diff)).sum()),
            "recovered_mass": float(np.exp(log_density).sum() * reference.cell)}
