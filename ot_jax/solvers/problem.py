"""Normalise a solver's inputs: a geometry, weights in its dtype, and a traced health flag.

Static facts (shapes, emptiness) are checked with plain Python exceptions before
tracing. Value facts (signs, finiteness, equal mass, epsilon > 0) raise a
``ValueError`` at once when the inputs are concrete; inside ``jit``/``vmap`` they
cannot raise, so they become a traced ``invalid`` flag that solvers turn into
``Status.INVALID_INPUT`` (and an exception under ``throw=True``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ot_jax._checks import check_weights, concrete_true
from ot_jax.geometry import AbstractGeometry, as_geometry

__all__ = ["prepare"]


def prepare(geom, a, b, solver: str, *, balanced: bool = True):
    """Return ``(geom, a, b, invalid)``: a geometry, weights in its dtype, a traced flag.

    Args:
      geom: ``[n, m]`` cost array or a geometry.
      a: ``[n]`` weights or None (uniform); b: ``[m]`` weights or None.
      balanced: False for unbalanced transport (the masses may differ).
    Raises:
      ValueError: on empty inputs, shape mismatch, and (for concrete inputs)
        negative/non-finite weights, zero or unequal total mass, non-finite costs.
    """
    geom = as_geometry(geom)
    if not isinstance(geom, AbstractGeometry):  # pragma: no cover - as_geometry guarantees it
        raise TypeError(f"{solver}: unsupported geometry {type(geom).__name__}")
    n, m = geom.shape
    if n == 0 or m == 0:
        raise ValueError(f"{solver}: empty problem, the geometry has shape ({n}, {m})")
    dtype = geom.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{solver}: costs/points must be floating point, got {dtype}")
    a, b, invalid = check_weights(a, b, (n, m), dtype, solver, balanced=balanced)
    a = jnp.asarray(np.full((n,), 1.0 / n, dtype=dtype)) if a is None else a
    b = jnp.asarray(np.full((m,), 1.0 / m, dtype=dtype)) if b is None else b
    bad_cost = ~geom.all_finite()
    if concrete_true(bad_cost):
        what = "costs" if type(geom).__name__ == "Geometry" else "points"
        raise ValueError(f"{solver}: the {what} contain NaN or inf")
    invalid = invalid | bad_cost
    return geom, a, b, invalid
