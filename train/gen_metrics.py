"""Host-side evaluation metrics of generative models (WGAN, minibatch-OT generators).

Every metric is a small pure function of NumPy arrays returning Python floats /
ints; the two *probes* bundle them for a trainer (``probe(generated) -> dict``)
and are built from plain config values by Hydra
(``probe: {_target_: train.gen_metrics.MixtureProbe, modes: ..., std: 0.02}``).

Metrics (``n`` generated points, ``m`` real points, dimension ``d``):

* :func:`mode_metrics` (2-D mixtures of Gaussians, ``[n, 2]`` samples, ``[k, 2]``
  modes): a sample is *high quality* when it lies within ``3 std`` of its nearest
  mode; a mode is *covered* when at least ``max(1, min_share n)`` high-quality
  samples have it as nearest mode. These are the toy metrics of Srivastava et al.,
  "VEEGAN: Reducing Mode Collapse in GANs using Implicit Variational Learning"
  (NeurIPS 2017) and Lin et al., "PacGAN: The power of two samples in generative
  adversarial networks" (NeurIPS 2018). For exact samples of an isotropic 2-D
  component, ``P(|N(0, std^2 I_2)| < 3 std) = 1 - exp(-9/2) = 0.9889``.
* :func:`std_ratio`: ``sqrt(tr Cov(generated) / tr Cov(real))``; 1 for the same
  spread, < 1 when the generator shrinks toward the mean (the typical failure of
  generators fitted with biased minibatch OT losses), > 1 when it over-disperses.
* :func:`heldout_w2`: the exact 2-Wasserstein distance between the two empirical
  measures (uniform weights), ``sqrt`` of the transport LP with squared Euclidean
  cost, solved by :func:`ot_jax.emd` (the network simplex on the host; a thousand
  points per side take about 0.1 s). Computed on *held-out* real points, it
  measures generalisation rather than memorisation of the training set. Note that
  the empirical W2 between two samples of the *same* law is not 0 (it decays like
  ``n^{-1/d}``): compare against the real-vs-real value at the same ``n``.
* :func:`nn_precision_recall`: the k-nearest-neighbour manifold estimate of
  Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models" (NeurIPS 2019): each real point carries the ball whose radius
  is the distance to its k-th nearest real neighbour; *precision* is the share of
  generated points inside the union of these balls (quality), *recall* the share
  of real points inside the union of the balls of the generated points (coverage,
  the symmetric construction). Distances are Euclidean in the data space (the
  paper uses a feature embedding; for 8x8 digits pixels are a fair space).
* :class:`DigitsProbe`: a classifier trained once on scikit-learn's digits (train
  split of :func:`ot_jax.data.digits.load_digits`) labels generated images, in the
  spirit of the "number of modes" of Che et al., "Mode Regularized Generative
  Adversarial Networks" (ICLR 2017) and the stacked-MNIST count of VEEGAN / PacGAN:
  ``digits_covered`` (classes receiving at least ``max(1, min_share n)`` confident
  predictions), ``confident_share`` (share of images classified with max probability
  ``>= confidence``, a crude quality score), ``label_hist_c`` (share of all images
  confidently labelled ``c``), and ``nn_precision`` / ``nn_recall`` against the
  real test split.

Invalid inputs (wrong shapes, empty arrays, NaN or infinite values) raise
``ValueError`` with a message naming the function and the argument.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "mode_metrics",
    "std_ratio",
    "heldout_w2",
    "nn_precision_recall",
    "MixtureProbe",
    "DigitsProbe",
]

_BLOCK = 1024  # rows per block of pairwise distances ([_BLOCK, m] float64 at a time)


# -- validation -----------------------------------------------------------------------------------
def _points(x, name: str, fn: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """``x`` as a float64 ``[n, d]`` array with ``n >= min_rows``, finite; else ``ValueError``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a numeric array, got {type(x).__name__}") from None
    if arr.ndim != 2:
        want = f"[n, {dim}]" if dim is not None else "[n, d]"
        raise ValueError(f"{fn}: {name} must be a 2-D array {want}, got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise ValueError(f"{fn}: {name} must have at least {min_rows} row(s) and 1 column, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{fn}: {name} must have shape [n, {dim}], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{fn}: {name} contains {bad} NaN or infinite value(s)")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, names: str, fn: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{fn}: {names} must have the same dimension, got shapes {a.shape} and {b.shape}")


def _positive(value, name: str, fn: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{fn}: {name} must be finite and > 0, got {value!r}")
    return v


def _share(value, name: str, fn: str, *, low_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0):
        raise ValueError(f"{fn}: {name} must be in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")
    return v


def _int_at_least(value, name: str, low: int, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _min_count(min_share: float, n: int) -> int:
    """Smallest count reaching ``min_share * n`` and at least 1."""
    return max(1, math.ceil(min_share * n - 1e-9))


# -- pairwise distances ---------------------------------------------------------------------------
def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[n, m]`` squared Euclidean distances, summed coordinate differences (exact 0 for equal rows)."""
    from scipy.spatial.distance import cdist

    return cdist(x, y, "sqeuclidean")


def _nearest(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ``[n]`` of the nearest centre of each row of ``x`` and its squared distance ``[n]``
    (:func:`ot_jax.geometry.nearest_neighbors`, the library's one search)."""
    from ot_jax.geometry import nearest_neighbors  # deferred, like heldout_w2's jax import

    idx, sq = nearest_neighbors(x, centres)
    return np.asarray(idx, np.int64), np.asarray(sq, np.float64)


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """``[n]`` squared distance of each row of ``x`` to its k-th nearest *other* row.

    The point itself is the 0-th neighbour (the ``k + 1`` nearest rows, as
    ``np.partition`` at index ``k`` in the reference implementation of
    Kynkäänniemi et al.); duplicates count as neighbours.
    """
    from ot_jax.geometry import nearest_neighbors

    _, sq = nearest_neighbors(x, x, k=k + 1)
    return np.asarray(sq, np.float64)[:, k]


def _inside_union(points: np.ndarray, centres: np.ndarray, sq_radii: np.ndarray) -> np.ndarray:
    """``[n]`` bool: is each point in the union of the closed balls ``B(centres_j, radii_j)``?"""
    out = np.empty(points.shape[0], dtype=bool)
    for s in range(0, points.shape[0], _BLOCK):
        d = _sq_dists(points[s:s + _BLOCK], centres)
        out[s:s + _BLOCK] = np.any(d <= sq_radii[None, :], axis=1)
    return out


# -- metrics --------------------------------------------------------------------------------------
def mode_metrics(samples, modes, std, *, min_share: float = 0.01) -> dict:
    """Modes covered and share of high-quality samples of a generated Gaussian mixture.

    A sample is *high quality* when its Euclidean distance to the nearest mode is
    ``<= 3 std``; a mode is *covered* when at least ``max(1, min_share * n)``
    high-quality samples have it as their nearest mode (VEEGAN / PacGAN toy metrics).

    Args:
      samples: ``[n, 2]`` generated points (any ``[n, d]`` with ``modes`` ``[k, d]`` works).
      modes: ``[k, 2]`` centres of the mixture's components.
      std: standard deviation of each (isotropic) component, ``> 0``.
      min_share: share of the ``n`` samples a mode needs, in ``[0, 1]``.

    Returns:
      ``{"modes_covered": int in 0..k, "high_quality": float in [0, 1]}``.

    >>> modes = np.array([[0.0, 0.0], [10.0, 0.0]])
    >>> mode_metrics(np.array([[0.1, 0.0], [9.0, 0.0], [10.0, 0.2]]), modes, 0.1)
    {'modes_covered': 2, 'high_quality': 0.6666666666666666}
    """
    fn = "mode_metrics"
    x = _points(samples, "samples", fn)
    c = _points(modes, "modes", fn)
    _same_dim(x, c, "samples and modes", fn)
    s = _positive(std, "std", fn)
    share = _share(min_share, "min_share", fn)
    idx, sq = _nearest(x, c)
    good = sq <= (3.0 * s) ** 2
    counts = np.bincount(idx[good], minlength=c.shape[0])
    return {
        "modes_covered": int(np.sum(counts >= _min_count(share, x.shape[0]))),
        "high_quality": float(good.mean()),
    }


def std_ratio(generated, real) -> float:
    """``sqrt(tr Cov(generated) / tr Cov(real))``: 1 for the same spread, < 1 for shrinkage.

    Covariances are the unbiased sample covariances (``ddof=1``).

    Args:
      generated: ``[n, d]``, ``n >= 2``.
      real: ``[m, d]``, ``m >= 2``, not all equal.

    Returns:
      The ratio of root total variances, a float ``>= 0``.

    >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    >>> std_ratio(0.5 * x, x)
    0.5
    """
    fn = "std_ratio"
    g = _points(generated, "generated", fn, min_rows=2)
    r = _points(real, "real", fn, min_rows=2)
    _same_dim(g, r, "generated and real", fn)
    var_r = float(np.var(r, axis=0, ddof=1).sum())
    if var_r <= 0.0:
        raise ValueError(f"{fn}: real has zero variance (all rows equal); the ratio is undefined")
    return math.sqrt(float(np.var(g, axis=0, ddof=1).sum()) / var_r)


def heldout_w2(generated, real) -> float:
    """Exact ``W2`` between the empirical measures of ``generated`` and ``real`` (uniform weights).

    ``sqrt(min_P <C, P>)`` with ``C_ij = |g_i - r_j|^2``, solved exactly by
    ``ot_jax.emd(ot_jax.PointCloud(g, r))`` (host LP, network simplex). The arrays are passed
    in float64, which jax keeps only when ``jax_enable_x64`` is on (else float32).

    Args:
      generated: ``[n, d]`` generated points.
      real: ``[m, d]`` (held-out) real points. ``n m`` is the LP's size: keep both
        at a few hundred.

    Returns:
      ``W2 >= 0`` (a float).

    Raises:
      ValueError: bad shapes or non-finite values. RuntimeError: the LP solve failed.
    """
    fn = "heldout_w2"
    g = _points(generated, "generated", fn)
    r = _points(real, "real", fn)
    _same_dim(g, r, "generated and real", fn)
    import jax.numpy as jnp  # deferred: importing this module does not start jax

    import ot_jax

    out = ot_jax.emd(ot_jax.PointCloud(jnp.asarray(g), jnp.asarray(r)))
    if not bool(out.converged):
        raise RuntimeError(f"{fn}: the exact OT solve failed (status {int(out.status)})")
    return math.sqrt(max(float(out.cost), 0.0))


def nn_precision_recall(real, fake, *, k: int = 3) -> tuple[float, float]:
    """k-NN precision and recall of Kynkäänniemi et al. (2019).

    * precision: share of ``fake`` points within distance ``rho_k(r)`` of some real
      point ``r``, where ``rho_k(r)`` is the distance from ``r`` to its k-th nearest
      other real point (closed balls);
    * recall: share of ``real`` points within ``rho_k(f)`` of some fake point ``f``,
      with the k-NN radii computed among the fake points.

    Both are estimates biased by the sample sizes (radii shrink as a set grows): use
    sets of equal size, as in the paper. Cost ``O((n + m) max(n, m) d)``.

    Args:
      real: ``[n, d]`` real points, ``n > k``.
      fake: ``[m, d]`` generated points, ``m > k``.
      k: neighbour rank of the radii, an int ``>= 1`` (the paper uses 3).

    Returns:
      ``(precision, recall)``, floats in ``[0, 1]``.

    >>> x = np.arange(10.0)[:, None]
    >>> nn_precision_recall(x, x + 100.0)
    (0.0, 0.0)
    """
    fn = "nn_precision_recall"
    k = _int_at_least(k, "k", 1, fn)
    r = _points(real, "real", fn, min_rows=k + 1)
    f = _points(fake, "fake", fn, min_rows=k + 1)
    _same_dim(r, f, "real and fake", fn)
    precision = float(_inside_union(f, r, _knn_sq_radii(r, k)).mean())
    recall = float(_inside_union(r, f, _knn_sq_radii(f, k)).mean())
    return precision, recall


# -- probes ---------------------------------------------------------------------------------------
class MixtureProbe:
    """Mode metrics of a 2-D Gaussian-mixture toy: ``probe(generated [n, 2]) -> dict``.

    Args:
      modes: ``[k, 2]`` array-like of centres (a NumPy array such as
        ``ot_jax.data.eight_gaussians_modes(radius)``, or a nested list / Hydra ``ListConfig``).
      std: the components' standard deviation, ``> 0``.
      min_share: share of the samples a mode needs to count as covered.

    Returns (on call): :func:`mode_metrics` plus ``"modes_total": k``.

    >>> probe = MixtureProbe([[0.0, 0.0], [4.0, 0.0]], 0.5)
    >>> probe(np.zeros((10, 2)))
    {'modes_covered': 1, 'high_quality': 1.0, 'modes_total': 2}
    """

    def __init__(self, modes, std, *, min_share: float = 0.01):
        fn = "MixtureProbe"
        self.modes = _points(modes, "modes", fn, dim=2).copy()  # own read-only copy
        self.modes.setflags(write=False)
        self.std = _positive(std, "std", fn)
        self.min_share = _share(min_share, "min_share", fn)

    def __call__(self, generated) -> dict:
        x = _points(generated, "generated", "MixtureProbe", dim=2)
        out = mode_metrics(x, self.modes, self.std, min_share=self.min_share)
        out["modes_total"] = int(self.modes.shape[0])
        return out

    def __repr__(self) -> str:
        return f"MixtureProbe(k={self.modes.shape[0]}, std={self.std}, min_share={self.min_share})"


_CLASSIFIER_SEED = 0


@functools.lru_cache(maxsize=1)
def _digits_classifier():
    """``(classifier, test_accuracy, test_images [359, 64] read-only, seconds)``, fitted once per process.

    Multinomial logistic regression (L2, ``C = 1``, lbfgs, deterministic) on the 1438
    train-split images in ``[0, 1]``. Chosen over an MLP because it is well regularised off the
    data manifold: ~4% of uniform-noise images get a prediction with probability
    >= 0.9, against ~60% for a 1-hidden-layer MLP, so confident predictions on
    generated images mean something.
    """
    import time

    from sklearn.linear_model import LogisticRegression  # deferred: scikit-learn is slow to import
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    from ot_jax.data.digits import load_digits

    start = time.perf_counter()
    x_tr, y_tr = load_digits(split="train", dtype=np.float64)
    x_te, y_te = load_digits(split="test", dtype=np.float64)
    clf = LogisticRegression(C=1.0, max_iter=5000, random_state=_CLASSIFIER_SEED)
    # One BLAS thread: this small fit takes ~0.05 s single-threaded but seconds when a
    # multi-threaded OpenBLAS competes with jax's threads (or other processes) for the cores.
    with threadpool_limits(limits=1, user_api="blas"):
        clf.fit(x_tr, y_tr)
    accuracy = float(clf.score(x_te, y_te))
    x_te.setflags(write=False)
    return clf, accuracy, x_te, time.perf_counter() - start


class DigitsProbe:
    """Classifier- and k-NN-based metrics of generated 8x8 digits: ``probe(generated [n, 64]) -> dict``.

    At construction, a logistic-regression classifier is fitted on the train split
    of scikit-learn's digits (:func:`ot_jax.data.digits.load_digits` ``(split="train")``,
    grey images in ``[0, 1]``), once per process (cached). Attributes:
    ``test_accuracy`` (its accuracy on the 359 test-split images: 0.972),
    ``real_confident_share`` (the ``confident_share`` of the real test images: the
    reference value for a perfect generator: 0.76 at ``confidence=0.9``),
    ``fit_seconds`` (time the cached fit took).

    Args:
      confidence: a prediction is confident when its max class probability is ``>= confidence``.
      min_share: a class is covered when it gets at least ``max(1, min_share n)`` confident predictions.
      k: neighbour rank of :func:`nn_precision_recall`.
      n_real: number of real test images for precision / recall (``None``: all 359;
        else a fixed random subset of that many).

    Returns (on call) a dict with ``digits_covered`` (int), ``confident_share``,
    ``label_hist_0`` ... ``label_hist_9`` (shares of all ``n`` images), ``nn_precision``,
    ``nn_recall``. Precision / recall use the first ``min(n, n_real)`` generated images
    against as many real test images, so both sets have the same size (the estimator
    is biased by unequal sizes).
    """

    n_classes = 10
    dim = 64

    def __init__(self, *, confidence: float = 0.9, min_share: float = 0.01, k: int = 3, n_real: int | None = None):
        fn = "DigitsProbe"
        self.confidence = _share(confidence, "confidence", fn, low_open=True)
        self.min_share = _share(min_share, "min_share", fn)
        self.k = _int_at_least(k, "k", 1, fn)
        clf, self.test_accuracy, real, self.fit_seconds = _digits_classifier()
        self._classifier = clf
        if n_real is not None:
            n_real = _int_at_least(n_real, "n_real", self.k + 1, fn)
            if n_real > real.shape[0]:
                raise ValueError(f"{fn}: n_real must be <= {real.shape[0]} (the test split), got {n_real}")
            pick = np.sort(np.random.default_rng(_CLASSIFIER_SEED).choice(real.shape[0], n_real, replace=False))
            real = real[pick]
        if real.shape[0] <= self.k:
            raise ValueError(f"{fn}: k must be < {real.shape[0]}, got {self.k}")
        self.real = real
        self.real_confident_share = float((clf.predict_proba(real).max(1) >= self.confidence).mean())

    def classify(self, images) -> tuple[np.ndarray, np.ndarray]:
        """``(labels [n] int, max probability [n])`` of ``[n, 64]`` images."""
        x = _points(images, "generated", "DigitsProbe", dim=self.dim)
        proba = self._classifier.predict_proba(x)
        return self._classifier.classes_[proba.argmax(1)].astype(np.int64), proba.max(1)

    def __call__(self, generated) -> dict:
        x = _points(generated, "generated", "DigitsProbe", dim=self.dim)
        n = x.shape[0]
        labels, pmax = self.classify(x)
        confident = pmax >= self.confidence
        counts = np.bincount(labels[confident], minlength=self.n_classes)
        out = {
            "digits_covered": int(np.sum(counts >= _min_count(self.min_share, n))),
            "confident_share": float(confident.mean()),
        }
        out.update({f"label_hist_{c}": float(counts[c] / n) for c in range(self.n_classes)})
        m = min(n, self.real.shape[0])
        if m <= self.k:
            raise ValueError(f"DigitsProbe: generated needs more than k = {self.k} images, got {n}")
        out["nn_precision"], out["nn_recall"] = nn_precision_recall(self.real[:m], x[:m], k=self.k)
        return out

    def __repr__(self) -> str:
        return (f"DigitsProbe(confidence={self.confidence}, min_share={self.min_share}, k={self.k}, "
                f"n_real={self.real.shape[0]}, test_accuracy={self.test_accuracy:.3f})")
