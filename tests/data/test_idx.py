"""IDX (MNIST-format) files (ot_jax/data/idx.py): round trips, errors, image loading and sampling."""

import gzip
import struct

import jax
import numpy as np
import pytest

from ot_jax.data.idx import idx_sampler, load_idx_images, read_idx, write_idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 4, 3)), (np.int8, (7,)), (np.int16, (2, 3)),
                                         (np.int32, (3, 2, 2)), (np.float32, (4, 6)), (np.float64, (2, 2, 2, 3))])
def test_round_trip(tmp_path, rng, dtype, shape, gz):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = rng.normal(size=shape).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    back[...] = 0  # writable
    read_idx(str(path))  # str paths too


def test_header_layout_matches_mnist(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", arr)
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 3])  # MNIST's magic 2051
    assert struct.unpack(">I", raw[:4])[0] == 2051 and struct.unpack(">3I", raw[4:16]) == (2, 28, 28)
    assert len(raw) == 16 + arr.size
    f = np.array([1.5, -2.0], dtype=np.float32)
    write_idx(tmp_path / "f", f)
    raw = (tmp_path / "f").read_bytes()
    assert raw[2] == 0x0D and raw[8:] == f.astype(">f4").tobytes()  # big-endian data


def test_gzip_detected_by_content(tmp_path):
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "a.gz", arr)
    (tmp_path / "renamed").write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "renamed"), arr)
    # deterministic output (no timestamp in the gzip header)
    write_idx(tmp_path / "b.gz", arr)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_casts_other_integers(tmp_path):
    labels = np.array([0, 9, 3], dtype=np.int64)
    write_idx(tmp_path / "l", labels)
    back = read_idx(tmp_path / "l")
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)
    with pytest.raises(ValueError, match="int32"):
        write_idx(tmp_path / "l", np.array([2**40]))
    with pytest.raises(ValueError, match="unsupported dtype"):
        write_idx(tmp_path / "c", np.array([1 + 2j]))


def _raw(tmp_path, data: bytes, gz=False):
    path = tmp_path / ("bad.gz" if gz else "bad")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("data,match", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown type code 0x07"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "truncated header"),
    (b"\x00\x00", "truncated header"),
    (b"\x00\x00\x08\x02" + struct.pack(">2I", 3, 4) + bytes(11), "truncated data"),
    (b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + bytes(7), "truncated data"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes(3), "trailing"),
])
def test_bad_files(tmp_path, data, match, gz):
    with pytest.raises(ValueError, match=match):
        read_idx(_raw(tmp_path, data, gz))


def test_truncated_written_file(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((10, 8, 8), dtype=np.uint8))
    raw = (tmp_path / "ok").read_bytes()
    with pytest.raises(ValueError, match="truncated data"):
        read_idx(_raw(tmp_path, raw[:-1]))


@pytest.fixture
def mnist_like(tmp_path, rng):
    images = rng.integers(0, 256, size=(30, 6, 5), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 0, 255
    labels = (np.arange(30) % 3).astype(np.uint8)
    write_idx(tmp_path / "images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "labels-idx1-ubyte.gz", labels)
    return tmp_path / "images-idx3-ubyte.gz", tmp_path / "labels-idx1-ubyte.gz", images, labels


def test_load_idx_images(mnist_like, tmp_path):
    ipath, lpath, images, labels = mnist_like
    x, y = load_idx_images(ipath)
    assert y is None and x.shape == (30, 30) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, images.reshape(30, -1) / 255.0, rtol=1e-6)
    x, y = load_idx_images(ipath, labels_path=lpath, dtype=np.float64)
    assert y.dtype == np.int64 and x.dtype == np.float64
    np.testing.assert_array_equal(y, labels)
    x, _ = load_idx_images(ipath, scale=510.0)
    assert x.max() == 0.5
    # colour images [N, H, W, C] are flattened C-order
    rgb = (np.arange(2 * 2 * 3 * 3) % 256).astype(np.uint8).reshape(2, 2, 3, 3)
    write_idx(tmp_path / "rgb", rgb)
    np.testing.assert_allclose(load_idx_images(tmp_path / "rgb")[0], rgb.reshape(2, 18) / 255, rtol=1e-6)
    # float files are taken as already in [0, 1]
    write_idx(tmp_path / "f", np.full((3, 2, 2), 0.25))
    np.testing.assert_array_equal(load_idx_images(tmp_path / "f")[0], 0.25)


def test_load_idx_images_errors(mnist_like, tmp_path):
    ipath, lpath, images, labels = mnist_like
    write_idx(tmp_path / "few", labels[:5])
    with pytest.raises(ValueError, match="labels must have shape"):
        load_idx_images(ipath, labels_path=tmp_path / "few")
    with pytest.raises(ValueError, match="need images"):
        load_idx_images(lpath)
    write_idx(tmp_path / "big", np.full((2, 2, 2), 3.0))
    with pytest.raises(ValueError, match="outside"):
        load_idx_images(tmp_path / "big")
    write_idx(tmp_path / "i16", np.ones((2, 2, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="explicit scale"):
        load_idx_images(tmp_path / "i16")
    assert load_idx_images(tmp_path / "i16", scale=2.0)[0].max() == 0.5
    with pytest.raises(ValueError, match="scale"):
        load_idx_images(ipath, scale=0.0)


def test_idx_sampler(mnist_like):
    ipath, lpath, images, labels = mnist_like
    f = idx_sampler(ipath, labels_path=lpath, classes=[1])
    x = np.asarray(jax.jit(f, static_argnums=1)(jax.random.PRNGKey(0), 40))
    assert x.shape == (40, 30) and x.min() >= 0 and x.max() <= 1
    ones = images[labels == 1].reshape(-1, 30) / 255.0
    assert all(np.abs(ones - r).max(1).min() < 1e-6 for r in x)  # only images labelled 1
    assert jax.eval_shape(lambda k: idx_sampler(ipath)(k, 3), jax.random.PRNGKey(0)).shape == (3, 30)
    with pytest.raises(ValueError, match="labels_path"):
        idx_sampler(ipath, classes=[1])
    with pytest.raises(ValueError, match="no image"):
        idx_sampler(ipath, labels_path=lpath, classes=[7])
