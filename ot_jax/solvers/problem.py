"""Input checking and normalisation shared by every solver.

Static facts (shapes, emptiness) are checked with plain Python exceptions before
tracing. Value facts (signs, finiteness, equal mass, epsilon > 0) raise a
``ValueError`` at once when the inputs are concrete; inside ``jit``/``vmap`` they
cannot raise, so they become a traced ``invalid`` flag that solvers turn into
``Status.INVALID_INPUT`` (and an exception under ``throw=True``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.geometry.geometry import AbstractGeometry, as_geometry

__all__ = ["prepare", "check_positive", "is_concrete"]


def is_concrete(*xs) -> bool:
    """True when no argument is a tracer (so its values can be inspected now)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def _mass_rtol(dtype) -> float:
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-9


def _weights(w, size: int, name: str, dtype) -> jax.Array:
    if w is None:
        return jnp.full((size,), 1.0 / size, dtype=dtype)
    w = jnp.asarray(w)
    if w.ndim != 1 or w.shape[0] != size:
        side = "rows (n)" if name == "a" else "columns (m)"
        raise ValueError(
            f"weights {name} have shape {tuple(w.shape)} but the geometry has {size} {side}; "
            f"expected {name} of shape ({size},)"
        )
    return w.astype(dtype)


def prepare(geom, a, b, solver: str):
    """Return ``(geom, a, b, invalid)``: a geometry, weights in its dtype, a traced flag.

    Args:
      geom: ``[n, m]`` cost array or a geometry.
      a: ``[n]`` weights or None (uniform); b: ``[m]`` weights or None.
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
    a = _weights(a, n, "a", dtype)
    b = _weights(b, m, "b", dtype)

    mass_a, mass_b = jnp.sum(a), jnp.sum(b)
    rtol = _mass_rtol(dtype)
    bad_a = jnp.any(~jnp.isfinite(a)) | jnp.any(a < 0) | (mass_a <= 0)
    bad_b = jnp.any(~jnp.isfinite(b)) | jnp.any(b < 0) | (mass_b <= 0)
    unequal = jnp.abs(mass_a - mass_b) > rtol * jnp.maximum(mass_a, mass_b)
    bad_cost = ~geom.all_finite()
    invalid = bad_a | bad_b | unequal | bad_cost

    if is_concrete(a, b, geom) and bool(invalid):
        for name, w in (("a", a), ("b", b)):
            w_np = np.asarray(w)
            if not np.all(np.isfinite(w_np)):
                raise ValueError(f"{solver}: weights {name} contain NaN or inf")
            if np.any(w_np < 0):
                raise ValueError(f"{solver}: weights {name} are negative at index {int(np.argmin(w_np))} "
                                 f"(value {w_np.min():.3g}); weights must be >= 0")
            if w_np.sum() <= 0:
                raise ValueError(f"{solver}: weights {name} have zero total mass")
        if bool(unequal):
            raise ValueError(
                f"{solver}: unequal total mass, sum(a) = {float(mass_a):.10g} but sum(b) = {float(mass_b):.10g}; "
                "balanced OT needs equal masses (normalise both to 1)"
            )
        what = "costs" if type(geom).__name__ == "Geometry" else "points"
        raise ValueError(f"{solver}: the {what} contain NaN or inf")
    return geom, a, b, invalid


def check_positive(value, name: str, solver: str) -> jax.Array:
    """Return a traced flag ``value <= 0 or not finite``; raise now if concrete and bad."""
    value = jnp.asarray(value)
    bad = ~(jnp.isfinite(value) & (value > 0))
    if is_concrete(value) and bool(bad):
        raise ValueError(f"{solver}: {name} must be a finite number > 0, got {float(value)}")
    return bad
