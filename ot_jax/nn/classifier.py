"""A classifier split into an embedding network and a decision layer, ``D = D_c ∘ D_e``
(the classifiers of DASPOT, thesis §3.5: the transport cost is measured between embeddings)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from ot_jax.nn._util import check_features as _check_features, float_dtype
from ot_jax.nn.mlp import MLP

__all__ = ["Classifier"]


class Classifier(nnx.Module):
    """``x: [..., in_features] -> logits [..., n_classes]`` as ``decision(embed(x))``.

    ``embed`` is an :class:`~ot_jax.nn.MLP` ``in_features -> hidden -> embed_dim`` with
    ``activation`` after every layer (the embedding is the last hidden representation),
    ``decision`` one affine layer ``embed_dim -> n_classes``. Layers: ``self.embedding``,
    ``self.decision``.
    """

    def __init__(self, in_features: int, n_classes: int, *, embed_dim: int = 32, hidden: Sequence[int] = (128,),
                 activation: str = "leaky_relu", param_dtype=None, rngs: nnx.Rngs):
        in_features, n_classes, embed_dim = _check_features("Classifier", in_features=in_features,
                                                            n_classes=n_classes, embed_dim=embed_dim)
        if n_classes < 2:
            raise ValueError(f"Classifier: n_classes must be >= 2, got {n_classes}")
        self.in_features, self.n_classes, self.embed_dim = in_features, n_classes, embed_dim
        self.embedding = MLP(in_features, embed_dim, hidden=hidden, activation=activation,
                             output_activation=activation, param_dtype=param_dtype, rngs=rngs)
        self.decision = nnx.Linear(embed_dim, n_classes, param_dtype=float_dtype(param_dtype), rngs=rngs)

    def embed(self, x: jax.Array) -> jax.Array:
        """``x: [..., in_features] -> [..., embed_dim]``, the embedding ``D_e(x)``."""
        return self.embedding(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., in_features] -> [..., n_classes]`` logits ``D_c(D_e(x))``."""
        return self.decision(self.embed(x))
