"""The DASPOT trainer (train/daspot.py): a short run through the config path, the source-only
baseline and the figures; the adaptation data; the format conversion; bad settings."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.configs import compose_config
from ot_jax.data.images import convert_format
from train.data import Adaptation, digit_adaptation
from train.runner import build_trainer, run_config

SMALL = ["experiment=daspot_rotated", "loop.steps=300", "loop.log_every=100", "loop.eval_every=300",
         "loop.checkpoint_every=0", "loop.progress=false", "trainer.baseline_steps=300", "trainer.n_critic=2",
         "trainer.eval_samples=128"]


@pytest.mark.slow  # a 300-step training run (~20 s); the DASPOT loss, its terms and pseudo-labels are checked fast in tests/losses/test_daspot.py and tests/train/test_experiments.py runs the trainer for two steps
def test_short_run_learns_the_source_and_reports_the_baseline(tmp_path):
    metrics = run_config(compose_config(SMALL), str(tmp_path))
    assert metrics["trainer"] == "train.daspot.build"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [100, 200, 300]
    assert records[-1]["source_risk"] < 0.8 * records[0]["source_risk"]  # D_X learns the labelled source
    for r in records:
        assert all(np.isfinite(v) for k, v in r.items() if isinstance(v, float))
    assert 0.0 <= metrics["target_accuracy"] <= 1.0 and 0.0 <= metrics["agreement"] <= 1.0
    # the source-only classifier (300 steps) is far above chance (10 %) on 30°-rotated digits
    assert metrics["source_only_accuracy"] > 0.3
    assert (tmp_path / "daspot.png").stat().st_size > 10_000
    assert (tmp_path / "daspot_embeddings.png").stat().st_size > 10_000


def test_digit_adaptation_domains_share_no_image():
    data = digit_adaptation(target="rotated")
    assert data.x_source.shape == (719, 64) and data.x_target.shape == (719, 64) and data.x_test.shape == (359, 64)
    plain = digit_adaptation(target="inverted")
    # the target rows are the other half of the training split: 1 - target is never a source image
    src = {row.tobytes() for row in np.round(data.x_source, 6)}
    assert not any(np.round(1.0 - row, 6).tobytes() in src for row in plain.x_target)
    usps = digit_adaptation(target="usps")
    assert usps.point_shapes == ((8, 8, 1), (16, 16, 1)) and usps.dims == (64, 256)
    with pytest.raises(ValueError, match="shifted domain"):
        digit_adaptation(target="none")


def test_adaptation_checks():
    x, y = np.zeros((4, 4)), np.array([0, 1, 0, 1])
    shapes = ((2, 2, 1), (2, 2, 1))
    with pytest.raises(ValueError, match="y_source"):
        Adaptation(x, y[:3], x, x, y, shapes=shapes, n_classes=2)
    with pytest.raises(ValueError, match="lie in 0..1"):
        Adaptation(x, y + 1, x, x, y, shapes=shapes, n_classes=2)
    with pytest.raises(ValueError, match="x_test must be"):
        Adaptation(x, y, x, np.zeros((4, 3)), y, shapes=shapes, n_classes=2)
    with pytest.raises(ValueError, match="x_target has NaN"):
        Adaptation(x, y, np.full((4, 4), np.nan), x, y, shapes=shapes, n_classes=2)
    with pytest.raises(ValueError, match="does not hold"):
        Adaptation(x, y, x, x, y, shapes=((3, 3, 1), (2, 2, 1)), n_classes=2)


def test_convert_format():
    img = jnp.arange(2 * 4 * 4, dtype=jnp.float32).reshape(2, 16) / 32.0
    rgb = convert_format(img, (4, 4, 1), (4, 4, 3)).reshape(2, 4, 4, 3)
    np.testing.assert_allclose(rgb[..., 1], img.reshape(2, 4, 4))  # grey repeated
    big = convert_format(img, (4, 4, 1), (8, 8, 1)).reshape(2, 8, 8)
    np.testing.assert_allclose(big.reshape(2, 4, 2, 4, 2).mean(axis=(2, 4)), img.reshape(2, 4, 4), atol=0.05)
    grey = convert_format(rgb.reshape(2, -1), (4, 4, 3), (4, 4, 1))
    np.testing.assert_allclose(grey, img, rtol=1e-6)
    with pytest.raises(ValueError, match="must be"):
        convert_format(img, (4, 4, 3), (4, 4, 1))
    with pytest.raises(ValueError, match="cannot bring 3-channel images to 2"):
        convert_format(rgb.reshape(2, -1), (4, 4, 3), (4, 4, 2))


@pytest.mark.parametrize("overrides, match", [
    (["trainer.eta=0"], "eta must be > 0"),
    (["trainer.lam_da=-1"], "lam_s and trainer.lam_da"),
    (["trainer.ema_decay=1.0"], "ema_decay"),
    (["data=digits_labeled", "~data.target"], "Adaptation data"),
])
def test_bad_settings_raise(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        build_trainer(compose_config([*SMALL, *overrides]), str(tmp_path))
