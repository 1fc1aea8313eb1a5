"""Closed forms for optimal transport between Gaussian measures.

``W2(N(m1, A), N(m2, B))^2 = |m1 - m2|^2 + tr(A + B - 2 (A^1/2 B A^1/2)^1/2)`` (Bures), and
the entropic plan of ``min E|x - y|^2 + lam KL(pi | mu x nu)``, a Gaussian on ``R^2d``
(Janati et al. 2020, Mallasto et al. 2021; their ``2 sigma^2`` is our ``lam``).

Matrix square roots use symmetric eigendecompositions (tiny negative eigenvalues
from rounding are clipped to 0). Their derivative is the Daleckii-Krein formula
``dS = V [(V^T dM V)_ij / (s_i + s_j)] V^T``, which stays finite for repeated
eigenvalues (e.g. identity covariances), unlike differentiating ``eigh`` itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete

__all__ = ["gaussian_w2", "gaussian_entropic_plan"]


@jax.custom_jvp
def _sqrtm_psd(m):
    """Square root of a symmetric PSD matrix ``[d, d]`` (negative eigenvalues clipped)."""
    w, v = jnp.linalg.eigh(m)
    s = jnp.sqrt(jnp.clip(w, 0.0, None))
    return (v * s) @ v.T


@_sqrtm_psd.defjvp
def _sqrtm_psd_jvp(primals, tangents):
    (m,), (dm,) = primals, tangents
    w, v = jnp.linalg.eigh(m)
    s = jnp.sqrt(jnp.clip(w, 0.0, None))
    root = (v * s) @ v.T
    denom = s[:, None] + s[None, :]
    safe = denom > 0
    dm_sym = 0.5 * (dm + dm.T)
    inner = (v.T @ dm_sym @ v) / jnp.where(safe, denom, 1.0)
    droot = v @ jnp.where(safe, inner, 0.0) @ v.T
    return root, droot


def _sym_tol(dtype) -> float:
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def _check_gaussian(mean, cov, k: int, fn: str, positive_definite: bool = False):
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    if mean.ndim != 1 or mean.shape[0] == 0:
        raise ValueError(f"{fn}: mean{k} must be a non-empty 1-D array [d], got shape {tuple(mean.shape)}")
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise ValueError(f"{fn}: cov{k} must have shape ({d}, {d}) to match mean{k} [d={d}], got {tuple(cov.shape)}")
    if is_concrete(mean, cov):
        mean_np, cov_np = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
        if not (np.all(np.isfinite(mean_np)) and np.all(np.isfinite(cov_np))):
            raise ValueError(f"{fn}: mean{k} or cov{k} contain NaN or inf")
        scale = max(float(np.abs(cov_np).max()), np.finfo(float).tiny)
        tol = _sym_tol(cov.dtype) if jnp.issubdtype(cov.dtype, jnp.floating) else 1e-10
        asym = float(np.abs(cov_np - cov_np.T).max())
        if asym > tol * scale * 10:
            raise ValueError(f"{fn}: cov{k} is not symmetric (max |C - C^T| = {asym:.3g})")
        w_min = float(np.linalg.eigvalsh(0.5 * (cov_np + cov_np.T)).min())
        if w_min < -100 * tol * scale:
            raise ValueError(
                f"{fn}: cov{k} is not positive semi-definite (smallest eigenvalue {w_min:.3g})"
            )
        if positive_definite and w_min <= 100 * tol * scale:
            raise ValueError(
                f"{fn}: cov{k} must be positive definite (smallest eigenvalue {w_min:.3g})"
            )
    return mean, cov


def _prepare(mean1, cov1, mean2, cov2, fn: str, pd1: bool = False):
    m1, c1 = _check_gaussian(mean1, cov1, 1, fn, positive_definite=pd1)
    m2, c2 = _check_gaussian(mean2, cov2, 2, fn)
    if m1.shape != m2.shape:
        raise ValueError(f"{fn}: dimensions differ, mean1 has d = {m1.shape[0]} but mean2 has d = {m2.shape[0]}")
    dtype = jnp.result_type(m1, c1, m2, c2)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    m1, c1, m2, c2 = (v.astype(dtype) for v in (m1, c1, m2, c2))
    # symmetrise: the formulas assume it and rounding in the input should not leak in
    return m1, 0.5 * (c1 + c1.T), m2, 0.5 * (c2 + c2.T)


def gaussian_w2(mean1, cov1, mean2, cov2) -> jax.Array:
    """2-Wasserstein distance (not squared) between ``N(mean1, cov1)`` and ``N(mean2, cov2)``.

    ``W2^2 = |m1 - m2|^2 + tr(A + B - 2 (A^1/2 B A^1/2)^1/2)`` with ``A = cov1``, ``B = cov2``.
    Works under ``jit``, ``vmap`` and ``grad`` (finite gradients also for repeated
    eigenvalues; the gradient at ``W2 = 0`` is set to 0).

    Args:
      mean1: ``[d]``; cov1: ``[d, d]`` symmetric PSD; mean2: ``[d]``; cov2: ``[d, d]`` symmetric PSD.

    Returns:
      scalar ``W2``.

    Raises:
      ValueError: on shape mismatch and, for concrete inputs, non-finite values or
        covariances that are not symmetric positive semi-definite.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> I = jnp.eye(2)
        >>> float(ot_jax.gaussian_w2(jnp.array([-2.5, 0.0]), I, jnp.array([2.5, 0.0]), I))
        5.0
    """
    m1, a, m2, b = _prepare(mean1, cov1, mean2, cov2, "gaussian_w2")
    ra = _sqrtm_psd(a)
    cross = _sqrtm_psd(ra @ b @ ra)
    sq = jnp.sum((m1 - m2) ** 2) + jnp.trace(a) + jnp.trace(b) - 2.0 * jnp.trace(cross)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def gaussian_entropic_plan(mean1, cov1, mean2, cov2, *, lam):
    """Entropic OT plan between Gaussians: ``min_pi E|x - y|^2 + lam KL(pi | mu x nu)``.

    The optimum is Gaussian with mean ``[m1, m2]`` and covariance ``[[A, C], [C^T, B]]``,
    ``C = 1/2 A^1/2 D A^-1/2 - (lam/4) I``, ``D = (4 A^1/2 B A^1/2 + (lam^2/4) I)^1/2``
    (in 1-D ``C = (sqrt(16 a b + lam^2) - lam) / 4``). This is the plan that
    :func:`ot_jax.sinkhorn` approximates with ``epsilon = lam`` on discretised measures.
    Works under ``jit``, ``vmap`` and ``grad``.

    Args:
      mean1: ``[d]``; cov1: ``[d, d]`` symmetric positive definite.
      mean2: ``[d]``; cov2: ``[d, d]`` symmetric PSD.
      lam: entropic regularisation, > 0 (keyword-only).

    Returns:
      ``(mean [2d], cov [2d, 2d])`` of the joint Gaussian plan.

    Raises:
      ValueError: on shape mismatch, ``lam <= 0`` and, for concrete inputs, non-finite
        values or covariances that are not symmetric PSD (cov1 must be definite).

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> mean, cov = ot_jax.gaussian_entropic_plan(jnp.zeros(1), jnp.eye(1), jnp.ones(1), jnp.eye(1), lam=1.0)
        >>> round(float(cov[0, 1]), 6)  # (sqrt(17) - 1) / 4
        0.780776
    """
    fn = "gaussian_entropic_plan"
    m1, a, m2, b = _prepare(mean1, cov1, mean2, cov2, fn, pd1=True)
    lam_arr = jnp.asarray(lam)
    if lam_arr.ndim != 0:
        raise ValueError(f"{fn}: lam must be a scalar, got shape {tuple(lam_arr.shape)}")
    if is_concrete(lam_arr) and not (np.isfinite(float(lam_arr)) and float(lam_arr) > 0):
        raise ValueError(f"{fn}: lam must be a finite number > 0, got {float(lam_arr)}")
    lam_arr = lam_arr.astype(m1.dtype)
    d = m1.shape[0]
    eye = jnp.eye(d, dtype=m1.dtype)
    ra = _sqrtm_psd(a)
    dmat = _sqrtm_psd(4.0 * ra @ b @ ra + (lam_arr**2 / 4.0) * eye)
    # A^1/2 D A^-1/2 = (A^-1/2 D A^1/2)^T = solve(A^1/2, D A^1/2)^T  (A^1/2, D symmetric)
    cross = 0.5 * jnp.linalg.solve(ra, dmat @ ra).T - (lam_arr / 4.0) * eye
    cov = jnp.block([[a, cross], [cross.T, b]])
    return jnp.concatenate([m1, m2]), cov
