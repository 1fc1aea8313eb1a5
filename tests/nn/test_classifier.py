"""ot_jax.nn.Classifier: logits = decision(embed(x)), shapes, and bad arguments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ot_jax.nn import Classifier


def test_logits_are_the_decision_of_the_embedding():
    model = Classifier(12, 5, embed_dim=4, hidden=[16, 8], rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 12))
    e = model.embed(x)
    assert e.shape == (7, 4) and model(x).shape == (7, 5)
    np.testing.assert_allclose(model(x), e @ model.decision.kernel[...] + model.decision.bias[...], rtol=1e-5)
    assert model(x[0]).shape == (5,)  # one point


@pytest.mark.parametrize("kwargs, match", [
    ({"in_features": 0, "n_classes": 3}, "in_features"),
    ({"in_features": 4, "n_classes": 1}, "n_classes must be >= 2"),
    ({"in_features": 4, "n_classes": 3, "embed_dim": 0}, "embed_dim"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Classifier(**kwargs, rngs=nnx.Rngs(0))
