"""Spectral normalisation that leaves the raw weights untouched.

Miyato, Kataoka, Koyama & Yoshida (2018), "Spectral normalization for generative
adversarial networks", ICLR. A layer with raw weight matrix ``W`` applies
``W / sigma(W)``, where ``sigma(W)`` is an estimate of the largest singular value
of ``W`` kept up to date by power iteration on a persistent vector ``u``.

Unlike :class:`flax.nnx.SpectralNorm`, which writes the normalised weight back into
the wrapped parameter, the layers here

* keep the raw ``kernel`` as the trainable :class:`flax.nnx.Param` (an optimiser
  updates the raw weight; the normalisation is part of the forward pass);
* store ``u`` in a :class:`SpectralVector`, a non-trainable variable type, so
  ``nnx.state(model, nnx.Param)`` never contains it and
  ``nnx.state(model, SpectralVector)`` selects exactly the power-iteration state;
* never mutate anything in ``__call__``: the forward pass is a pure function of
  (params, u), safe inside ``jax.grad``/``jax.jit``/``jax.vmap``. The power
  iteration is a separate, explicit step (:meth:`SpectralLayer.power_iteration`
  or the module-level :func:`power_iteration` for a whole model), which a trainer
  runs once per optimisation step.

Convention (the kernel is stored ``[in, out]`` as in :class:`flax.nnx.Linear`,
i.e. ``y = x @ K``): ``u`` lives in the output space ``[out]``, and with
``v = normalize(K u)`` (``[in]``) the estimate is ``sigma = u^T K^T v = ||K u||``,
computed with ``stop_gradient`` on ``u`` and ``v`` so that
``d sigma / d K = v u^T`` (the standard spectral-normalisation gradient). One
power-iteration step is ``u <- normalize(K^T normalize(K u))``.

Functional use (e.g. inside a jitted training step)::

    graphdef, params, sv = nnx.split(model, nnx.Param, SpectralVector)

    @jax.jit
    def step(params, sv, x):
        m = nnx.merge(graphdef, params, sv)
        power_iteration(m)                           # updates only u
        _, _, sv = nnx.split(m, nnx.Param, SpectralVector)
        loss = lambda p: nnx.merge(graphdef, p, sv)(x).mean()
        return jax.grad(loss)(params), sv
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ot_jax.nn._util import check_features as _check_features, float_dtype, lecun_normal

__all__ = [
    "SpectralVector",
    "SpectralLayer",
    "SpectralLinear",
    "SpectralConv",
    "power_iteration",
    "spectral_norms",
]


class SpectralVector(nnx.Variable):
    """Non-trainable power-iteration state ``u`` of a spectral-normalised layer.

    Not a subclass of :class:`flax.nnx.Param`, so parameter filters (and
    optimisers built on ``nnx.Param``) never see it.
    """


def _normalize(x: jax.Array, eps: float) -> jax.Array:
    """``x / max(||x||, eps)`` for a vector ``x: [n] -> [n]``."""
    return x / jnp.maximum(jnp.linalg.norm(x), eps)


def _random_unit_vector(key: jax.Array, n: int, dtype) -> jax.Array:
    u = jax.random.normal(key, (n,), dtype)
    return u / jnp.linalg.norm(u)


class SpectralLayer(nnx.Module):
    """Base class of the spectral-normalised layers.

    Subclasses hold ``kernel: nnx.Param`` whose last axis is the output axis,
    ``u: SpectralVector [out]`` and ``eps``; the matrix whose spectral norm is
    estimated is ``kernel.reshape(-1, out)`` (:meth:`matrix`).
    """

    def matrix(self) -> jax.Array:
        """The raw kernel as a matrix ``[n_in, out]`` (``n_in`` = product of the other axes)."""
        k = self.kernel[...]
        return k.reshape(-1, k.shape[-1])

    def sigma(self) -> jax.Array:
        """Current estimate of the top singular value of :meth:`matrix`, a scalar ``[]``.

        ``v = normalize(K u)``, ``sigma = u^T (K^T v)`` with ``u``, ``v`` under
        ``stop_gradient`` (so ``d sigma / d K = v u^T``). Changes no state.
        """
        k = self.matrix()
        u = jax.lax.stop_gradient(self.u[...]).astype(k.dtype)
        v = jax.lax.stop_gradient(_normalize(k @ u, self.eps))
        return u @ (k.T @ v)

    def normalized_kernel(self) -> jax.Array:
        """``kernel / sigma()``, same shape as ``kernel``; the weight the forward pass uses."""
        return self.kernel[...] / jnp.maximum(self.sigma(), self.eps)

    def power_iteration(self) -> None:
        """One power-iteration step in place: ``u <- normalize(K^T normalize(K u))``.

        Writes only ``self.u`` (under ``stop_gradient``); the raw kernel is never modified.
        """
        k = jax.lax.stop_gradient(self.matrix())
        u = self.u[...]
        v = _normalize(k @ u.astype(k.dtype), self.eps)
        self.u[...] = _normalize(k.T @ v, self.eps).astype(u.dtype)


class SpectralLinear(SpectralLayer):
    """Spectral-normalised affine layer ``x: [..., in] -> [..., out]``.

    ``y = x @ (kernel / sigma()) + bias`` (Miyato et al., 2018). Parameters:
    ``kernel: nnx.Param [in, out]`` (lecun-normal, like :class:`flax.nnx.Linear`),
    ``bias: nnx.Param [out]`` (zeros; absent when ``use_bias=False``) and the
    power-iteration state ``u: SpectralVector [out]`` (a random unit vector).
    The forward pass never mutates state; call :meth:`power_iteration` to refine ``u``.
    ``eps`` guards the normalisations; parameters and ``u`` are created in
    ``param_dtype`` (``None``: JAX's default float, float64 under ``jax_enable_x64``).

    Examples:
        >>> import numpy as np
        >>> layer = SpectralLinear(4, 3, rngs=nnx.Rngs(0))
        >>> power_iteration(layer, num_steps=30)
        >>> top = np.linalg.svd(np.asarray(layer.kernel[...]), compute_uv=False)[0]
        >>> bool(np.isclose(layer.sigma(), top, rtol=1e-4))
        True
        >>> layer(np.ones((5, 4), np.float32)).shape
        (5, 3)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        eps: float = 1e-12,
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        in_features, out_features = _check_features("SpectralLinear", in_features=in_features,
                                                    out_features=out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias
        self.eps = eps
        param_dtype = float_dtype(param_dtype)
        self.kernel = nnx.Param(lecun_normal(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
        self.u = SpectralVector(_random_unit_vector(rngs.params(), out_features, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., in] -> [..., out]``."""
        y = x @ self.normalized_kernel()
        if self.bias is not None:
            y = y + self.bias[...]
        return y


def _pair(value, name: str) -> tuple[int, int]:
    try:
        value = (value, value) if not hasattr(value, "__iter__") else tuple(value)
        if len(value) != 2:
            raise ValueError
        return _check_features("SpectralConv", **{f"{name}[{i}]": v for i, v in enumerate(value)})
    except ValueError:
        raise ValueError(f"SpectralConv: {name} must be a positive int or a pair of them, got {value!r}") from None


class SpectralConv(SpectralLayer):
    """Spectral-normalised 2-D convolution ``x: [..., H, W, in] -> [..., H', W', out]``.

    Kernel ``[kh, kw, in, out]`` (HWIO, lecun-normal), bias ``[out]``, input NHWC
    (any number of leading batch axes). The normalising ``sigma`` is the top
    singular value of the kernel reshaped to ``[kh*kw*in, out]`` (Miyato et al.,
    2018's choice). This is *not* the exact operator norm of the convolution,
    which can be larger by up to a factor ``sqrt(kh*kw)`` (for stride 1), so a
    spectral-normalised conv net is only approximately 1-Lipschitz.
    ``H' = ceil(H / stride)`` with ``padding="SAME"``. ``eps`` and ``param_dtype``
    as in :class:`SpectralLinear`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int] = (3, 3),
        *,
        strides: int | Sequence[int] = 1,
        padding: str | Sequence[tuple[int, int]] = "SAME",
        use_bias: bool = True,
        eps: float = 1e-12,
        param_dtype=None,
        rngs: nnx.Rngs,
    ):
        in_features, out_features = _check_features("SpectralConv", in_features=in_features,
                                                    out_features=out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
        self.use_bias = use_bias
        self.eps = eps
        param_dtype = float_dtype(param_dtype)
        shape = (*self.kernel_size, in_features, out_features)
        self.kernel = nnx.Param(lecun_normal(rngs.params(), shape, param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype)) if use_bias else None
        self.u = SpectralVector(_random_unit_vector(rngs.params(), out_features, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x: [..., H, W, in] -> [..., H', W', out]``."""
        if x.ndim < 4:
            raise ValueError(f"SpectralConv: expected x of shape [..., H, W, C], got {tuple(x.shape)}")
        kernel = self.normalized_kernel()
        dtype = jnp.result_type(x, kernel)
        batch = x.shape[:-3]
        y = jax.lax.conv_general_dilated(
            x.reshape(-1, *x.shape[-3:]).astype(dtype),
            kernel.astype(dtype),
            window_strides=self.strides,
            padding=self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.bias is not None:
            y = y + self.bias[...]
        return y.reshape(*batch, *y.shape[1:])


def _path_name(path) -> str:
    return "/".join(str(p) for p in path)


def _spectral_layers(model: nnx.Module):
    for path, module in nnx.iter_modules(model):
        if isinstance(module, SpectralLayer):
            yield path, module


def power_iteration(model: nnx.Module, num_steps: int = 1) -> None:
    """Run ``num_steps`` (default one) power-iteration steps on every :class:`SpectralLayer` in ``model``.

    In place; only the :class:`SpectralVector` state changes. Works on a merged
    module inside ``jax.jit`` (see the module docstring). A model without
    spectral layers is left alone.
    """
    layers = [m for _, m in _spectral_layers(model)]
    for _ in range(num_steps):
        for layer in layers:
            layer.power_iteration()


def spectral_norms(model: nnx.Module) -> dict[str, jax.Array]:
    """Map the path of each spectral layer in ``model`` (``"layers/0"``; ``""`` for ``model`` itself) to its ``sigma()`` ``[]``."""
    return {_path_name(path): layer.sigma() for path, layer in _spectral_layers(model)}
