"""scikit-learn's 8x8 digits, transformed second domains, and array samplers.

:func:`load_digits` returns the 1797 digits of :func:`sklearn.datasets.load_digits`
(shipped with scikit-learn, nothing is downloaded) scaled to ``[0, 1]``, either
as they are or moved to a second domain for unpaired image-to-image OT (in the
spirit of MNIST -> MNIST-M): ``"inverted"``, ``"colored"`` (random foreground and
background colours), ``"textured"`` (MNIST-M-like: a patch of a natural image
blended with the stroke as ``|patch - stroke|``), ``"rotated"``, or ``"usps"``
(USPS-like: 16x16, smoothed, thicker strokes).

``split`` selects all 1797 images (``"all"``, the default) or one side of a fixed
80/20 train/test split (``"train"``: 1438 images, ``"test"``: 359), stratified by
class and drawn once with a fixed NumPy seed (:data:`SPLIT_SEED`), independent of
the transform and of ``seed``: the same digits are test images in every domain.

Images are always FLAT, C-order from ``[H, W, C]`` (``8 x 8`` except ``"usps"``'s ``16 x 16``;
``C = 1`` grey, ``3`` RGB):
``x.reshape(-1, *digit_shape(transform))`` recovers them.

:func:`digits` and :func:`array_sampler` are *samplers* (``f(key, n) -> [n, d]``,
jax's default float dtype, jit-compatible with ``n`` static), like those of
:mod:`ot_jax.data.laws`.

Note: the package ``ot_jax.data`` does not re-export the sampler :func:`digits`
under the name ``digits`` (that would hide this module and break dotted paths
such as Hydra's ``_target_: ot_jax.data.digits.digits``); import it from here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.data.images import sample_image

__all__ = ["DIGIT_TRANSFORMS", "DIGIT_SPLITS", "ROTATION_DEGREES", "USPS_BLUR", "SPLIT_SEED", "digit_shape", "load_digits", "digits", "array_sampler"]

DIGIT_TRANSFORMS = ("none", "inverted", "colored", "textured", "rotated", "usps")
"""Names accepted by ``transform`` in :func:`load_digits` and :func:`digits`."""

DIGIT_SPLITS = ("all", "train", "test")
"""Names accepted by ``split`` in :func:`load_digits` and :func:`digits`."""

SPLIT_SEED = 20190
"""NumPy seed of the fixed train/test split (independent of ``seed``; do not change: it defines the test set)."""

_TEST_FRACTION = 0.2

_SHAPES = {"none": (8, 8, 1), "inverted": (8, 8, 1), "colored": (8, 8, 3), "textured": (8, 8, 3), "rotated": (8, 8, 1),
           "usps": (16, 16, 1)}
ROTATION_DEGREES = 30.0
"""Rotation of the ``"rotated"`` domain (counter-clockwise, about the image centre)."""
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma weights
_MIN_CONTRAST = 0.3  # |luma(fg) - luma(bg)| of the "colored" domain
USPS_BLUR = 0.7
"""Gaussian blur (pixels of the 16x16 image) of the ``"usps"`` domain."""
_TEXTURE_BLOCK = 4  # sample images are block-averaged 4x4 (-> 106 x 160) before cutting 8x8 patches


def _float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _check_transform(transform, fn: str) -> str:
    if transform not in DIGIT_TRANSFORMS:
        raise ValueError(f"{fn}: unknown transform {transform!r}; valid: {', '.join(map(repr, DIGIT_TRANSFORMS))}")
    return transform


def _check_split(split, fn: str) -> str:
    if not isinstance(split, str) or split not in DIGIT_SPLITS:
        raise ValueError(f"{fn}: unknown split {split!r}; valid: {', '.join(map(repr, DIGIT_SPLITS))}")
    return split


def _check_seed(seed, fn: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{fn}: seed must be an int >= 0, got {seed!r}")
    return int(seed)


def digit_shape(transform: str = "none") -> tuple[int, int, int]:
    """Image shape ``(H, W, C)`` of a digit domain (``8 x 8`` except ``"usps"``: ``16 x 16``;
    ``C = 1`` grey, ``3`` RGB).

    Examples:
        >>> digit_shape("none"), digit_shape("colored"), digit_shape("usps")
        ((8, 8, 1), (8, 8, 3), (16, 16, 1))
    """
    return _SHAPES[_check_transform(transform, "digit_shape")]


@functools.lru_cache(maxsize=1)
def _raw_digits():
    from sklearn.datasets import load_digits as _sk_load  # deferred: scikit-learn is slow to import

    bunch = _sk_load()
    x = bunch.images.astype(np.float64) / 16.0  # [N, 8, 8] in [0, 1]
    y = bunch.target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=4)
def _split_index(split: str):
    """Sorted read-only row indices ``[N_split]`` of ``split`` into the 1797 digits.

    Stratified: within each class, a random 20% (rounded to the nearest integer) of
    its images go to ``"test"``, the rest to ``"train"``; the permutations come from
    ``np.random.default_rng(SPLIT_SEED)``, classes in order 0..9.
    """
    _, y = _raw_digits()
    if split == "all":
        idx = np.arange(y.shape[0])
    else:
        rng = np.random.default_rng(SPLIT_SEED)
        test = np.zeros(y.shape[0], dtype=bool)
        for c in range(10):
            members = rng.permutation(np.flatnonzero(y == c))
            test[members[: int(round(_TEST_FRACTION * members.size))]] = True
        idx = np.flatnonzero(test if split == "test" else ~test)
    idx.setflags(write=False)
    return idx


@functools.lru_cache(maxsize=1)
def _texture_sources():
    """Sample images block-averaged ``_TEXTURE_BLOCK x _TEXTURE_BLOCK``: tuple of ``[h, w, 3]``."""
    b = _TEXTURE_BLOCK
    out = []
    for name in ("china", "flower"):
        img = sample_image(name)
        h, w = img.shape[0] // b * b, img.shape[1] // b * b
        out.append(img[:h, :w].reshape(h // b, b, w // b, b, 3).mean(axis=(1, 3)))
    return tuple(out)


def _colored(x, rng):
    """``x`` ``[N, 8, 8]`` -> ``[N, 8, 8, 3]``: ``bg + x (fg - bg)`` with random colours of distinct luma."""
    n = x.shape[0]
    fg, bg = rng.uniform(size=(n, 3)), rng.uniform(size=(n, 3))
    bad = np.abs((fg - bg) @ _LUMA) < _MIN_CONTRAST
    while bad.any():  # rejection: redraw the pairs whose brightness is too close
        k = int(bad.sum())
        fg[bad], bg[bad] = rng.uniform(size=(k, 3)), rng.uniform(size=(k, 3))
        bad = np.abs((fg - bg) @ _LUMA) < _MIN_CONTRAST
    return bg[:, None, None, :] + x[..., None] * (fg - bg)[:, None, None, :]


def _textured(x, rng):
    """``x`` ``[N, 8, 8]`` -> ``[N, 8, 8, 3]``: ``|patch - x|`` with a random 8x8 patch of a sample image."""
    sources = _texture_sources()
    n = x.shape[0]
    which = rng.integers(0, len(sources), size=n)
    patches = np.empty((n, 8, 8, 3))
    for s, src in enumerate(sources):
        sel = np.flatnonzero(which == s)
        i = rng.integers(0, src.shape[0] - 8 + 1, size=sel.size)
        j = rng.integers(0, src.shape[1] - 8 + 1, size=sel.size)
        rows = i[:, None, None] + np.arange(8)[None, :, None]
        cols = j[:, None, None] + np.arange(8)[None, None, :]
        patches[sel] = src[rows, cols]
    return np.abs(patches - x[..., None])


def _usps_like(x):
    """``x`` ``[N, 8, 8]`` -> ``[N, 16, 16]``: bilinear 2x upsampling, a Gaussian blur of
    :data:`USPS_BLUR` pixels, then each image divided by its maximum (USPS digits are smooth
    16x16 grey images whose strokes reach full intensity)."""
    from scipy.ndimage import gaussian_filter, zoom

    up = zoom(x, (1, 2, 2), order=1, mode="nearest", grid_mode=True)
    up = gaussian_filter(up, sigma=(0, USPS_BLUR, USPS_BLUR), mode="constant")
    return up / np.maximum(up.max(axis=(1, 2), keepdims=True), 1e-12)


@functools.lru_cache(maxsize=16)
def _domain(transform: str, seed: int):
    """Cached read-only float64 ``(images [N, H W C], labels [N])`` of a domain."""
    x, y = _raw_digits()
    n = x.shape[0]
    if transform == "none":
        img = x
    elif transform == "inverted":
        img = 1.0 - x
    elif transform == "rotated":
        from scipy.ndimage import rotate

        img = rotate(x, ROTATION_DEGREES, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0)
    elif transform == "usps":
        img = _usps_like(x)
    else:
        rng = np.random.default_rng([seed, DIGIT_TRANSFORMS.index(transform)])
        img = _colored(x, rng) if transform == "colored" else _textured(x, rng)
    img = np.clip(img, 0.0, 1.0).reshape(n, -1)
    img.setflags(write=False)
    return img, y


def load_digits(*, transform: str = "none", dtype=np.float32, seed: int = 0,
                split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits in ``[0, 1]`` (pixel / 16), optionally moved to another domain.

    Transforms (see :data:`DIGIT_TRANSFORMS`):

    * ``"none"``: grey ``[N, 64]``.
    * ``"inverted"``: ``1 - x``, ``[N, 64]``.
    * ``"colored"``: RGB ``[N, 192]``; each image gets a random foreground colour
      ``fg`` and background colour ``bg`` (uniform in ``[0, 1]^3``, redrawn until
      their lumas differ by at least 0.3) and becomes ``bg + x (fg - bg)``, so its
      luminance is an affine function of the grey digit.
    * ``"textured"``: RGB ``[N, 192]``, MNIST-M-like: a random 8x8 patch of one
      of the scikit-learn sample images (``china``/``flower`` block-averaged 4x4),
      blended as ``|patch - x|`` per channel.
    * ``"rotated"``: grey ``[N, 64]``, every digit rotated by :data:`ROTATION_DEGREES`
      counter-clockwise about the image centre (bilinear, zero outside).
    * ``"usps"``: grey ``[N, 256]``, USPS-like 16x16 digits: bilinear 2x upsampling, a
      Gaussian blur of :data:`USPS_BLUR` pixels (thicker, smoother strokes), each image
      scaled to a maximum of 1.

    Random choices depend only on ``seed`` (``"none"``, ``"inverted"``, ``"rotated"`` and ``"usps"``
    ignore it); results are cached, each call returns fresh writable arrays.

    ``split="train"`` / ``"test"`` keep the rows of a fixed 80/20 split (1438 / 359
    images), stratified by class (20% of each class, rounded, is test), drawn with
    ``np.random.default_rng(SPLIT_SEED)`` independently of ``seed`` and of the
    transform: a split's rows are the corresponding rows of ``split="all"``, in the
    original order.

    Args:
      transform: one of :data:`DIGIT_TRANSFORMS`.
      dtype: floating dtype of the images.
      seed: int >= 0 seeding the colours / patches.
      split: one of :data:`DIGIT_SPLITS` (``"all"``, ``"train"``, ``"test"``).

    Returns:
      ``(images, labels)``: ``images`` ``[N, H W C]`` in ``[0, 1]`` (flat, C-order
      from ``[H, W, C]`` = :func:`digit_shape`), ``labels`` ``[N]``
      int64 in ``0..9``; ``N`` is 1797 (``"all"``), 1438 (``"train"``) or 359 (``"test"``).

    Raises:
      ValueError: unknown transform or split, negative seed, or a non-floating dtype.

    Examples:
        >>> x, y = load_digits(transform="colored")
        >>> x.shape, y.shape, x.dtype.name
        ((1797, 192), (1797,), 'float32')
    """
    fn = "load_digits"
    _check_transform(transform, fn)
    _check_split(split, fn)
    seed = _check_seed(seed, fn)
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"{fn}: dtype must be floating point, got {np.dtype(dtype)}")
    img, y = _domain(transform, seed if transform in ("colored", "textured") else 0)
    if split == "all":
        return img.astype(dtype), y.copy()
    idx = _split_index(split)
    return img[idx].astype(dtype), y[idx]  # fancy indexing copies: fresh writable arrays


def _check_n(n, fn: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{fn}: n must be a static Python int >= 1, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{fn}: n must be >= 1, got {n}")
    return int(n)


def _sample_rows(key, n, data):
    idx = jax.random.randint(key, (n,), 0, data.shape[0])
    return jnp.take(data, idx, axis=0)


def array_sampler(data):
    """Sampler drawing rows of ``data`` uniformly with replacement.

    ``data`` is converted once, here, to a jax array of the default float dtype
    (the sampler closes over it; under jit it is a constant of the computation).

    Args:
      data: ``[N, d]`` array (NumPy or jax), ``N >= 1``.

    Returns:
      A sampler ``f(key, n) -> [n, d]`` (jax's default float dtype at the time
      ``array_sampler`` was called; jit-compatible with ``n`` static).

    Raises:
      ValueError: ``data`` not 2-D or empty.

    Examples:
        >>> import jax, numpy as np
        >>> f = array_sampler(np.arange(6.0).reshape(3, 2))
        >>> x = f(jax.random.PRNGKey(0), 4)
        >>> x.shape, bool((x[:, 1] - x[:, 0] == 1).all())
        ((4, 2), True)
    """
    arr = jnp.asarray(data, dtype=_float())
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"array_sampler: data must be a non-empty 2-D array [N, d], got shape {tuple(arr.shape)}")

    def sampler(key, n: int) -> jax.Array:
        return _sample_rows(key, _check_n(n, "array_sampler"), arr)

    sampler.__doc__ = f"Draw ``n`` of the {arr.shape[0]} rows (dimension {arr.shape[1]}) uniformly with replacement."
    return sampler


def _check_classes(classes, fn: str) -> tuple[int, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        classes = (classes,)
    try:
        out = tuple(sorted({int(c) for c in classes}))
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: classes must be None, an int or a sequence of ints, got {classes!r}") from None
    if not out:
        raise ValueError(f"{fn}: classes must not be empty")
    return out


@functools.lru_cache(maxsize=32)
def _restricted(transform: str, seed: int, classes: tuple[int, ...] | None, split: str = "all") -> np.ndarray:
    img, y = _domain(transform, seed)
    if classes is not None:
        bad = [c for c in classes if not 0 <= c <= 9]
        if bad:
            raise ValueError(f"digits: classes must be digits in 0..9, got {bad}")
    if split != "all":
        idx = _split_index(split)
        img, y = img[idx], y[idx]
    sub = img if classes is None else img[np.isin(y, classes)]
    sub.setflags(write=False)
    return sub


def digits(key, n: int, *, transform: str = "none", classes=None, seed: int = 0, split: str = "all") -> jax.Array:
    """Sampler of the (transformed) digits: ``n`` images uniformly with replacement.

    Draws from :func:`load_digits` ``(transform=transform, seed=seed, split=split)``,
    restricted to the labels in ``classes`` when given. The image array is a constant closed over
    by the computation; only the row indices are random, so this is jit-compatible
    with ``n`` static. ``functools.partial(digits, transform="colored")`` is a sampler.

    Args:
      key: PRNG key.
      n: number of samples (static Python int >= 1).
      transform: one of :data:`DIGIT_TRANSFORMS`.
      classes: ``None`` (all), a digit, or a sequence of digits in ``0..9``.
      seed: seed of the domain transform (see :func:`load_digits`).
      split: ``"all"``, ``"train"`` or ``"test"`` (the fixed split of :func:`load_digits`).

    Returns:
      ``[n, H W C]`` images in ``[0, 1]`` (flat, C-order from :func:`digit_shape`), jax's
      default float dtype.

    Raises:
      ValueError: unknown transform or split, bad classes / seed / ``n``.

    Examples:
        >>> import jax
        >>> x = digits(jax.random.PRNGKey(0), 4, transform="inverted", classes=[0, 1])
        >>> x.shape
        (4, 64)
    """
    fn = "digits"
    n = _check_n(n, fn)
    _check_transform(transform, fn)
    _check_split(split, fn)
    seed = _check_seed(seed, fn)
    classes = _check_classes(classes, fn)
    data = _restricted(transform, seed if transform in ("colored", "textured") else 0, classes, split)
    return _sample_rows(key, n, jnp.asarray(data, dtype=_float()))
