"""One-law generator trainers on the shared loop: minibatch OT (IPOT vs Sinkhorn shrinkage)
and WGAN (clipping, penalty), plus their bad-configuration errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ot_jax.data import eight_gaussians
from tests.train.configs import compose_config
from train.data import Marginals
from train.loop import fit
from train.runner import build_trainer

SHORT = ["trainer.eval_samples=1000", "trainer.w2_samples=200", "trainer.snapshot_samples=50",
         "loop.steps=1500", "trainer.lr_decay=none"]


def _train(tmp_path, overrides, steps=1500):
    cfg = compose_config(["experiment=generator_mixture", *SHORT, *overrides])
    trainer = build_trainer(cfg, str(tmp_path))
    result = fit(trainer, seed=0, output_dir=str(tmp_path), steps=steps, log_every=250, eval_every=steps,
                 progress=False)
    return result.history[-1]


# IPOT trains 3,500 steps: at 1,500 its coverage sat at the threshold and moved with rounding
# (6 of 8 modes, or 5 with XLA's classic CPU fusion emitters); at 3,500 both builds cover 8 of 8.
# Slow (~60 s); the fast suite runs the trainer in test_experiments.py.
@pytest.mark.slow
def test_ipot_generator_covers_the_modes_and_sinkhorn_at_large_eps_shrinks(tmp_path, float32):
    ipot = _train(tmp_path / "ipot", ["loss=ipot"], steps=3500)
    sinkhorn = _train(tmp_path / "sinkhorn", ["loss=sinkhorn", "loss.epsilon=1.0"])
    print("ipot", ipot, "\nsinkhorn", sinkhorn)
    assert ipot["n_iters"] > 0 and 0.0 <= ipot["converged"] <= 1.0
    assert ipot["modes_covered"] >= 7 and ipot["std_ratio"] > 0.85, ipot
    # eps = 1 is ~7 x the squared distance between neighbouring modes: the plan is blurred across
    # the whole circle and the primal loss pulls the generated law toward the data mean.
    assert sinkhorn["std_ratio"] < 0.7 * ipot["std_ratio"], (sinkhorn, ipot)
    assert sinkhorn["heldout_w2"] > ipot["heldout_w2"]


@pytest.mark.slow  # two WGAN training runs (~19 s); one clipped critic update is checked fast in tests/losses/test_adversarial.py
def test_wgan_critic_stays_clipped_and_the_penalty_variant_does_not_clip(tmp_path, float32):
    cfg = compose_config(["experiment=wgan_mixture", "trainer.eval_samples=200", "trainer.w2_samples=50"])
    result = fit(build_trainer(cfg, str(tmp_path / "clip")), seed=0, output_dir=str(tmp_path / "clip"), steps=50,
                 log_every=25, progress=False)
    assert all(r["max_abs_weight"] <= 0.01 + 1e-8 for r in result.history)
    leaves = jax.tree.leaves(result.state.critics)
    assert max(float(np.max(np.abs(w))) for w in leaves) <= 0.01 + 1e-8
    assert max(float(np.max(np.abs(w))) for w in leaves) > 0.0099  # clipping is active, not vacuous
    cfg = compose_config(["experiment=wgan_gp_mixture", "trainer.eval_samples=200", "trainer.w2_samples=50"])
    result = fit(build_trainer(cfg, str(tmp_path / "gp")), seed=0, output_dir=str(tmp_path / "gp"), steps=50,
                 log_every=25, progress=False)
    assert result.history[-1]["max_abs_weight"] > 0.01 and np.isfinite(result.history[-1]["penalty"])


@pytest.mark.parametrize("overrides, match", [
    (["experiment=wgan_mixture", "trainer.clip=null"], "Lipschitz constraint"),
    (["experiment=wgan_mixture", "trainer.clip=-1"], "clip must be > 0"),
    (["experiment=generator_mixture", "trainer.latent=cauchy"], "latent must be one of"),
    (["experiment=generator_mixture", "trainer.batch_size=1"], "batch_size"),
    (["experiment=generator_mixture", "loss=sliced", "cost=euclidean", "cost=sobel"], "cost"),
])
def test_bad_settings_raise(tmp_path, overrides, match):
    with pytest.raises((ValueError, TypeError), match=match):
        trainer = build_trainer(compose_config(overrides), str(tmp_path))
        trainer.step(trainer.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1))


def test_two_marginal_data_is_refused(tmp_path):
    data = Marginals(samplers=[eight_gaussians, eight_gaussians])
    with pytest.raises(ValueError, match="one sampler"):
        build_trainer(compose_config(["experiment=generator_mixture"]), str(tmp_path), data=data)
