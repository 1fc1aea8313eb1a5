"""Convolutional critic, decoder and image generator on flat images (ot_jax/nn/conv.py).

Shape checks run under ``jax.eval_shape`` (building and calling the module abstractly),
which compiles nothing; value checks use few, small shapes (each new parameter shape
costs XLA compilations).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.nn.shapes import abstract_run
from ot_jax.nn import ConvCritic, ConvDecoder, ImageGenerator, SpectralConv, SpectralLinear, SpectralVector
from ot_jax.nn import activation, power_iteration

SHAPES = [(8, 8, 1), (8, 8, 3), (28, 28, 1)]
SMALL = (4, 8)  # channels small enough to keep the value tests fast


def _flat(shape):
    return shape[0] * shape[1] * shape[2]


@pytest.mark.parametrize("image_shape", [*SHAPES, (28, 28, 3)])
@pytest.mark.parametrize("channels", [SMALL, (32, 64)])
def test_conv_critic_shapes(image_shape, channels):
    d = _flat(image_shape)
    out, f = abstract_run(lambda: ConvCritic(image_shape, channels=channels, rngs=nnx.Rngs(0)), (2, d))
    assert out == (2,)
    assert all(type(c) is SpectralConv for c in f.convs) and type(f.head) is SpectralLinear
    h, w, _ = image_shape
    assert f.head.in_features == -(-h // 4) * -(-w // 4) * channels[-1]  # two stride-2 convs, SAME
    out, _ = abstract_run(lambda: ConvCritic(image_shape, channels=channels, rngs=nnx.Rngs(0)), (1, 2, d))
    assert out == (1, 2)


def test_conv_critic_without_spectral_norm():
    out, g = abstract_run(lambda: ConvCritic((8, 8, 3), spectral_norm=False, rngs=nnx.Rngs(0)), (2, 192))
    assert out == (2,)
    assert all(type(c) is nnx.Conv for c in g.convs) and type(g.head) is nnx.Linear
    assert len(nnx.to_flat_state(nnx.state(g, SpectralVector))) == 0
    with pytest.raises(ValueError, match="expected flat images"):
        abstract_run(lambda: ConvCritic((8, 8, 3), rngs=nnx.Rngs(0)), (2, 64))


@pytest.fixture(scope="module")
def critic():
    return ConvCritic((8, 8, 3), channels=SMALL, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def generator():
    return ImageGenerator(5, [(8, 8, 1), (8, 8, 3)], hidden=16, channels=SMALL[::-1], rngs=nnx.Rngs(0))


def test_conv_critic_reads_images_c_order(rng, critic):
    # the flat vector is an [H, W, C] image flattened in C order: the convs must see it that way
    graphdef, state = nnx.split(critic)

    @jax.jit
    def both(state, img):
        f = nnx.merge(graphdef, state)
        act = activation("leaky_relu")
        h = act(f.convs[1](act(f.convs[0](img))))
        return f(img.reshape(2, -1)), f.head(h.reshape(2, -1))[:, 0], h.shape

    img = jnp.asarray(rng.normal(size=(2, 8, 8, 3)))
    out, ref, h_shape = both(state, img)
    assert h_shape == (2, 2, 2, SMALL[-1]) and out.shape == (2,)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_conv_critic_power_iteration_updates_only_u(critic):
    graphdef, params, sv = nnx.split(critic, nnx.Param, SpectralVector)
    assert [u.shape for u in jax.tree.leaves(sv)] == [(4,), (8,), (1,)]

    @jax.jit
    def step(params, sv):
        m = nnx.merge(graphdef, params, sv)
        power_iteration(m, num_steps=2)
        return nnx.split(m, nnx.Param, SpectralVector)[1:]

    params2, sv2 = step(params, sv)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(jax.tree.leaves(sv)[0], jax.tree.leaves(sv2)[0])


@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("channels", [SMALL[::-1], (64, 32)])
def test_conv_decoder_shapes(image_shape, channels):
    d = _flat(image_shape)
    out, dec = abstract_run(lambda: ConvDecoder(5, image_shape, channels=channels, rngs=nnx.Rngs(0)), (3, 5))
    assert out == (3, d) and dec.latent_dim == 5
    assert dec.base_shape == (image_shape[0] // 4, image_shape[1] // 4, channels[0])
    out, _ = abstract_run(lambda: ConvDecoder(5, image_shape, channels=channels, rngs=nnx.Rngs(0)), (2, 3, 5))
    assert out == (2, 3, d)


def test_conv_decoder_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvDecoder(5, (10, 10, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvDecoder(5, (8, 6, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        ConvDecoder(5, (8, 8), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown activation"):
        ConvDecoder(5, (8, 8, 1), output_activation="softmax", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("shared_trunk", [True, False])
@pytest.mark.parametrize("shapes", [[(8, 8, 1)], [(8, 8, 1), (28, 28, 1)], [(8, 8, 1), (8, 8, 3), (28, 28, 1)]])
def test_image_generator_shapes(shared_trunk, shapes):
    out, g = abstract_run(lambda: ImageGenerator(5, shapes, shared_trunk=shared_trunk, rngs=nnx.Rngs(0)), (2, 5))
    assert g.latent_dim == 5 and len(g.decoders) == len(shapes)
    assert out == tuple((2, _flat(s)) for s in shapes)
    assert (g.trunk is not None) == shared_trunk
    assert all(dec.latent_dim == (256 if shared_trunk else 5) for dec in g.decoders)


def test_image_generator_values(generator, key):
    graphdef, state = nnx.split(generator)

    @jax.jit
    def run(state, z):
        g = nnx.merge(graphdef, state)
        h = activation("leaky_relu")(g.trunk(z))  # the shared trunk feeds every decoder
        return g(z), tuple(dec(h) for dec in g.decoders)

    z = 3 * jax.random.normal(key, (2, 5))
    ys, refs = run(state, z)
    assert isinstance(ys, tuple) and [y.shape for y in ys] == [(2, 64), (2, 192)]
    for y, ref in zip(ys, refs, strict=True):
        assert np.all((y > 0) & (y < 1)) and float(jnp.std(y)) > 0
        np.testing.assert_allclose(y, ref, rtol=1e-12)
    with pytest.raises(ValueError, match="at least one"):
        ImageGenerator(5, [], rngs=nnx.Rngs(0))


def test_jit_and_vmap_through_the_functional_api(rng, critic, generator):
    x = jnp.asarray(rng.uniform(size=(3, 192)))
    z = jnp.asarray(rng.normal(size=(3, 5)))
    for model, inp in [(critic, x), (generator, z)]:
        graphdef, params, sv = nnx.split(model, nnx.Param, SpectralVector)

        def apply(params, sv, x, graphdef=graphdef):
            return nnx.merge(graphdef, params, sv)(x)

        jitted = jax.tree.leaves(jax.jit(apply)(params, sv, inp))
        mapped = jax.tree.leaves(jax.jit(jax.vmap(apply, in_axes=(None, None, 0)))(params, sv, inp))
        assert [a.shape for a in jitted] == ([(3,)] if model is critic else [(3, 64), (3, 192)])
        for a, b in zip(jitted, mapped, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_strict_dtype_promotion(dtype):
    def run():
        f = ConvCritic((8, 8, 1), channels=(2, 2), param_dtype=dtype, rngs=nnx.Rngs(0))
        power_iteration(f)
        g = ImageGenerator(3, [(8, 8, 1)], hidden=4, channels=(2, 2), param_dtype=dtype, rngs=nnx.Rngs(0))
        return f(jnp.ones((2, 64), dtype)), g(jnp.ones((2, 3), dtype)), f.convs[0].u[...]

    with jax.numpy_dtype_promotion("strict"):
        out = jax.eval_shape(run)
    assert all(a.dtype == dtype for a in jax.tree.leaves(out))
