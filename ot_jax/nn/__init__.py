"""Flax NNX modules of the trainers (SPOT, DASPOT, WGAN, density recovery, ROBOT, SOFT).

Conventions: data are flat vectors (a batch is ``[B, d]``; images are flattened
C-order from ``[H, W, C]`` and image modules take ``image_shape=(H, W, C)``);
every module is a :class:`flax.nnx.Module` built with ``rngs=nnx.Rngs(...)``;
``activation`` arguments are names resolved by :func:`activation`.

Spectral normalisation (Miyato et al., 2018) leaves the raw weights untouched:
the power-iteration vectors are :class:`SpectralVector` variables (not
``nnx.Param``), the forward pass is pure, and :func:`power_iteration` refines the
estimates in place, once per training step.
"""

from ot_jax.nn.activations import ACTIVATIONS, activation
from ot_jax.nn.classifier import Classifier
from ot_jax.nn.conv import ConvCritic, ConvDecoder, ImageGenerator
from ot_jax.nn.flow import FlowGenerator, VectorField
from ot_jax.nn.mlp import MLP, Critic, Generator
from ot_jax.nn.seq2seq import Seq2SeqGRU
from ot_jax.nn.spectral import (
    SpectralConv,
    SpectralLayer,
    SpectralLinear,
    SpectralVector,
    power_iteration,
    spectral_norms,
)

__all__ = [
    "activation",
    "ACTIVATIONS",
    "SpectralVector",
    "SpectralLayer",
    "SpectralLinear",
    "SpectralConv",
    "power_iteration",
    "spectral_norms",
    "MLP",
    "Critic",
    "Generator",
    "ConvCritic",
    "ConvDecoder",
    "ImageGenerator",
    "VectorField",
    "FlowGenerator",
    "Seq2SeqGRU",
    "Classifier",
]
