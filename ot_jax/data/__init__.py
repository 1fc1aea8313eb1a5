"""Data shipped with the dependencies or generated (nothing is downloaded).

* :mod:`ot_jax.data.images`: scikit-learn's sample images (:func:`sample_image`), and
  :func:`convert_format` between flat image formats.
* :mod:`ot_jax.data.laws`: samplers of 2-D laws (thesis laws, GAN toys).
* :mod:`ot_jax.data.digits`: scikit-learn's 8x8 digits and transformed domains,
  :func:`array_sampler`.
* :mod:`ot_jax.data.idx`: IDX (MNIST-format) files on disk.
* :mod:`ot_jax.data.usps`: USPS-format HDF5 files on disk (:func:`read_usps`, :func:`write_usps`).
* :mod:`ot_jax.data.text`: text corpora, one document per line (:func:`read_corpus`), gensim's
  tokeniser, stop words and word vectors, and bags of words for the WMD (:func:`to_documents`).
* :mod:`ot_jax.data.sequences`: generated sequence-to-sequence tasks
  (:func:`digit_addition`: sums written most significant digit first).
* :mod:`ot_jax.data.unpaired`: regression data whose correspondence was lost
  (:func:`shuffled_regression`, the :class:`Unpaired` container).
* :mod:`ot_jax.data.cytometry`: flow-cytometry calibration without correspondence
  (:func:`simulate_cytometry`, :func:`cytometry_file` for real events).
* :mod:`ot_jax.data.fcs`: flow-cytometry event files (FCS and CSV: :func:`load_events`).
* :mod:`ot_jax.data.domains`: domain adaptation toys, a labelled source and a shifted
  target (:func:`rotated_moons`, :func:`shifted_gaussians`, the :class:`Domains` container).
* :mod:`ot_jax.data.tracking`: objects moving on a spiral, observed as detections
  without identities (:func:`moving_objects`, the :class:`Tracks` container).

A *sampler* is a pure function ``f(key, n) -> [n, d]`` (jax's default float
dtype, deterministic given ``key``, jit-compatible with ``n`` static, all other
parameters keyword-only); images are flat, C-order from ``[H, W, C]``, in ``[0, 1]``.

The digits sampler is *not* re-exported here as ``digits``: ``ot_jax.data.digits``
stays the module, so that dotted paths such as ``ot_jax.data.digits.digits``
(Hydra ``_target_``) resolve. Use ``from ot_jax.data.digits import digits``.
"""

from ot_jax.data.cytometry import cytometry_file, cytometry_from_events, simulate_cytometry
from ot_jax.data.digits import DIGIT_TRANSFORMS, array_sampler, digit_shape, load_digits
from ot_jax.data.domains import Domains, rotated_moons, shifted_gaussians
from ot_jax.data.fcs import load_events, read_events_csv, read_fcs, write_events_csv, write_fcs
from ot_jax.data.idx import idx_sampler, load_idx_images, read_idx, write_idx
from ot_jax.data.images import SAMPLE_IMAGES, convert_format, sample_image
from ot_jax.data.laws import (
    eight_gaussians,
    eight_gaussians_modes,
    gaussian,
    gaussian_mixture,
    grid_gaussians,
    grid_gaussians_modes,
    rings,
    sine_law,
    two_moons,
    uniform,
)
from ot_jax.data.sequences import ADDITION_VOCAB, addition_target, digit_addition
from ot_jax.data.text import Corpus, gensim_test_file, load_vectors, read_corpus, to_documents, tokenize
from ot_jax.data.tracking import Tracks, moving_objects
from ot_jax.data.unpaired import Unpaired, shuffled_regression
from ot_jax.data.usps import read_usps, write_usps

__all__ = [
    "sample_image",
    "SAMPLE_IMAGES",
    # laws
    "gaussian",
    "sine_law",
    "gaussian_mixture",
    "eight_gaussians",
    "eight_gaussians_modes",
    "grid_gaussians",
    "grid_gaussians_modes",
    "rings",
    "uniform",
    "two_moons",
    # digits
    "DIGIT_TRANSFORMS",
    "digit_shape",
    "load_digits",
    "array_sampler",
    # idx
    "read_idx",
    "write_idx",
    "load_idx_images",
    "convert_format",
    "idx_sampler",
    # usps
    "read_usps",
    "write_usps",
    # text
    "Corpus",
    "read_corpus",
    "tokenize",
    "gensim_test_file",
    "load_vectors",
    "to_documents",
    # sequences
    "digit_addition",
    "addition_target",
    "ADDITION_VOCAB",
    # regression without correspondence
    "Unpaired",
    "shuffled_regression",
    # flow cytometry
    "simulate_cytometry",
    "cytometry_from_events",
    "cytometry_file",
    "read_fcs",
    "write_fcs",
    "read_events_csv",
    "write_events_csv",
    "load_events",
    # tracking without identities
    "Tracks",
    "moving_objects",
    # domain adaptation
    "Domains",
    "rotated_moons",
    "shifted_gaussians",
]
