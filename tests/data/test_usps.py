"""USPS-format HDF5 files: round trip on a small file the test writes, and clear errors."""

import numpy as np
import pytest

from ot_jax.data.usps import read_usps, write_usps


def test_round_trip_of_both_splits(tmp_path):
    rng = np.random.default_rng(0)
    train = (rng.uniform(size=(12, 256)), rng.integers(0, 10, 12))
    test = (rng.uniform(size=(5, 256)), rng.integers(0, 10, 5))
    path = tmp_path / "usps.h5"
    write_usps(path, {"train": train, "test": test})
    for split, (x, y) in (("train", train), ("test", test)):
        images, labels = read_usps(path, split, dtype=np.float64)
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y)
        assert labels.dtype == np.int64
    assert read_usps(path)[0].dtype == np.float32


def test_bad_files_give_clear_errors(tmp_path):
    path = tmp_path / "usps.h5"
    write_usps(path, {"train": (np.full((3, 256), 2.0), np.arange(3))})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        read_usps(path)
    with pytest.raises(ValueError, match="has no group 'test'"):
        read_usps(path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        read_usps(path, "val")
    with pytest.raises(OSError, match="no such file"):
        read_usps(tmp_path / "missing.h5")
    write_usps(path, {"train": (np.zeros((3, 256)), np.arange(2))})
    with pytest.raises(ValueError, match="3 images but labels"):
        read_usps(path)
