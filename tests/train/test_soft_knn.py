"""kNN through SOFT top-k (train/soft_knn.py): the soft vote and its loss, the hard kNN evaluation,
a short run through the config path of ``python -m train``, and bad settings."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.configs import compose_config
from train.data import Labeled
from train.runner import build_trainer, run_config
from ot_jax.losses.knn import knn_predict, soft_vote, sq_distances, vote_loss

TINY = ["loop.steps=2", "loop.log_every=2", "loop.eval_every=0", "loop.checkpoint_every=0", "loop.progress=false",
        "trainer.batch_size=16", "trainer.support_size=32", "trainer.k=3", "trainer.eval_ks=[3]"]


def _problem(key, b=4, m=12, e=3, classes=3):
    kq, ks, ky, kl = jax.random.split(key, 4)
    return (jax.random.normal(kq, (b, e)), jax.random.normal(ks, (m, e)),
            jax.random.randint(ky, (m,), 0, classes), jax.random.randint(kl, (b,), 0, classes))


def _loss(q, s, ys, yq, grad_mode="implicit"):
    vote = soft_vote(-sq_distances(q, s), ys, 3, 3, epsilon=0.1, grad_mode=grad_mode, unroll_iters=200)
    return vote_loss(vote, yq)


def _check_gradient(grad_mode, key):
    q, s, ys, yq = _problem(key)
    gq, gs = jax.jit(jax.grad(_loss, argnums=(0, 1)), static_argnums=4)(q, s, ys, yq, grad_mode)
    for g in (gq, gs):
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) > 1e-6, (grad_mode, g)
    return q, s, ys, yq, gq


def test_soft_vote_loss_has_a_finite_nonzero_gradient_equal_to_finite_differences(key):
    q, s, ys, yq, gq = _check_gradient("implicit", key)
    vote = soft_vote(-sq_distances(q, s), ys, 3, 3, epsilon=0.1)
    np.testing.assert_allclose(vote.sum(1), 1.0, atol=1e-3)  # a distribution over the classes
    direction = jax.random.normal(jax.random.PRNGKey(7), q.shape)
    loss = jax.jit(_loss)
    h = 1e-5
    fd = (loss(q + h * direction, s, ys, yq) - loss(q - h * direction, s, ys, yq)) / (2 * h)
    np.testing.assert_allclose(jnp.vdot(gq, direction), fd, rtol=1e-3)


@pytest.mark.slow  # one more compilation each (4-5 s); the default suite checks the implicit gradient above
@pytest.mark.parametrize("grad_mode", ["unroll", "straight_through"])
def test_other_top_k_gradients_are_finite_and_nonzero(key, grad_mode):
    _check_gradient(grad_mode, key)


def test_soft_vote_tends_to_the_hard_knn_vote(key):
    q, s, ys, _ = _problem(key)
    k, classes = 3, 3
    scores = -sq_distances(q, s)
    _, idx = jax.lax.top_k(scores, k)
    hard = jnp.sum(jax.nn.one_hot(ys[idx], classes), axis=1) / k
    errors = [float(jnp.max(jnp.abs(soft_vote(scores, ys, k, classes, epsilon=eps) - hard)))
              for eps in (1e-1, 1e-2, 1e-4)]
    assert errors[-1] < 1e-6 and errors[0] > errors[-1], errors
    # The hard evaluation agrees with the limit of the soft vote (here without ties).
    assert bool(jnp.all(knn_predict(s, ys, q, k, classes) == jnp.argmax(hard + 1e-3 * jax.nn.one_hot(
        ys[idx[:, 0]], classes), axis=1)))


def test_knn_predict_majority_and_ties():
    train = jnp.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = jnp.array([0, 1, 1, 2, 2])
    query = jnp.array([[0.4], [10.4], [1.4]])
    # k = 3: {0, 1, 1} -> 1; {2, 2, 1} -> 2; k = 2 at 0.4: {0, 1} tie -> nearest (0); at 1.4: {1, 1} -> 1
    assert knn_predict(train, labels, query, 3, 3).tolist() == [1, 2, 1]
    assert knn_predict(train, labels, query, 2, 3).tolist() == [0, 2, 1]


def test_labeled_data_checks_its_arrays():
    x, y = np.zeros((5, 3)), np.arange(5) % 2
    with pytest.raises(ValueError, match="y_train"):
        Labeled(x, y[:4], x, y, n_classes=2)
    with pytest.raises(ValueError, match="0..1"):
        Labeled(x, y + 1, x, y, n_classes=2)
    with pytest.raises(ValueError, match="dimensions differ"):
        Labeled(x, y, np.zeros((5, 4)), y, n_classes=2)
    assert Labeled(x, y, x, y, n_classes=2).dim == 3


def test_short_run_writes_its_metrics_and_figure(tmp_path):
    cfg = compose_config(["experiment=soft_knn_digits", *TINY])
    metrics = run_config(cfg, str(tmp_path))
    assert metrics["trainer"] == "train.soft_knn.build" and metrics["k"] == 3 and metrics["method"] == "soft_knn"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2]
    assert np.isfinite(records[-1]["loss"]) and 0 <= records[-1]["test_accuracy"] <= 1
    assert set(records[-1]) >= {"test_accuracy_k3", "batch_accuracy"}
    # Even an untrained embedding keeps much of the pixels' neighbourhoods (10 classes: 10 % by chance);
    # raw-pixel kNN is near 99 %.
    assert records[-1]["test_accuracy"] > 0.3 and metrics["pixel_accuracy"] > 0.95, metrics
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert (tmp_path / "metrics.csv").read_text().startswith("step,")
    assert (tmp_path / "soft_knn.png").stat().st_size > 10_000


def test_cross_entropy_baseline_takes_a_step(tmp_path, float32):
    # (The unrolled and straight-through top-k differ from the default only inside soft_vote, tested above.)
    trainer = build_trainer(compose_config(["experiment=soft_knn_digits", *TINY, "trainer.method=cross_entropy"]),
                            str(tmp_path))
    state, metrics = jax.jit(trainer.step)(trainer.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics["loss"]))
    out = trainer.evaluate(state, None)
    assert 0 <= out["test_accuracy"] <= 1 and 0 <= out["head_accuracy"] <= 1


@pytest.mark.parametrize("overrides, match", [
    (["trainer.k=32"], "k must satisfy"),
    (["trainer.support_size=2000"], "batch_size \\+ support_size"),
    (["trainer.grad_mode=fancy"], "grad_mode"),
    (["trainer.method=svm"], "method"),
    (["trainer.epsilon=-1"], "epsilon"),
])
def test_bad_settings_raise(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        cfg = compose_config(["experiment=soft_knn_digits", *TINY, *overrides])
        run_config(cfg, str(tmp_path))
