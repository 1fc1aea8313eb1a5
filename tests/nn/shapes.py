"""Shared helper of the nn tests: build and run a module abstractly (nothing is compiled)."""

import jax
import jax.numpy as jnp


def abstract_run(make, *input_shapes):
    """Output shapes of ``make()(*inputs)``, built and run abstractly; and the abstract module."""
    box = {}

    def run(*xs):
        box["model"] = model = make()
        return model(*xs)

    out = jax.eval_shape(run, *[jax.ShapeDtypeStruct(s, jnp.float64) for s in input_shapes])
    return jax.tree.map(lambda s: s.shape, out), box["model"]
