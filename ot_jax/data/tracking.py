"""Multi-object tracking without identities (generated; nothing is downloaded).

``n_objects`` points move in the plane under one smooth affine dynamics,
``x_{t+1} = [x_t, 1] @ dynamics + process noise``: a spiral, ``contraction * R(angle)``
around ``center`` (a rotation by ``angle`` radians per frame, shrinking by
``contraction``). Each frame is observed as an unordered set of detections (shuffled,
with detection noise): which detection of frame ``t + 1`` continues which detection of
frame ``t`` is lost. Fitting the dynamics from the detections alone is regression
without correspondence, one block per pair of frames (:mod:`ot_jax.tools.tracking`).

With ``angle * radius`` larger than the objects' spacing (about ``radius /
sqrt(n_objects)``), the nearest detection in the next frame is usually another object:
a tracker that links nearest neighbours switches identities, one that knows the
dynamics does not.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Tracks", "moving_objects"]


class Tracks(NamedTuple):
    """Trajectories and their identity-free detections (a pytree of arrays).

    Attributes:
      positions: ``[T, K, 2]`` true positions, object ``k`` in column ``k``.
      detections: ``[T, K, 2]`` per frame, the positions shuffled plus detection noise.
      identity: ``[T, K]`` int32, ``detections[t, j]`` is a detection of object ``identity[t, j]``
        (for scoring only).
      dynamics: ``[3, 2]`` the true affine map, ``x_{t+1} = [x_t, 1] @ dynamics`` (+ noise).
    """

    positions: jax.Array
    detections: jax.Array
    identity: jax.Array
    dynamics: jax.Array


def spiral(angle: float, contraction: float, center=(0.0, 0.0)) -> jax.Array:
    """``[3, 2]`` the affine map of a rotation by ``angle`` shrinking by ``contraction`` around
    ``center``: ``[x, 1] @ map = center + contraction * R(angle) (x - center)``."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    a = contraction * jnp.array([[c, s], [-s, c]])  # row-vector convention: x @ a rotates x by +angle
    center = jnp.asarray(center, a.dtype)
    return jnp.concatenate([a, (center - center @ a)[None]], axis=0)


def moving_objects(key: jax.Array, n_objects: int, n_frames: int, *, angle: float = 0.3,
                   contraction: float = 0.99, center=(0.0, 0.0), radius: float = 1.0,
                   process_noise: float = 0.01, detection_noise: float = 0.01) -> Tracks:
    """``n_objects`` objects over ``n_frames`` frames (module docstring); starts uniform in the
    disc of ``radius`` around ``center``. Deterministic given ``key``.

    Examples:
        >>> tracks = moving_objects(jax.random.PRNGKey(0), 5, 4)
        >>> tracks.detections.shape, tracks.identity.shape
        ((4, 5, 2), (4, 5))
    """
    if n_objects < 1 or n_frames < 2:
        raise ValueError(f"moving_objects: needs n_objects >= 1 and n_frames >= 2, got {n_objects}, {n_frames}")
    if process_noise < 0 or detection_noise < 0:
        raise ValueError(f"moving_objects: noise levels must be >= 0, got process_noise={process_noise}, "
                         f"detection_noise={detection_noise}")
    k_start, k_angle, k_process, k_detect, k_perm = jax.random.split(key, 5)
    dynamics = spiral(angle, contraction, center)
    r = radius * jnp.sqrt(jax.random.uniform(k_start, (n_objects,)))
    phi = 2 * jnp.pi * jax.random.uniform(k_angle, (n_objects,))
    x0 = jnp.asarray(center, r.dtype) + jnp.stack([r * jnp.cos(phi), r * jnp.sin(phi)], 1)
    noise = process_noise * jax.random.normal(k_process, (n_frames - 1, n_objects, 2), r.dtype)

    def step(x, w):
        x = x @ dynamics[:2] + dynamics[2] + w
        return x, x

    _, rest = jax.lax.scan(step, x0, noise)
    positions = jnp.concatenate([x0[None], rest], axis=0)
    identity = jax.vmap(lambda k: jax.random.permutation(k, n_objects))(jax.random.split(k_perm, n_frames))
    identity = identity.astype(jnp.int32)
    shuffled = jnp.take_along_axis(positions, identity[..., None], axis=1)
    detections = shuffled + detection_noise * jax.random.normal(k_detect, shuffled.shape, r.dtype)
    return Tracks(positions, detections, identity, dynamics)
