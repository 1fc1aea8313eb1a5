"""Shipped sample images (ot_jax/data/images.py)."""

import numpy as np
import pytest

from ot_jax.data import SAMPLE_IMAGES, sample_image


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_full_size_in_unit_range(name):
    img = sample_image(name)
    assert img.shape == (427, 640, 3) and img.dtype == np.float64
    assert img.min() >= 0.0 and img.max() <= 1.0
    np.testing.assert_allclose(img * 255, np.round(img * 255), atol=1e-9)  # the 8-bit levels k / 255


def test_stride_dtype_and_suffix():
    full = sample_image("china")
    small = sample_image("china.jpg", stride=4, dtype=np.float32)
    assert small.shape == (107, 160, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small, full[::4, ::4], atol=1e-7)
    assert not np.array_equal(sample_image("flower", stride=4), small)
    small[0, 0, 0] = 0.5  # a writable copy: the next call is unaffected
    assert sample_image("china", stride=4)[0, 0, 0] == full[0, 0, 0]


@pytest.mark.parametrize("kwargs,match", [(dict(name="lena"), "unknown image"), (dict(stride=0), "stride"),
                                          (dict(stride=1.5), "stride"), (dict(dtype=np.uint8), "dtype")])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_image(**kwargs)
