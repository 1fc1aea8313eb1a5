"""Sample RGB images for colour transfer (scikit-learn's shipped ``china`` and ``flower``), and
:func:`convert_format` between flat image formats (size and channels).

Both are 427 x 640 JPEGs bundled with scikit-learn
(:func:`sklearn.datasets.load_sample_image`, read with Pillow), so nothing is
downloaded. ``china`` is a photograph of a Chinese temple (light sky, green
trees, grey/red roof), ``flower`` a close-up of a pink/orange flower on a dark
green background: two very different colour distributions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_image", "SAMPLE_IMAGES", "convert_format"]

SAMPLE_IMAGES = ("china", "flower")
"""Names accepted by :func:`sample_image`."""


def sample_image(name: str = "china", *, stride: int = 1, dtype=np.float64) -> np.ndarray:
    """One of scikit-learn's bundled sample images as floats in ``[0, 1]``.

    Args:
      name: ``"china"`` or ``"flower"`` (a trailing ``".jpg"`` is accepted).
      stride: keep every ``stride``-th row and column (a fast, alias-prone
        downscale for tests and figures); ``stride=4`` gives ``[107, 160, 3]``.
      dtype: floating dtype of the result.

    Returns:
      ``[H, W, 3]`` array with values ``k / 255`` (``H = ceil(427 / stride)``,
      ``W = ceil(640 / stride)``), a fresh writable copy.

    Raises:
      ValueError: unknown name, stride < 1, or a non-floating dtype.

    Examples:
        >>> from ot_jax.data import sample_image
        >>> img = sample_image("flower", stride=8)
        >>> img.shape, float(img.min()) >= 0.0, float(img.max()) <= 1.0
        ((54, 80, 3), True, True)
    """
    key = str(name).lower()
    if key.endswith(".jpg"):
        key = key[: -len(".jpg")]
    if key not in SAMPLE_IMAGES:
        raise ValueError(f"sample_image: unknown image {name!r}; choose one of {', '.join(map(repr, SAMPLE_IMAGES))}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"sample_image: stride must be an integer >= 1, got {stride!r}")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"sample_image: dtype must be floating point, got {np.dtype(dtype)}")
    from sklearn.datasets import load_sample_image  # deferred: scikit-learn is slow to import

    img = load_sample_image(f"{key}.jpg")[::stride, ::stride]
    return (img.astype(np.float64) / 255.0).astype(dtype)


def convert_format(x, from_shape, to_shape):
    """Flat images ``[n, H W C]`` of shape ``from_shape = (H, W, C)`` in the format ``to_shape = (H', W', C')``.

    Bilinear resize to ``(H', W')`` (:func:`jax.image.resize`), then grey (``C = 1``) repeated over
    ``C'`` channels, or colours averaged to grey (``C' = 1``). This is how a classifier of one
    digit domain reads another (the "source only" baseline of digit adaptation: MNIST is
    repeated over three channels for MNIST-M, resized for USPS). Jit-compatible.

    Returns:
      ``[n, H' W' C']``, a jax array.

    Raises:
      ValueError: the rows do not hold ``H W C`` values, or ``C`` and ``C'`` are both > 1 and differ.

    Examples:
        >>> import numpy as np
        >>> convert_format(np.ones((2, 16)), (4, 4, 1), (8, 8, 3)).shape
        (2, 192)
    """
    import jax
    import jax.numpy as jnp

    (h, w, c), (ht, wt, ct) = (tuple(int(s) for s in from_shape), tuple(int(s) for s in to_shape))
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != h * w * c:
        raise ValueError(f"convert_format: x must be [n, {h * w * c}] for images {(h, w, c)}, got {x.shape}")
    if c != ct and c != 1 and ct != 1:
        raise ValueError(f"convert_format: cannot bring {c}-channel images to {ct} channels")
    img = x.reshape(-1, h, w, c)
    if (h, w) != (ht, wt):
        img = jax.image.resize(img, (img.shape[0], ht, wt, c), method="bilinear")
    if c != ct:
        img = jnp.repeat(img, ct, axis=-1) if c == 1 else jnp.mean(img, axis=-1, keepdims=True)
    return img.reshape(img.shape[0], -1)
