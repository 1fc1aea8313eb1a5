"""Multilayer perceptrons, critics and coupled generators on flat vectors.

All modules act on flat data ``[..., d]``. :class:`Critic` is the (optionally
spectral-normalised, Miyato et al., 2018) potential of a WGAN / SPOT dual;
:class:`Generator` is the coupled generator ``G(Z) = (G_1(Z), ..., G_K(Z))`` of
SPOT (Xie, Chen, Jiang, Zhao & Zha, 2019, "On scalable and efficient computation
of large scale optimal transport", ICML; thesis ch. 3), whose marginals either
share no parameters or share an MLP trunk.

Parameters are created in ``param_dtype``; ``None`` (default) means JAX's default
float (float32, or float64 when ``jax_enable_x64`` is on).

Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from ot_jax.nn import Critic, Generator
    >>> f = Critic(3, hidden=[16, 16], rngs=nnx.Rngs(0))
    >>> f(jnp.ones((5, 3))).shape
    (5,)
    >>> g = Generator(2, [3, 4], hidden=[8], rngs=nnx.Rngs(0))
    >>> [y.shape for y in g(jnp.ones((5, 2)))]
    [(5, 3), (5, 4)]
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from ot_jax.nn.activations import activation as _activation
from ot_jax.nn._util import check_features as _check_features, float_dtype
from ot_jax.nn.spectral import SpectralLinear

__all__ = ["MLP", "Critic", "Generator"]


def _check_hidden(owner: str, hidden) -> tuple[int, ...]:
    return _check_features(owner, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})


def _dense(in_features: int, out_features: int, *, spectral_norm: bool, param_dtype, rngs: nnx.Rngs):
    param_dtype = float_dtype(param_dtype)
    if spectral_norm:
        return SpectralLinear(in_features, out_features, param_dtype=param_dtype, rngs=rngs)
    return nnx.Linear(in_features, out_features, param_dtype=param_dtype, rngs=rngs)


class MLP(nnx.Module):
    """Fully connected network ``x: [..., in_features] -> [..., out_features]``.

    Affine layers ``in -> hidden[0] -> ... -> hidden[-1] -> out`` with
    ``activation`` between them and ``output_activation`` after the last;
    ``hidden=[]`` is a single affine layer. With ``spectral_norm=True`` every
    layer is a :class:`~ot_jax.nn.SpectralLinear` (Miyato et al., 2018).
    Layers are in ``self.layers`` (an ``nnx.List``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        hidden: Sequence[int],
        activation: str = "leaky_relu",
        spectral_norm: bool = False,
        output_activation: str = "identity",
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        in_features, out_features = _check_features("MLP", in_features=in_features, out_features=out_features)
        hidden = _check_hidden("MLP", hidden)
        _activation(activation), _activation(output_activation)  # validate early
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.output_activation = output_activation
        self.spectral_norm = spectral_norm
        sizes = (in_features, *hidden, out_features)
        self.layers = nnx.List(
            [_dense(a, b, spectral_norm=spectral_norm, param_dtype=param_dtype, rngs=rngs)
             for a, b in zip(sizes[:-1], sizes[1:])]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., in_features] -> [..., out_features]``."""
        act = _activation(self.activation)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < n - 1:
                x = act(x)
        return _activation(self.output_activation)(x)


class Critic(nnx.Module):
    """Scalar potential ``f: [..., in_features] -> [...]`` (an :class:`MLP` to one output, squeezed).

    With ``spectral_norm=True`` (default) every layer is divided by its estimated
    spectral norm (Miyato et al., 2018); with a 1-Lipschitz activation
    (``leaky_relu``, ``relu``, ``elu``, ``tanh``, ``identity``, ...) ``f`` is then
    1-Lipschitz up to the accuracy of the power iteration (run
    :func:`ot_jax.nn.power_iteration` every training step). The network is ``self.net``.
    """

    def __init__(
        self,
        in_features: int,
        *,
        hidden: Sequence[int],
        activation: str = "leaky_relu",
        spectral_norm: bool = True,
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        self.net = MLP(in_features, 1, hidden=hidden, activation=activation,
                       spectral_norm=spectral_norm, param_dtype=param_dtype, rngs=rngs)
        self.in_features = self.net.in_features

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., in_features] -> [...]``."""
        return self.net(x)[..., 0]


class Generator(nnx.Module):
    """Coupled generator of ``K >= 1`` marginals, ``z: [B, latent_dim] -> (G_1(z), ..., G_K(z))``.

    ``G_k(z): [B, out_features[k]]`` (leading axes other than ``B`` are allowed).

    * ``shared_trunk=False``: ``K`` independent :class:`MLP` s from ``z`` with the
      given ``hidden`` sizes (the SPOT generators ``G_X``, ``G_Y`` without shared
      parameters); they are in ``self.nets``.
    * ``shared_trunk=True``: one trunk ``latent -> hidden[0] -> ... -> hidden[-1]``
      (``activation`` after every trunk layer, including its last) in
      ``self.trunk``, then one affine head per marginal in ``self.heads``. With
      ``hidden=[]`` the trunk is the identity.

    ``output_activation`` is applied to every marginal. ``out_features`` may be an
    int for ``K = 1``; the output is always a tuple.
    """

    def __init__(
        self,
        latent_dim: int,
        out_features: Sequence[int] | int,
        *,
        hidden: Sequence[int],
        activation: str = "leaky_relu",
        shared_trunk: bool = False,
        output_activation: str = "identity",
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        out_features = tuple(out_features) if hasattr(out_features, "__iter__") else (out_features,)
        if not out_features:
            raise ValueError("Generator: out_features must name at least one marginal")
        latent_dim, *out_features = _check_features(
            "Generator", latent_dim=latent_dim, **{f"out_features[{k}]": d for k, d in enumerate(out_features)})
        out_features = tuple(out_features)
        hidden = _check_hidden("Generator", hidden)
        _activation(activation), _activation(output_activation)
        self.latent_dim = latent_dim
        self.out_features = out_features
        self.activation = activation
        self.output_activation = output_activation
        self.shared_trunk = shared_trunk
        if shared_trunk:
            sizes = (latent_dim, *hidden)
            param_dtype = float_dtype(param_dtype)
            self.trunk = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
                                   for a, b in zip(sizes[:-1], sizes[1:])])
            self.heads = nnx.List([nnx.Linear(sizes[-1], d, param_dtype=param_dtype, rngs=rngs)
                                   for d in out_features])
        else:
            self.nets = nnx.List([MLP(latent_dim, d, hidden=hidden, activation=activation,
                                      output_activation=output_activation,
                                      param_dtype=param_dtype, rngs=rngs)
                                  for d in out_features])

    def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
        """``z: [B, latent_dim] -> tuple`` of ``K`` arrays ``[B, out_features[k]]``."""
        if not self.shared_trunk:
            return tuple(net(z) for net in self.nets)
        act = _activation(self.activation)
        h = z
        for layer in self.trunk:
            h = act(layer(h))
        out = _activation(self.output_activation)
        return tuple(out(head(h)) for head in self.heads)
