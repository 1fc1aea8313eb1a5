"""Spectral normalisation (ot_jax/nn/spectral.py) against SVD and a NumPy power-iteration reference.

Shapes are reused across tests on purpose: every new shape costs XLA compilations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ot_jax.nn import (
    Critic,
    SpectralConv,
    SpectralLinear,
    SpectralVector,
    power_iteration,
    spectral_norms,
)

F64 = jnp.float64
LINEAR_SHAPES = [(7, 5), (5, 7)]
CONV_SHAPE = (3, 3, 2, 4)  # [kh, kw, in, out]


def _linear(rng, shape, seed=0):
    layer = SpectralLinear(*shape, param_dtype=F64, rngs=nnx.Rngs(seed))
    layer.kernel[...] = jnp.asarray(rng.normal(size=shape))
    return layer


def _conv(rng, kernel_shape=CONV_SHAPE, seed=0):
    kh, kw, cin, cout = kernel_shape
    layer = SpectralConv(cin, cout, (kh, kw), param_dtype=F64, rngs=nnx.Rngs(seed))
    layer.kernel[...] = jnp.asarray(rng.normal(size=kernel_shape))
    return layer


def _critic(seed=0):
    return Critic(5, hidden=[16, 16], activation="leaky_relu", param_dtype=F64, rngs=nnx.Rngs(seed))


def _top_singular(kernel):
    kernel = np.asarray(kernel)
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


def _numpy_step(kernel, u):
    """One reference power-iteration step on the ``[n_in, out]`` matrix of ``kernel``."""
    k = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    v = k @ u
    v = v / np.linalg.norm(v)
    u = k.T @ v
    return u / np.linalg.norm(u)


def _numpy_sigma(kernel, u):
    k = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    return np.linalg.norm(k @ u)  # = u^T K^T normalize(K u)


def _leaves(state):
    return [np.array(v) for v in jax.tree.leaves(state)]


@pytest.mark.parametrize("shape", LINEAR_SHAPES)
def test_linear_sigma_matches_svd(rng, shape):
    layer = _linear(rng, shape)
    assert layer.u[...].shape == (shape[1],)
    power_iteration(layer, num_steps=50)
    np.testing.assert_allclose(layer.sigma(), _top_singular(layer.kernel[...]), rtol=1e-6)
    # the normalised weight then has unit spectral norm
    np.testing.assert_allclose(_top_singular(layer.normalized_kernel()), 1.0, rtol=1e-6)


def test_conv_sigma_matches_svd_of_reshaped_kernel(rng):
    layer = _conv(rng)
    assert layer.u[...].shape == (CONV_SHAPE[-1],)
    power_iteration(layer, num_steps=50)
    np.testing.assert_allclose(layer.sigma(), _top_singular(layer.kernel[...]), rtol=1e-6)
    np.testing.assert_allclose(_top_singular(layer.normalized_kernel()), 1.0, rtol=1e-6)


@pytest.mark.parametrize("which", ["linear_tall", "linear_wide", "conv"])
def test_matches_numpy_power_iteration(rng, which):
    layer = {"linear_tall": lambda: _linear(rng, LINEAR_SHAPES[0]),
             "linear_wide": lambda: _linear(rng, LINEAR_SHAPES[1]),
             "conv": lambda: _conv(rng)}[which]()
    u = np.array(layer.u[...])
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-12)  # a random unit vector
    for _ in range(4):
        np.testing.assert_allclose(layer.u[...], u, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.sigma(), _numpy_sigma(layer.kernel[...], u), rtol=1e-10)
        layer.power_iteration()
        u = _numpy_step(layer.kernel[...], u)


def test_estimate_is_a_lower_bound_before_convergence(rng):
    # sigma = ||K u|| <= sigma_max for any unit u: an unconverged layer over-scales, never under-scales
    layer = _linear(rng, LINEAR_SHAPES[0])
    top = _top_singular(layer.kernel[...])
    for _ in range(5):
        assert float(layer.sigma()) <= top * (1 + 1e-12)
        layer.power_iteration()


def test_power_iteration_and_forward_leave_raw_kernel_untouched(rng):
    model = _critic(seed=1)
    params0 = _leaves(nnx.state(model, nnx.Param))
    u0 = _leaves(nnx.state(model, SpectralVector))
    x = jnp.asarray(rng.normal(size=(3, 5)))
    model(x)
    for a, b in zip(u0, _leaves(nnx.state(model, SpectralVector)), strict=True):
        np.testing.assert_array_equal(a, b)  # the forward pass changes nothing
    power_iteration(model, num_steps=3)
    model(x)
    for a, b in zip(params0, _leaves(nnx.state(model, nnx.Param)), strict=True):
        np.testing.assert_array_equal(a, b)  # raw weights bit-identical
    u1 = _leaves(nnx.state(model, SpectralVector))
    # the hidden layers' u moved; the output layer's u: [1] is +-1 for ever
    assert not np.allclose(u0[0], u1[0]) and not np.allclose(u0[1], u1[1])
    np.testing.assert_allclose(np.abs(u1[2]), 1.0)


def test_spectral_vector_is_not_a_param():
    model = _critic()
    params = nnx.to_flat_state(nnx.state(model, nnx.Param))
    assert len(params) == 6 and all(type(v) is nnx.Param for _, v in params)
    svs = nnx.to_flat_state(nnx.state(model, SpectralVector))
    assert [p for p, _ in svs] == [("net", "layers", i, "u") for i in range(3)]
    assert all(isinstance(v, SpectralVector) and not isinstance(v, nnx.Param) for _, v in svs)
    nnx.split(model, nnx.Param, SpectralVector)  # the two filters cover the whole model


def test_spectral_norms_paths_and_values(rng):
    model = _critic()
    norms = spectral_norms(model)
    assert list(norms) == ["net/layers/0", "net/layers/1", "net/layers/2"]
    for i, layer in enumerate(model.net.layers):
        np.testing.assert_array_equal(norms[f"net/layers/{i}"], layer.sigma())
    assert list(spectral_norms(_linear(rng, LINEAR_SHAPES[0]))) == [""]
    plain = Critic(5, hidden=[16, 16], spectral_norm=False, param_dtype=F64, rngs=nnx.Rngs(0))
    assert spectral_norms(plain) == {}
    before = _leaves(nnx.state(plain))
    power_iteration(plain)  # no spectral layers: a no-op
    for a, b in zip(before, _leaves(nnx.state(plain)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_critic_is_one_lipschitz_after_convergence(rng):
    model = _critic(seed=3)
    graphdef, state = nnx.split(model)

    @jax.jit
    def ratios_and_grad_norms(state, x, y):
        f = nnx.merge(graphdef, state)
        ratio = jnp.abs(f(x) - f(y)) / jnp.linalg.norm(x - y, axis=-1)
        return ratio, jnp.linalg.norm(jax.vmap(jax.grad(f))(x), axis=-1)

    x = jnp.asarray(rng.normal(size=(500, 5)))
    y = x + jnp.asarray(rng.normal(size=(500, 5)) * rng.uniform(1e-3, 3.0, size=(500, 1)))
    # before any power iteration the estimates are far off and the bound fails
    _, grad_norms = ratios_and_grad_norms(state, x, y)
    assert float(grad_norms.max()) > 1.0
    power_iteration(model, num_steps=100)
    for layer in model.net.layers:
        np.testing.assert_allclose(_top_singular(layer.normalized_kernel()), 1.0, rtol=1e-6)
    ratio, grad_norms = ratios_and_grad_norms(nnx.state(model), x, y)
    assert float(ratio.max()) <= 1 + 1e-3
    assert float(grad_norms.max()) <= 1 + 1e-3


def _with_kernel(layer, kernel):
    """A copy of ``layer`` (same u) whose kernel is ``kernel`` (may be a tracer)."""
    m = nnx.clone(layer)
    m.kernel[...] = kernel
    return m


def test_gradient_matches_finite_differences(rng):
    layer = _linear(rng, LINEAR_SHAPES[0])
    layer.bias[...] = jnp.asarray(rng.normal(size=LINEAR_SHAPES[0][1]))
    layer.power_iteration()  # any fixed u; the estimate is not converged here
    x = jnp.asarray(rng.normal(size=(6, LINEAR_SHAPES[0][0])))

    @jax.jit
    def loss(kernel):  # u held fixed
        return jnp.sum(jnp.sin(_with_kernel(layer, kernel)(x)))

    k0 = jnp.asarray(layer.kernel[...])
    grad = np.asarray(jax.jit(jax.grad(loss))(k0))
    h = 1e-6
    eye = np.eye(k0.size).reshape(k0.size, *k0.shape) * h
    fd = jax.vmap(lambda e: (loss(k0 + e) - loss(k0 - e)) / (2 * h))(jnp.asarray(eye))
    np.testing.assert_allclose(grad, np.asarray(fd).reshape(k0.shape), rtol=1e-6, atol=1e-8)
    # d sigma / d K = v u^T with v = normalize(K u) (Miyato et al., 2018)
    u = np.asarray(layer.u[...])
    v = np.asarray(k0) @ u
    v /= np.linalg.norm(v)
    dsigma = jax.grad(lambda k: _with_kernel(layer, k).sigma())(k0)
    np.testing.assert_allclose(dsigma, np.outer(v, u), rtol=1e-10, atol=1e-12)


def test_functional_split_merge_under_jit(rng):
    model = _critic()
    graphdef, params, sv = nnx.split(model, nnx.Param, SpectralVector)
    x = jnp.asarray(rng.normal(size=(10, 5)))

    @jax.jit
    def step(params, sv, x):
        m = nnx.merge(graphdef, params, sv)
        power_iteration(m)
        _, params2, sv2 = nnx.split(m, nnx.Param, SpectralVector)

        def loss(p):
            return jnp.mean(nnx.merge(graphdef, p, sv2)(x) ** 2)

        value, grads = jax.value_and_grad(loss)(params2)
        # the stateful route on the merged module must agree
        ref_value, ref_grads = nnx.value_and_grad(lambda f: jnp.mean(f(x) ** 2))(m)
        return params2, sv2, value, grads, ref_value, ref_grads

    params0, sv0 = _leaves(params), _leaves(sv)
    params2, sv2, value, grads, ref_value, ref_grads = step(params, sv, x)
    for a, b in zip(params0, _leaves(params2), strict=True):
        np.testing.assert_array_equal(a, b)  # only u is updated
    assert not np.allclose(sv0[0], _leaves(sv2)[0])
    # same u as the eager, in-place route
    power_iteration(model)
    for a, b in zip(_leaves(nnx.state(model, SpectralVector)), _leaves(sv2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    assert jax.tree.structure(grads) == jax.tree.structure(params)  # no SpectralVector in grads
    for a, b in zip(_leaves(ref_grads), _leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    assert all(np.any(g != 0) for g in _leaves(grads))


def test_spectral_linear_matches_definition(rng):
    layer = _linear(rng, LINEAR_SHAPES[0])
    assert layer.bias[...].shape == (5,) and not np.any(layer.bias[...])
    x = jnp.asarray(rng.normal(size=(2, 3, 7)))
    np.testing.assert_allclose(layer(x), x @ (layer.kernel[...] / layer.sigma()), rtol=1e-12)
    no_bias = SpectralLinear(7, 5, use_bias=False, param_dtype=F64, rngs=nnx.Rngs(0))
    assert no_bias.bias is None and no_bias(x).shape == (2, 3, 5)


def test_spectral_conv_matches_plain_conv(rng):
    layer = SpectralConv(2, 4, (3, 3), strides=2, param_dtype=F64, rngs=nnx.Rngs(0))
    layer.bias[...] = jnp.asarray(rng.normal(size=4))
    conv = nnx.Conv(2, 4, (3, 3), strides=2, padding="SAME", param_dtype=F64,
                    kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(1))
    conv.kernel[...] = layer.normalized_kernel()
    conv.bias[...] = layer.bias[...]
    x = jnp.asarray(rng.normal(size=(2, 3, 7, 7, 2)))
    y = layer(x)
    assert y.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(y, conv(x.reshape(6, 7, 7, 2)).reshape(y.shape), rtol=1e-12, atol=1e-12)


def test_float32_params():
    def run():
        layer = SpectralLinear(7, 5, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
        kernel, u = layer.kernel[...], layer.u[...]
        layer.power_iteration()
        return kernel, u, layer.u[...], layer(jnp.ones((1, 7), jnp.float32)), layer.sigma()

    assert all(a.dtype == jnp.float32 for a in jax.eval_shape(run))
    # param_dtype=None follows JAX's default float (float64 here: the suite enables x64)
    default = nnx.eval_shape(lambda: SpectralLinear(7, 5, rngs=nnx.Rngs(0)))
    assert default.kernel.dtype == default.u.dtype == jnp.result_type(float)


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_features"):
        SpectralLinear(0, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kernel_size"):
        SpectralConv(2, 4, (3, 3, 3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="H, W, C"):
        _conv(np.random.default_rng(0))(jnp.ones((4, 4)))
