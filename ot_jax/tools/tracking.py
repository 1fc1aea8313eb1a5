"""Fitting the dynamics of objects observed without identities, and linking the detections.

The detections ``[T, K, 2]`` of :func:`ot_jax.data.tracking.moving_objects` give ``T - 1``
regression-without-correspondence blocks: inputs ``x = detections[t]``, responses
``y = detections[t + 1]``, the affine dynamics ``A: [3, 2]`` to fit, the pairing unknown.

* ROBOT's fit of the same dynamics, through OT: :mod:`ot_jax.losses.tracking`.
* :func:`alt_min_dynamics`: the Hungarian tracker with a fitted model (AltMin): link every
  frame pair by exact assignment under the current ``A``, refit ``A`` by least squares on
  the links, until the links repeat. From the identity map it starts as the nearest-neighbour
  tracker.
* :func:`link`, :func:`identity_switch_rate`, :func:`one_step_error`: the links a model implies
  and their scores.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ot_jax.tools.regression import assign

__all__ = ["affine", "identity_dynamics", "link", "identity_switch_rate", "one_step_error", "fit_on_links",
           "alt_min_dynamics"]


def affine(dynamics, x):
    """``[..., 2]`` the prediction ``[x, 1] @ dynamics`` of ``x: [..., 2]``, ``dynamics: [3, 2]``."""
    return x @ dynamics[:-1] + dynamics[-1]


def identity_dynamics(dtype=None) -> jax.Array:
    """``[3, 2]`` the map that predicts no motion (the nearest-neighbour tracker's model)."""
    return jnp.concatenate([jnp.eye(2, dtype=dtype), jnp.zeros((1, 2), dtype)], axis=0)


def _costs(dynamics, detections) -> np.ndarray:
    pred = np.asarray(affine(np.asarray(dynamics), np.asarray(detections[:-1])))  # [T-1, K, 2]
    nxt = np.asarray(detections[1:])
    return np.sum((pred[:, :, None] - nxt[:, None]) ** 2, -1)  # [T-1, K, K]: i of frame t, j of t+1


def link(dynamics, detections) -> np.ndarray:
    """``[T - 1, K]`` int: ``links[t, i]`` is the detection of frame ``t + 1`` that continues
    detection ``i`` of frame ``t``, by exact assignment of ``||[x_i, 1] A - y_j||^2`` per frame."""
    return np.stack([assign(c) for c in _costs(dynamics, detections)])


def identity_switch_rate(links, identity) -> float:
    """Share of the ``(T - 1) K`` links that join detections of two different objects."""
    identity = np.asarray(identity)
    nxt = np.take_along_axis(identity[1:], np.asarray(links), axis=1)
    return float(np.mean(nxt != identity[:-1]))


def one_step_error(dynamics, positions) -> float:
    """RMS error of ``[x_t, 1] A`` against ``x_{t+1}`` on true trajectories ``positions: [T, K, 2]``
    (identities known): the dynamics' trajectory error."""
    positions = np.asarray(positions)
    pred = np.asarray(affine(np.asarray(dynamics), positions[:-1]))
    return float(np.sqrt(np.mean(np.sum((pred - positions[1:]) ** 2, -1))))


def fit_on_links(detections, links) -> np.ndarray:
    """``[3, 2]`` least squares of the next detections on ``[x, 1]`` along ``links: [T - 1, K]``."""
    detections = np.asarray(detections, np.float64)
    x = detections[:-1].reshape(-1, 2)
    y = np.take_along_axis(detections[1:], np.asarray(links)[..., None], axis=1).reshape(-1, 2)
    design = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return np.linalg.lstsq(design, y, rcond=None)[0]


def alt_min_dynamics(detections, *, dynamics0=None, max_iters: int = 50) -> tuple[np.ndarray, np.ndarray, int]:
    """AltMin / Hungarian tracker (module docstring) from ``dynamics0`` (default: no motion).

    Returns:
      ``(dynamics [3, 2], links [T - 1, K], iterations)``.
    """
    dynamics = np.asarray(identity_dynamics(np.float64) if dynamics0 is None else dynamics0, np.float64)
    links, it = None, 0
    for it in range(1, max_iters + 1):
        new = link(dynamics, detections)
        if links is not None and np.array_equal(new, links):
            break
        links = new
        dynamics = fit_on_links(detections, links)
    return dynamics, links, it
