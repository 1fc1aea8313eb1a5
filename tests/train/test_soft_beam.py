"""Soft beam search (ot_jax/losses/beam.py, train/soft_beam.py): the addition data, the soft selection step
and a short run."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import train.config  # noqa: F401  (registers the schemas)
from ot_jax.data import addition_target, digit_addition
from ot_jax.nn import Seq2SeqGRU
from train.config import CONF_DIR
from train.runner import run_config
from ot_jax.losses.beam import decode_beams, hard_weights, rank_weights
from train.soft_beam import accuracies


def test_digit_addition_shapes_determinism_and_truth():
    src, tgt = digit_addition(jax.random.PRNGKey(3), 200, n_digits=3)
    assert src.shape == (200, 6) and tgt.shape == (200, 4) and src.dtype == tgt.dtype == jnp.int32
    again, _ = digit_addition(jax.random.PRNGKey(3), 200, n_digits=3)
    other, _ = digit_addition(jax.random.PRNGKey(4), 200, n_digits=3)
    assert np.array_equal(src, again) and not np.array_equal(src, other)
    s, t = np.asarray(src), np.asarray(tgt)
    a = s[:, :3] @ [100, 10, 1]
    b = s[:, 3:] @ [100, 10, 1]
    assert np.array_equal(t @ [1000, 100, 10, 1], a + b)
    assert set(np.unique(t[:, 0])) <= {0, 1} and 0 <= s.min() and s.max() <= 9
    assert np.array_equal(addition_target(jnp.array([[9, 9, 0, 1]])), [[1, 0, 0]])  # 99 + 1
    with pytest.raises(ValueError, match="n_digits"):
        digit_addition(jax.random.PRNGKey(0), 4, n_digits=0)


def test_soft_selection_tends_to_hard_top_k_and_has_gradients():
    scores = jnp.array([[-0.3, -2.0, -0.1, -1.2, -0.7, -3.0],
                        [-1.0, -0.2, -4.0, -0.5, -2.5, -0.9]])
    live = jnp.array([[True] * 6, [True, True, False, True, True, True]])
    hard = hard_weights(scores, 2, live)
    assert np.array_equal(np.argmax(hard, axis=1), [[2, 0], [1, 3]])  # best first
    for eps, close in ((1e-3, True), (0.1, False)):
        soft = rank_weights(scores, 2, live, epsilon=eps)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-3)  # each beam: a distribution
        assert float(soft.min()) > -1e-3 and float(jnp.max(soft[1, 2])) < 1e-6  # the dead candidate: none
        assert (float(jnp.max(jnp.abs(soft - hard))) < 1e-3) == close

    def mixed_score(s):  # the soft beams' scores, weighted
        return jnp.sum(jnp.einsum("bnk,bn->bk", rank_weights(s, 2, live, epsilon=0.1), s) * jnp.array([1.0, 0.5]))

    grad = jax.grad(mixed_score)(scores)
    assert np.all(np.isfinite(grad)) and float(jnp.max(jnp.abs(grad))) > 1e-3


def test_soft_beams_at_small_epsilon_are_the_hard_beams():
    model = Seq2SeqGRU(10, 10, 4, hidden=8, embed=4, rngs=nnx.Rngs(1))
    model.head.kernel[...] *= 3.0  # score gaps well above the temperature (no near-ties)
    src, _ = digit_addition(jax.random.PRNGKey(0), 3, n_digits=2)
    hard_h, hard_s = decode_beams(model, src, 3, 2, hard_weights)
    soft_h, soft_s = decode_beams(model, src, 3, 2, functools.partial(rank_weights, epsilon=1e-4))
    np.testing.assert_allclose(soft_h, hard_h, atol=1e-2)
    np.testing.assert_allclose(soft_s, hard_s, rtol=1e-3, atol=1e-2)
    assert np.all(np.diff(np.asarray(hard_s), axis=1) <= 0)  # best beam first
    # One beam is greedy decoding; two beams find a sequence at least as likely.
    _, greedy_s = decode_beams(model, src, 3, 1, hard_weights)
    assert np.all(np.asarray(hard_s[:, 0]) >= np.asarray(greedy_s[:, 0]) - 1e-5)


@pytest.mark.slow  # a training run through Hydra (~15 s); the soft beam's limits and gradients are checked fast in this file
def test_soft_beam_run_through_the_hydra_config(tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "experiment=soft_beam_seq", "loop.steps=2", "loop.log_every=1", "loop.eval_every=0",
            "loop.checkpoint_every=0", "loop.progress=false", "trainer.warmup_steps=0", "trainer.n_digits=1",
            "trainer.beam_size=1", "trainer.batch_size=8", "trainer.test_size=16", "model.hidden=8", "model.embed=4"])
    GlobalHydra.instance().clear()
    metrics = run_config(cfg, str(tmp_path))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["beam_loss"]) and r["beam_loss"] > 0 and r["soft_beam"] == 1 for r in records)
    assert metrics["trainer"] == "train.soft_beam.build" and metrics["mode"] == "soft_beam"
    assert 0 <= metrics["beam_seq_acc"] <= metrics["beam_token_acc"] <= 1
    assert accuracies(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 0]])) == (0.5, 0.75)
    assert (tmp_path / "soft_beam.png").stat().st_size > 10_000
