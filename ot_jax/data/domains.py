"""Domain adaptation toys: a labelled source and a shifted target (generated; nothing is downloaded).

* :func:`rotated_moons`: the standard OTDA toy. Two interleaving moons (class 0 the upper, class 1
  the lower, as :func:`ot_jax.data.two_moons`), the target rotated by ``angle`` degrees
  (counter-clockwise) about the centre of the moons ``(0.5, 0.25)``; rotations past about 40°
  defeat a classifier trained on the source.
* :func:`shifted_gaussians`: ``n_classes`` Gaussian blobs whose means sit on a circle of radius
  ``radius``; the target is the same law translated by ``shift`` along the first axis.

Both return a :class:`Domains`; the target labels ``yt`` are for scoring only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Domains", "rotated_moons", "shifted_gaussians", "MOONS_CENTRE"]

MOONS_CENTRE = (0.5, 0.25)
"""The point the target moons are rotated about."""


class Domains(NamedTuple):
    """A source and a target sample (a pytree of arrays).

    Attributes:
      xs: ``[n, d]`` source samples; ys: ``[n]`` int32 source labels.
      xt: ``[m, d]`` target samples; yt: ``[m]`` int32 target labels (to score methods, not to fit them).
    """

    xs: jax.Array
    ys: jax.Array
    xt: jax.Array
    yt: jax.Array


def _check(n, name, fn):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{fn}: {name} must be an integer >= 1, got {n!r}")


def _moons(key, n, noise, dtype):
    k1, k2, k3 = jax.random.split(key, 3)
    t = jnp.pi * jax.random.uniform(k1, (n,), dtype=dtype)
    lower = jax.random.bernoulli(k2, 0.5, (n,))
    x = jnp.where(lower, 1.0 - jnp.cos(t), jnp.cos(t))
    y = jnp.where(lower, 0.5 - jnp.sin(t), jnp.sin(t))
    points = jnp.stack([x, y], axis=1) + noise * jax.random.normal(k3, (n, 2), dtype=dtype)
    return points, lower.astype(jnp.int32)


def rotated_moons(key, n_source: int, n_target: int | None = None, *, angle: float = 30.0,
                  noise: float = 0.1) -> Domains:
    """Two moons as the source, the same moons rotated by ``angle`` degrees as the target.

    Args:
      key: PRNG key. n_source, n_target: sample sizes (static; ``n_target`` defaults to ``n_source``).
      angle: rotation of the target in degrees, counter-clockwise about :data:`MOONS_CENTRE`.
      noise: standard deviation of the Gaussian noise added to both samples (>= 0).
    """
    fn = "rotated_moons"
    n_target = n_source if n_target is None else n_target
    _check(n_source, "n_source", fn)
    _check(n_target, "n_target", fn)
    if not noise >= 0:
        raise ValueError(f"{fn}: noise must be >= 0, got {noise!r}")
    dtype = jnp.result_type(float)
    ks, kt = jax.random.split(key)
    xs, ys = _moons(ks, n_source, noise, dtype)
    xt, yt = _moons(kt, n_target, noise, dtype)
    theta = math.radians(angle)
    rotation = jnp.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype)
    centre = jnp.array(MOONS_CENTRE, dtype)
    return Domains(xs, ys, (xt - centre) @ rotation.T + centre, yt)


def shifted_gaussians(key, n_source: int, n_target: int | None = None, *, n_classes: int = 3, dim: int = 2,
                      radius: float = 2.0, spread: float = 0.4, shift: float = 3.0) -> Domains:
    """Gaussian blobs, one per class, and the same blobs translated by ``shift`` along the first axis.

    Class ``c`` has mean ``radius * (cos(2 pi c / C), sin(2 pi c / C), 0, ...)`` and covariance
    ``spread^2 I``; the classes take turns (sample ``i`` has class ``i mod n_classes``), so both
    samples hold every class in the same proportion up to one sample.
    """
    fn = "shifted_gaussians"
    n_target = n_source if n_target is None else n_target
    for name, v in (("n_source", n_source), ("n_target", n_target), ("n_classes", n_classes), ("dim", dim)):
        _check(v, name, fn)
    if dim < 2:
        raise ValueError(f"{fn}: dim must be >= 2, got {dim}")
    dtype = jnp.result_type(float)
    angles = 2 * jnp.pi * jnp.arange(n_classes, dtype=dtype) / n_classes
    means = jnp.zeros((n_classes, dim), dtype).at[:, 0].set(radius * jnp.cos(angles)).at[:, 1].set(
        radius * jnp.sin(angles))

    def draw(k, n):
        labels = jnp.arange(n, dtype=jnp.int32) % n_classes
        return means[labels] + spread * jax.random.normal(k, (n, dim), dtype), labels

    ks, kt = jax.random.split(key)
    xs, ys = draw(ks, n_source)
    xt, yt = draw(kt, n_target)
    return Domains(xs, ys, xt.at[:, 0].add(shift), yt)
