"""scripts/generator_figures.py's run labels (no training)."""

from __future__ import annotations


import pytest

from tests.scripts.loader import load_script


@pytest.fixture(scope="module")
def generator_figures():
    return load_script("generator_figures")


WGAN = {"_target_": "train.wgan.build", "clip": None, "gradient_penalty": 10.0}


@pytest.mark.parametrize("trainer, loss, label", [
    (WGAN, None, "WGAN-GP"),
    (dict(WGAN, latent="uniform"), None, "WGAN-GP"),
    (dict(WGAN, latent="normal"), None, "WGAN-GP (normal noise)"),
    (dict(WGAN, clip=0.01, gradient_penalty=0.0, latent="normal"), None, "WGAN (normal noise)"),
    (dict(WGAN, gradient_penalty=0.0), None, "SN-WGAN"),
    ({"_target_": "train.minibatch_ot.build", "latent": "normal"}, {"_target_": "ot_jax.losses.ipot_loss"},
     "IPOT (normal noise)"),
    ({"_target_": "train.minibatch_ot.build"}, {"_target_": "ot_jax.losses.sinkhorn_loss", "epsilon": 0.1},
     "Sinkhorn ε=0.1"),
])
def test_labels_name_the_method_and_a_latent_law_other_than_uniform(generator_figures, trainer, loss, label):
    assert generator_figures.method_label({"trainer": trainer, "loss": loss}) == label
