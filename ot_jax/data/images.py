"""Sample RGB images for colour transfer: scikit-learn's shipped ``china`` and ``flower``.

Both are 427 x 640 JPEGs bundled with scikit-learn
(:func:`sklearn.datasets.load_sample_image`, read with Pillow), so nothing is
downloaded. ``china`` is a photograph of a Chinese temple (light sky, green
trees, grey/red roof), ``flower`` a close-up of a pink/orange flower on a dark
green background: two very different colour distributions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_image", "SAMPLE_IMAGES"]

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
