"""The Hydra config of ``python -m train``: experiments and sweeps compose, experiment files
hold overrides only, ``--help`` lists the choices, and bad values fail at start by name."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

import train.config as schema
from tests.train.configs import CONF, ROOT, compose_config
from train.runner import run_config
from train.validate import ConfigValueError, check_targets, check_values

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
# Jobs per sweep (the product of the swept values) and the experiment it runs.
SWEEP_JOBS = {  # name: (experiment, jobs, sweep directory)
    "fig3_2": ("spot_w_distance", 15, "fig3_2"),  # 3 learning rates x 5 seeds
    "fig3_3": ("spot_hidden_units", 24, "fig3_3"),  # 8 widths x 3 seeds
    "fig3_3_lr1e-4": ("spot_hidden_units", 24, "fig3_3_lr1e-4"),  # the same at learning rate 1e-4
    "fig3_4_gaussian": ("density_gaussian", 3, "fig3_4_gaussian"),  # lambda in {0.1, 0.5, 1}
    "fig3_4_mixture": ("density_mixture", 3, "fig3_4_mixture"),
    "fig2_5": ("generator_mixture", 3, "fig2_5"),  # ipot, exact, sliced
    "fig2_5_sinkhorn": ("generator_mixture", 1, "fig2_5"),
    "fig2_5_sinkhorn_long": ("generator_mixture", 1, "fig2_5"),
    "fig2_6_ipot": ("generator_digits", 1, "fig2_6"),
    "fig2_6_sliced": ("generator_digits", 1, "fig2_6"),
    "fig2_6_sinkhorn": ("generator_digits", 1, "fig2_6"),
    "grid25": ("generator_grid", 2, "grid25"),  # ipot, sliced
}
TRAINER_SCHEMAS = {"spot": schema.SpotTrainerConfig, "density": schema.DensityTrainerConfig,
                   "wgan": schema.WganTrainerConfig, "wgan_gp": schema.WganTrainerConfig,
                   "minibatch_ot": schema.MinibatchOtTrainerConfig, "soft_knn": schema.SoftKnnTrainerConfig,
                   "soft_beam": schema.SoftBeamTrainerConfig,
                   "robot": schema.RobotTrainerConfig, "daspot": schema.DaspotTrainerConfig}
ANALYSIS_SCHEMAS = {"ipot_convergence": schema.IpotConvergenceConfig, "ipot_scaling": schema.IpotScalingConfig,
                    "ipot_plans": schema.IpotPlansConfig, "point_cloud_matching": schema.PointCloudMatchingConfig,
                    "digit_barycenters": schema.DigitBarycentersConfig, "color_transfer": schema.ColorTransferConfig,
                    "wgan_critic": schema.WganCriticConfig}
TINY_TRAIN = ["loop.steps=2", "loop.log_every=1", "loop.eval_every=0", "loop.checkpoint_every=0",
              "loop.progress=false"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _compose_hydra(overrides):
    """The composed config with its ``hydra`` node (choices, sweeper, sweep dir)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _leaves(node, prefix=""):
    """(dotted key, value) of every leaf of a plain container."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


# --- experiments -------------------------------------------------------------------------------

def test_conf_has_every_listed_sweep_and_an_analysis_schema_per_analysis():
    assert set(SWEEPS) == set(SWEEP_JOBS)
    assert set(ANALYSIS_SCHEMAS) < set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_checks(name):
    cfg = _compose_hydra([f"experiment={name}"])
    assert cfg.hydra.runtime.choices.experiment == name
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.to_container(job, resolve=True)  # every interpolation resolves
    check_values(job)
    check_targets(job)
    assert (job.trainer is None) == (name in ANALYSIS_SCHEMAS)


def test_no_arguments_is_the_spot_w_distance_experiment():
    default, named = compose_config([]), compose_config(["experiment=spot_w_distance"])
    assert OmegaConf.to_yaml(default, resolve=True) == OmegaConf.to_yaml(named, resolve=True)
    assert default.trainer._target_ == "train.spot.build" and default.trainer.true_value == 5.0
    assert default.trainer.eta == 30.0 and default.loop.steps == 20000 and default.x64 is False


def test_trainer_schemas_are_not_trainer_options():
    with pytest.raises(MissingConfigException, match="spot_schema"):
        compose_config(["trainer=spot_schema"])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_files_do_not_restate_defaults(name):
    """A value written in an experiment file differs from its schema's default (loop, trainer, analysis)."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{name}.yaml"))
    trainer = _compose_hydra([f"experiment={name}"]).hydra.runtime.choices.get("trainer")
    schemas = {"loop": _defaults(schema.LoopConfig),
               "trainer": {**_defaults(TRAINER_SCHEMAS[trainer]),
                           **OmegaConf.to_container(OmegaConf.load(CONF / "trainer" / f"{trainer}.yaml"))}
               if trainer else {},
               "experiment": _defaults(ANALYSIS_SCHEMAS[name]) if name in ANALYSIS_SCHEMAS else {},
               "": _defaults(schema.Config)}
    for key, value in _leaves({k: v for k, v in raw.items() if k != "defaults"}):
        node, _, field = key.partition(".") if "." in key else ("", "", key)
        defaults = schemas.get(node)
        if defaults is not None and field in defaults:
            assert value != defaults[field], f"{name}.yaml restates the default {key}={value!r}"
    if name in ANALYSIS_SCHEMAS:  # an analysis is its schema: the file only picks it
        assert set(raw) == {"defaults"}, raw


@pytest.mark.parametrize("trainer", sorted(TRAINER_SCHEMAS))
def test_trainer_files_do_not_restate_schema_defaults(trainer):
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "trainer" / f"{trainer}.yaml"))
    defaults = _defaults(TRAINER_SCHEMAS[trainer])
    for key, value in raw.items():
        if key != "defaults":
            assert key in defaults and value != defaults[key], (trainer, key, value)


def test_a_loss_setting_unknown_to_the_chosen_loss_is_rejected():
    with pytest.raises(ConfigCompositionException, match="loss.epsilon"):
        compose_config(["experiment=generator_mixture", "loss.epsilon=0.1"])  # IPOT has beta, not epsilon
    assert compose_config(["experiment=generator_mixture", "loss=sinkhorn", "loss.epsilon=0.1"]).loss.epsilon == 0.1


def test_the_sinkhorn_divergence_loss_option_is_the_debiased_divergence():
    import hydra.utils
    import jax
    import numpy as np

    import ot_jax

    cfg = compose_config(["experiment=generator_mixture", "loss=sinkhorn_divergence", "loss.epsilon=0.5"])
    loss = hydra.utils.instantiate(cfg.loss)
    x, y = np.random.default_rng(0).normal(size=(2, 12, 2))
    expected = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), epsilon=0.5, max_iters=500).divergence
    assert abs(float(loss(jax.random.PRNGKey(0), x, y).value) - float(expected)) < 1e-12


# --- sweeps ------------------------------------------------------------------------------------

def _jobs(params) -> list[list[str]]:
    """The override lists of the jobs of ``hydra.sweeper.params`` (their product)."""
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [f"{o.get_key_element()}={o.get_value_element_as_str()}"] for o in parsed]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("name", sorted(SWEEP_JOBS))
def test_sweep_composes_to_its_experiment_and_job_count(name):
    cfg = _compose_hydra([f"+sweep={name}"])
    experiment, n_jobs, sweep_dir = SWEEP_JOBS[name]
    assert cfg.hydra.runtime.choices.experiment == experiment
    assert cfg.hydra.sweep.dir == f"multirun/{sweep_dir}"
    jobs = _jobs(cfg.hydra.sweeper.params)
    assert len(jobs) == n_jobs
    assert cfg.loop.progress is False
    for job in (jobs if n_jobs <= 3 else [jobs[0], jobs[-1]]):  # every job's overrides compose and check
        job_cfg = compose_config([f"+sweep={name}", *job])
        check_values(job_cfg)
        check_targets(job_cfg)


def test_fig3_2_sweeps_three_learning_rates_and_five_seeds():
    cfg = _compose_hydra(["+sweep=fig3_2"])
    jobs = _jobs(cfg.hydra.sweeper.params)
    assert {j[0].partition("=")[0] for j in jobs} == {"optimizer.learning_rate"}
    assert sorted({float(j[0].partition("=")[2]) for j in jobs}) == [1e-5, 1e-4, 1e-3]
    assert sorted({j[1] for j in jobs}) == [f"seed={s}" for s in range(5)]
    assert cfg.hydra.sweep.dir == "multirun/fig3_2"
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "local_parallel"
    long = _compose_hydra(["+sweep=fig2_5_sinkhorn_long"])
    assert _jobs(long.hydra.sweeper.params) == [["loss=sinkhorn", "loss.epsilon=0.1", "loop.steps=80000",
                                                 "loop.eval_every=2000"]]


def test_makefile_runs_every_sweep_by_name():
    makefile = (ROOT / "Makefile").read_text()
    for name in SWEEPS:
        assert f"+sweep={name}\n" in makefile, name
    assert "hydra.sweep.dir" not in makefile  # the sweeps' directories live in conf/sweep


@pytest.mark.slow  # the fast suite runs a real sweep in tests/train/test_runs.py
def test_a_sweep_runs_for_real(tmp_path):
    """``python -m train -m +sweep=grid25`` with tiny sizes: two jobs, IPOT and sliced (~30 s)."""
    cmd = [sys.executable, "-m", "train", "-m", "+sweep=grid25", *TINY_TRAIN, "trainer.eval_samples=64",
           "trainer.w2_samples=32", "trainer.snapshot_samples=32", "trainer.batch_size=16",
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 2
    losses = sorted(OmegaConf.load(r / ".hydra" / "config.yaml").loss._target_ for r in runs)
    assert losses == ["ot_jax.losses.minibatch.ipot_loss", "ot_jax.losses.minibatch.sliced_loss"]
    assert all(json.loads((r / "metrics.json").read_text())["steps"] == 2 for r in runs)


# --- help --------------------------------------------------------------------------------------

def test_help_lists_experiments_sweeps_groups_and_keys(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "--help"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    lines = text.splitlines()
    for name in (*EXPERIMENTS, *SWEEPS):  # one line each: the name, then its summary
        line = next((ln for ln in lines if ln.split()[:1] == [name]), None)
        assert line is not None and len(line.split()) > 3, f"{name} has no line with a summary in --help"
    for group in ("data", "model", "critic", "optimizer", "cost", "loss", "trainer"):
        options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert f"{group}:" in text and ", ".join(options) in text, group
    for key in ("seed=", "x64=", "resume=", "loop.steps=", "optimizer.learning_rate=", "trainer.", "data.",
                "loop.progress=", "+sweep=<name>", "outputs/<experiment>", "multirun/"):
        assert key in text, key
    assert "Chosen now: experiment=spot_w_distance" in text
    for confusing in ("null", "_schema", "solver", "schema:", "Powered by Hydra"):
        assert confusing not in text, confusing


# --- bad values --------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["loop.steps=-5"], "loop.steps must be an integer >= 1, got -5"),
    (["loop.steps=0"], "loop.steps must be an integer >= 1, got 0"),
    (["loop.log_every=0"], "loop.log_every must be an integer >= 1, got 0"),
    (["loop.eval_every=-1"], "loop.eval_every must be an integer >= 0, got -1"),
    (["loop.checkpoint_every=-10"], "loop.checkpoint_every must be an integer >= 0, got -10"),
    (["loop.eval_every=300"], "loop.eval_every must be 0 (never) or a multiple of loop.log_every=250, got 300"),
    (["loop.keep_checkpoints=0"], "loop.keep_checkpoints must be an integer >= 1, got 0"),
    (["seed=-1"], "seed must be an integer >= 0, got -1"),
    (["trainer.lr_decay=foo"], "trainer.lr_decay must be one of none, cosine, linear, got 'foo'"),
    (["trainer.coupling=ring"], "trainer.coupling must be one of pairs, chain, got 'ring'"),
    (["trainer.eta=0"], "trainer.eta must be a number > 0, got 0.0"),
    (["trainer.ema_decay=1.0"], "trainer.ema_decay must be a number in [0, 1), got 1.0"),
    (["trainer.batch_size=0"], "trainer.batch_size must be an integer >= 1, got 0"),
    (["experiment=generator_mixture", "trainer.latent=bar"], "trainer.latent must be one of uniform, normal, got 'bar'"),
    (["experiment=density_gaussian", "trainer.lam=-0.5"], "trainer.lam must be a number > 0, got -0.5"),
    (["experiment=wgan_mixture", "trainer.n_critic=0"], "trainer.n_critic must be an integer >= 1, got 0"),
])
def test_bad_value_fails_at_start_naming_the_key(overrides, message, tmp_path, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("the trainer was built before the values were checked")

    monkeypatch.setattr("train.runner.run_training", no_build)
    cfg = compose_config(overrides)
    with pytest.raises(ConfigValueError) as info:
        run_config(cfg, str(tmp_path / "run"))
    assert str(info.value) == message
    assert not (tmp_path / "run").exists()


def test_loop_values_are_not_checked_for_analyses():
    check_values(compose_config(["experiment=ipot_plans", "loop.steps=0"]))  # an analysis has no loop
    with pytest.raises(ConfigValueError, match="seed must be an integer >= 0, got -3"):
        check_values(compose_config(["experiment=ipot_plans", "seed=-3"]))


@pytest.mark.parametrize("overrides, key", [
    (["loop.steps=abc"], "loop.steps"),
    (["trainer.batch_size=many"], "trainer.batch_size"),
    (["x64=maybe"], "x64"),
])
def test_wrong_type_fails_at_composition_naming_the_key(overrides, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(overrides)
    assert key in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize("overrides, key", [
    (["loop.stesp=5"], "loop.stesp"),
    (["trainer.etaa=5"], "trainer.etaa"),
    (["experiment=generator_mixture", "loss.bta=1"], "loss.bta"),
])
def test_unknown_key_fails_at_composition_naming_it(overrides, key):
    with pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")):
        compose_config(overrides)


def test_entry_point_refuses_a_bad_value_by_name(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "loop.steps=-5", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "loop.steps must be an integer >= 1, got -5" in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
