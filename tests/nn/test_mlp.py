"""MLP, Critic, Generator and the activation registry (ot_jax/nn/mlp.py, activations.py).

Shape checks run under ``jax.eval_shape`` (nothing is compiled); value checks reuse a
few small layer shapes, since every new shape costs XLA compilations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import ot_jax.nn
from tests.nn.shapes import abstract_run
from ot_jax.nn import (
    MLP,
    Critic,
    Generator,
    SpectralLinear,
    SpectralVector,
    activation,
    power_iteration,
)


NAMES = ["leaky_relu", "relu", "elu", "tanh", "silu", "softplus", "sigmoid", "identity"]


def test_activations():
    x = jnp.linspace(-2.0, 2.0, 9)
    for name in NAMES:
        assert activation(name)(x).shape == x.shape
    np.testing.assert_allclose(activation("leaky_relu")(x), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_array_equal(activation("identity")(x), x)
    np.testing.assert_allclose(activation("sigmoid")(x), 1 / (1 + np.exp(-np.asarray(x))))
    assert ot_jax.nn.activation is activation
    with pytest.raises(ValueError, match="unknown activation 'swish'.*leaky_relu"):
        activation("swish")
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(3, 2, hidden=[4], activation="gelu", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown activation"):
        Generator(3, [2], hidden=[4], output_activation="nope", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_mlp_shapes_and_layers(rng, spectral_norm):
    mlp = MLP(3, 2, hidden=[8, 8], spectral_norm=spectral_norm, rngs=nnx.Rngs(0))
    assert len(mlp.layers) == 3
    kind = SpectralLinear if spectral_norm else nnx.Linear
    assert all(type(layer) is kind for layer in mlp.layers)
    for batch in [(4,), (2, 4), ()]:
        shape, _ = abstract_run(lambda: MLP(3, 2, hidden=[8, 8], spectral_norm=spectral_norm, rngs=nnx.Rngs(0)),
                             (*batch, 3))
        assert shape == (*batch, 2)
    # matches the written-out composition
    x = jnp.asarray(rng.normal(size=(4, 3)))
    act = activation("leaky_relu")
    ref = mlp.layers[2](act(mlp.layers[1](act(mlp.layers[0](x)))))
    np.testing.assert_allclose(mlp(x), ref, rtol=1e-12)


def test_mlp_without_hidden_is_affine(rng):
    mlp = MLP(3, 2, hidden=[], rngs=nnx.Rngs(0))
    assert len(mlp.layers) == 1
    x, y = (jnp.asarray(rng.normal(size=(4, 3))) for _ in range(2))
    np.testing.assert_allclose(mlp(0.3 * x + 0.7 * y), 0.3 * mlp(x) + 0.7 * mlp(y), rtol=1e-10, atol=1e-12)


def test_mlp_output_activation():
    mlp = MLP(3, 2, hidden=[8, 8], output_activation="sigmoid", rngs=nnx.Rngs(0))
    y = mlp(10 * jnp.ones((4, 3)))
    assert np.all((y > 0) & (y < 1))


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden\\[1\\]"):
        MLP(3, 2, hidden=[8, 0], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features"):
        MLP(0, 2, hidden=[8], rngs=nnx.Rngs(0))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_critic_shapes(spectral_norm):
    def make():
        return Critic(3, hidden=[8, 8], spectral_norm=spectral_norm, rngs=nnx.Rngs(0))

    for batch in [(4,), (2, 4), ()]:
        assert abstract_run(make, (*batch, 3))[0] == batch
    f = abstract_run(make, (3,))[1]
    n_sv = len(nnx.to_flat_state(nnx.state(f, SpectralVector)))
    assert n_sv == (3 if spectral_norm else 0)


@pytest.mark.parametrize("shared_trunk", [False, True])
@pytest.mark.parametrize("out_features", [[2], [2, 3], [2, 3, 4]])
def test_generator_shapes(shared_trunk, out_features):
    shapes, g = abstract_run(
        lambda: Generator(3, out_features, hidden=[8, 8], shared_trunk=shared_trunk, rngs=nnx.Rngs(0)), (5, 3))
    assert g.latent_dim == 3
    assert isinstance(shapes, tuple)
    assert list(shapes) == [(5, d) for d in out_features]
    if shared_trunk:
        assert len(g.trunk) == 2 and len(g.heads) == len(out_features)
    else:
        assert len(g.nets) == len(out_features)


def test_generator_structure(rng):
    z = jnp.asarray(rng.normal(size=(5, 3)))
    act = activation("leaky_relu")
    # shared trunk: activation after every trunk layer, affine heads on the same features
    g = Generator(3, [2, 4], hidden=[8, 8], shared_trunk=True, rngs=nnx.Rngs(0))
    h = act(g.trunk[1](act(g.trunk[0](z))))
    for y, head in zip(g(z), g.heads, strict=True):
        np.testing.assert_allclose(y, head(h), rtol=1e-12)
    # separate nets: each marginal is its own MLP of z
    g = Generator(3, [2, 4], hidden=[8, 8], shared_trunk=False, output_activation="tanh", rngs=nnx.Rngs(0))
    for y, net in zip(g(z), g.nets, strict=True):
        np.testing.assert_allclose(y, net(z), rtol=1e-12)
        assert np.all(np.abs(y) < 1)
    # the marginals are coupled through z but are different maps
    a, b = Generator(3, [2, 2], hidden=[8, 8], rngs=nnx.Rngs(0))(z)
    assert not np.allclose(a, b)
    # an int is one marginal; no hidden layers + shared trunk is an affine map per marginal
    shapes, g = abstract_run(lambda: Generator(3, 2, hidden=[], shared_trunk=True, rngs=nnx.Rngs(0)), (5, 3))
    assert shapes == ((5, 2),) and len(g.trunk) == 0
    with pytest.raises(ValueError, match="at least one"):
        Generator(3, [], hidden=[8], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="out_features\\[1\\]"):
        Generator(3, [2, 0], hidden=[8], rngs=nnx.Rngs(0))


@pytest.mark.parametrize("make", [
    lambda: Critic(3, hidden=[8, 8], rngs=nnx.Rngs(0)),
    lambda: MLP(3, 2, hidden=[8, 8], rngs=nnx.Rngs(0)),
    lambda: Generator(3, [2, 3], hidden=[8, 8], shared_trunk=True, rngs=nnx.Rngs(0)),
], ids=["critic", "mlp", "generator"])
def test_jit_and_vmap_through_the_functional_api(rng, make):
    model = make()
    power_iteration(model)  # u no longer the initial one (where there is one)
    graphdef, params, sv = nnx.split(model, nnx.Param, SpectralVector)

    def apply(params, sv, x):
        return nnx.merge(graphdef, params, sv)(x)

    x = jnp.asarray(rng.normal(size=(6, 3)))
    eager = model(x)
    jitted = jax.jit(apply)(params, sv, x)
    mapped = jax.jit(jax.vmap(apply, in_axes=(None, None, 0)))(params, sv, x)
    for a, b, c in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), jax.tree.leaves(mapped), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-14)
    # a batch of parameter sets (e.g. an ensemble) under vmap
    stacked = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), params)
    out = jax.eval_shape(jax.vmap(apply, in_axes=(0, None, None)), stacked, sv, x)
    assert jax.tree.leaves(out)[0].shape == (2, *jax.tree.leaves(eager)[0].shape)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_strict_dtype_promotion(dtype):
    def run():
        f = Critic(3, hidden=[4], param_dtype=dtype, rngs=nnx.Rngs(0))
        power_iteration(f)
        g = Generator(3, [2, 3], hidden=[4], shared_trunk=True, param_dtype=dtype, rngs=nnx.Rngs(0))
        z = jnp.ones((2, 3), dtype)
        return f(z), g(z), f.net.layers[0].u[...]

    with jax.numpy_dtype_promotion("strict"):
        out = jax.eval_shape(run)
    assert all(a.dtype == dtype for a in jax.tree.leaves(out))


def test_integer_like_sizes_are_accepted():
    # sizes from NumPy or a config (OmegaConf) arrive as integer-like objects; they are stored as ints
    _, g = abstract_run(lambda: Generator(np.int64(3), np.array([2, 3]), hidden=(np.int32(8),), rngs=nnx.Rngs(0)),
                     (5, 3))
    assert g.latent_dim == 3 and type(g.latent_dim) is int and g.out_features == (2, 3)
    _, f = abstract_run(lambda: Critic(np.int64(3), hidden=[8], rngs=nnx.Rngs(0)), (5, 3))
    assert type(f.in_features) is int
    with pytest.raises(ValueError, match="latent_dim"):
        Generator(3.0, [2], hidden=[8], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="hidden\\[0\\]"):
        MLP(3, 2, hidden=[True], rngs=nnx.Rngs(0))
