"""The Hydra app and the thesis-figure experiments, at tiny sizes (< 1 min in all).

Every ``conf/experiment/*.yaml`` is composed and run in-process into ``tmp_path``;
one test runs the real entry point ``python -m train`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.utils import get_object
from omegaconf import OmegaConf

import train.config  # noqa: F401  (registers the schemas)
from train.runner import run_config

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

# Overrides that make each experiment run in a few seconds.
TINY = {
    "ipot_convergence": ["experiment.n_points=30", "experiment.n_iters=300", "experiment.relative_betas=[0.1]",
                         "experiment.inner_iters=[1,5]", "experiment.relative_epsilons=[1e-2]",
                         "experiment.check_points=[50]"],
    "ipot_scaling": ["experiment.sizes=[32,64]", "experiment.repeats=1", "experiment.relative_betas=[0.01]",
                     "experiment.tols=[1e-4,1e-5]", "experiment.relative_epsilons=[1e-2]",
                     "experiment.sinkhorn_tols=[1e-4]", "experiment.max_iters=1000", "experiment.timing_calls=1"],
    "ipot_plans": ["experiment.n_points=24", "experiment.relative_epsilons=[0.1,0.01]", "experiment.sinkhorn_tol=1e-6",
                   "experiment.sinkhorn_max_iters=5000", "experiment.ipot_iters=[5,100]"],
    "point_cloud_matching": ["experiment.n_points=40", "experiment.n_steps=40", "experiment.record_every=20"],
    "digit_barycenters": ["experiment.digits=[3]", "experiment.n_images=4", "experiment.grid_size=24",
                          "experiment.n_iters=20", "experiment.show_inputs=2"],
    "color_transfer": ["experiment.stride=16", "experiment.ipot_max_iters=300", "experiment.n_palette=64"],
    "wgan_critic": ["experiment.steps=300", "experiment.hidden=[32,32]"],
}
# Training experiments: 2 steps, no checkpoints, small evaluations.
TRAIN_TINY = ["loop.steps=2", "loop.log_every=1", "loop.eval_every=0", "loop.checkpoint_every=0",
              "loop.progress=false", "trainer.eval_samples=64"]
TRAINING = {"spot_w_distance", "spot_pairs_gaussians", "spot_pairs_sine", "spot_hidden_units", "spot_digit_pairs",
            "density_gaussian", "density_mixture"}
for _name in TRAINING:
    TINY[_name] = TRAIN_TINY + (["data.n_samples=1000"] if _name.startswith("spot_") and _name != "spot_digit_pairs"
                                else [])
GENERATORS = {"generator_mixture", "generator_grid", "generator_digits", "wgan_mixture", "wgan_gp_mixture"}
for _name in GENERATORS:
    TINY[_name] = TRAIN_TINY + ["trainer.w2_samples=32", "trainer.snapshot_samples=32", "trainer.batch_size=16"]
TINY["wgan_mixture"] += ["trainer.n_critic=2"]
TINY["generator_digits"] += ["loss.max_iters=20"]
TINY["soft_knn_digits"] = ["loop.steps=2", "loop.log_every=1", "loop.eval_every=0", "loop.checkpoint_every=0",
                           "loop.progress=false", "trainer.batch_size=16", "trainer.support_size=32", "trainer.k=3",
                           "trainer.eval_ks=[3]"]
TINY["soft_beam_seq"] = ["loop.steps=2", "loop.log_every=1", "loop.eval_every=0", "loop.checkpoint_every=0",
                         "loop.progress=false", "trainer.warmup_steps=0", "trainer.n_digits=1", "trainer.beam_size=1",
                         "trainer.batch_size=8", "trainer.test_size=16", "model.hidden=8", "model.embed=4"]
ROBOT_TINY = ["loop.steps=2", "loop.log_every=1", "loop.eval_every=0", "loop.checkpoint_every=0",
              "loop.progress=false", "trainer.max_iters=50", "data.n_val=50"]
TINY["robot_linear"] = ROBOT_TINY + ["data.n=60"]
TINY["robot_mlp"] = ROBOT_TINY + ["data.n=60", "trainer.pretrain_steps=1"]
TINY["robot_scale"] = ROBOT_TINY + ["data.n=400", "data.block_size=100", "trainer.block_size=100",
                                    "trainer.blocks_per_step=2"]
TINY["robot_cytometry"] = ROBOT_TINY + ["data.n=400", "data.well_size=100", "trainer.block_size=100",
                                        "trainer.blocks_per_step=2"]
for _name in ("daspot_rotated", "daspot_colored", "daspot_textured", "daspot_usps"):
    TINY[_name] = TRAIN_TINY + ["trainer.baseline_steps=2", "trainer.batch_size=16", "trainer.n_critic=1"]
for _name in ("density_gaussian", "density_mixture"):
    TINY[_name] += ["trainer.reference.grid_size=40", "model.hidden=[8]", "trainer.batch_size=64",
                    "model.solver=midpoint", "model.step_size=constant", "model.n_steps=2"]


@pytest.fixture(autouse=True)
def _clean_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_every_experiment_has_tiny_overrides():
    assert EXPERIMENTS, "no conf/experiment/*.yaml found"
    assert set(EXPERIMENTS) <= set(TINY), f"add tiny overrides for {sorted(set(EXPERIMENTS) - set(TINY))}"


def test_default_experiment_is_the_spot_w_distance_run():
    cfg = _compose([])
    assert cfg.trainer._target_ == "train.spot.build" and cfg.experiment is None
    assert cfg.trainer.true_value == 5.0 and cfg.cost._target_ == "ot_jax.Euclidean"
    assert cfg.x64 is False and cfg.seed == 0


def test_run_and_sweep_dirs_are_named_after_the_experiment():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=ipot_plans"], return_hydra_config=True)
    # The sweep dir is resolved by the launcher before HydraConfig exists: it must not need it.
    assert OmegaConf.select(cfg, "hydra.sweep.dir") == "multirun/ipot_plans"
    assert OmegaConf.to_container(cfg.hydra.run)["dir"].startswith("outputs/${hydra:runtime.choices.experiment}/")
    assert "override_dirname" in OmegaConf.to_container(cfg.hydra.sweep)["subdir"]


# Runs that share their code path with a faster one are slow-marked; they still compose and build below.
SLOW_RUNS = {
    "density_mixture",  # = density_gaussian with another reference (tested in test_density.py)
    "spot_pairs_gaussians", "spot_pairs_sine", "spot_hidden_units",  # = spot_w_distance's trainer, other data/model
    "generator_grid",  # = generator_mixture's trainer on another mixture
    # Trainers whose runs the fast suite makes elsewhere, with stronger assertions:
    "spot_w_distance",  # tests/train/test_spot.py, test_runs.py
    "wgan_gp_mixture",  # tests/train/test_generators.py; its run files: wgan_mixture below
    "density_gaussian",  # the trainer: tests/train/test_density.py (a short run lowers the KL)
    "spot_digit_pairs",  # = spot_w_distance's trainer with image models (tests/nn: conv critics, generators)
    "color_transfer",  # ot_jax.color_transfer: tests/tools/test_color.py
    "wgan_critic",  # the critics: tests/losses/test_adversarial.py
    "digit_barycenters",  # ot_jax.barycenter: tests/solvers/test_barycenter.py
    "soft_knn_digits",  # tests/train/test_soft_knn.py (a short run through run_config, the soft vote's gradients)
    "soft_beam_seq",  # tests/train/test_soft_beam.py runs it through the same config path
    "robot_linear", "robot_mlp", "robot_scale",  # tests/train/test_robot.py: runs, baselines, MLP, blocks
    "robot_cytometry",  # tests/train/test_robot.py: wells, their baselines, events from a file
    # daspot_rotated runs below (two steps); tests/train/test_daspot.py (-m slow): a 300-step run that learns
    "daspot_colored", "daspot_textured", "daspot_usps",  # = daspot_rotated's trainer on another target domain
}


@pytest.mark.parametrize("name", sorted(SLOW_RUNS))
def test_slow_run_experiments_compose_and_build(name, tmp_path):
    from train.runner import build_trainer
    from train.validate import check_targets

    cfg = _compose([f"experiment={name}", *TINY[name]])
    if cfg.get("trainer") is None:  # an analysis: its function accepts every field of its node
        check_targets(cfg)
        assert callable(get_object(cfg.experiment._target_))
        return
    trainer = build_trainer(cfg, str(tmp_path))
    assert callable(trainer.step) and callable(trainer.evaluate)


@pytest.mark.parametrize("name", [n if n not in SLOW_RUNS else pytest.param(n, marks=pytest.mark.slow)
                                  for n in EXPERIMENTS])
def test_experiment_composes_and_runs(name, tmp_path):
    cfg = _compose([f"experiment={name}", *TINY[name]])
    metrics = run_config(cfg, str(tmp_path))
    if name in GENERATORS:
        _check_generator_run(name, tmp_path)
        return
    if name == "soft_knn_digits":
        records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2] and 0 <= records[-1]["test_accuracy"] <= 1
        assert metrics["trainer"] == "train.soft_knn.build" and (tmp_path / "soft_knn.png").exists()
        return
    if name.startswith("daspot_"):
        records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2] and 0 <= metrics["target_accuracy"] <= 1
        assert metrics["trainer"] == "train.daspot.build" and (tmp_path / "daspot.png").stat().st_size > 10_000
        assert (tmp_path / "daspot_embeddings.png").exists()
        return
    if name in TRAINING:
        density = name.startswith("density_")
        assert (tmp_path / ("density.png" if density else "spot.png")).stat().st_size > 10_000
        records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2]
        assert np.isfinite(records[-1]["kl" if density else "w_estimate"])
        on_disk = json.loads((tmp_path / "metrics.json").read_text())
        assert on_disk["trainer"] == ("train.density.build" if density else "train.spot.build")
        if density:  # the untrained flow is the identity: N(0, I) is far from the reference plan
            assert on_disk["kl"] > 0.1 and (tmp_path / "density_grid.npz").exists(), on_disk
        return
    if name.startswith("robot_") or name == "soft_beam_seq":  # trainers: their figure bears the trainer's name
        figure = "robot.png" if name.startswith("robot_") else "soft_beam.png"
        assert (tmp_path / figure).stat().st_size > 10_000
        records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2]
        return
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["experiment"] == name == metrics["experiment"]

    if name == "ipot_convergence":
        methods = on_disk["methods"]
        ipot1 = methods["ipot[beta=0.1,L=1]"]
        assert ipot1["iterations"] == 300
        assert ipot1["rel_error"] < 1e-3, ipot1
        # Sinkhorn at eps = 0.01 max C keeps its entropic bias; IPOT does not.
        assert methods["sinkhorn[eps=0.01]"]["rel_error"] > 10 * ipot1["rel_error"]
        # ot_jax.ipot and the experiment's Algorithm-1 trace agree at the check points.
        assert on_disk["max_rel_diff_library_vs_trace"] < 1e-8
    elif name == "ipot_scaling":
        ipot = on_disk["results"]["ipot[beta=0.01]"]["per_n"]
        assert all(ipot[str(n)]["reached"] == 1 for n in (32, 64)), ipot
        assert all(ipot[str(n)]["compile_time"] > 0 for n in (32, 64))
    elif name == "ipot_plans":
        sinkhorn, ipot = on_disk["panels"][:2], on_disk["panels"][2:]
        assert all(p["converged"] for p in sinkhorn)
        assert [p["iterations"] for p in ipot] == [5, 100]
        assert ipot[1]["rel_error"] < ipot[0]["rel_error"]
        assert ipot[1]["outside_widened"] < ipot[0]["outside_widened"]
    elif name == "point_cloud_matching":
        # The auction's matching is optimal (within its bound), and after 40 Adam steps the
        # EMD fit is closer to the target in EMD than the Chamfer fit is.
        assert abs(on_disk["matching_cost"] - on_disk["scipy_cost"]) <= on_disk["matching_bound"] + 1e-9
        fits = on_disk["fits"]
        assert fits["EMD fit"]["emd"] < fits["Chamfer fit"]["emd"]
    elif name == "digit_barycenters":
        bary = on_disk["barycenters"]
        assert set(bary) == {"sinkhorn[digit=3]", "convolutional[digit=3]", "ipot[digit=3]"}
        assert all(b["finite"] for b in bary.values()), bary
        # The exact objective is bracketed: certified dual bound <= IPOT's estimate.
        assert all(b["objective_lower"] <= b["objective_estimate"] * (1 + 1e-9) for b in bary.values()), bary
    elif name == "wgan_critic":
        # Even after 300 steps the discriminator saturates at the fake data, and the critics'
        # gradients there are orders of magnitude larger than the minimax GAN generator's.
        assert on_disk["d_at_fake_mean"] < 0.05
        for critic in on_disk["critics"].values():
            assert critic["mean_grad_at_fake"] > 100 * on_disk["gan_mean_grad_at_fake"], on_disk
            assert 0 < critic["estimate_over_slope"] <= on_disk["true_w1"] * 1.01
    elif name == "color_transfer":
        methods = on_disk["methods"]
        lp = methods["simplex (LP)"]
        # Every transfer moves the colours toward the target's; the LP map is the closest per channel.
        assert all(m["w1_to_target"] < on_disk["w1_source_to_target"] / 5 for m in methods.values())
        assert lp["w1_to_target"] <= methods["Sinkhorn, ε = 0.01"]["w1_to_target"]
        assert methods["Sinkhorn, ε = 0.01"]["max_diff_to_lp_levels"] > methods["Sinkhorn, ε = 0.001"][
            "max_diff_to_lp_levels"]


def _check_generator_run(name, run_dir):
    """Two steps of a one-law generator: records, evaluation metrics, snapshots and figures."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    final = records[-1]
    assert final["heldout_w2"] > 0 and final["std_ratio"] > 0 and final["train_seconds"] > 0
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    wgan = name.startswith("wgan")
    assert on_disk["trainer"] == ("train.wgan.build" if wgan else "train.minibatch_ot.build")
    if wgan:  # clipping keeps every critic weight in [-c, c]; the penalty run does not clip
        assert (final["max_abs_weight"] <= 0.01 + 1e-7) == (name == "wgan_mixture"), final
    else:
        assert np.isfinite(final["loss"]) and 0.0 <= final["converged"] <= 1.0
    if name == "generator_digits":
        assert 0 <= final["digits_covered"] <= 10 and 0 <= final["nn_precision"] <= 1
        assert (run_dir / "latent_grid.png").stat().st_size > 10_000
        assert np.load(run_dir / "latent_grid.npy").shape == (256, 64)
    else:
        assert 0 <= final["modes_covered"] <= final["modes_total"] and 0 <= final["high_quality"] <= 1
    assert (run_dir / "generator.png").stat().st_size > 10_000
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == ["step_00000002.npy"]


@pytest.mark.parametrize("overrides, key", [
    (["experiment=ipot_plans", "experiment.n_ponts=5"], "n_ponts"),
    (["trainer.etaa=5"], "etaa"),
    (["loop.stesp=5"], "stesp"),
    (["x46=false"], "x46"),
    (["experiment=ipot_scaling", "experiment.repeets=2"], "repeets"),
])
def test_misspelt_key_is_rejected_by_name(overrides, key):
    with pytest.raises(ConfigCompositionException, match=key) as info:
        _compose(overrides)
    assert key in str(info.value)


def test_forced_unknown_key_fails_at_the_call(tmp_path):
    # "+key=value" opens the struct on purpose; the experiment's keyword-only signature still refuses it.
    cfg = _compose(["experiment=ipot_plans", "+experiment.n_ponts=5"])
    with pytest.raises(Exception, match="n_ponts"):
        run_config(cfg, str(tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_entry_point_subprocess(tmp_path):
    run_dir, cwd = tmp_path / "run", tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "train", "experiment=ipot_convergence", *TINY["ipot_convergence"],
           "experiment.inner_iters=[1]", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rel error" in proc.stdout and "IPOT" in proc.stdout
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "ipot_convergence.png").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["methods"]["ipot[beta=0.1,L=1]"]["rel_error"] < 1e-3
    assert list(cwd.iterdir()) == [], "the app wrote into the working directory"


@pytest.mark.parametrize("overrides, message", [
    (["+model.hiden=[4,4]"], "model.hiden not accepted by ot_jax.nn.Generator"),
    (["+data.samplers.0.sdt=2"], r"data.samplers\[0\].sdt not accepted by ot_jax.data.gaussian"),
    (["+optimizer.lr=1e-3"], "optimizer.lr not accepted by optax.adam"),
])
def test_keys_unknown_to_a_target_fail_before_training(overrides, message, tmp_path):
    cfg = _compose([*overrides, *TRAIN_TINY])
    with pytest.raises(ValueError, match=message):
        run_config(cfg, str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()
