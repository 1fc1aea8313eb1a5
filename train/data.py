"""The data of a trainer: K marginals, each a sampler ``f(key, n) -> [n, d_k]``.

``conf/data/*.yaml`` instantiate :class:`Marginals` with samplers from
:mod:`ot_jax.data` (``_partial_: true`` nodes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax

__all__ = ["Marginals"]

Sampler = Callable[[jax.Array, int], jax.Array]


@dataclasses.dataclass(frozen=True)
class Marginals:
    """K data laws for a generator to match.

    Attributes:
      samplers: K samplers ``f(key, n) -> [n, d_k]``.
      n_samples: when > 0, each marginal is a fixed data set of this many points,
        drawn once from the run's seed (thesis: 10^5 per law), and batches are drawn
        from it with replacement; 0 draws fresh samples for every batch.
      shapes: optional per-marginal shapes of one point, e.g. ``[8, 8, 1]`` for flat
        8x8 grey images (used by image models and figures); default ``[d_k]``.
      names: optional display names of the marginals.
    """

    samplers: Sequence[Sampler]
    n_samples: int = 0
    shapes: Sequence[Sequence[int]] | None = None
    names: Sequence[str] | None = None

    def __post_init__(self):
        if len(self.samplers) < 1:
            raise ValueError("data needs at least one sampler")
        if self.n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {self.n_samples}")
        if self.shapes is not None and len(self.shapes) != len(self.samplers):
            raise ValueError(f"{len(self.shapes)} shapes for {len(self.samplers)} samplers")

    @property
    def dims(self) -> tuple[int, ...]:
        """``d_k`` of every marginal (from one traced sample; no data is drawn)."""
        return tuple(int(jax.eval_shape(lambda k, s=s: s(k, 1), jax.random.PRNGKey(0)).shape[-1]) for s in self.samplers)

    @property
    def point_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shape of one point of every marginal (``(d_k,)`` unless ``shapes`` says otherwise)."""
        if self.shapes is None:
            return tuple((d,) for d in self.dims)
        return tuple(tuple(int(s) for s in shape) for shape in self.shapes)

    def pools(self, key: jax.Array) -> tuple[jax.Array, ...] | None:
        """The fixed data sets ``[n_samples, d_k]`` (None when ``n_samples == 0``)."""
        if not self.n_samples:
            return None
        keys = jax.random.split(key, len(self.samplers))
        return tuple(s(k, self.n_samples) for s, k in zip(self.samplers, keys))

    def batch(self, pools, key: jax.Array, n: int) -> tuple[jax.Array, ...]:
        """K batches ``[n, d_k]``: rows of ``pools`` (with replacement), or fresh samples."""
        keys = jax.random.split(key, len(self.samplers))
        if pools is None:
            return tuple(s(k, n) for s, k in zip(self.samplers, keys))
        return tuple(p[jax.random.randint(k, (n,), 0, p.shape[0])] for p, k in zip(pools, keys))
