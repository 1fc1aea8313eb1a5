"""Colour transfer (ot_jax/color.py): the thesis' per-channel figure 2.7 and the joint RGB mode."""

import functools

import jax
import numpy as np
import pytest

import ot_jax
from ot_jax.tools.color import color_transfer
from ot_jax.data import sample_image


@pytest.fixture(scope="module")
def images():
    """china -> flower at stride 8: [54, 80, 3] each, float64 in [0, 1]."""
    return sample_image("china", stride=8), sample_image("flower", stride=8)


def channel_w1(img, ref):
    """[C] exact 1-D W1 between the channel values of two images."""
    return np.array([float(ot_jax.wasserstein_1d(np.ravel(img[..., c]), np.ravel(ref[..., c])))
                     for c in range(img.shape[-1])])


def sliced(img, ref):
    return float(ot_jax.sliced_wasserstein(jax.random.PRNGKey(1), np.reshape(img, (-1, 3)),
                                           np.reshape(ref, (-1, 3)), n_projections=64))


@pytest.fixture(scope="module")
def channel_outputs(images):
    """Outputs of the exact-type solvers on 64 bins (so the LP and IPOT are quick)."""
    src, tgt = images
    return {s: color_transfer(src, tgt, solver=s, n_bins=64) for s in ("quantile", "lp", "ipot")}


# ----------------------------------------------------------------------------- channels


def test_quantile_matches_target_histograms(images):
    src, tgt = images
    out = color_transfer(src, tgt, solver="quantile")
    assert out.image.shape == src.shape
    assert out.mapped_colors.shape == out.source_colors.shape == (256, 3)
    before, after = channel_w1(src, tgt), channel_w1(np.asarray(out.image), tgt)
    assert np.all(after < 0.02 * before), (before, after)
    assert np.all(after < 0.005), after


@pytest.mark.parametrize("solver", ["quantile", "lp", "ipot"])
def test_channels_match_target_histograms_64_bins(images, channel_outputs, solver):
    src, tgt = images
    out = channel_outputs[solver]
    assert out.mapped_colors.shape == out.source_colors.shape == (64, 3)
    before, after = channel_w1(src, tgt), channel_w1(np.asarray(out.image), tgt)
    assert np.all(after < 0.05 * before), (before, after)
    assert np.all(after < 0.015), after  # 64 levels: binning alone moves values by up to 1/126
    assert float(np.min(out.image)) >= 0.0 and float(np.max(out.image)) <= 1.0


def test_exact_ipot_quantile_agree(channel_outputs):
    """The thesis: IPOT reproduces the LP result; in 1-D both are the monotone map."""
    q, e, i = (np.asarray(channel_outputs[s].image) for s in ("quantile", "lp", "ipot"))
    np.testing.assert_allclose(e, q, atol=1e-9)
    assert np.max(np.abs(i - e)) < 0.1 / 255  # a tenth of an 8-bit level
    assert np.mean(np.abs(i - e)) < 0.01 / 255
    np.testing.assert_allclose(channel_outputs["ipot"].cost, channel_outputs["lp"].cost, rtol=1e-4)


def test_exact_map_is_monotone(images, channel_outputs):
    src, _ = images
    out = np.asarray(channel_outputs["lp"].image)
    for c in range(3):
        order = np.argsort(src[..., c].ravel(), kind="stable")
        assert np.all(np.diff(out[..., c].ravel()[order]) >= -1e-12)


def test_sinkhorn_larger_epsilon_washes_out(images):
    """Thesis figure 2.7: the Sinkhorn result differs with epsilon; larger epsilon, larger mismatch."""
    src, tgt = images
    exact = np.asarray(color_transfer(src, tgt, solver="quantile").image)  # = the LP map (256 levels)
    out = {eps: np.asarray(color_transfer(src, tgt, solver="sinkhorn", epsilon=eps).image) for eps in (1e-2, 1e-3)}
    w1 = {eps: channel_w1(img, tgt) for eps, img in out.items()}
    w1_exact = channel_w1(exact, tgt)
    assert np.all(w1[1e-2] > w1[1e-3]), w1
    assert np.all(w1[1e-3] > w1_exact), (w1, w1_exact)
    assert w1[1e-2].sum() > 3.0 * w1_exact.sum()
    assert np.mean(np.abs(out[1e-2] - exact)) > np.mean(np.abs(out[1e-3] - exact))
    # Washing toward the mean: the spread of each channel shrinks.
    assert np.all(out[1e-2].reshape(-1, 3).std(0) < exact.reshape(-1, 3).std(0))


def test_channels_identity_and_constant_target():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(12, 9, 3)) / 255.0
    for solver in ("quantile", "lp"):
        np.testing.assert_allclose(color_transfer(img, img, solver=solver).image, img, atol=1e-9)
    flat = np.broadcast_to(np.array([0.2, 0.4, 0.8]), (5, 7, 3))
    out = color_transfer(img, flat, solver="quantile").image
    np.testing.assert_allclose(out, np.broadcast_to(flat[:1, :1], img.shape), atol=1e-12)


def test_channels_jit_and_grayscale(images):
    src, tgt = images
    fn = jax.jit(functools.partial(color_transfer, solver="quantile"))
    np.testing.assert_allclose(fn(src, tgt).image, color_transfer(src, tgt, solver="quantile").image, atol=1e-12)
    gray = color_transfer(src[..., :1], tgt[..., 1:2], solver="quantile")
    assert gray.image.shape == src[..., :1].shape


def test_float32_ipot_channels(images):
    src, tgt = (np.asarray(x, np.float32) for x in images)
    q = np.asarray(color_transfer(src, tgt, solver="quantile", n_bins=64).image)
    i = color_transfer(src, tgt, solver="ipot", n_bins=64)
    assert i.image.dtype == np.float32
    assert np.max(np.abs(np.asarray(i.image) - q)) < 1.0 / 255


@pytest.mark.slow
def test_full_size_256_bins_exact_vs_ipot():
    """Figure 2.7 at full size: china -> flower, 256 levels (about 20 s)."""
    src, tgt = sample_image("china"), sample_image("flower")
    e = np.asarray(color_transfer(src, tgt, solver="lp").image)
    i = np.asarray(color_transfer(src, tgt, solver="ipot").image)
    assert np.max(np.abs(i - e)) < 0.5 / 255 and np.mean(np.abs(i - e)) < 0.05 / 255
    np.testing.assert_allclose(e, color_transfer(src, tgt, solver="quantile").image, atol=1e-9)


# ----------------------------------------------------------------------------- rgb


@pytest.mark.parametrize("solver,extension", [("hungarian", "nearest"), ("hungarian", "soft"), ("ipot", "nearest"),
                                              ("sinkhorn", "soft")])
def test_rgb_moves_colours_to_target(images, solver, extension):
    src, tgt = images
    out = color_transfer(src, tgt, space="rgb", solver=solver, extension=extension,
                         key=jax.random.PRNGKey(0), n_palette=128)
    assert out.image.shape == src.shape
    assert out.source_colors.shape == out.mapped_colors.shape == out.target_colors.shape == (128, 3)
    assert float(np.min(out.image)) >= 0.0 and float(np.max(out.image)) <= 1.0
    before, after = sliced(src, tgt), sliced(np.asarray(out.image), tgt)
    assert after < 0.25 * before, (before, after)
    assert bool(out.converged[0])


def test_rgb_exact_is_a_palette_permutation(images):
    src, tgt = images
    out = color_transfer(src, tgt, space="rgb", key=jax.random.PRNGKey(3), n_palette=64)
    mapped, pal_t = np.asarray(out.mapped_colors), np.asarray(out.target_colors)
    np.testing.assert_array_equal(np.sort(mapped, axis=0), np.sort(pal_t, axis=0))
    ipot = color_transfer(src, tgt, space="rgb", solver="ipot", key=jax.random.PRNGKey(3), n_palette=64)
    np.testing.assert_allclose(ipot.cost, out.cost, rtol=1e-4)
    # The blocked extension does not depend on the block size.
    np.testing.assert_allclose(color_transfer(src, tgt, space="rgb", key=jax.random.PRNGKey(3), n_palette=64,
                                              block_size=100).image, out.image, atol=1e-12)


def test_rgb_soft_temperature():
    rng = np.random.default_rng(2)  # continuous colours: no duplicate palette colours, no ties
    src, tgt = rng.uniform(0.0, 0.6, size=(30, 40, 3)), rng.uniform(0.3, 1.0, size=(20, 30, 3))
    kw = dict(space="rgb", solver="hungarian", key=jax.random.PRNGKey(0), n_palette=64)
    out = color_transfer(src, tgt, **kw)
    near = np.asarray(out.image)
    cold = np.asarray(color_transfer(src, tgt, extension="soft", temperature=1e-8, **kw).image)
    hot = np.asarray(color_transfer(src, tgt, extension="soft", temperature=1e4, **kw).image)
    default = np.asarray(color_transfer(src, tgt, extension="soft", **kw).image)
    assert np.mean(np.abs(cold - near) > 1e-9) < 0.01  # a cold softmax is the nearest rule
    mean_shift = np.mean(np.asarray(out.mapped_colors) - np.asarray(out.source_colors), axis=0)
    np.testing.assert_allclose(hot, np.clip(src + mean_shift, 0, 1), atol=1e-3)  # a hot one: one global shift
    assert sliced(default, tgt) < 0.3 * sliced(src, tgt)


def test_rgb_palette_capped_by_pixel_count():
    rng = np.random.default_rng(1)
    src, tgt = rng.uniform(size=(4, 5, 3)), rng.uniform(size=(3, 3, 3))
    out = color_transfer(src, tgt, space="rgb", key=jax.random.PRNGKey(0), n_palette=512)
    assert out.mapped_colors.shape == (9, 3)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(space="lab"), "unknown space"),
        (dict(solver="exact"), "unknown solver"),
        (dict(space="rgb", solver="lp", key=jax.random.PRNGKey(0)), "hungarian"),
        (dict(solver="hungarian"), "lp"),
        (dict(space="rgb", solver="quantile", key=jax.random.PRNGKey(0)), "quantile"),
        (dict(space="rgb"), "needs a key"),
        (dict(space="rgb", key=jax.random.PRNGKey(0), extension="linear"), "unknown extension"),
        (dict(n_bins=1), "n_bins"),
        (dict(solver="sinkhorn", epsilon=-1.0), "epsilon"),
        (dict(space="rgb", key=jax.random.PRNGKey(0), n_palette=0), "n_palette"),
        (dict(max_iters=0, solver="ipot"), "max_iters"),
    ],
)
def test_bad_settings(kwargs, match):
    img = np.full((4, 4, 3), 0.5)
    with pytest.raises(ValueError, match=match):
        color_transfer(img, img, **kwargs)


def test_bad_images():
    good = np.full((4, 4, 3), 0.5)
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        color_transfer(good[..., 0], good)
    with pytest.raises(ValueError, match="channels"):
        color_transfer(good, good[..., :2])
    with pytest.raises(ValueError, match="empty"):
        color_transfer(good[:0], good)
    with pytest.raises(ValueError, match="divide 8-bit"):
        color_transfer(good * 255, good)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        color_transfer(good, good - 0.6)
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        color_transfer(good, bad)
