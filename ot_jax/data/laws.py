"""Samplers of 2-D (and d-D) laws: the thesis' target laws and the usual GAN toy data.

A *sampler* is a pure function ``f(key, n) -> [n, d]`` returning jax's default
float dtype (float32, or float64 when ``jax_enable_x64`` is on). It is
deterministic given ``key`` and jit-compatible with ``n`` static; every
parameter after ``n`` is keyword-only, so ``functools.partial(f, **params)``
(what Hydra's ``_partial_: true`` builds) is again a sampler:

Examples:
    >>> import functools, jax
    >>> from ot_jax.data.laws import eight_gaussians
    >>> sampler = functools.partial(eight_gaussians, radius=2.0, std=0.02)
    >>> x = jax.jit(sampler, static_argnums=1)(jax.random.PRNGKey(0), 256)
    >>> x.shape
    (256, 2)

Parameters are validated (``ValueError``) when they are concrete values, which
is always the case for Hydra/Python constants; traced parameters are accepted
unchecked. ``n`` must be a Python int ``>= 1``.

The mixture laws also export their mode centres as NumPy arrays
(:func:`eight_gaussians_modes`, :func:`grid_gaussians_modes`) for
"modes covered" metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "gaussian",
    "sine_law",
    "gaussian_mixture",
    "eight_gaussians",
    "eight_gaussians_modes",
    "grid_gaussians",
    "grid_gaussians_modes",
    "rings",
    "uniform",
    "two_moons",
]


# ----------------------------------------------------------------------------- helpers


def _float():
    """jax's default float dtype right now (float32, or float64 under x64)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _check_n(n, fn: str) -> int:
    if isinstance(n, jax.core.Tracer):
        raise ValueError(f"{fn}: n must be a static Python int (mark it static under jit), got a tracer")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{fn}: n must be a Python int >= 1, got {n!r}")
    if n < 1:
        raise ValueError(f"{fn}: n must be >= 1, got {n}")
    return int(n)


def _static(x):
    """``x`` as a float64 NumPy array, or ``None`` if it holds tracers (validation is then skipped)."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
    except (TypeError, ValueError) as exc:  # ragged lists, strings, ...
        raise ValueError(f"not a numeric array: {x!r} ({exc})") from None


def _check_finite(name: str, arr, fn: str):
    if arr is not None and not np.all(np.isfinite(arr)):
        raise ValueError(f"{fn}: {name} must be finite, got {arr.tolist()!r}")


def _check_nonneg(name: str, arr, fn: str):
    _check_finite(name, arr, fn)
    if arr is not None and np.any(arr < 0):
        raise ValueError(f"{fn}: {name} must be >= 0, got {arr.tolist()!r}")


def _param(x, name: str, fn: str):
    """Validate-able view of a parameter: (static float64 array or None, jnp array of default float)."""
    try:
        s = _static(x)
    except ValueError as exc:
        raise ValueError(f"{fn}: {name}: {exc}") from None
    return s, jnp.asarray(x, dtype=_float())


# ----------------------------------------------------------------------------- laws


def gaussian(key, n: int, *, mean: Sequence[float], std: float | Sequence[float] = 1.0) -> jax.Array:
    """Gaussian ``N(mean, diag(std^2))``: isotropic (scalar ``std``) or per-axis.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      mean: ``[d]`` mean, ``d >= 1``.
      std: standard deviation, a scalar or ``[d]`` (one per axis), ``>= 0``.

    Returns:
      ``[n, d]`` samples, jax's default float dtype.

    Raises:
      ValueError: empty / non-1-D mean, negative or mis-shaped std, bad ``n``.

    Examples:
        >>> import jax
        >>> x = gaussian(jax.random.PRNGKey(0), 4, mean=[0.0, 1.0, 2.0], std=0.1)
        >>> x.shape
        (4, 3)
    """
    fn = "gaussian"
    n = _check_n(n, fn)
    mean_s, mean_j = _param(mean, "mean", fn)
    std_s, std_j = _param(std, "std", fn)
    if mean_j.ndim != 1 or mean_j.shape[0] == 0:
        raise ValueError(f"{fn}: mean must be a non-empty 1-D sequence [d], got shape {tuple(mean_j.shape)}")
    d = mean_j.shape[0]
    if std_j.ndim > 1 or (std_j.ndim == 1 and std_j.shape[0] != d):
        raise ValueError(f"{fn}: std must be a scalar or have shape ({d},) like mean, got {tuple(std_j.shape)}")
    _check_finite("mean", mean_s, fn)
    _check_nonneg("std", std_s, fn)
    return mean_j + std_j * jax.random.normal(key, (n, d), dtype=_float())


def sine_law(key, n: int, *, y1_range=(0.0, 3.0), y2_mean: float = 2.0, y2_var: float = 0.1) -> jax.Array:
    """The thesis' fig. 3.6 law ``Y = (sin(Y1) + Y2, 2 Y1 - 3)``.

    ``Y1 ~ U[y1_range]`` and ``Y2 ~ N(y2_mean, y2_var)`` independent. The thesis
    writes ``N(2, 0.1)``; we read ``0.1`` as the *variance* (std ``sqrt(0.1)``).
    With the defaults ``E[Y] = ((1 - cos 3) / 3 + 2, 0)`` and
    ``Var(Y_2) = 4 Var(Y1) = 3``.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      y1_range: ``(low, high)`` of the uniform ``Y1``, ``low <= high``.
      y2_mean: mean of the Gaussian ``Y2``.
      y2_var: variance of ``Y2``, ``>= 0``.

    Returns:
      ``[n, 2]`` samples, jax's default float dtype.

    Raises:
      ValueError: ``y1_range`` not a pair with ``low <= high``, negative variance, bad ``n``.
    """
    fn = "sine_law"
    n = _check_n(n, fn)
    r_s, r_j = _param(y1_range, "y1_range", fn)
    m_s, m_j = _param(y2_mean, "y2_mean", fn)
    v_s, v_j = _param(y2_var, "y2_var", fn)
    if r_j.shape != (2,):
        raise ValueError(f"{fn}: y1_range must be a pair (low, high), got shape {tuple(r_j.shape)}")
    if m_j.ndim or v_j.ndim:
        raise ValueError(f"{fn}: y2_mean and y2_var must be scalars")
    _check_finite("y1_range", r_s, fn)
    if r_s is not None and r_s[0] > r_s[1]:
        raise ValueError(f"{fn}: y1_range must satisfy low <= high, got {tuple(r_s.tolist())}")
    _check_finite("y2_mean", m_s, fn)
    _check_nonneg("y2_var", v_s, fn)
    k1, k2 = jax.random.split(key)
    dt = _float()
    y1 = r_j[0] + (r_j[1] - r_j[0]) * jax.random.uniform(k1, (n,), dtype=dt)
    y2 = m_j + jnp.sqrt(v_j) * jax.random.normal(k2, (n,), dtype=dt)
    return jnp.stack([jnp.sin(y1) + y2, 2.0 * y1 - 3.0], axis=1)


def gaussian_mixture(key, n: int, *, means, stds: float | Sequence = 1.0, weights=None) -> jax.Array:
    """Mixture of isotropic (or diagonal) Gaussians ``sum_k w_k N(means[k], diag(stds[k]^2))``.

    The component of each sample is drawn categorically with the normalised
    ``weights`` (uniform if ``None``); zero weights are allowed (never drawn).

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      means: ``[K, d]`` component means, ``K, d >= 1``.
      stds: a scalar (shared), ``[K]`` (isotropic per component) or ``[K, d]``
        (per component and axis), ``>= 0``.
      weights: ``[K]`` non-negative weights with a positive sum, or ``None``.

    Returns:
      ``[n, d]`` samples, jax's default float dtype.

    Raises:
      ValueError: bad shapes, negative stds, negative or zero-sum weights, bad ``n``.

    Examples:
        >>> import jax
        >>> x = gaussian_mixture(jax.random.PRNGKey(0), 4, means=[[0.0, 0.0], [5.0, 5.0]],
        ...                      stds=[0.1, 0.2], weights=[1.0, 3.0])
        >>> x.shape
        (4, 2)
    """
    fn = "gaussian_mixture"
    n = _check_n(n, fn)
    mu_s, mu_j = _param(means, "means", fn)
    sd_s, sd_j = _param(stds, "stds", fn)
    if mu_j.ndim != 2 or 0 in mu_j.shape:
        raise ValueError(f"{fn}: means must be a non-empty 2-D array [K, d], got shape {tuple(mu_j.shape)}")
    k_comp, d = mu_j.shape
    if sd_j.ndim == 0:
        sd_j = jnp.broadcast_to(sd_j, (k_comp, 1))
    elif sd_j.shape == (k_comp,):
        sd_j = sd_j[:, None]
    elif sd_j.shape != (k_comp, d):
        raise ValueError(f"{fn}: stds must be a scalar, [K]={k_comp} or [K, d]=({k_comp}, {d}), got {tuple(sd_j.shape)}")
    _check_finite("means", mu_s, fn)
    _check_nonneg("stds", sd_s, fn)
    if weights is None:
        logits = jnp.zeros((k_comp,), dtype=_float())
    else:
        w_s, w_j = _param(weights, "weights", fn)
        if w_j.shape != (k_comp,):
            raise ValueError(f"{fn}: weights must have shape ({k_comp},) like means, got {tuple(w_j.shape)}")
        _check_nonneg("weights", w_s, fn)
        if w_s is not None and not w_s.sum() > 0:
            raise ValueError(f"{fn}: weights must have a positive sum, got {w_s.tolist()!r}")
        logits = jnp.log(w_j)  # log 0 = -inf: never drawn; normalisation is implicit
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, logits, shape=(n,))
    return mu_j[comp] + sd_j[comp] * jax.random.normal(k2, (n, d), dtype=_float())


def eight_gaussians_modes(radius: float = 2.0) -> np.ndarray:
    """Centres of :func:`eight_gaussians`: ``radius (cos(k pi/4), sin(k pi/4))``, ``k = 0..7``.

    Returns:
      ``[8, 2]`` float64 NumPy array.

    Examples:
        >>> eight_gaussians_modes(1.0)[:3].round(3).tolist()
        [[1.0, 0.0], [0.707, 0.707], [0.0, 1.0]]
    """
    r = float(radius)
    if not (math.isfinite(r) and r >= 0):
        raise ValueError(f"eight_gaussians_modes: radius must be finite and >= 0, got {radius!r}")
    t = np.arange(8) * (np.pi / 4)
    modes = r * np.stack([np.cos(t), np.sin(t)], axis=1)
    modes[np.abs(modes) < 1e-12 * max(r, 1.0)] = 0.0  # exact zeros instead of 1e-16
    return modes


def _mixture_of_modes(key, n, modes, std, fn):
    s_s, s_j = _param(std, "std", fn)
    if s_j.ndim:
        raise ValueError(f"{fn}: std must be a scalar, got shape {tuple(s_j.shape)}")
    _check_nonneg("std", s_s, fn)
    k1, k2 = jax.random.split(key)
    modes = jnp.asarray(modes, dtype=_float())
    idx = jax.random.randint(k1, (n,), 0, modes.shape[0])
    return modes[idx] + s_j * jax.random.normal(k2, (n, 2), dtype=_float())


def eight_gaussians(key, n: int, *, radius: float = 2.0, std: float = 0.02) -> jax.Array:
    """The "8 Gaussians" GAN toy: equal mixture of ``N(c_k, std^2 I)`` on a circle.

    Centres ``c_k`` are :func:`eight_gaussians_modes` ``(radius)``.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      radius: radius of the circle of centres, ``>= 0``.
      std: standard deviation of each component, ``>= 0``.

    Returns:
      ``[n, 2]`` samples, jax's default float dtype.
    """
    fn = "eight_gaussians"
    n = _check_n(n, fn)
    try:
        modes = eight_gaussians_modes(radius)
    except ValueError as exc:
        raise ValueError(f"{fn}: {exc}") from None
    return _mixture_of_modes(key, n, modes, std, fn)


def grid_gaussians_modes(size: int = 5, spacing: float = 2.0) -> np.ndarray:
    """Centres of :func:`grid_gaussians`: a ``size x size`` grid centred at 0.

    Coordinates are ``(i - (size - 1) / 2) * spacing``, ``i = 0..size-1``; the
    defaults give ``{-4, -2, 0, 2, 4}^2`` (the "25 Gaussians"). Row-major: the
    first coordinate varies slowest.

    Returns:
      ``[size^2, 2]`` float64 NumPy array.

    Examples:
        >>> grid_gaussians_modes(2, 1.0).tolist()
        [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]]
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"grid_gaussians_modes: size must be an int >= 1, got {size!r}")
    s = float(spacing)
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"grid_gaussians_modes: spacing must be finite and >= 0, got {spacing!r}")
    c = (np.arange(size) - (size - 1) / 2.0) * s
    gx, gy = np.meshgrid(c, c, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def grid_gaussians(key, n: int, *, size: int = 5, spacing: float = 2.0, std: float = 0.05) -> jax.Array:
    """The "25 Gaussians" GAN toy: equal mixture of ``N(c, std^2 I)`` on a square grid.

    Centres are :func:`grid_gaussians_modes` ``(size, spacing)``.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      size: grid side (``size^2`` modes).
      spacing: distance between neighbouring centres, ``>= 0``.
      std: standard deviation of each component, ``>= 0``.

    Returns:
      ``[n, 2]`` samples, jax's default float dtype.
    """
    fn = "grid_gaussians"
    n = _check_n(n, fn)
    try:
        modes = grid_gaussians_modes(size, spacing)
    except ValueError as exc:
        raise ValueError(f"{fn}: {exc}") from None
    return _mixture_of_modes(key, n, modes, std, fn)


def rings(key, n: int, *, radii: Sequence[float] = (1.0, 2.0), std: float = 0.05) -> jax.Array:
    """Concentric noisy circles: ring chosen uniformly, angle uniform on ``[0, 2 pi)``.

    A sample is ``r (cos t, sin t) + std * N(0, I_2)`` (isotropic 2-D noise).

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      radii: ``[R]`` ring radii, non-empty, ``>= 0``.
      std: noise standard deviation, ``>= 0``.

    Returns:
      ``[n, 2]`` samples, jax's default float dtype.
    """
    fn = "rings"
    n = _check_n(n, fn)
    r_s, r_j = _param(radii, "radii", fn)
    s_s, s_j = _param(std, "std", fn)
    if r_j.ndim != 1 or r_j.shape[0] == 0:
        raise ValueError(f"{fn}: radii must be a non-empty 1-D sequence, got shape {tuple(r_j.shape)}")
    if s_j.ndim:
        raise ValueError(f"{fn}: std must be a scalar, got shape {tuple(s_j.shape)}")
    _check_nonneg("radii", r_s, fn)
    _check_nonneg("std", s_s, fn)
    k1, k2, k3 = jax.random.split(key, 3)
    dt = _float()
    r = r_j[jax.random.randint(k1, (n,), 0, r_j.shape[0])]
    t = (2 * jnp.pi) * jax.random.uniform(k2, (n,), dtype=dt)
    return r[:, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1) + s_j * jax.random.normal(k3, (n, 2), dtype=dt)


def uniform(key, n: int, *, low, high) -> jax.Array:
    """Uniform law on the box ``prod_i [low_i, high_i]`` (e.g. a generator's noise).

    ``low`` and ``high`` are broadcast against each other; the broadcast shape
    must be 1-D ``[d]`` (two scalars give ``d = 1``).

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      low: ``[d]`` (or scalar) lower corner.
      high: ``[d]`` (or scalar) upper corner, ``high >= low``.

    Returns:
      ``[n, d]`` samples, jax's default float dtype.

    Examples:
        >>> import jax
        >>> x = uniform(jax.random.PRNGKey(0), 4, low=[-1.0, 0.0], high=1.0)
        >>> x.shape, bool((x[:, 1] >= 0).all())
        ((4, 2), True)
    """
    fn = "uniform"
    n = _check_n(n, fn)
    lo_s, lo_j = _param(low, "low", fn)
    hi_s, hi_j = _param(high, "high", fn)
    try:
        shape = np.broadcast_shapes(lo_j.shape, hi_j.shape)
    except ValueError:
        raise ValueError(f"{fn}: low {tuple(lo_j.shape)} and high {tuple(hi_j.shape)} do not broadcast") from None
    if len(shape) > 1 or shape == (0,):
        raise ValueError(f"{fn}: low/high must broadcast to a non-empty 1-D shape [d], got {shape}")
    d = shape[0] if shape else 1
    _check_finite("low", lo_s, fn)
    _check_finite("high", hi_s, fn)
    if lo_s is not None and hi_s is not None and np.any(lo_s > hi_s):
        raise ValueError(f"{fn}: need low <= high, got low={lo_s.tolist()!r}, high={hi_s.tolist()!r}")
    lo_j, hi_j = jnp.broadcast_to(lo_j, (d,)), jnp.broadcast_to(hi_j, (d,))
    return lo_j + (hi_j - lo_j) * jax.random.uniform(key, (n, d), dtype=_float())


def two_moons(key, n: int, *, noise: float = 0.05) -> jax.Array:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), drawn at random.

    Each sample picks a moon with probability 1/2 and an angle ``t ~ U[0, pi]``:
    upper moon ``(cos t, sin t)``, lower moon ``(1 - cos t, 1/2 - sin t)``; then
    ``noise * N(0, I_2)`` is added.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      noise: standard deviation of the Gaussian noise, ``>= 0``.

    Returns:
      ``[n, 2]`` samples, jax's default float dtype.
    """
    fn = "two_moons"
    n = _check_n(n, fn)
    s_s, s_j = _param(noise, "noise", fn)
    if s_j.ndim:
        raise ValueError(f"{fn}: noise must be a scalar, got shape {tuple(s_j.shape)}")
    _check_nonneg("noise", s_s, fn)
    k1, k2, k3 = jax.random.split(key, 3)
    dt = _float()
    t = jnp.pi * jax.random.uniform(k1, (n,), dtype=dt)
    lower = jax.random.bernoulli(k2, 0.5, (n,))
    x = jnp.where(lower, 1.0 - jnp.cos(t), jnp.cos(t))
    y = jnp.where(lower, 0.5 - jnp.sin(t), jnp.sin(t))
    return jnp.stack([x, y], axis=1) + s_j * jax.random.normal(k3, (n, 2), dtype=dt)
