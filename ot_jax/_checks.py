"""Input checks shared by every package of ot-jax (private: import from here, not re-exported).

Static facts (shapes, emptiness) are checked with plain Python exceptions before
tracing. Value facts (signs, finiteness, equal mass, epsilon > 0) raise a
``ValueError`` at once when the inputs are concrete; inside ``jit``/``vmap`` they
cannot raise, so they become a traced ``invalid`` flag that solvers turn into
``Status.INVALID_INPUT`` (and an exception under ``throw=True``).

Concrete values are checked with NumPy, not ``jax.numpy``: an eager ``jnp`` check
compiles one small XLA program per operation and shape (~30 ms each on a CPU), which
made the first call of a solver on a new shape pay for a dozen of them. The flags are
then NumPy booleans; under a trace they are traced booleans, as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_weights", "check_positive", "check_points", "check_same_dim", "check_point_pair", "check_int_at_least", "is_concrete",
           "concrete_true", "all_finite"]


def is_concrete(*xs) -> bool:
    """True when no argument is a tracer (so its values can be inspected now)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def concrete_true(flag) -> bool:
    """``bool(flag)`` when ``flag`` is concrete, else False.

    Test the computed flag itself: inside ``jit`` even operations on concrete
    inputs are staged, so concrete inputs do not make a concrete flag.
    """
    return is_concrete(flag) and bool(flag)


def _on_host(x) -> bool:
    """True for concrete values that live in this process's host memory (NumPy, Python,
    CPU arrays); False for tracers, accelerator arrays and arrays spread over several
    processes (multi-host), which are checked by a compiled reduction instead."""
    if isinstance(x, jax.core.Tracer):
        return False
    if isinstance(x, jax.Array):
        return x.is_fully_addressable and all(d.platform == "cpu" for d in x.devices())
    return True


def all_finite(*arrays):
    """Scalar bool: every entry of every array is finite.

    A NumPy bool for host arrays (no compiled op), a traced or device bool otherwise
    (an accelerator's array is checked where it lives, not copied to the host).
    """
    if all(_on_host(x) for x in arrays):
        return np.bool_(all(np.all(np.isfinite(np.asarray(x))) for x in arrays))
    flags = [jnp.all(jnp.isfinite(x)) for x in arrays]
    out = flags[0]
    for flag in flags[1:]:
        out = out & flag
    return out


def _mass_rtol(dtype) -> float:
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-9


def check_weights(a, b, sizes, dtype, solver: str,
                  owners=("the geometry has {} rows (n)", "the geometry has {} columns (m)"), balanced: bool = True):
    """Validate weights ``a: [n]``, ``b: [m]`` (None means uniform and stays None).

    Returns ``(a, b, invalid)`` with the weights cast to ``dtype``. Shape mismatches
    raise always; non-finite or negative weights, zero mass and unequal total mass
    raise when the inputs are concrete and set the traced ``invalid`` flag otherwise.
    ``owners`` name what the sizes belong to in the shape error; ``balanced=False``
    (unbalanced transport) skips the equal-mass check.
    """
    out, masses, invalid = [], [], np.bool_(False)
    for name, w, size, owner in (("a", a, sizes[0], owners[0]), ("b", b, sizes[1], owners[1])):
        if w is None:
            out.append(None)
            masses.append(1.0)
            continue
        if not isinstance(w, (jax.Array, np.ndarray)):
            w = np.asarray(w)
        if w.ndim != 1 or w.shape[0] != size:
            raise ValueError(
                f"{solver}: weights {name} have shape {tuple(w.shape)} but {owner.format(size)}; "
                f"expected {name} of shape ({size},)"
            )
        if is_concrete(w) and (not isinstance(w, jax.Array) or w.is_fully_addressable):
            w_np = np.asarray(w).astype(dtype)
            if not np.all(np.isfinite(w_np)):
                raise ValueError(f"{solver}: weights {name} contain NaN or inf")
            if np.any(w_np < 0):
                raise ValueError(f"{solver}: weights {name} are negative at index {int(np.argmin(w_np))} "
                                 f"(value {w_np.min():.3g}); weights must be >= 0")
            mass = float(np.sum(w_np))
            if mass <= 0:
                raise ValueError(f"{solver}: weights {name} have zero total mass")
            w = jnp.asarray(w_np)
        else:
            w = jnp.asarray(w).astype(dtype)
            mass = jnp.sum(w)
            invalid = invalid | jnp.any(~jnp.isfinite(w)) | jnp.any(w < 0) | (mass <= 0)
        out.append(w)
        masses.append(mass)
    mass_a, mass_b = masses
    if not balanced:
        return out[0], out[1], invalid
    if isinstance(mass_a, float) and isinstance(mass_b, float):
        if abs(mass_a - mass_b) > _mass_rtol(dtype) * max(mass_a, mass_b):
            raise ValueError(
                f"{solver}: unequal total mass, sum(a) = {mass_a:.10g} but sum(b) = {mass_b:.10g}; "
                "balanced OT needs equal masses (normalise both to 1; None means uniform with mass 1)"
            )
        return out[0], out[1], invalid
    unequal = jnp.abs(mass_a - mass_b) > _mass_rtol(dtype) * jnp.maximum(mass_a, mass_b)
    return out[0], out[1], invalid | unequal


def check_positive(value, name: str, solver: str) -> jax.Array:
    """Return a traced flag ``value <= 0 or not finite``; raise now if concrete and bad."""
    if is_concrete(value):
        v = np.asarray(value)
        if not (np.isfinite(v) & (v > 0)):
            raise ValueError(f"{solver}: {name} must be a finite number > 0, got {float(v)}")
        return np.bool_(False)
    value = jnp.asarray(value)
    return ~(jnp.isfinite(value) & (value > 0))


def check_points(x, name: str, fn: str, batched: bool = False) -> jax.Array:
    """``x`` as a floating array of points ``[n, d]`` (or ``[B, n, d]`` when ``batched``).

    Raises ``ValueError`` naming ``fn`` and ``name`` for a wrong rank, an empty
    cloud and (for concrete inputs) NaN/inf values.
    """
    x = jnp.asarray(x)
    ndims = (2, 3) if batched else (2,)
    if x.ndim not in ndims:
        want = "[n, d] (or [B, n, d])" if batched else "[n, d]"
        raise ValueError(f"{fn}: {name} must be an array of points {want}, got shape {tuple(x.shape)}")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {tuple(x.shape)}); need at least one point of dimension >= 1")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    # concrete_true, not jnp: inside a trace even operations on concrete inputs are staged.
    if is_concrete(x) and concrete_true(~all_finite(x)):
        raise ValueError(f"{fn}: {name} contains NaN or inf")
    return x


def check_same_dim(x, y, fn: str):
    """Raise unless the point clouds ``x: [..., d]`` and ``y: [..., d]`` share ``d``."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"{fn}: x has dimension d = {x.shape[-1]} but y has d = {y.shape[-1]}; they must match")


def check_point_pair(x, y, names: tuple[str, str], fn: str) -> tuple[jax.Array, jax.Array]:
    """Two point clouds ``[n, d]`` and ``[m, d]`` checked (:func:`check_points`, :func:`check_same_dim`)
    and promoted to one floating dtype; ``names`` name them in the messages."""
    x = check_points(x, names[0], fn)
    y = check_points(y, names[1], fn)
    check_same_dim(x, y, fn)
    dtype = jnp.result_type(x, y)
    return x.astype(dtype), y.astype(dtype)


def check_int_at_least(value, name: str, fn: str, low: int = 1, allow_none: bool = True):
    """``int(value)`` after checking it is an integer ``>= low`` (``None`` passes when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_unit_mass(w, name: str, fn: str):
    """Traced flag ``|sum(w) - 1| > 1e-6`` (for ``INVALID_INPUT`` inside ``jit``); raises now when concrete."""
    off = jnp.abs(jnp.sum(w) - 1.0) > 1e-6
    if concrete_true(off):
        raise ValueError(f"{fn}: {name} must sum to 1, got {float(jnp.sum(w)):.10g}")
    return off
