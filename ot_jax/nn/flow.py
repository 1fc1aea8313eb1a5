"""Neural-ODE modules: a time-conditioned vector field and the SPOT generator built on it.

:class:`VectorField` is ``ξ(z, t)``; :class:`FlowGenerator` pushes a standard normal
``Z`` through ``dz/dt = ξ(z, t)`` on ``[0, 1]`` (:mod:`ot_jax.nn.cnf`) and splits
``z(1)`` into the K coupled marginals, so the joint density of the generated tuple is
known at every sample (thesis §3.4: density recovery of the transport plan).

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from ot_jax.nn import FlowGenerator
    >>> g = FlowGenerator([1, 1], hidden=[16], rngs=nnx.Rngs(0))
    >>> x, y = g(jnp.ones((4, 2)))  # the last layer starts at zero: the identity map
    >>> float(jnp.max(jnp.abs(x - 1.0)))
    0.0
    >>> out = g.flow(jnp.zeros((4, 2)))  # points and their joint log-density
    >>> round(float(out.log_density[0]), 4)  # log N(0; 0, I_2)
    -1.8379
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ot_jax.nn.cnf import FlowResult, FlowSettings, log_density, push_forward
from ot_jax.nn._util import check_features as _check_features, float_dtype
from ot_jax.nn.activations import activation as _activation

__all__ = ["VectorField", "FlowGenerator"]


class VectorField(nnx.Module):
    """Time-conditioned MLP ``ξ(z, t): [..., features] -> [..., features]``.

    Affine layers ``features → hidden[0] → … → hidden[-1] → features`` with the time
    ``t`` appended to the input of every layer (FFJORD's "concat" layers) and
    ``activation`` between them. A smooth activation (``tanh``, ``softplus``, ``silu``)
    keeps the field's Jacobian, whose trace drives the log-density, continuous.
    ``zero_init=True`` starts the last layer at zero: the flow starts as the identity.
    Layers are in ``self.layers``.
    """

    def __init__(self, features: int, *, hidden: Sequence[int] = (64, 64, 64), activation: str = "tanh",
                 zero_init: bool = True, param_dtype=None, rngs: nnx.Rngs):
        (features,) = _check_features("VectorField", features=features)
        hidden = _check_features("VectorField", **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        _activation(activation)
        param_dtype = float_dtype(param_dtype)
        self.features = features
        self.activation = activation
        sizes = (features, *hidden, features)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            init = {"kernel_init": nnx.initializers.zeros, "bias_init": nnx.initializers.zeros} if last and zero_init else {}
            layers.append(nnx.Linear(a + 1, b, param_dtype=param_dtype, rngs=rngs, **init))
        self.layers = nnx.List(layers)

    def __call__(self, z: jax.Array, t) -> jax.Array:
        """``z: [..., features]``, ``t`` a scalar time ``-> [..., features]``."""
        act = _activation(self.activation)
        time = jnp.broadcast_to(jnp.asarray(t, z.dtype), (*z.shape[:-1], 1))
        h = z
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            h = layer(jnp.concatenate([h, time], axis=-1))
            if i < n - 1:
                h = act(h)
        return h


class FlowGenerator(nnx.Module):
    """Coupled generator ``G(Z) = split(z(1))``, ``dz/dt = ξ(z, t)``, ``z(0) = Z ~ N(0, I)``.

    The latent dimension is ``sum(out_features)``: ``z = (z_1, …, z_K)`` with
    ``z_k`` of size ``out_features[k]`` (thesis eq. 3.10). The ODE settings are the
    fields of :class:`ot_jax.nn.cnf.FlowSettings`, given as keyword arguments.

    * ``generator(z)``: the K marginals ``[B, d_k]`` (no log-density: the cheap path);
    * ``generator.flow(z, key)``: :class:`~ot_jax.nn.cnf.FlowResult` of the joint
      points ``[B, Σd_k]`` and their log-density ``log p_γ``;
    * ``generator.log_density(points, key)``: the log-density of given joint points
      ``[B, Σd_k]`` (e.g. a grid), by integrating backwards.

    ``key`` feeds the Hutchinson probes (``trace="hutchinson"``); exact traces ignore it.
    """

    def __init__(self, out_features: Sequence[int] | int, *, hidden: Sequence[int] = (64, 64, 64),
                 activation: str = "tanh", zero_init: bool = True, param_dtype=None, rngs: nnx.Rngs,
                 **settings):
        out_features = tuple(out_features) if hasattr(out_features, "__iter__") else (out_features,)
        if not out_features:
            raise ValueError("FlowGenerator: out_features must name at least one marginal")
        out_features = _check_features("FlowGenerator",
                                       **{f"out_features[{k}]": d for k, d in enumerate(out_features)})
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(FlowSettings)})
        if unknown:
            raise TypeError(f"FlowGenerator: unknown argument(s) {unknown}; ODE settings are the fields of "
                            "ot_jax.nn.cnf.FlowSettings")
        self.settings = FlowSettings(**settings)
        self.out_features = out_features
        self.latent_dim = sum(out_features)
        self.field = VectorField(self.latent_dim, hidden=hidden, activation=activation, zero_init=zero_init,
                                 param_dtype=param_dtype, rngs=rngs)

    def _field(self):
        graphdef, state = nnx.split(self.field)

        def field(t, z, params):
            return nnx.merge(graphdef, params)(z, t)

        return field, state

    def split(self, points: jax.Array) -> tuple[jax.Array, ...]:
        """``[B, Σd_k] -> tuple`` of K arrays ``[B, d_k]``."""
        cuts = [sum(self.out_features[:k]) for k in range(1, len(self.out_features))]
        return tuple(jnp.split(points, cuts, axis=-1))

    def flow(self, z: jax.Array, key: jax.Array | None = None) -> FlowResult:
        """Push latent draws ``z: [B, latent_dim]`` to time 1, with their joint log-density."""
        field, params = self._field()
        return push_forward(field, z, settings=self.settings, args=params, key=key)

    def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
        """``z: [B, latent_dim] -> tuple`` of K arrays ``[B, d_k]``."""
        field, params = self._field()
        out = push_forward(field, z, settings=self.settings, args=params, with_log_density=False)
        return self.split(out.z)

    def log_density(self, points: jax.Array, key: jax.Array | None = None) -> FlowResult:
        """Log-density of the generated joint law at ``points: [B, latent_dim]`` (``FlowResult.log_density``)."""
        field, params = self._field()
        return log_density(field, points, settings=self.settings, args=params, key=key)
