"""Evaluation metrics of generative models (train/gen_metrics.py)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import train.gen_metrics as gm
from ot_jax.data import eight_gaussians, eight_gaussians_modes
from ot_jax.data.digits import load_digits
from train.gen_metrics import DigitsProbe, MixtureProbe, heldout_w2, mode_metrics, nn_precision_recall, std_ratio

P_3SIGMA_2D = 1.0 - math.exp(-4.5)  # P(|N(0, I_2)| < 3) = 0.98889


# -- mode_metrics / MixtureProbe ------------------------------------------------------------------
@pytest.mark.parametrize("radius, std", [(2.0, 0.02), (0.5, 0.05)])
def test_exact_mixture_covers_all_modes(radius, std):
    n = 20000
    x = np.asarray(eight_gaussians(jax.random.PRNGKey(0), n, radius=radius, std=std))
    out = mode_metrics(x, eight_gaussians_modes(radius), std)
    assert set(out) == {"modes_covered", "high_quality"}
    assert isinstance(out["modes_covered"], int) and isinstance(out["high_quality"], float)
    assert out["modes_covered"] == 8
    se = math.sqrt(P_3SIGMA_2D * (1 - P_3SIGMA_2D) / n)
    assert abs(out["high_quality"] - P_3SIGMA_2D) < 4 * se, out


def test_collapsed_and_mean_samples():
    modes = eight_gaussians_modes(2.0)
    at_one = np.repeat(modes[3:4], 500, axis=0) + 1e-3
    assert mode_metrics(at_one, modes, 0.02) == {"modes_covered": 1, "high_quality": 1.0}
    at_mean = np.zeros((500, 2))
    assert mode_metrics(at_mean, modes, 0.02) == {"modes_covered": 0, "high_quality": 0.0}


def test_min_share_threshold():
    modes = eight_gaussians_modes(2.0)
    x = np.concatenate([np.repeat(modes[:1], 995, 0), np.repeat(modes[1:2], 5, 0)])  # 5 of 1000 at mode 1
    assert mode_metrics(x, modes, 0.02)["modes_covered"] == 1  # needs 10
    assert mode_metrics(x, modes, 0.02, min_share=0.005)["modes_covered"] == 2  # needs 5
    assert mode_metrics(x, modes, 0.02, min_share=0.0)["modes_covered"] == 2  # at least 1 sample
    # low-quality samples near a mode do not cover it
    far = np.concatenate([np.repeat(modes[:1], 990, 0), np.repeat(modes[1:2] * 1.1, 10, 0)])  # 0.2 = 10 std away
    assert mode_metrics(far, modes, 0.02) == {"modes_covered": 1, "high_quality": 0.99}


def test_mixture_probe_and_hydra_instantiation():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = {"_target_": "train.gen_metrics.MixtureProbe", "std": 0.05, "min_share": 0.01,
            "modes": {"_target_": "ot_jax.data.eight_gaussians_modes", "radius": 0.5}}
    probe = instantiate(OmegaConf.create(node))
    assert isinstance(probe, MixtureProbe) and probe.modes.shape == (8, 2)
    x = np.asarray(eight_gaussians(jax.random.PRNGKey(1), 4000, radius=0.5, std=0.05))
    out = probe(x)
    assert out["modes_total"] == 8 and out["modes_covered"] == 8 and out["high_quality"] > 0.97
    assert out == {**mode_metrics(x, eight_gaussians_modes(0.5), 0.05), "modes_total": 8}
    # a nested list (ListConfig) of modes
    listed = instantiate(OmegaConf.create({**node, "modes": eight_gaussians_modes(0.5).tolist()}))
    np.testing.assert_allclose(listed.modes, probe.modes)
    assert listed(x) == out
    # the probe keeps its own copy
    modes = eight_gaussians_modes(0.5)
    MixtureProbe(modes, 0.05)
    assert modes.flags.writeable
    with pytest.raises(ValueError, match=r"MixtureProbe: modes must have shape \[n, 2\]"):
        MixtureProbe(np.zeros((8, 3)), 0.1)
    with pytest.raises(ValueError, match="std"):
        MixtureProbe(modes, 0.0)
    with pytest.raises(ValueError, match=r"generated must have shape \[n, 2\]"):
        probe(np.zeros((10, 3)))


# -- std_ratio / heldout_w2 -----------------------------------------------------------------------
def test_std_ratio():
    x = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 2.0, 0.5] + 4.0
    assert std_ratio(x, x) == pytest.approx(1.0, abs=1e-12)
    assert std_ratio(0.5 * x, x) == pytest.approx(0.5, abs=1e-12)
    assert std_ratio(x - 7.0, x) == pytest.approx(1.0, abs=1e-12)  # location does not matter
    y = np.random.default_rng(1).normal(size=(20000, 3)) * [1.0, 2.0, 0.5]
    assert std_ratio(y, x) == pytest.approx(1.0, abs=0.1)  # same law, other sample
    assert isinstance(std_ratio(x, x), float)


def test_heldout_w2_shifted_copy_and_pot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    t = np.array([0.3, -0.4])
    w = heldout_w2(x + t, x)
    assert isinstance(w, float) and w == pytest.approx(0.5, abs=1e-6)  # W2(x, x + t) = |t|
    assert heldout_w2(x, x) == pytest.approx(0.0, abs=1e-6)
    ot = pytest.importorskip("ot")
    g, r = rng.normal(size=(80, 3)), rng.normal(size=(50, 3)) + 0.5
    ref = math.sqrt(ot.emd2(np.full(80, 1 / 80), np.full(50, 1 / 50), ot.dist(g, r)))
    assert heldout_w2(g, r) == pytest.approx(ref, rel=1e-8)


def test_heldout_w2_float32(float32):
    x = np.random.default_rng(0).normal(size=(40, 2))
    assert heldout_w2(x + [0.0, 1.0], x) == pytest.approx(1.0, abs=1e-4)


# -- nn_precision_recall --------------------------------------------------------------------------
def _brute_force(real, fake, k):
    def radii(a):
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    d = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))  # [m, n]
    precision = (d <= radii(real)[None, :]).any(1).mean()
    recall = (d.T <= radii(fake)[None, :]).any(1).mean()
    return precision, recall


def test_nn_precision_recall_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    assert nn_precision_recall(x, x) == (1.0, 1.0)
    assert nn_precision_recall(x, x + 100.0) == (0.0, 0.0)
    collapsed = np.repeat(x[:1], 200, axis=0)  # every fake sample is the real point x[0]
    p, r = nn_precision_recall(x, collapsed)
    assert p == 1.0 and r == pytest.approx(1 / 300)  # only x[0] lies in the fake (zero-radius) balls
    # a hand-checked 1-D case, k = 1: real radii 1; fake radii 3.4, 1.1, 1.1
    real, fake = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.5], [5.0], [3.9]])
    assert nn_precision_recall(real, fake, k=1) == (pytest.approx(2 / 3), 1.0)


def test_nn_precision_recall_matches_brute_force(monkeypatch):
    monkeypatch.setattr(gm, "_BLOCK", 37)  # exercise the blocked loops
    rng = np.random.default_rng(1)
    real = rng.normal(size=(150, 3))
    fake = 0.6 * rng.normal(size=(110, 3)) + 1.0
    for k in (1, 3, 5):
        p, r = nn_precision_recall(real, fake, k=k)
        bp, br = _brute_force(real, fake, k)
        assert (p, r) == (pytest.approx(bp, abs=1e-12), pytest.approx(br, abs=1e-12))
        assert 0.2 < p < 1.0 and 0.2 < r < 1.0  # a non-trivial case
    # shrinkage: the fake set is inside the data (precision high) but misses its tails (recall lower)
    p, r = nn_precision_recall(real, 0.3 * rng.normal(size=(150, 3)))
    assert p > 0.9 and r < 0.6


# -- validation -----------------------------------------------------------------------------------
def test_input_validation():
    ok = np.zeros((10, 2)) + np.arange(10)[:, None]
    modes = eight_gaussians_modes(1.0)
    nan = ok.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"mode_metrics: samples must be a 2-D array"):
        mode_metrics(np.zeros(5), modes, 0.1)
    with pytest.raises(ValueError, match=r"mode_metrics: samples must have at least 1 row"):
        mode_metrics(np.zeros((0, 2)), modes, 0.1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        mode_metrics(nan, modes, 0.1)
    with pytest.raises(ValueError, match="same dimension"):
        mode_metrics(np.zeros((5, 3)), modes, 0.1)
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        mode_metrics(ok, modes, -1.0)
    with pytest.raises(ValueError, match="min_share"):
        mode_metrics(ok, modes, 0.1, min_share=1.5)
    with pytest.raises(ValueError, match="std_ratio: real has zero variance"):
        std_ratio(ok, np.ones((5, 2)))
    with pytest.raises(ValueError, match="std_ratio: generated must have at least 2"):
        std_ratio(ok[:1], ok)
    with pytest.raises(ValueError, match="std_ratio: real contains 1 NaN"):
        std_ratio(ok, nan)
    with pytest.raises(ValueError, match="heldout_w2: generated contains"):
        heldout_w2(nan, ok)
    with pytest.raises(ValueError, match="heldout_w2: real must have at least 1 row"):
        heldout_w2(ok, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="same dimension"):
        heldout_w2(ok, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        nn_precision_recall(ok, ok, k=0)
    with pytest.raises(ValueError, match="fake must have at least 4 row"):
        nn_precision_recall(ok, ok[:3], k=3)
    with pytest.raises(ValueError, match="numeric array"):
        nn_precision_recall(ok, "abc")


# -- DigitsProbe ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe():
    return DigitsProbe()


def test_digits_probe_on_real_test_images(probe):
    assert probe.test_accuracy > 0.9 and probe.real.shape == (359, 64)
    x, y = load_digits(split="test", dtype=np.float64)
    labels, _ = probe.classify(x)
    assert np.mean(labels == y) == pytest.approx(probe.test_accuracy)
    out = probe(x)
    keys = {"digits_covered", "confident_share", "nn_precision", "nn_recall"} | {f"label_hist_{c}" for c in range(10)}
    assert set(out) == keys and isinstance(out["digits_covered"], int)
    assert all(isinstance(v, float) for k, v in out.items() if k != "digits_covered")
    assert out["digits_covered"] == 10
    assert out["confident_share"] == pytest.approx(probe.real_confident_share) and out["confident_share"] > 0.6
    hist = np.array([out[f"label_hist_{c}"] for c in range(10)])
    assert hist.sum() == pytest.approx(out["confident_share"])
    freq = np.bincount(y, minlength=10) / y.size
    np.testing.assert_allclose(hist / hist.sum(), freq, atol=0.05)  # confident labels ~ class frequencies
    assert (out["nn_precision"], out["nn_recall"]) == (1.0, 1.0)  # the real test set against itself
    # the train images (other digits of the same law) are also well covered
    train_out = probe(load_digits(split="train", dtype=np.float64)[0])
    assert train_out["digits_covered"] == 10 and train_out["nn_precision"] > 0.8 and train_out["nn_recall"] > 0.6


def test_digits_probe_collapse_and_noise(probe):
    for value in (0.0, 0.5, 1.0):
        out = probe(np.full((500, 64), value))
        assert out["digits_covered"] <= 1 and out["nn_recall"] < 0.05
    one = load_digits(split="test", dtype=np.float64)[0][:1]  # every sample is one real image
    out = probe(np.repeat(one, 400, axis=0))
    assert out["digits_covered"] <= 1 and out["nn_precision"] == 1.0 and out["nn_recall"] < 0.01
    noise = probe(np.random.default_rng(0).uniform(size=(1000, 64)))
    assert noise["confident_share"] < 0.2 and noise["nn_precision"] < 0.05


def test_digits_probe_cached_options_and_errors(probe):
    before = gm._digits_classifier.cache_info()
    other = DigitsProbe(confidence=0.5, min_share=0.05, k=5, n_real=200)
    assert gm._digits_classifier.cache_info().hits == before.hits + 1  # the classifier is fitted once
    assert other._classifier is probe._classifier and other.real.shape == (200, 64)
    x = load_digits(split="test", dtype=np.float64)[0]
    out = other(x)
    assert out["confident_share"] >= probe(x)["confident_share"]  # a lower threshold is more permissive
    with pytest.raises(ValueError, match=r"DigitsProbe: generated must have shape \[n, 64\]"):
        probe(np.zeros((10, 63)))
    with pytest.raises(ValueError, match=r"DigitsProbe: generated must have shape \[n, 64\]"):
        probe(np.zeros((10, 192)))
    with pytest.raises(ValueError, match=r"DigitsProbe: generated must be a 2-D array \[n, 64\]"):
        probe(np.zeros(64))
    with pytest.raises(ValueError, match="NaN"):
        probe(np.full((10, 64), np.nan))
    with pytest.raises(ValueError, match="more than k = 3 images"):
        probe(np.zeros((3, 64)))
    with pytest.raises(ValueError, match="n_real must be <= 359"):
        DigitsProbe(n_real=1000)
    with pytest.raises(ValueError, match="confidence"):
        DigitsProbe(confidence=0.0)
    with pytest.raises(ValueError, match="k must be an int"):
        DigitsProbe(k=0)
