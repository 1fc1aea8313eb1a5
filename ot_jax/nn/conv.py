"""Small convolutional critics and generators for 8x8 to 28x28 images, on flat vectors.

Images travel as flat vectors ``[B, H*W*C]``, flattened C-order from
``[H, W, C]``; every module takes ``image_shape=(H, W, C)`` and reshapes
internally. The critic follows the SN-DCGAN discriminator of Miyato et al.
(2018), "Spectral normalization for generative adversarial networks" (stride-2
4x4 convolutions, then a linear layer); the decoder follows DCGAN-style
upsampling generators (Radford, Metz & Chintala, 2016) with nearest-neighbour
upsampling + 3x3 convolutions instead of transposed convolutions (Odena, Dumoulin
& Olah, 2016, "Deconvolution and checkerboard artifacts").

Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from ot_jax.nn import ConvCritic, ImageGenerator
    >>> g = ImageGenerator(4, [(8, 8, 1), (8, 8, 1)], hidden=8, channels=(4, 4), rngs=nnx.Rngs(0))
    >>> x, y = g(jnp.zeros((2, 4)))       # two coupled 8x8 grey images, flat
    >>> x.shape
    (2, 64)
    >>> f = ConvCritic((8, 8, 1), channels=(4, 4), rngs=nnx.Rngs(0))
    >>> f(x).shape
    (2,)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ot_jax.nn._util import check_features as _check_features, float_dtype, lecun_normal
from ot_jax.nn.activations import activation as _activation
from ot_jax.nn.spectral import SpectralConv, SpectralLinear

__all__ = ["ConvCritic", "ConvDecoder", "ImageGenerator"]


def _image_shape(owner: str, image_shape) -> tuple[int, int, int]:
    shape = tuple(image_shape)
    if len(shape) != 3:
        raise ValueError(f"{owner}: image_shape must be (H, W, C), got {image_shape!r}")
    return _check_features(owner, H=shape[0], W=shape[1], C=shape[2])


def _channels(owner: str, channels) -> tuple[int, ...]:
    channels = tuple(channels)
    if not channels:
        raise ValueError(f"{owner}: channels must be non-empty")
    return _check_features(owner, **{f"channels[{i}]": c for i, c in enumerate(channels)})


def _unflatten(owner: str, x: jax.Array, image_shape: tuple[int, int, int]) -> jax.Array:
    """``x: [..., H*W*C] -> [N, H, W, C]`` with ``N`` the product of the leading axes."""
    d = image_shape[0] * image_shape[1] * image_shape[2]
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(f"{owner}: expected flat images [..., {d}] for image_shape {image_shape}, "
                         f"got {tuple(x.shape)}")
    return x.reshape(-1, *image_shape)


class ConvCritic(nnx.Module):
    """Convolutional critic ``x: [..., H*W*C] -> [...]`` for small images.

    ``len(channels)`` stride-2 4x4 convolutions (SAME padding, ``activation``
    after each) halve the resolution each time (``H -> ceil(H/2)``), then a
    linear layer maps the flattened features to one number. With
    ``spectral_norm=True`` (default) the layers are :class:`SpectralConv` /
    :class:`SpectralLinear` (Miyato et al., 2018). The convolutions are
    normalised by the norm of their reshaped kernels, not their exact operator
    norm, so the critic is only approximately 1-Lipschitz.
    Layers: ``self.convs`` (an ``nnx.List``), ``self.head``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        channels: Sequence[int] = (32, 64),
        activation: str = "leaky_relu",
        spectral_norm: bool = True,
        kernel_size: int = 4,
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        self.image_shape = _image_shape("ConvCritic", image_shape)
        channels = _channels("ConvCritic", channels)
        (kernel_size,) = _check_features("ConvCritic", kernel_size=kernel_size)
        _activation(activation)
        self.activation = activation
        self.spectral_norm = spectral_norm
        param_dtype = float_dtype(param_dtype)
        h, w, c = self.image_shape
        sizes = (c, *channels)
        convs = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            if spectral_norm:
                conv = SpectralConv(a, b, (kernel_size, kernel_size), strides=2, padding="SAME",
                                    param_dtype=param_dtype, rngs=rngs)
            else:
                conv = nnx.Conv(a, b, (kernel_size, kernel_size), strides=2, padding="SAME",
                                kernel_init=lecun_normal, param_dtype=param_dtype, rngs=rngs)
            convs.append(conv)
            h, w = -(-h // 2), -(-w // 2)
        self.convs = nnx.List(convs)
        n_features = h * w * channels[-1]
        if spectral_norm:
            self.head = SpectralLinear(n_features, 1, param_dtype=param_dtype, rngs=rngs)
        else:
            self.head = nnx.Linear(n_features, 1, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., H*W*C] -> [...]``."""
        batch = x.shape[:-1]
        act = _activation(self.activation)
        h = _unflatten("ConvCritic", x, self.image_shape)
        for conv in self.convs:
            h = act(conv(h))
        return self.head(h.reshape(h.shape[0], -1))[:, 0].reshape(batch)


class ConvDecoder(nnx.Module):
    """Decoder ``z: [..., latent_dim] -> [..., H*W*C]`` (flat images).

    A dense layer to ``[H/2^L, W/2^L, channels[0]]`` (``L = len(channels)``, 2 by
    default, so ``H``, ``W`` must be divisible by 4; ``ValueError`` otherwise),
    then ``L`` x2 upsamplings, each nearest-neighbour resize + 3x3 convolution
    (``channels[i] -> channels[i+1]``, the last one to ``C``), with
    ``activation`` after the dense layer and every convolution but the last,
    and ``output_activation`` (default ``sigmoid``: values in (0, 1)) at the end.
    Layers: ``self.dense``, ``self.convs`` (an ``nnx.List``).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: Sequence[int],
        *,
        channels: Sequence[int] = (64, 32),
        activation: str = "leaky_relu",
        output_activation: str = "sigmoid",
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        (latent_dim,) = _check_features("ConvDecoder", latent_dim=latent_dim)
        self.image_shape = _image_shape("ConvDecoder", image_shape)
        channels = _channels("ConvDecoder", channels)
        _activation(activation), _activation(output_activation)
        h, w, c = self.image_shape
        factor = 2 ** len(channels)
        if h % factor or w % factor:
            raise ValueError(f"ConvDecoder: image height and width must be divisible by {factor} "
                             f"(2 ** len(channels)), got image_shape {self.image_shape}")
        self.latent_dim = latent_dim
        self.activation = activation
        self.output_activation = output_activation
        self.base_shape = (h // factor, w // factor, channels[0])
        param_dtype = float_dtype(param_dtype)
        self.dense = nnx.Linear(latent_dim, self.base_shape[0] * self.base_shape[1] * channels[0],
                                param_dtype=param_dtype, rngs=rngs)
        sizes = (*channels, c)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding="SAME", kernel_init=lecun_normal,
                                        param_dtype=param_dtype, rngs=rngs)
                               for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, z: jax.Array) -> jax.Array:
        """``z: [..., latent_dim] -> [..., H*W*C]``."""
        batch = z.shape[:-1]
        act = _activation(self.activation)
        h = act(self.dense(z.reshape(-1, z.shape[-1]))).reshape(-1, *self.base_shape)
        n = len(self.convs)
        for i, conv in enumerate(self.convs):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest-neighbour x2
            h = conv(h)
            if i < n - 1:
                h = act(h)
        h = _activation(self.output_activation)(h)
        return h.reshape(*batch, -1)


class ImageGenerator(nnx.Module):
    """Coupled generator of ``K >= 1`` image marginals, ``z: [B, latent_dim] -> tuple`` of ``[B, H_k*W_k*C_k]``.

    The image analogue of :class:`~ot_jax.nn.Generator` (SPOT's coupled generator,
    Xie et al., 2019). With ``shared_trunk=True`` (default) a shared dense layer
    ``latent_dim -> hidden`` (+ ``activation``), in ``self.trunk``, feeds one
    :class:`ConvDecoder` per marginal; without, each :class:`ConvDecoder` reads
    ``z`` directly (``hidden`` is then unused). Decoders are in ``self.decoders``;
    outputs pass through ``output_activation`` (default ``sigmoid``, values in (0, 1)).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shapes: Sequence[Sequence[int]],
        *,
        hidden: int = 256,
        channels: Sequence[int] = (64, 32),
        shared_trunk: bool = True,
        activation: str = "leaky_relu",
        output_activation: str = "sigmoid",
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        image_shapes = tuple(_image_shape("ImageGenerator", s) for s in image_shapes)
        if not image_shapes:
            raise ValueError("ImageGenerator: image_shapes must name at least one marginal")
        latent_dim, hidden = _check_features("ImageGenerator", latent_dim=latent_dim, hidden=hidden)
        _activation(activation)
        self.latent_dim = latent_dim
        self.image_shapes = image_shapes
        self.shared_trunk = shared_trunk
        self.activation = activation
        param_dtype = float_dtype(param_dtype)
        self.trunk = nnx.Linear(latent_dim, hidden, param_dtype=param_dtype, rngs=rngs) if shared_trunk else None
        d_in = hidden if shared_trunk else latent_dim
        self.decoders = nnx.List([
            ConvDecoder(d_in, s, channels=channels, activation=activation,
                        output_activation=output_activation, param_dtype=param_dtype, rngs=rngs)
            for s in image_shapes
        ])

    def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
        """``z: [B, latent_dim] -> tuple`` of ``K`` arrays ``[B, H_k*W_k*C_k]``."""
        h = _activation(self.activation)(self.trunk(z)) if self.trunk is not None else z
        return tuple(dec(h) for dec in self.decoders)
