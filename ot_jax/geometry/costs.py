"""Ground costs c(x, y) between points.

A cost is a frozen (hashable) dataclass, so it can live in the static part of a
geometry pytree. ``cost(x, y)`` takes two points ``x: [d]``, ``y: [d]`` and
returns a scalar; ``cost.pairwise(x, y)`` takes ``x: [n, d]``, ``y: [m, d]`` and
returns ``[n, m]``. Subclasses override ``pairwise`` when a faster closed form
exists (e.g. squared Euclidean via inner products).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "CostFn",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "FunctionCost",
    "SobelCost",
    "as_cost_fn",
]


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt with a zero (not NaN) gradient at 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class CostFn(abc.ABC):
    """Abstract ground cost. Subclasses implement ``__call__`` on two points."""

    @abc.abstractmethod
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """``x: [d]``, ``y: [d]`` -> scalar cost."""

    def pairwise(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """``x: [n, d]``, ``y: [m, d]`` -> ``[n, m]`` matrix of costs."""
        return jax.vmap(lambda xi: jax.vmap(lambda yj: self(xi, yj))(y))(x)


@dataclasses.dataclass(frozen=True)
class SqEuclidean(CostFn):
    """c(x, y) = ||x - y||_2^2."""

    def __call__(self, x, y):
        return jnp.sum((x - y) ** 2)

    def pairwise(self, x, y):
        sq = (
            jnp.sum(x**2, axis=-1)[:, None]
            + jnp.sum(y**2, axis=-1)[None, :]
            - 2.0 * jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
        )
        return jnp.maximum(sq, 0.0)


@dataclasses.dataclass(frozen=True)
class Euclidean(CostFn):
    """c(x, y) = ||x - y||_2 (zero gradient where x = y)."""

    def __call__(self, x, y):
        return _safe_sqrt(jnp.sum((x - y) ** 2))

    def pairwise(self, x, y):
        return _safe_sqrt(SqEuclidean().pairwise(x, y))


@dataclasses.dataclass(frozen=True)
class PNorm(CostFn):
    """c(x, y) = ||x - y||_p ** power (default power = p, the W_p ground cost)."""

    p: float = 2.0
    power: float | None = None

    def __post_init__(self):
        if not self.p >= 1.0:
            raise ValueError(f"PNorm needs p >= 1, got p={self.p}")
        if self.power is not None and not self.power > 0:
            raise ValueError(f"PNorm needs power > 0, got power={self.power}")

    def __call__(self, x, y):
        s = jnp.sum(jnp.abs(x - y) ** self.p)
        power = self.p if self.power is None else self.power
        # ||z||_p^power = (sum |z|^p)^(power/p); guard the gradient at s = 0.
        positive = s > 0
        return jnp.where(positive, jnp.where(positive, s, 1.0) ** (power / self.p), 0.0)


@dataclasses.dataclass(frozen=True)
class Cosine(CostFn):
    """c(x, y) = 1 - <x, y> / (||x|| ||y||), in [0, 2]."""

    def __call__(self, x, y):
        nx = _safe_sqrt(jnp.sum(x**2))
        ny = _safe_sqrt(jnp.sum(y**2))
        return 1.0 - jnp.sum(x * y) / jnp.maximum(nx * ny, jnp.finfo(x.dtype).tiny)

    def pairwise(self, x, y):
        nx = _safe_sqrt(jnp.sum(x**2, axis=-1))
        ny = _safe_sqrt(jnp.sum(y**2, axis=-1))
        dots = jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
        return 1.0 - dots / jnp.maximum(nx[:, None] * ny[None, :], jnp.finfo(x.dtype).tiny)


@dataclasses.dataclass(frozen=True)
class FunctionCost(CostFn):
    """Any user function ``fn(x: [d], y: [d]) -> scalar`` as a cost (hashed by identity)."""

    fn: Callable[[jax.Array, jax.Array], jax.Array]

    def __call__(self, x, y):
        return self.fn(x, y)


def as_cost_fn(cost_fn) -> CostFn:
    """Return ``cost_fn`` as a :class:`CostFn` (wrapping a plain callable)."""
    if isinstance(cost_fn, CostFn):
        return cost_fn
    if callable(cost_fn):
        return FunctionCost(cost_fn)
    raise TypeError(f"cost_fn must be a CostFn or a callable of two points, got {type(cost_fn).__name__}")


_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class SobelCost(CostFn):
    """Semantic image cost of SPOT's image pairs (thesis §3.6.3, after Liu et al. 2017).

    ``c(x, y) = Σ_{i=1,2} Σ_j ‖ |C_i ∗ x_j| − |C_i ∗ y_j| ‖_F`` where ``C_1, C_2`` are the
    horizontal and vertical Sobel filters and ``x_j, y_j`` the channels: it compares edge
    magnitudes, so a digit and its recoloured or inverted copy are close.

    Points are flat images, C-order from ``image_shape = (H, W, C)``. Images with
    different channel counts are compared on their channel means (grey levels) when
    ``channels_x != channels_y``: pass ``image_shape`` for ``x`` and ``y_channels`` for
    ``y`` (default: the same as ``x``). Convolutions use zero padding ("SAME").

    Examples:
        >>> import jax.numpy as jnp
        >>> c = SobelCost(image_shape=(8, 8, 1))
        >>> x = jnp.zeros(64).at[27].set(1.0)
        >>> float(c(x, x)), float(c(x, -x)), float(c(x, 2 * x)) > 0   # |edges| ignore the sign
        (0.0, 0.0, True)
    """

    image_shape: tuple = (8, 8, 1)
    y_channels: int | None = None

    def __post_init__(self):
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"SobelCost needs image_shape=(H, W, C) with positive sizes, got {self.image_shape}")
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))

    def _edges(self, flat: jax.Array, channels: int, grey: bool) -> jax.Array:
        h, w, _ = self.image_shape
        img = flat.reshape(h, w, channels)
        if grey:
            img = img.mean(axis=-1, keepdims=True)
        img = jnp.moveaxis(img, -1, 0)[:, None]  # [C, 1, H, W]
        sx = jnp.asarray(_SOBEL_X, flat.dtype)
        kernels = jnp.stack([sx, sx.T])[:, None]  # [2, 1, 3, 3]
        out = jax.lax.conv_general_dilated(img, kernels, (1, 1), "SAME",
                                           precision=jax.lax.Precision.HIGHEST)  # [C, 2, H, W]
        return jnp.abs(out)

    def __call__(self, x, y):
        cx = self.image_shape[2]
        cy = cx if self.y_channels is None else int(self.y_channels)
        grey = cx != cy
        diff = self._edges(x, cx, grey) - self._edges(y, cy, grey)
        return jnp.sum(_safe_sqrt(jnp.sum(diff**2, axis=(-2, -1))))
