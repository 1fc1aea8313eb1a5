"""Closed forms for optimal transport between Gaussian measures.

``W2(N(m1, A), N(m2, B))^2 = |m1 - m2|^2 + tr(A + B - 2 (A^1/2 B A^1/2)^1/2)`` (Bures), the
Monge map between Gaussians (an affine map), the Bures-Wasserstein barycenter (a fixed
point, Alvarez-Esteban et al. 2016), and the entropic plan and value of
``min E|x - y|^2 + lam KL(pi | mu x nu)``, a Gaussian on ``R^2d``
(Janati et al. 2020, Mallasto et al. 2021; their ``2 sigma^2`` is our ``lam``).

Matrix square roots use symmetric eigendecompositions (tiny negative eigenvalues
from rounding are clipped to 0). Their derivative is the Daleckii-Krein formula
``dS = V [(V^T dM V)_ij / (s_i + s_j)] V^T``, which stays finite for repeated
eigenvalues (e.g. identity covariances), unlike differentiating ``eigh`` itself.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.solvers import Status, fixed_point_loop, implicit_fixed_point, raise_on_status, result_repr

__all__ = ["gaussian_w2", "gaussian_entropic_plan", "gaussian_entropic_cost", "gaussian_monge_map",
           "gaussian_barycenter", "GaussianBarycenter"]


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


def gaussian_entropic_cost(mean1, cov1, mean2, cov2, *, lam) -> jax.Array:
    """Value of ``min_pi E|x - y|^2 + lam KL(pi | mu x nu)`` between two Gaussians.

    Evaluated at the optimal plan of :func:`gaussian_entropic_plan` (cross-covariance
    ``C``): ``|m1 - m2|^2 + tr A + tr B - 2 tr C + (lam / 2) (log det B - log det(B - C^T A^-1 C))``
    (the KL of the joint Gaussian to the product of its marginals). It is the limit of
    :func:`ot_jax.sinkhorn`'s ``reg_cost`` with ``epsilon = lam`` on ever finer
    discretisations of the two measures. Works under ``jit``, ``vmap`` and ``grad``.

    Args:
      mean1: ``[d]``; cov1: ``[d, d]`` symmetric positive definite; mean2: ``[d]``;
      cov2: ``[d, d]`` symmetric positive definite; lam: regularisation, > 0.

    Returns:
      scalar value.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> value = ot_jax.tools.gaussian.gaussian_entropic_cost(jnp.zeros(1), jnp.eye(1), jnp.zeros(1), jnp.eye(1),
        ...                                                     lam=1e-6)
        >>> abs(float(value)) < 1e-4  # tends to W2^2 = 0 as lam -> 0
        True
    """
    fn = "gaussian_entropic_cost"
    _check_gaussian(mean2, cov2, 2, fn, positive_definite=True)
    mean, cov = gaussian_entropic_plan(mean1, cov1, mean2, cov2, lam=lam)
    d = mean.shape[0] // 2
    a, cross, b = cov[:d, :d], cov[:d, d:], cov[d:, d:]
    lam = jnp.asarray(lam, cov.dtype)
    schur = b - cross.T @ jnp.linalg.solve(a, cross)
    mutual = 0.5 * (jnp.linalg.slogdet(b)[1] - jnp.linalg.slogdet(schur)[1])
    return (jnp.sum((mean[:d] - mean[d:]) ** 2) + jnp.trace(a) + jnp.trace(b) - 2.0 * jnp.trace(cross)
            + lam * mutual)


def gaussian_monge_map(mean1, cov1, mean2, cov2):
    """The optimal (Monge) map ``T(x) = A x + t`` from ``N(mean1, cov1)`` to ``N(mean2, cov2)``.

    ``A = cov1^-1/2 (cov1^1/2 cov2 cov1^1/2)^1/2 cov1^-1/2`` (symmetric positive
    semi-definite), ``t = mean2 - A mean1``; POT's ``bures_wasserstein_mapping``.
    Apply it to points ``x: [n, d]`` as ``x @ A + t`` (``A`` is symmetric).

    Args:
      mean1: ``[d]``; cov1: ``[d, d]`` symmetric positive definite; mean2: ``[d]``; cov2: ``[d, d]`` PSD.

    Returns:
      ``(A [d, d], t [d])``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> A, t = ot_jax.tools.gaussian.gaussian_monge_map(jnp.zeros(2), jnp.eye(2), jnp.ones(2), 4.0 * jnp.eye(2))
        >>> A.tolist(), t.tolist()
        ([[2.0, 0.0], [0.0, 2.0]], [1.0, 1.0])
    """
    m1, a, m2, b = _prepare(mean1, cov1, mean2, cov2, "gaussian_monge_map", pd1=True)
    w, v = jnp.linalg.eigh(a)
    root = (v * jnp.sqrt(w)) @ v.T
    inv_root = (v / jnp.sqrt(w)) @ v.T
    linear = inv_root @ _sqrtm_psd(root @ b @ root) @ inv_root
    linear = 0.5 * (linear + linear.T)
    return linear, m2 - linear @ m1


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GaussianBarycenter:
    """Output of :func:`gaussian_barycenter`.

    Attributes:
      mean: ``[d]`` barycenter mean; cov: ``[d, d]`` barycenter covariance.
      converged: scalar bool; n_iters: scalar int; status: scalar int, a :class:`~ot_jax.Status`.
    """

    mean: jax.Array
    cov: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("mean", "cov", "status", "n_iters"))


def _barycenter_step(cov, theta):
    """Alvarez-Esteban et al.'s map ``S^-1/2 (sum_k w_k (S^1/2 C_k S^1/2)^1/2)^2 S^-1/2``."""
    covs, weights = theta
    w, v = jnp.linalg.eigh(0.5 * (cov + cov.T))
    w = jnp.clip(w, jnp.finfo(cov.dtype).tiny, None)
    root, inv_root = (v * jnp.sqrt(w)) @ v.T, (v / jnp.sqrt(w)) @ v.T
    mean_root = jnp.einsum("k,kij->ij", weights, jax.vmap(lambda c: _sqrtm_psd(root @ c @ root))(covs))
    out = inv_root @ mean_root @ mean_root @ inv_root
    return 0.5 * (out + out.T)


def gaussian_barycenter(means, covs, weights=None, *, tol: float | None = None, max_iters: int = 1000,
                        throw: bool = False) -> GaussianBarycenter:
    """Bures-Wasserstein barycenter ``argmin_N sum_k w_k W2(N, N(means_k, covs_k))^2`` of Gaussians.

    The mean is ``sum_k w_k means_k``; the covariance is the fixed point ``S = sum_k w_k
    (S^1/2 C_k S^1/2)^1/2``, reached by Alvarez-Esteban et al.'s (2016) iteration
    ``S <- S^-1/2 (sum_k w_k (S^1/2 C_k S^1/2)^1/2)^2 S^-1/2`` from ``S = sum_k w_k C_k``
    (it converges for positive definite ``C_k``). Stops when the relative Frobenius
    change is ``<= tol``. Differentiable in ``means``, ``covs`` and ``weights`` (the
    covariance by implicit differentiation of the fixed point, one GMRES solve).
    POT's ``bures_wasserstein_barycenter``.

    Args:
      means: ``[K, d]``; covs: ``[K, d, d]`` symmetric positive definite; weights:
        ``[K]`` nonnegative (normalised to sum 1; uniform if None).
      tol: relative tolerance (default 1e-12 in float64, 1e-6 in float32); max_iters: cap (static).
      throw: raise when not converged or on bad input.

    Returns:
      :class:`GaussianBarycenter`.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> covs = jnp.stack([jnp.eye(2), 9.0 * jnp.eye(2)])
        >>> out = ot_jax.tools.gaussian.gaussian_barycenter(jnp.zeros((2, 2)), covs)
        >>> out.cov.round(6).tolist()  # ((1 + 3) / 2)^2 = 4 for commuting covariances
        [[4.0, 0.0], [0.0, 4.0]]
    """
    fn = "gaussian_barycenter"
    means, covs = jnp.asarray(means), jnp.asarray(covs)
    if means.ndim != 2 or means.shape[0] == 0 or means.shape[1] == 0:
        raise ValueError(f"{fn}: means must be [K, d] with K, d >= 1, got shape {tuple(means.shape)}")
    k, d = means.shape
    if covs.shape != (k, d, d):
        raise ValueError(f"{fn}: covs must have shape ({k}, {d}, {d}) to match means [K={k}, d={d}], "
                         f"got {tuple(covs.shape)}")
    for i in range(k) if is_concrete(means, covs) else ():
        _check_gaussian(means[i], covs[i], i, fn, positive_definite=True)
    dtype = jnp.result_type(means, covs, float)
    means, covs = means.astype(dtype), 0.5 * (covs + jnp.swapaxes(covs, 1, 2)).astype(dtype)
    if weights is None:
        weights = jnp.full((k,), 1.0 / k, dtype)
    weights = jnp.asarray(weights, dtype)
    if weights.shape != (k,):
        raise ValueError(f"{fn}: weights must have shape ({k},), got {tuple(weights.shape)}")
    invalid = np.bool_(False)
    if is_concrete(weights):
        w = np.asarray(weights)
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError(f"{fn}: weights must be finite, >= 0 and of positive sum, got {w.tolist()}")
    else:
        invalid = jnp.any(~jnp.isfinite(weights)) | jnp.any(weights < 0) | (jnp.sum(weights) <= 0)
    weights = weights / jnp.sum(weights)
    if tol is None:
        tol = 1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-6
    result = _barycenter(means, covs, weights, invalid, tol, max_iters=int(max_iters))
    return raise_on_status(result, fn, field="cov") if throw else result


@functools.partial(jax.jit, static_argnames=("max_iters",))
def _barycenter(means, covs, weights, invalid, tol, *, max_iters):
    theta = jax.lax.stop_gradient((covs, weights))

    def step(cov, it, check):
        new = _barycenter_step(cov, theta)
        err = jnp.linalg.norm(new - cov) / jnp.linalg.norm(new) if check else jnp.zeros((), cov.dtype)
        return new, jnp.where(jnp.all(jnp.isfinite(new)), err, jnp.nan)

    start = jnp.einsum("k,kij->ij", theta[1], theta[0])
    loop = fixed_point_loop(step, start, max_iters=max_iters, check_every=1, tol=tol, dtype=covs.dtype)
    cov = implicit_fixed_point(_barycenter_step, (covs, weights), loop.state)
    last = loop.last_error
    converged = (last <= tol) & ~invalid
    status = jnp.where(invalid, Status.INVALID_INPUT,
                       jnp.where(jnp.isnan(last), Status.NON_FINITE,
                                 jnp.where(converged, Status.CONVERGED, Status.MAX_ITERS))).astype(jnp.int32)
    return GaussianBarycenter(mean=weights @ means, cov=cov, converged=converged, n_iters=loop.n_iters,
                              status=status)
