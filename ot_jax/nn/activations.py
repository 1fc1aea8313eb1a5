"""Activation functions addressed by name.

Modules in :mod:`ot_jax.nn` take their ``activation`` arguments as strings (which
keeps them static, hashable configuration) and resolve them with
:func:`activation`.

Examples:
    >>> import jax.numpy as jnp
    >>> from ot_jax.nn import activation
    >>> [round(float(v), 3) for v in activation("leaky_relu")(jnp.array([-1.0, 2.0]))]
    [-0.2, 2.0]
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["activation", "ACTIVATIONS"]


def _leaky_relu(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, negative_slope=0.2)


def _identity(x: jax.Array) -> jax.Array:
    return x


#: name -> elementwise function. ``leaky_relu`` has negative slope 0.2 (the usual
#: GAN choice); ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``softplus``,
#: ``identity`` are 1-Lipschitz, ``elu`` (alpha=1) too, ``silu`` is ~1.1-Lipschitz.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "leaky_relu": _leaky_relu,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "identity": _identity,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the elementwise activation called ``name`` (``x: [...] -> [...]``).

    Valid names: ``leaky_relu`` (negative slope 0.2), ``relu``, ``elu``, ``tanh``,
    ``silu``, ``softplus``, ``sigmoid``, ``identity``. Anything else raises
    ``ValueError`` listing the valid names.
    """
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; valid names are {', '.join(sorted(ACTIVATIONS))}"
        ) from None
