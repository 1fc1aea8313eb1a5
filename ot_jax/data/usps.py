"""USPS-format HDF5 files on disk: read and write (nothing is downloaded).

The layout of the widely shared ``usps.h5``: groups ``train`` and ``test``, each with a dataset
``data`` ``[N, 256]`` (16 x 16 grey images, flat, C-order, values in ``[0, 1]``) and a dataset
``target`` ``[N]`` (integer classes 0-9). Point :func:`read_usps` at such a file to use the real
USPS digits as a domain; :func:`write_usps` writes the same layout (the tests use it).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["USPS_SPLITS", "read_usps", "write_usps"]

USPS_SPLITS = ("train", "test")
"""The groups of a USPS file."""


def _h5py():
    import h5py  # a dependency, imported on use: only these loaders need it

    return h5py


def read_usps(path, split: str = "train", *, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, H * W], labels [N] int64)`` of one split of a USPS-format HDF5 file.

    Raises:
      ValueError: unknown split, a missing group or dataset, mismatched lengths, values outside
        ``[0, 1]`` or NaN, or labels that are not non-negative integers.
      OSError: the file cannot be read.
    """
    fn = "read_usps"
    if split not in USPS_SPLITS:
        raise ValueError(f"{fn}: split must be one of {USPS_SPLITS}, got {split!r}")
    if not os.path.exists(path):
        raise OSError(f"{fn}: no such file {os.fspath(path)!r}")
    with _h5py().File(path, "r") as fh:
        if split not in fh:
            raise ValueError(f"{fn}: {os.fspath(path)!r} has no group {split!r} (it has {sorted(fh.keys())})")
        group = fh[split]
        for name in ("data", "target"):
            if name not in group:
                raise ValueError(f"{fn}: group {split!r} of {os.fspath(path)!r} has no dataset {name!r}")
        images = np.asarray(group["data"][()], dtype=np.float64)
        labels = np.asarray(group["target"][()])
    images = images.reshape(images.shape[0], -1)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{fn}: {images.shape[0]} images but labels of shape {labels.shape}")
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
        raise ValueError(f"{fn}: image values must be finite and in [0, 1]")
    if not (np.issubdtype(labels.dtype, np.integer) or np.all(np.mod(labels, 1) == 0)) or labels.min() < 0:
        raise ValueError(f"{fn}: labels must be non-negative integers")
    return images.astype(dtype), labels.astype(np.int64)


def write_usps(path, splits: dict) -> None:
    """Write ``splits`` (``{"train": (images [N, H * W], labels [N]), "test": ...}``) in the USPS layout."""
    unknown = set(splits) - set(USPS_SPLITS)
    if unknown:
        raise ValueError(f"write_usps: unknown split(s) {sorted(unknown)}; valid: {USPS_SPLITS}")
    with _h5py().File(path, "w") as fh:
        for split, (images, labels) in splits.items():
            group = fh.create_group(split)
            group.create_dataset("data", data=np.asarray(images, np.float64))
            group.create_dataset("target", data=np.asarray(labels, np.int64))
