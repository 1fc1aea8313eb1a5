"""IDX files (the MNIST / Fashion-MNIST format) on disk: read, write, sample.

Nothing is downloaded: point these at files you already have (e.g.
``train-images-idx3-ubyte.gz``). Format: two zero bytes, a type byte
(``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
``0x0E`` float64), a byte with the number of dimensions, the dimensions as
big-endian uint32, then the data, big-endian, C-order. Gzipped files are
recognised by their content (``1f 8b``), whatever their name.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from ot_jax.data.digits import array_sampler

__all__ = ["read_idx", "write_idx", "load_idx_images", "idx_sampler"]

_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_BY_DTYPE = {np.dtype(v).newbyteorder("="): k for k, v in _CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped).

    Args:
      path: file path (``str`` or path-like).

    Returns:
      The array, with the file's shape and dtype (uint8, int8, int16, int32,
      float32 or float64) in native byte order; writable.

    Raises:
      ValueError: bad magic, unknown type code, truncated file or trailing bytes.
      OSError: the file cannot be read (or is a corrupt gzip stream).

    Examples:
        >>> import os, tempfile, numpy as np
        >>> p = os.path.join(tempfile.mkdtemp(), "a.idx.gz")
        >>> write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))
        >>> read_idx(p)
        array([[0, 1, 2],
               [3, 4, 5]], dtype=uint8)
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    name = os.fspath(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {name}: truncated header ({len(raw)} bytes, need at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"read_idx: {name}: bad magic {raw[:4].hex()} (an IDX file starts with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _CODES:
        known = ", ".join(f"0x{k:02X}" for k in _CODES)
        raise ValueError(f"read_idx: {name}: unknown type code 0x{code:02X} (known: {known})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {name}: truncated header ({len(raw)} bytes, need {header} for {ndim} dims)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_CODES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"read_idx: {name}: truncated data ({len(raw)} bytes, need {expected} for shape {shape})")
    if len(raw) > expected:
        raise ValueError(f"read_idx: {name}: {len(raw) - expected} trailing bytes after the data of shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file, gzipped if ``path`` ends with ``.gz``.

    The type code follows the dtype: uint8, int8, int16, int32, float32 and
    float64 are written as such. Other integer and boolean arrays are written as
    int32 when every value fits (e.g. NumPy's default int64 labels); anything else
    raises.

    Args:
      path: file path (``str`` or path-like); the file is overwritten.
      array: array-like of at most 255 dimensions, each ``< 2^32``.

    Raises:
      ValueError: unsupported dtype, integers outside int32, or bad shape.
    """
    arr = np.asarray(array)
    dt = arr.dtype.newbyteorder("=")
    if dt not in _BY_DTYPE:
        if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
            info = np.iinfo(np.int32)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise ValueError(f"write_idx: {arr.dtype} values outside the int32 range cannot be written")
            arr, dt = arr.astype(np.int32), np.dtype(np.int32)
        else:
            names = ", ".join(str(d) for d in _BY_DTYPE)
            raise ValueError(f"write_idx: unsupported dtype {arr.dtype} (supported: {names}, or integers fitting int32)")
    if arr.ndim > 255 or any(s >= 2**32 for s in arr.shape):
        raise ValueError(f"write_idx: shape {arr.shape} does not fit the IDX header")
    code = _BY_DTYPE[dt]
    payload = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=np.dtype(_CODES[code])).tobytes()
    )
    if os.fspath(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as fh:
        fh.write(payload)


def load_idx_images(
    path, *, labels_path=None, scale: float | None = None, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images of an IDX file, flattened and scaled to ``[0, 1]``, with optional labels.

    Args:
      path: IDX file of images ``[N, H, W]`` (grey) or ``[N, H, W, C]``
        (``[N, D]`` is accepted as already flat).
      labels_path: optional IDX file of labels ``[N]``.
      scale: the images are divided by it; ``None`` means 255 for uint8 files
        and 1 for float files (other integer types need an explicit ``scale``).
      dtype: floating dtype of the images.

    Returns:
      ``(images, labels)``: ``images`` ``[N, H*W]`` or ``[N, H*W*C]`` (C-order),
      ``labels`` ``[N]`` int64, or ``None`` without ``labels_path``.

    Raises:
      ValueError: bad files, fewer than 2 dims, scaled values outside ``[0, 1]``,
        labels not ``[N]``, non-positive scale or a non-floating dtype.
    """
    fn = "load_idx_images"
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"{fn}: dtype must be floating point, got {np.dtype(dtype)}")
    raw = read_idx(path)
    if raw.ndim < 2 or raw.shape[0] == 0:
        raise ValueError(f"{fn}: {os.fspath(path)}: need images [N, H, W(, C)] with N >= 1, got shape {raw.shape}")
    if scale is None:
        if raw.dtype == np.uint8:
            scale = 255.0
        elif np.issubdtype(raw.dtype, np.floating):
            scale = 1.0
        else:
            raise ValueError(f"{fn}: {raw.dtype} images need an explicit scale (values are divided by it)")
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"{fn}: scale must be finite and > 0, got {scale!r}")
    images = (raw.astype(np.float64) / scale).reshape(raw.shape[0], -1)
    lo, hi = float(images.min()), float(images.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{fn}: scaled values span [{lo:g}, {hi:g}], outside [0, 1]; pass another scale")
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path)
        if labels.shape != (raw.shape[0],):
            raise ValueError(f"{fn}: labels must have shape ({raw.shape[0]},) like the images, got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{fn}: labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64)
    return images.astype(dtype), labels


def idx_sampler(path, *, labels_path=None, classes=None, scale: float | None = None):
    """Sampler of the images of an IDX file (see :func:`load_idx_images`).

    The file is read once, here; the result is
    :func:`~ot_jax.data.digits.array_sampler` of the images.

    Args:
      path: IDX images file.
      labels_path: IDX labels file, needed when ``classes`` is given.
      classes: ``None`` or a label / sequence of labels to keep.
      scale: see :func:`load_idx_images`.

    Returns:
      A sampler ``f(key, n) -> [n, D]`` with values in ``[0, 1]``.

    Raises:
      ValueError: as :func:`load_idx_images`; ``classes`` without
        ``labels_path``; no image with those labels.
    """
    fn = "idx_sampler"
    if classes is not None and labels_path is None:
        raise ValueError(f"{fn}: classes needs labels_path")
    images, labels = load_idx_images(path, labels_path=labels_path, scale=scale, dtype=np.float64)
    if classes is not None:
        keep = np.atleast_1d(np.asarray(classes))
        if keep.size == 0 or not np.issubdtype(keep.dtype, np.integer):
            raise ValueError(f"{fn}: classes must be a non-empty int or sequence of ints, got {classes!r}")
        images = images[np.isin(labels, keep)]
        if images.shape[0] == 0:
            raise ValueError(f"{fn}: no image has a label in {keep.tolist()}")
    return array_sampler(images)
