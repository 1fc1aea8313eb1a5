"""Data shipped with the dependencies (nothing is downloaded): sample images."""

from ot_jax.data.images import SAMPLE_IMAGES, sample_image

__all__ = ["sample_image", "SAMPLE_IMAGES"]
