"""The data of a trainer: K marginals, each a sampler ``f(key, n) -> [n, d_k]``, a
labelled data set with a held-out split (:class:`Labeled`, the kNN classifiers), or a
labelled source domain with an unlabelled target domain (:class:`Adaptation`, DASPOT).

``conf/data/*.yaml`` instantiate :class:`Marginals` with samplers from
:mod:`ot_jax.data` (``_partial_: true`` nodes), or :class:`Labeled` from a loader
(:func:`labeled_digits`), or :class:`Adaptation` (:func:`digit_adaptation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

__all__ = ["Marginals", "Labeled", "labeled_digits", "Adaptation", "digit_adaptation"]

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


@dataclasses.dataclass(frozen=True)
class Labeled:
    """A classification data set: training points and held-out test points with integer labels.

    Attributes:
      x_train: ``[N, d]`` training points; y_train: ``[N]`` their labels in ``0..n_classes-1``.
      x_test: ``[M, d]`` held-out points; y_test: ``[M]`` their labels.
      n_classes: number of classes.
      name: display name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str = "data"

    def __post_init__(self):
        for side in ("train", "test"):
            x, y = getattr(self, f"x_{side}"), getattr(self, f"y_{side}")
            if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] < 1:
                raise ValueError(f"Labeled: x_{side} must be [n, d] and y_{side} [n], got {x.shape} and {y.shape}")
            if y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(f"Labeled: y_{side} must lie in 0..{self.n_classes - 1}")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ValueError(f"Labeled: train and test dimensions differ ({self.x_train.shape[1]} vs "
                             f"{self.x_test.shape[1]})")

    @property
    def dim(self) -> int:
        """Dimension ``d`` of a point."""
        return int(self.x_train.shape[1])


def labeled_digits(*, transform: str = "none") -> Labeled:
    """scikit-learn's 8x8 digits as a :class:`Labeled` set: the fixed stratified split of
    :func:`ot_jax.data.digits.load_digits` (1438 training, 359 test images, ``[n, 64]`` in ``[0, 1]``),
    in jax's default float dtype, independent of the run's seed."""
    from ot_jax.data.digits import load_digits

    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    x_train, y_train = load_digits(transform=transform, split="train", dtype=dtype)
    x_test, y_test = load_digits(transform=transform, split="test", dtype=dtype)
    return Labeled(x_train, y_train, x_test, y_test, n_classes=10,
                   name="digits" if transform == "none" else f"{transform} digits")


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """Unsupervised domain adaptation data: labelled source images, unlabelled target images, and a
    held-out labelled target test set (its labels are for evaluation only).

    Attributes:
      x_source: ``[N_s, d_X]`` source points; y_source: ``[N_s]`` their labels in ``0..n_classes-1``.
      x_target: ``[N_t, d_Y]`` unlabelled target training points.
      x_test: ``[M, d_Y]`` held-out target points; y_test: ``[M]`` their labels.
      shapes: ``(source_shape, target_shape)``, the shape of one point of each domain
        (``(H, W, C)`` for images).
      n_classes: number of classes.
      names: display names of the two domains.
    """

    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shapes: tuple
    n_classes: int
    names: tuple = ("source", "target")

    def __post_init__(self):
        if self.x_source.ndim != 2 or self.y_source.shape != (self.x_source.shape[0],) or self.x_source.shape[0] < 1:
            raise ValueError(f"Adaptation: x_source must be [n, d] and y_source [n], got {self.x_source.shape} "
                             f"and {self.y_source.shape}")
        if self.x_target.ndim != 2 or self.x_target.shape[0] < 1:
            raise ValueError(f"Adaptation: x_target must be a non-empty [n, d], got {self.x_target.shape}")
        if self.x_test.shape[1:] != self.x_target.shape[1:] or self.y_test.shape != (self.x_test.shape[0],):
            raise ValueError(f"Adaptation: x_test must be [m, {self.x_target.shape[1]}] and y_test [m], got "
                             f"{self.x_test.shape} and {self.y_test.shape}")
        for name in ("x_source", "x_target", "x_test"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"Adaptation: {name} has NaN or infinite values")
        for name in ("y_source", "y_test"):
            y = getattr(self, name)
            if y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(f"Adaptation: {name} must lie in 0..{self.n_classes - 1}")
        for shape, x, name in zip(self.shapes, (self.x_source, self.x_target), ("source", "target")):
            if int(np.prod(shape)) != x.shape[1]:
                raise ValueError(f"Adaptation: {name} shape {tuple(shape)} does not hold {x.shape[1]} features")

    @property
    def dims(self) -> tuple[int, int]:
        """``(d_X, d_Y)``."""
        return int(self.x_source.shape[1]), int(self.x_target.shape[1])

    @property
    def point_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shape of one point of each domain."""
        return tuple(tuple(int(s) for s in shape) for shape in self.shapes)


def digit_adaptation(*, target: str = "rotated", seed: int = 0) -> Adaptation:
    """scikit-learn's digits (grey 8x8) -> a shifted digit domain (:data:`ot_jax.data.digits.DIGIT_TRANSFORMS`).

    The fixed training split of :func:`ot_jax.data.digits.load_digits` (1438 images) is halved
    (its even rows are the labelled source, its odd rows, moved to ``target``, the unlabelled
    target: no image appears in both domains), and the fixed test split (359 images) moved to
    ``target`` is the held-out target test set. ``seed`` seeds the ``"colored"`` /
    ``"textured"`` transforms. Jax's default float dtype; independent of the run's seed.
    """
    from ot_jax.data.digits import digit_shape, load_digits

    if target == "none":
        raise ValueError("digit_adaptation: target must be a shifted domain, not 'none'")
    dtype = jax.dtypes.canonicalize_dtype(np.float64)
    x, y = load_digits(transform="none", split="train", dtype=dtype)
    xt, _ = load_digits(transform=target, split="train", dtype=dtype, seed=seed)
    x_test, y_test = load_digits(transform=target, split="test", dtype=dtype, seed=seed)
    return Adaptation(x[0::2], y[0::2], xt[1::2], x_test, y_test, shapes=(digit_shape("none"), digit_shape(target)),
                      n_classes=10, names=("digits", f"{target} digits"))
