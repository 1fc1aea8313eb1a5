"""Structured config schema of ``python -m train`` (registered in Hydra's ConfigStore).

Two kinds of runs share the entry point (see :mod:`train.runner`):

* **Training runs** (SPOT, density recovery, WGAN, minibatch-OT generators, soft kNN, soft beam search,
  ROBOT): the
  groups ``data``, ``model``, ``critic``, ``optimizer``, ``cost``, ``loss`` and
  ``trainer`` are picked by an experiment file (``# @package _global_``), which
  overrides only the values that make that experiment; ``loop`` holds the settings
  of the generic loop (:func:`train.loop.fit`). Trainer options start from the
  schemas ``schema/trainer/<name>`` stored here (their defaults are written here
  only, not in ``conf/trainer/*.yaml``); every other ``_target_`` node is checked
  against its target's signature before anything runs (:mod:`train.validate`).
* **Analyses** (the discrete-OT figures): the node ``experiment`` holds a
  ``_target_`` function called with its fields plus ``output_dir``; each starts from
  the schema ``schema/<name>``, whose defaults are the thesis' settings (the
  experiment file only picks it).

The composed config is in struct mode: a misspelt override such as
``experiment.n_ponts=5`` or ``trainer.etaa=1`` fails at composition with a message
naming the key; values out of range (``loop.steps=-5``, ``trainer.lr_decay=foo``)
fail before anything is built (:func:`train.validate.check_values`).

``python -m train --help`` lists the experiments and sweeps with the summary line of
their files (:func:`conf_listing`, the ``train_help`` resolver of
``conf/hydra/help/train.yaml``).

Regularisation parameters named ``relative_*`` are in units of the problem's cost
scale (``max C`` or ``mean C``, as stated per field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, OmegaConf

__all__ = ["Config", "LoopConfig", "SpotTrainerConfig", "DaspotTrainerConfig", "DensityTrainerConfig",
           "GeneratorTrainerConfig", "WganTrainerConfig", "MinibatchOtTrainerConfig", "SoftKnnTrainerConfig", "SoftBeamTrainerConfig", "RobotTrainerConfig", "IpotConvergenceConfig", "IpotScalingConfig", "IpotPlansConfig", "PointCloudMatchingConfig", "DigitBarycentersConfig",
           "ColorTransferConfig", "WganCriticConfig", "register", "conf_listing", "CONF_DIR"]

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class IpotConvergenceConfig:
    """Thesis fig. 2.2: |W_t - W_LP| vs iteration t on two 1-D histograms."""

    _target_: str = "train.experiments.ipot_convergence.run"
    seed: int = II("seed")
    n_points: int = 100  # grid size of the 1-D histograms (cost |x - y|^2 on [0, 1], max C = 1)
    n_iters: int = 2000  # T, length of every curve
    relative_betas: list[float] = field(default_factory=lambda: [0.1, 0.03, 0.01])  # x max C, one panel each
    inner_iters: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20])  # L
    relative_epsilons: list[float] = field(default_factory=lambda: [1e-2, 1e-3])  # Sinkhorn eps x max C
    check_points: list[int] = field(default_factory=lambda: [10, 100, 1000])  # ot_jax.ipot markers (+ T)


@dataclass
class IpotScalingConfig:
    """Thesis fig. 2.3: time to reach a relative error vs n (d-dim uniform clouds, float32)."""

    _target_: str = "train.experiments.ipot_scaling.run"
    seed: int = II("seed")
    sizes: list[int] = field(default_factory=lambda: [128, 256, 512, 1024])  # n = m
    dim: int = 16
    repeats: int = 3  # data sets per n (median time)
    target: float = 1e-4  # relative error |W - W_exact| / W_exact to reach
    relative_betas: list[float] = field(default_factory=lambda: [0.005, 0.01])  # IPOT beta x max C (0.01 = default)
    tols: list[float] = field(default_factory=lambda: [1e-4, 3e-5, 1e-5])  # stopping tolerances scanned
    relative_epsilons: list[float] = field(default_factory=lambda: [1e-2, 3e-3, 1e-3])  # Sinkhorn eps x mean C
    sinkhorn_tols: list[float] = field(default_factory=lambda: [1e-4, 1e-5, 1e-6])  # marginal-error tolerances
    max_iters: int = 5000
    use_pot: bool = True  # time POT's ot.emd2 (and use it as the float64 reference) when installed
    timing_calls: int = 3  # each run is timed this many times, best kept (calls > 0.5 s: once)


@dataclass
class IpotPlansConfig:
    """Thesis fig. 2.4: Sinkhorn vs IPOT plans over the exact LP support (1-D histograms)."""

    _target_: str = "train.experiments.ipot_plans.run"
    seed: int = II("seed")
    n_points: int = 100
    relative_epsilons: list[float] = field(default_factory=lambda: [1e-1, 1e-2, 1e-3])  # Sinkhorn eps x max C
    sinkhorn_tol: float = 1e-8  # marginal error: "converged" plans
    sinkhorn_max_iters: int = 50000
    relative_beta: float = 0.1  # IPOT beta x max C
    ipot_iters: list[int] = field(default_factory=lambda: [10, 50, 500])
    support_threshold: float = 1e-10  # LP plan entries above this x max entry form its support


@dataclass
class PointCloudMatchingConfig:
    """Slides' point-cloud use case: auction (EMD) matching against Chamfer, and fits by Adam on each."""

    _target_: str = "train.experiments.point_cloud_matching.run"
    seed: int = II("seed")
    n_points: int = 300  # points per cloud
    cluster_fraction: float = 0.5  # share of the target's points in its dense cluster (the rest: a ring)
    n_steps: int = 300  # Adam steps of each fit
    learning_rate: float = 0.02
    record_every: int = 10  # distances and snapshots every k steps
    method: str = "auction"  # assignment solver of the EMD loss: auction | hungarian


@dataclass
class DigitBarycentersConfig:
    """Thesis fig. 2.8: Sinkhorn, convolutional and IPOT barycenters of scaled/shifted digits (50x50 grid)."""

    _target_: str = "train.experiments.digit_barycenters.run"
    seed: int = II("seed")
    digits: list[int] = field(default_factory=lambda: list(range(10)))
    n_images: int = 50  # inputs per barycenter (thesis: 50)
    grid_size: int = 50  # the grid is grid_size x grid_size on [0, 1]^2 (max C = 2)
    n_iters: int = 50  # iterations of every method (thesis: 50)
    methods: list[str] = field(default_factory=lambda: ["sinkhorn", "convolutional", "ipot"])
    # eps (Sinkhorn, convolutional) or beta (IPOT) x max C
    relative_regularisation: dict[str, float] = field(
        default_factory=lambda: {"sinkhorn": 5e-4, "convolutional": 5e-3, "ipot": 5e-3})
    show_inputs: int = 8  # inputs summed into the top row (0: no input row)
    evaluate_digits: list[int] = field(default_factory=lambda: [3])  # exact objective by IPOT (~35 s per panel)


@dataclass
class ColorTransferConfig:
    """Thesis fig. 2.7: colour transfer by per-channel LP, Sinkhorn (two eps) and IPOT maps, plus joint RGB."""

    _target_: str = "train.experiments.color_transfer.run"
    seed: int = II("seed")
    source: str = "china"  # scikit-learn sample image recoloured
    target: str = "flower"  # scikit-learn sample image giving the colours
    stride: int = 1  # keep every k-th pixel row/column (1: full 427 x 640)
    relative_epsilons: list[float] = field(default_factory=lambda: [1e-2, 1e-3])  # Sinkhorn eps x max C (= 1)
    relative_beta: float = 0.1  # IPOT beta x max C (ot_jax.tools.color.CHANNEL_BETA)
    ipot_max_iters: int = 10000
    n_palette: int = 1024  # joint RGB panel: colours sampled per image
    zoom: list[float] = field(default_factory=lambda: [0.05, 0.3, 0.3, 0.55])  # inset box: y0, y1, x0, x1 (fractions)
    map_channel: int = 0  # channel whose level maps are drawn (0 = R)


@dataclass
class WganCriticConfig:
    """Slides (Arjovsky et al. fig. 2): GAN discriminator vs WGAN critics trained alone on two 1-D Gaussians."""

    _target_: str = "train.experiments.wgan_critic.run"
    seed: int = II("seed")
    real_mean: float = -0.5  # real = N(real_mean, std^2), fake = N(fake_mean, std^2): W1 = |fake - real| = 1
    fake_mean: float = 0.5  # data in [-1, 1]; wider data bends the clipped critic (see the module docstring)
    std: float = 0.125
    hidden: list[int] = field(default_factory=lambda: [64, 64])  # every network: an MLP with ReLU
    steps: int = 3000  # training steps of each network (alone: the generator is fixed)
    batch_size: int = 256
    learning_rate: float = 1e-3  # Adam (0.5, 0.9): discriminator and WGAN-GP critic
    clip_learning_rate: float = 5e-3  # RMSProp of the clipped critic (the paper's 5e-5 needs ~100x the steps)
    clip: float = 0.01  # weight clipping c (the paper's)
    penalty: float = 10.0  # WGAN-GP lambda (Gulrajani et al.)
    eval_samples: int = 200000  # fresh samples per law of the W1 estimates and the gradients at the fake data


@dataclass
class SpotTrainerConfig:
    """SPOT (thesis Algorithm 3): ``train.spot.build``'s method settings."""

    _target_: str = "train.spot.build"
    eta: float = 1e4  # penalty weight of the marginal terms (thesis: 1e4)
    n_critic: int = 5  # critic ascent steps per generator step
    batch_size: int = 100  # thesis: 100
    coupling: str = "pairs"  # cost of K >= 3 marginals: pairs | chain
    eval_samples: int = 10000  # latent draws per evaluation of E c(G(Z))
    true_value: Optional[float] = None  # exact OT cost, when known (adds rel_error)
    critic_lr_scale: float = 1.0  # critics' learning rate = this x the generator's
    # Evaluate an EMA of the generator's parameters (0: the parameters); every SPOT experiment
    # evaluates the Polyak average (train/spot.py).
    ema_decay: float = 0.999
    lr_decay: str = "none"  # none | cosine | linear: learning rate x 1 -> final_lr_fraction
    decay_steps: int = II("loop.steps")  # generator steps of the decay
    final_lr_fraction: float = 0.01
    devices: int = 1  # data parallel: batches split over the first N devices (batch_size must divide by N)


@dataclass
class DaspotTrainerConfig:
    """DASPOT (thesis §3.5): ``train.daspot.build``'s method settings."""

    _target_: str = "train.daspot.build"
    eta: float = 100.0  # SPOT's penalty weight of the marginal terms
    lam_s: float = 1.0  # weight of the source cross-entropy
    lam_da: float = 1.0  # weight of the pseudo-label cross-entropy (eq. 3.14)
    n_critic: int = 5
    batch_size: int = 64
    embed_dim: int = 32  # the classifiers' embeddings: the space of the ground cost
    classifier_hidden: list = field(default_factory=lambda: [128])
    critic_lr_scale: float = 1.0
    ema_decay: float = 0.99  # the generator and the classifiers are evaluated at their Polyak average
    lr_decay: str = "none"
    decay_steps: int = II("loop.steps")
    final_lr_fraction: float = 0.01
    eval_samples: int = 512  # generated pairs per evaluation
    baseline_steps: int = 2000  # source-only classifier of the report (0: none)
    pseudo_label_moves_generator: bool = True  # thesis: G also descends the pseudo-label risk
    embedding: str = "separate"  # separate (thesis: D_e,X and D_e,Y) | shared (one network, target in source format)


@dataclass
class DensityTrainerConfig(SpotTrainerConfig):
    """Density recovery (thesis §3.4): ``train.density.build``, SPOT's settings plus these."""

    _target_: str = "train.density.build"
    lam: float = 0.5  # entropy weight lambda of L_c + lambda E log p (= epsilon of the reference plan)
    eta: float = 50.0  # penalty weight of the marginal terms
    batch_size: int = 500  # the thesis draws 500 samples of each law per iteration
    # Cosine decay of both learning rates (1e-3 -> 5e-5); the settings tried are in
    # docs/reproduction.md (fig. 3.4).
    lr_decay: str = "cosine"
    final_lr_fraction: float = 0.05
    reference: Any = None  # partial train.density_reference builder, called with lam=
    eval_flow: Any = None  # ODE settings of the evaluations (None: train.density.EVAL_FLOW)
    eval_samples: int = 20000  # generated pairs per evaluation (moments, marginal W1)


@dataclass
class GeneratorTrainerConfig:
    """Settings shared by the one-law generator trainers (:mod:`train.generative`)."""

    batch_size: int = 64  # data and generated points per step (WGAN: m = 64)
    latent: str = "uniform"  # uniform on [0, 1]^k (thesis section 2.4.3) | normal
    ema_decay: float = 0.0  # evaluate an EMA of the generator's parameters (0: the parameters)
    lr_decay: str = "none"  # none | cosine | linear: learning rate x 1 -> final_lr_fraction
    decay_steps: int = II("loop.steps")
    final_lr_fraction: float = 0.01
    eval_samples: int = 2000  # generated points per evaluation (std ratio, probe)
    w2_samples: int = 500  # generated and held-out points of the exact W2 (ot_jax.emd)
    snapshot_samples: int = 500  # generated points saved at every evaluation (the figures)
    probe: Any = None  # train.gen_metrics.MixtureProbe | DigitsProbe node, or null
    heldout: Any = None  # sampler of held-out data (_partial_ node); null: fresh draws of the data


@dataclass
class WganTrainerConfig(GeneratorTrainerConfig):
    """WGAN (slides' Algorithm 1) and WGAN-GP: ``train.wgan.build``."""

    _target_: str = "train.wgan.build"
    n_critic: int = 5
    clip: Optional[float] = 0.01  # weight clipping c (null: none)
    gradient_penalty: float = 0.0  # WGAN-GP weight (Gulrajani et al.: 10)
    critic_lr_scale: float = 1.0


@dataclass
class MinibatchOtTrainerConfig(GeneratorTrainerConfig):
    """A generator trained with a minibatch OT loss (``loss`` group): ``train.minibatch_ot.build``."""

    _target_: str = "train.minibatch_ot.build"
    lr_decay: str = "cosine"  # the thesis' generators: 1e-3 -> 1e-5 over the run
    devices: int = 1  # data parallel: batches split over the first N devices (batch_size must divide by N)


@dataclass
class SoftKnnTrainerConfig:
    """kNN classification through SOFT top-k (Xie et al. 2020): ``train.soft_knn.build``."""

    _target_: str = "train.soft_knn.build"
    method: str = "soft_knn"  # soft_knn (soft vote's cross-entropy) | cross_entropy (linear head, discarded)
    k: int = 9  # neighbours in training and in the evaluation's test_accuracy (the paper: k = 9)
    epsilon: float = 1e-2  # SOFT temperature, in units of the squared range of the min-max normalised scores
    grad_mode: str = "implicit"  # implicit | unroll (unroll_iters Sinkhorn steps) | straight_through
    normalize: str = "minmax"  # score normalisation of ot_jax.soft_topk
    unroll_iters: int = 100  # Sinkhorn iterations differentiated by grad_mode=unroll
    vote_floor: float = 1e-3  # delta of the loss -log(vote[y] + delta)
    batch_size: int = 100  # queries per step
    support_size: int = 200  # support points per step, disjoint from the queries
    eval_ks: list[int] = field(default_factory=lambda: [1, 3, 5, 9, 15])  # extra test_accuracy_k<k> metrics


@dataclass
class SoftBeamTrainerConfig:
    """Beam search trained through SOFT top-k on digit addition (Xie et al. 2020): ``train.soft_beam.build``."""

    _target_: str = "train.soft_beam.build"
    mode: str = "soft_beam"  # soft_beam | teacher_forcing (the baseline)
    n_digits: int = 4  # digits per operand; targets have n_digits + 1
    batch_size: int = 128  # fresh problems per step
    beam_size: int = 3  # K: beams of the soft training and of the evaluated beam search
    epsilon: float = 0.05  # SOFT top-k temperature (minmax-normalised scores)
    tf_weight: float = 1.0  # weight of the teacher-forcing cross-entropy in soft_beam mode
    beam_weight: float = 1.0  # weight of the soft beam loss
    warmup_steps: int = 0  # soft_beam mode: teacher forcing only before this step
    grad_mode: str = "implicit"  # SOFT top-k gradients: implicit | unroll
    test_size: int = 1000  # fixed test problems
    lr_decay: str = "none"
    decay_steps: int = II("loop.steps")
    final_lr_fraction: float = 0.01


@dataclass
class RobotTrainerConfig:
    """Regression without correspondence through OT hypergradients (Xie et al. 2021): ``train.robot.build``."""

    _target_: str = "train.robot.build"
    method: str = "robot"  # robot (descend on <C, S*>) | alt_min (exact assignment, then a gradient step)
    grad_mode: str = "implicit"  # ROBOT's gradient: implicit (hypergradient) | unroll | stop_gradient (plan fixed)
    epsilon: float = 1e-2  # entropic regularisation of the correspondence (x mean cost if relative_epsilon)
    relative_epsilon: bool = True
    mass: Optional[float] = None  # inexact correspondence: share of the mass matched, in (0, 1] (None: a bijection)
    tol: float = 1e-4  # Sinkhorn's stopping rule (marginal error)
    max_iters: int = 2000  # Sinkhorn's cap per step
    block_size: int = 0  # 0: correspondence lost over the whole set; else within consecutive blocks of this size
    blocks_per_step: int = 1  # blocks solved per step (block_size > 0)
    init: str = "least_squares"  # least_squares (affine models start at OLS on the rows as given) | random
    pretrain_steps: int = 0  # first steps fit the rows as given (squared error): nonlinear models' counterpart
    baselines: bool = True  # least squares, oracle, AltMin, stochastic EM in the report (linear)


@dataclass
class LoopConfig:
    """Settings of the generic training loop (:func:`train.loop.fit`)."""

    steps: int = 1000  # generator steps
    log_every: int = 100  # steps per compiled chunk and per metrics.jsonl record
    eval_every: int = 1000  # multiple of log_every; 0: only at the end
    checkpoint_every: int = 1000  # multiple of log_every; 0: no checkpoints
    keep_checkpoints: int = 2
    progress: bool = True  # stdout: tqdm bar on a terminal, else plain lines (train.log gets lines either way)
    progress_every_s: float = 30.0  # seconds between progress lines (also at the first chunk and the end)
    tensorboard: bool = False  # also write TensorBoard events (needs tensorboardX)


@dataclass
class Config:
    """Root config; the file chosen by ``experiment=<name>`` (``conf/experiment``) fills the rest.

    The node ``experiment`` holds an analysis' settings and is null for training runs:
    the experiment's *name* is ``hydra:runtime.choices.experiment``.
    """

    experiment: Any = None  # analyses: the node called by the runner (training runs: null)
    data: Any = None  # training runs: the groups instantiated by train.runner
    model: Any = None
    critic: Any = None
    optimizer: Any = None
    cost: Any = None
    loss: Any = None  # minibatch OT loss of trainer=minibatch_ot (ot_jax.losses.minibatch)
    trainer: Any = None
    loop: LoopConfig = field(default_factory=LoopConfig)
    seed: int = 0
    x64: bool = True  # jax_enable_x64, applied before any computation
    resume: bool = True  # continue from the run directory's latest checkpoint


_SCHEMAS = {
    "ipot_convergence_schema": IpotConvergenceConfig,
    "ipot_scaling_schema": IpotScalingConfig,
    "ipot_plans_schema": IpotPlansConfig,
    "point_cloud_matching_schema": PointCloudMatchingConfig,
    "digit_barycenters_schema": DigitBarycentersConfig,
    "color_transfer_schema": ColorTransferConfig,
    "wgan_critic_schema": WganCriticConfig,
}


_TRAINER_SCHEMAS = {  # schema/trainer/<name>: the base of conf/trainer/*.yaml
    "spot": SpotTrainerConfig,
    "daspot": DaspotTrainerConfig,
    "density": DensityTrainerConfig,
    "wgan": WganTrainerConfig,
    "minibatch_ot": MinibatchOtTrainerConfig,
    "soft_knn": SoftKnnTrainerConfig,
    "soft_beam": SoftBeamTrainerConfig,
    "robot": RobotTrainerConfig,
}


def _name_or(value: str, default: str) -> str:
    return value if value else default


def _summary(path: Path) -> str:
    """The first comment line of a config file that is not a ``@package`` header."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("#").strip()
        if text and not text.startswith("@package"):
            return text
    return ""


def conf_listing(what: str, conf_dir: Path | str = CONF_DIR) -> str:
    """The lines of ``python -m train --help`` generated from the ``conf`` directory.

    Args:
      what: ``"experiment"`` or ``"sweep"`` (one line per file: name and the file's summary
        comment), or ``"groups"`` (one line per other group: its options; ``hydra`` excluded).
      conf_dir: the config directory (``conf/`` of the repository).

    Returns:
      the lines, indented by two spaces, joined by newlines; ``$`` doubled (the help
      template is a :class:`string.Template`).
    """
    conf_dir = Path(conf_dir)
    if what in ("experiment", "sweep"):
        files = sorted((conf_dir / what).glob("*.yaml"))
        width = max((len(p.stem) for p in files), default=0)
        lines = [f"  {p.stem:<{width}}  {_summary(p)}".rstrip() for p in files]
    elif what == "groups":
        groups = sorted(d for d in conf_dir.iterdir()
                        if d.is_dir() and d.name not in ("experiment", "sweep", "hydra") and any(d.glob("*.yaml")))
        width = max((len(d.name) for d in groups), default=0)
        lines = [f"  {d.name + ':':<{width + 1}} {', '.join(sorted(p.stem for p in d.glob('*.yaml')))}"
                 for d in groups]
    else:
        raise ValueError(f"conf_listing: what must be 'experiment', 'sweep' or 'groups', got {what!r}")
    return "\n".join(lines).replace("$", "$$")


def register() -> None:
    """Store the root schema (``base_config``), the analysis schemas (``schema/<name>``) and
    the trainer schemas (``schema/trainer/<name>``), and register the ``name_or`` resolver
    (run-directory names) and the ``train_help`` resolver (:func:`conf_listing`) (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for name, node in _SCHEMAS.items():
        cs.store(group="schema", name=name.removesuffix("_schema"), node=node)
    for name, node in _TRAINER_SCHEMAS.items():
        cs.store(group="schema/trainer", name=name, node=node)
    OmegaConf.register_new_resolver("name_or", _name_or, replace=True)
    OmegaConf.register_new_resolver("train_help", conf_listing, replace=True)


register()
