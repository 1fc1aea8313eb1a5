"""Helpers shared by the :mod:`ot_jax.nn` modules: argument checks (plain Python, before any tracing) and the kernel init."""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp

# standard deviation of a standard normal truncated to [-2, 2] (as in jax.nn.initializers)
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def check_features(owner: str, **features) -> tuple[int, ...]:
    """The keyword values as Python ints, in order; ``ValueError`` unless each is a positive integer.

    Integer-like values (NumPy integers, OmegaConf ints) are accepted; bools and floats are not.
    """
    out = []
    for name, value in features.items():
        try:
            if isinstance(value, bool):
                raise TypeError
            value = operator.index(value)
        except TypeError:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}") from None
        if value < 1:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
        out.append(value)
    return tuple(out)


def float_dtype(param_dtype):
    """``param_dtype``, or JAX's default float (float32; float64 under ``jax_enable_x64``) when None."""
    if param_dtype is None:
        return jnp.dtype(jnp.result_type(float))
    dtype = jnp.dtype(param_dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"param_dtype must be a floating dtype, got {dtype}")
    return dtype


def lecun_normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun-normal kernel init, ``[..., fan_in_axes..., out]``: the same draws as ``nnx.initializers.lecun_normal()``.

    Truncated normal on [-2, 2] scaled to variance ``1 / fan_in`` with
    ``fan_in = prod(shape[:-1])`` (LeCun et al., 1998, "Efficient BackProp"). The
    values are drawn as a flat vector and reshaped: with JAX's partitionable
    threefry these are the same numbers flax draws for the full shape (up to one
    float32 rounding of the scale), but XLA compiles the rank-1 sampler several
    times faster than a rank-4 one on CPU, which matters for conv kernels.
    """
    shape = tuple(int(s) for s in shape)
    fan_in = math.prod(shape[:-1])
    stddev = math.sqrt(1.0 / fan_in) / _TRUNCATED_NORMAL_STD
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (math.prod(shape),), dtype)
    return (flat * jnp.asarray(stddev, dtype)).reshape(shape)
