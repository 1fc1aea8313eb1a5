"""scikit-learn digits, transformed domains and array samplers (ot_jax/data/digits.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax.data
from ot_jax.data.digits import DIGIT_TRANSFORMS, ROTATION_DEGREES, array_sampler, digit_shape, digits, load_digits

LUMA = np.array([0.299, 0.587, 0.114])


def _default_float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def test_plain_digits():
    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x * 16, np.round(x * 16), atol=1e-5)  # the 17 grey levels k / 16
    assert set(np.unique(y).tolist()) == set(range(10)) and np.issubdtype(y.dtype, np.integer)
    x64, _ = load_digits(dtype=np.float64)
    assert x64.dtype == np.float64
    x[0, 0] = 0.5  # fresh writable copies: the cache is unaffected
    assert load_digits()[0][0, 0] == x64[0, 0]


@pytest.mark.parametrize("transform", DIGIT_TRANSFORMS)
def test_shapes_range_labels(transform):
    x, y = load_digits(transform=transform)
    h, w, c = digit_shape(transform)
    assert (h, w) == ((16, 16) if transform == "usps" else (8, 8)) and c in (1, 3)
    assert x.shape == (1797, h * w * c) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(y, load_digits()[1])


def test_inverted_is_one_minus_none():
    np.testing.assert_allclose(load_digits(transform="inverted")[0], 1.0 - load_digits()[0], atol=1e-7)


@pytest.mark.parametrize("transform", ["colored", "textured"])
def test_seeded_determinism(transform):
    a = load_digits(transform=transform, seed=0)[0]
    np.testing.assert_array_equal(a, load_digits(transform=transform, seed=0)[0])
    b = load_digits(transform=transform, seed=1)[0]
    assert np.abs(a - b).mean() > 0.05
    # "none" and "inverted" ignore the seed
    np.testing.assert_array_equal(load_digits(seed=3)[0], load_digits()[0])


def test_usps_like_is_a_smoothed_upsampling():
    grey = load_digits(dtype=np.float64)[0].reshape(-1, 8, 8)
    usps = load_digits(transform="usps", dtype=np.float64)[0].reshape(-1, 16, 16)
    np.testing.assert_allclose(usps.max(axis=(1, 2)), 1.0)
    # block-averaged back to 8x8 it is the digit again (up to blur and scale)
    down = usps.reshape(-1, 8, 2, 8, 2).mean(axis=(2, 4))
    corr = np.array([np.corrcoef(g.ravel(), d.ravel())[0, 1] for g, d in zip(grey, down)])
    assert np.median(corr) > 0.9
    # smoother than nearest-neighbour upsampling: neighbouring pixels differ less
    nearest = np.repeat(np.repeat(grey, 2, axis=1), 2, axis=2)
    nearest /= nearest.max(axis=(1, 2), keepdims=True)  # the same scale
    assert np.abs(np.diff(usps, axis=2)).mean() < 0.9 * np.abs(np.diff(nearest, axis=2)).mean()  # measured 0.84


def test_colored_structure():
    grey = load_digits(dtype=np.float64)[0]
    rgb = load_digits(transform="colored", dtype=np.float64)[0].reshape(-1, 8, 8, 3)  # flat C-order [H, W, C]
    lum = rgb.reshape(-1, 64, 3) @ LUMA
    corr = np.array([np.corrcoef(g, l)[0, 1] for g, l in zip(grey, lum)])
    assert np.all(np.abs(corr) > 0.99)  # luminance is affine in the grey digit, per image
    assert 0.2 < (corr > 0).mean() < 0.8  # both bright-on-dark and dark-on-bright images
    # a pixel is bg + x (fg - bg): at a blank pixel it is the background; the foreground is extrapolated
    # from the brightest stroke pixel; the two colours differ in luma by at least 0.3
    px = rgb.reshape(-1, 64, 3)
    bg = np.stack([p[gi == 0].mean(0) for p, gi in zip(px, grey)])
    top = grey.argmax(1)
    fg = bg + (px[np.arange(len(px)), top] - bg) / grey[np.arange(len(px)), top][:, None]
    np.testing.assert_allclose(px, bg[:, None] + grey[..., None] * (fg - bg)[:, None], atol=1e-6)
    assert np.all(np.abs((fg - bg) @ LUMA) >= 0.3 - 1e-9)
    assert bg.std(0).min() > 0.2 and fg.std(0).min() > 0.2  # random colours, not a constant tint


def test_textured_structure():
    grey = load_digits(dtype=np.float64)[0]
    rgb = load_digits(transform="textured", dtype=np.float64)[0].reshape(-1, 64, 3)
    lum = rgb @ LUMA
    corr = np.array([np.corrcoef(g, l)[0, 1] if l.std() > 0 else 0.0 for g, l in zip(grey, lum)])
    assert np.mean(np.abs(corr)) > 0.6  # the stroke survives the |patch - stroke| blend
    # where the digit is blank the pixel is the patch itself: backgrounds are not constant
    blank = grey == 0.0
    assert np.mean([rgb[i][blank[i]].std() for i in range(200)]) > 0.01


def test_errors():
    with pytest.raises(ValueError, match="'none', 'inverted', 'colored', 'textured'"):
        load_digits(transform="mnistm")
    with pytest.raises(ValueError, match="unknown transform"):
        digit_shape("sheared")
    with pytest.raises(ValueError, match="dtype"):
        load_digits(dtype=np.uint8)
    with pytest.raises(ValueError, match="seed"):
        load_digits(transform="colored", seed=-1)
    k = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="classes"):
        digits(k, 3, classes=[11])
    with pytest.raises(ValueError, match="classes"):
        digits(k, 3, classes=[])
    with pytest.raises(ValueError, match="n must be"):
        digits(k, 0)
    with pytest.raises(ValueError, match="unknown transform"):
        digits(k, 3, transform="foo")
    with pytest.raises(ValueError, match="2-D"):
        array_sampler(np.zeros(5))
    with pytest.raises(ValueError, match="non-empty"):
        array_sampler(np.zeros((0, 3)))


def test_digits_sampler_jit_and_classes():
    n = 2000
    f = jax.jit(functools.partial(digits, transform="colored", classes=[3, 7]), static_argnums=1)
    k0, k1 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
    x = f(k0, n)
    assert x.shape == (n, 192) and x.dtype == _default_float()
    np.testing.assert_array_equal(np.asarray(f(k0, n)), np.asarray(x))
    assert not np.array_equal(np.asarray(f(k1, n)), np.asarray(x))
    data, labels = load_digits(transform="colored", dtype=np.float64)
    rows = {r.tobytes(): i for i, r in enumerate(data[np.isin(labels, [3, 7])].astype(x.dtype))}
    hit = [rows.get(r.tobytes()) for r in np.asarray(x)]
    assert None not in hit  # every sample is one of the 3s and 7s
    counts = np.bincount(hit, minlength=len(rows))
    assert (counts > 0).mean() > 0.97  # uniform with replacement, ~5.5 draws per image: nearly all hit
    assert counts.max() < 20
    # an eager call draws the same images
    np.testing.assert_array_equal(np.asarray(digits(k0, n, transform="colored", classes=[3, 7])), np.asarray(x))


def test_array_sampler():
    data = np.arange(30.0).reshape(10, 3)
    f = array_sampler(data)
    x = np.asarray(jax.jit(f, static_argnums=1)(jax.random.PRNGKey(0), 500))
    assert x.shape == (500, 3) and x.dtype == _default_float()
    assert set(x[:, 0].tolist()) == set(data[:, 0].tolist())  # all rows drawn, only rows drawn
    np.testing.assert_array_equal(x[:, 1] - x[:, 0], 1.0)
    assert jax.eval_shape(lambda k: array_sampler(jnp.ones((2, 4)))(k, 3), jax.random.PRNGKey(0)).shape == (3, 4)


def test_package_layout_and_hydra_paths():
    from hydra.utils import get_method

    import ot_jax.data.digits as module

    assert ot_jax.data.digits is module  # the module is not shadowed by the sampler of the same name
    assert get_method("ot_jax.data.digits.digits") is digits
    assert get_method("ot_jax.data.load_digits") is load_digits
    assert get_method("ot_jax.data.laws.eight_gaussians") is ot_jax.data.eight_gaussians
    for name in ("DIGIT_TRANSFORMS", "digit_shape", "load_digits", "array_sampler"):
        assert getattr(ot_jax.data, name) is getattr(module, name)


# -- train / test split --------------------------------------------------------------------------
def _row_index(x):
    return {r.tobytes(): i for i, r in enumerate(x)}


def test_split_sizes_disjoint_stratified():
    from ot_jax.data.digits import DIGIT_SPLITS, _split_index

    assert DIGIT_SPLITS == ("all", "train", "test")
    tr, te = _split_index("train"), _split_index("test")
    assert tr.size + te.size == 1797 and (tr.size, te.size) == (1438, 359)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(1797))
    x, y = load_digits(dtype=np.float64)
    (xtr, ytr), (xte, yte) = load_digits(split="train", dtype=np.float64), load_digits(split="test", dtype=np.float64)
    assert xtr.shape == (1438, 64) and xte.shape == (359, 64) and ytr.shape == (1438,) and yte.shape == (359,)
    # labels aligned: a split's rows are the rows of "all" at the split's indices
    np.testing.assert_array_equal(xtr, x[tr])
    np.testing.assert_array_equal(ytr, y[tr])
    np.testing.assert_array_equal(xte, x[te])
    np.testing.assert_array_equal(yte, y[te])
    # stratified: every class in both, ~20% of each class in test
    counts_all, counts_te = np.bincount(y, minlength=10), np.bincount(yte, minlength=10)
    assert np.bincount(ytr, minlength=10).min() > 100 and counts_te.min() > 30
    np.testing.assert_array_equal(counts_te, np.round(0.2 * counts_all).astype(int))
    # not simply the first or last images of each class
    assert 0 < te.mean() / 1797 < 1 and np.diff(te).max() < 60


def test_split_deterministic_and_transform_independent():
    a = load_digits(split="test")
    from ot_jax.data import digits as module

    module._split_index.cache_clear()  # recomputed from scratch: the same rows
    b = load_digits(split="test")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # the same digits are test images in every domain and for every seed
    for transform in DIGIT_TRANSFORMS:
        for seed in (0, 5):
            xt, yt = load_digits(transform=transform, seed=seed, split="test")
            np.testing.assert_array_equal(yt, a[1])
            xa = load_digits(transform=transform, seed=seed)[0]
            np.testing.assert_array_equal(xt, xa[module._split_index("test")])
    # "all" is the unchanged default; fresh writable copies
    np.testing.assert_array_equal(load_digits(split="all")[0], load_digits()[0])
    x, _ = load_digits(split="train")
    x[0, 0] = 7.0
    assert load_digits(split="train")[0][0, 0] != 7.0


def test_split_sampler():
    k = jax.random.PRNGKey(0)
    n = 3000
    x = np.asarray(digits(k, n, split="test", classes=[1, 2]))
    data, labels = load_digits(split="test", dtype=np.float64)
    rows = _row_index(data[np.isin(labels, [1, 2])].astype(x.dtype))
    hit = [rows.get(r.tobytes()) for r in x]
    assert None not in hit and len(set(hit)) == len(rows)  # only, and all, the test 1s and 2s
    train_rows = _row_index(load_digits(split="train", dtype=np.float64)[0].astype(x.dtype))
    xtr = np.asarray(jax.jit(functools.partial(digits, split="train", transform="none"), static_argnums=1)(k, 500))
    assert all(r.tobytes() in train_rows for r in xtr)
    # the split is part of the cache key: distinct arrays per split
    from ot_jax.data.digits import _restricted

    assert _restricted("none", 0, None, "test").shape == (359, 64)
    assert _restricted("none", 0, None, "train").shape == (1438, 64)
    assert _restricted("none", 0, None, "all").shape == (1797, 64)
    assert not _restricted("none", 0, None, "test").flags.writeable
    # colored test images of the sampler are rows of the colored test split
    xc = np.asarray(digits(k, 200, transform="colored", seed=2, split="test"))
    rows_c = _row_index(load_digits(transform="colored", seed=2, split="test", dtype=np.float64)[0].astype(xc.dtype))
    assert all(r.tobytes() in rows_c for r in xc)


def test_split_errors():
    with pytest.raises(ValueError, match="unknown split 'val'.*'all', 'train', 'test'"):
        load_digits(split="val")
    with pytest.raises(ValueError, match="unknown split"):
        digits(jax.random.PRNGKey(0), 3, split="Test")
    with pytest.raises(ValueError, match="unknown split"):
        load_digits(split=None)


def test_rotated_digits_turn_their_centre_of_mass_by_the_rotation():
    x, _ = load_digits(transform="none", dtype=np.float64)
    r, _ = load_digits(transform="rotated", dtype=np.float64)
    assert r.shape == x.shape and 0.0 <= r.min() and r.max() <= 1.0
    rows, cols = np.mgrid[0:8, 0:8] - 3.5

    def centre(v):  # (right, up) from the image centre
        v = v.reshape(-1, 8, 8)
        m = v.sum((1, 2))
        return np.stack([(v * cols).sum((1, 2)) / m, -(v * rows).sum((1, 2)) / m], 1)

    a, b = centre(x), centre(r)
    off = np.linalg.norm(a, axis=1) > 0.5  # digits whose mass is off-centre enough to show a direction
    turn = np.degrees(np.arctan2(b[off, 1], b[off, 0]) - np.arctan2(a[off, 1], a[off, 0]))
    turn = (turn + 180) % 360 - 180
    assert abs(np.median(turn) - ROTATION_DEGREES) < 5  # counter-clockwise, by the documented angle
