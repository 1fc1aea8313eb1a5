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
