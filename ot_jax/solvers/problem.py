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

__all__ = ["prepare", "check_weights", "check_positive", "is_concrete", "concrete_true"]


def is_concrete(*xs) -> bool:
    """True when no argument is a tracer (so its values can be inspected now)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def concrete_true(flag) -> bool:
    """``bool(flag)`` when ``flag`` is concrete, else False.

    Test the computed flag itself: inside ``jit`` even operations on concrete
    inputs are staged, so concrete inputs do not make a concrete flag.
    """
    return is_concrete(flag) and bool(flag)


def _mass_rtol(dtype) -> float:
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-9


def check_weights(a, b, sizes, dtype, solver: str,
                  owners=("the geometry has {} rows (n)", "the geometry has {} columns (m)")):
    """Validate weights ``a: [n]``, ``b: [m]`` (None means uniform and stays None).

    Returns ``(a, b, invalid)`` with the weights cast to ``dtype``. Shape mismatches
    raise always; non-finite or negative weights, zero mass and unequal total mass
    raise when the inputs are concrete and set the traced ``invalid`` flag otherwise.
    ``owners`` name what the sizes belong to in the shape error.
    """
    out, masses, invalid = [], [], jnp.asarray(False)
    for name, w, size, owner in (("a", a, sizes[0], owners[0]), ("b", b, sizes[1], owners[1])):
        if w is None:
            out.append(None)
            masses.append(jnp.asarray(1.0, dtype))
            continue
        w = jnp.asarray(w)
        if w.ndim != 1 or w.shape[0] != size:
            raise ValueError(
                f"{solver}: weights {name} have shape {tuple(w.shape)} but {owner.format(size)}; "
                f"expected {name} of shape ({size},)"
            )
        w = w.astype(dtype)
        mass = jnp.sum(w)
        bad = jnp.any(~jnp.isfinite(w)) | jnp.any(w < 0) | (mass <= 0)
        if concrete_true(bad):
            w_np = np.asarray(w)
            if not np.all(np.isfinite(w_np)):
                raise ValueError(f"{solver}: weights {name} contain NaN or inf")
            if np.any(w_np < 0):
                raise ValueError(f"{solver}: weights {name} are negative at index {int(np.argmin(w_np))} "
                                 f"(value {w_np.min():.3g}); weights must be >= 0")
            raise ValueError(f"{solver}: weights {name} have zero total mass")
        invalid = invalid | bad
        out.append(w)
        masses.append(mass)
    mass_a, mass_b = masses
    unequal = jnp.abs(mass_a - mass_b) > _mass_rtol(dtype) * jnp.maximum(mass_a, mass_b)
    if concrete_true(unequal):
        raise ValueError(
            f"{solver}: unequal total mass, sum(a) = {float(mass_a):.10g} but sum(b) = {float(mass_b):.10g}; "
            "balanced OT needs equal masses (normalise both to 1; None means uniform with mass 1)"
        )
    return out[0], out[1], invalid | unequal


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
    a, b, invalid = check_weights(a, b, (n, m), dtype, solver)
    a = jnp.full((n,), 1.0 / n, dtype=dtype) if a is None else a
    b = jnp.full((m,), 1.0 / m, dtype=dtype) if b is None else b
    bad_cost = ~geom.all_finite()
    if concrete_true(bad_cost):
        what = "costs" if type(geom).__name__ == "Geometry" else "points"
        raise ValueError(f"{solver}: the {what} contain NaN or inf")
    invalid = invalid | bad_cost
    return geom, a, b, invalid


def check_positive(value, name: str, solver: str) -> jax.Array:
    """Return a traced flag ``value <= 0 or not finite``; raise now if concrete and bad."""
    value = jnp.asarray(value)
    bad = ~(jnp.isfinite(value) & (value > 0))
    if concrete_true(bad):
        raise ValueError(f"{solver}: {name} must be a finite number > 0, got {float(value)}")
    return bad
