"""DASPOT trainer (thesis §3.5): domain adaptation with SPOT.

A SPOT generator of image pairs ``(G_X(Z), G_Y(Z))`` (``model``, an
:class:`ot_jax.nn.ImageGenerator` over the source and target image shapes), one
spectral-normalised critic per domain (``critic``), and two classifiers
``D_X, D_Y`` (:class:`ot_jax.nn.Classifier`, ``embed_dim`` / ``classifier_hidden``)
are trained on :func:`ot_jax.losses.daspot.daspot_objective`: the critics ascend it,
the generator and both classifiers descend it (one optimiser, ``optimizer``).
One step = ``n_critic`` critic steps (each preceded by a power iteration of their
spectral normalisation), then one step of the generator and the classifiers. The
source batch brings its labels; the target batch is unlabelled.

Evaluation: ``target_accuracy``, the accuracy of ``D_Y`` on the held-out target test
images (their labels are used here only), with the EMA parameters; ``agreement``,
the share of generated pairs on which ``D_X`` and ``D_Y`` agree; ``generated_classes``,
how many classes ``D_X`` finds in at least 2 % of the generated source images (10: the
generator covers every class; fewer: mode collapse, and ``D_Y`` never sees the others). The report adds the
**source-only** baseline: a classifier of ``D_Y``'s architecture trained by
cross-entropy on the source images brought to the target's format (bilinear resize,
grey repeated over the colour channels: the usual "source only" of digit adaptation),
for ``baseline_steps`` steps of the same optimiser, tested on the same target images.
Figures: generated pairs and the accuracy curves (``daspot.png``), and a PCA of the
embeddings of source and target test images, source-only network against DASPOT's
(``daspot_embeddings.png``).

``python -m train experiment=daspot_rotated`` (``daspot_colored``, ``daspot_textured``,
``daspot_usps``: the other shifts of :func:`train.data.digit_adaptation`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ot_jax.data.images import convert_format
from ot_jax.losses.daspot import daspot_objective
from ot_jax.nn import Classifier
from ot_jax.solvers.sliced import sliced_wasserstein
from train.common import AdversarialState, ema_update, lr_decay_schedule, make_models, spot_critic_step
from train.data import Adaptation
from train.figures.daspot import daspot_figure, embedding_figure
from train.loop import Trainer
from train.report import format_table

__all__ = ["build", "DaspotModels", "SharedEmbeddingClassifier", "EMBEDDINGS", "train_source_only"]


EMBEDDINGS = ("separate", "shared")


class SharedEmbeddingClassifier(nnx.Module):
    """``D_Y`` that shares ``D_X``'s embedding network: ``decision(D_e,X(convert_format(y)))``, target images
    brought to the source format first (:func:`ot_jax.data.images.convert_format`); its own decision layer."""

    def __init__(self, source: Classifier, target_shape: Sequence[int], source_shape: Sequence[int], *,
                 rngs: nnx.Rngs):
        self.embedding = source.embedding  # the same module: one set of parameters
        self.target_shape, self.source_shape = tuple(target_shape), tuple(source_shape)
        self.decision = nnx.Linear(source.embed_dim, source.n_classes, param_dtype=source.decision.kernel.dtype,
                                   rngs=rngs)

    def embed(self, y: jax.Array) -> jax.Array:
        """``y: [..., H_Y W_Y C_Y] -> [..., embed_dim]``."""
        lead = y.shape[:-1]
        flat = convert_format(y.reshape(-1, y.shape[-1]), self.target_shape, self.source_shape)
        return self.embedding(flat).reshape(*lead, -1)

    def __call__(self, y: jax.Array) -> jax.Array:
        """``y: [..., H_Y W_Y C_Y] -> [..., n_classes]`` logits."""
        return self.decision(self.embed(y))


class DaspotModels(nnx.Module):
    """What the generator's optimiser moves: the generator and the two classifiers ``(D_X, D_Y)``."""

    def __init__(self, generator: nnx.Module, classifiers: Sequence[Classifier]):
        self.generator = generator
        self.classifiers = nnx.List(list(classifiers))


def _classifiers(data: Adaptation, key, embed_dim: int, hidden: Sequence[int], embedding: str):
    kx, ky = jax.random.split(key)
    d_x, d_y = data.dims
    source = Classifier(d_x, data.n_classes, embed_dim=embed_dim, hidden=hidden, rngs=nnx.Rngs(kx))
    if embedding == "shared":
        return source, SharedEmbeddingClassifier(source, data.point_shapes[1], data.point_shapes[0], rngs=nnx.Rngs(ky))
    return source, Classifier(d_y, data.n_classes, embed_dim=embed_dim, hidden=hidden, rngs=nnx.Rngs(ky))


def _accuracy(classifier, x, y) -> float:
    return float(jnp.mean(jnp.argmax(classifier(jnp.asarray(x)), axis=-1) == jnp.asarray(y)))


def train_source_only(data: Adaptation, optimizer: optax.GradientTransformation, *, key: jax.Array, steps: int,
                      batch_size: int, embed_dim: int, hidden: Sequence[int]) -> Classifier:
    """The source-only baseline: a :class:`Classifier` on the target's format trained by cross-entropy on
    the source images (:func:`ot_jax.data.images.convert_format`) for ``steps`` minibatch steps of ``optimizer``."""
    model = Classifier(data.dims[1], data.n_classes, embed_dim=embed_dim, hidden=hidden, rngs=nnx.Rngs(key))
    graph, params = nnx.split(model, nnx.Param)
    x = convert_format(jnp.asarray(data.x_source), *data.point_shapes)
    v = jnp.asarray(data.y_source)

    def loss(p, idx):
        logits = nnx.merge(graph, p)(x[idx])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, v[idx]))

    def step(carry, k):
        p, opt = carry
        grads = jax.grad(loss)(p, jax.random.randint(k, (batch_size,), 0, x.shape[0]))
        updates, opt = optimizer.update(grads, opt, p)
        return (optax.apply_updates(p, updates), opt), None

    (params, _), _ = jax.jit(lambda p, o, ks: jax.lax.scan(step, (p, o), ks))(
        params, optimizer.init(params), jax.random.split(jax.random.fold_in(key, 1), steps))
    return nnx.merge(graph, params)


def build(*, data: Adaptation, model: Callable, critic: Callable, optimizer: optax.GradientTransformation,
          seed: int, output_dir: str, eta: float, lam_s: float, lam_da: float, n_critic: int, batch_size: int,
          embed_dim: int = 32, classifier_hidden: Sequence[int] = (128,), critic_lr_scale: float = 1.0,
          ema_decay: float = 0.0, lr_decay: str = "none", decay_steps: int = 1, final_lr_fraction: float = 0.01,
          eval_samples: int = 512, baseline_steps: int = 2000, embedding: str = "separate",
          pseudo_label_moves_generator: bool = True) -> Trainer:
    """The DASPOT trainer.

    Args:
      data: the two domains (:class:`train.data.Adaptation`).
      model: partial :class:`ot_jax.nn.ImageGenerator` (called with ``image_shapes``).
      critic: partial critic constructor (:class:`ot_jax.nn.ConvCritic`).
      optimizer: optax transformation of the generator and the classifiers (the critics: the
        same followed by ``critic_lr_scale``; the source-only baseline: the same).
      seed: the run seed.
      output_dir: where the figures go.
      eta: SPOT's penalty weight η of the marginal terms.
      lam_s: weight λ_s of the source cross-entropy.
      lam_da: weight λ_da of the pseudo-label cross-entropy (eq. 3.14).
      n_critic: critic ascent steps per generator step.
      batch_size: source images, target images and latent draws per step.
      embed_dim: dimension of the classifiers' embeddings (the space of the ground cost).
      classifier_hidden: hidden widths of the embedding networks.
      critic_lr_scale, ema_decay, lr_decay, decay_steps, final_lr_fraction: as in :func:`train.spot.build`
        (the EMA covers the generator and the classifiers: what is evaluated).
      eval_samples: generated pairs of each evaluation (agreement, marginal sliced W1).
      baseline_steps: steps of the source-only baseline in the report (0: no baseline).
      embedding: ``"separate"`` (the thesis: ``D_e,X`` and ``D_e,Y`` are two networks) or ``"shared"``
        (one embedding network; target images enter it in the source format,
        :class:`SharedEmbeddingClassifier`; the decision layers stay two).
      pseudo_label_moves_generator: whether the pseudo-label risk is differentiated w.r.t. the
        generated images (the thesis: yes; :func:`ot_jax.losses.daspot.daspot_objective`).

    Returns:
      a :class:`train.loop.Trainer` with state :class:`train.common.AdversarialState`
      (its ``generator`` fields hold the generator and the classifiers).
    """
    if not isinstance(data, Adaptation):
        raise ValueError(f"DASPOT needs train.data.Adaptation data (source with labels, target without), "
                         f"got {type(data).__name__}")
    if n_critic < 1 or batch_size < 1 or eval_samples < 1 or baseline_steps < 0:
        raise ValueError(f"need n_critic, batch_size, eval_samples >= 1 and baseline_steps >= 0, got {n_critic}, "
                         f"{batch_size}, {eval_samples}, {baseline_steps}")
    if not eta > 0:
        raise ValueError(f"trainer.eta must be > 0, got {eta}")
    if not (lam_s >= 0 and lam_da >= 0):
        raise ValueError(f"trainer.lam_s and trainer.lam_da must be >= 0, got {lam_s}, {lam_da}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"trainer.ema_decay must be in [0, 1), got {ema_decay}")
    if embedding not in EMBEDDINGS:
        raise ValueError(f"trainer.embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    hidden = tuple(int(h) for h in classifier_hidden)
    generator_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps, final_lr_fraction))
    critic_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps * n_critic, final_lr_fraction),
                            optax.scale(critic_lr_scale))
    xs, vs = jnp.asarray(data.x_source), jnp.asarray(data.y_source)
    xt, x_test, y_test = jnp.asarray(data.x_target), jnp.asarray(data.x_test), jnp.asarray(data.y_test)

    def make(key):
        kg, kd = jax.random.split(key)
        generator, critics = make_models(data, model, critic, kg)
        return DaspotModels(generator, _classifiers(data, kd, embed_dim, hidden, embedding)), critics

    abstract = nnx.eval_shape(lambda: make(jax.random.PRNGKey(0)))
    models_def, crit_def = nnx.graphdef(abstract[0]), nnx.graphdef(abstract[1])

    def init(key) -> AdversarialState:
        models, critics = make(key)
        _, m_params, m_rest = nnx.split(models, nnx.Param, ...)
        _, c_params, c_rest = nnx.split(critics, nnx.Param, ...)
        return AdversarialState(m_params, m_rest, c_params, c_rest, generator_tx.init(m_params),
                                critic_tx.init(c_params), m_params)

    def batch(key):
        ks, kt = jax.random.split(key)
        idx = jax.random.randint(ks, (batch_size,), 0, xs.shape[0])
        return xs[idx], vs[idx], xt[jax.random.randint(kt, (batch_size,), 0, xt.shape[0])]

    def objective(m_params, m_rest, c_params, c_rest, b, key):
        models = nnx.merge(models_def, m_params, m_rest)
        critics = nnx.merge(crit_def, c_params, c_rest)
        return daspot_objective(models.generator, list(critics.members), list(models.classifiers), b, key,
                                eta=eta, lam_s=lam_s, lam_da=lam_da,
                                pseudo_label_moves_generator=pseudo_label_moves_generator)

    def critic_update(state: AdversarialState, key):
        return spot_critic_step(state, key, objective=objective, critics_def=crit_def, tx=critic_tx, batch=batch)

    def step(state: AdversarialState, key):
        kc, kb, kz = jax.random.split(key, 3)
        state, gaps = jax.lax.scan(critic_update, state, jax.random.split(kc, n_critic))
        (value, terms), grads = jax.value_and_grad(objective, has_aux=True)(
            state.generator, state.generator_rest, state.critics, state.critics_rest, batch(kb), kz)
        updates, opt = generator_tx.update(grads, state.generator_opt, state.generator)
        params = optax.apply_updates(state.generator, updates)
        state = state._replace(generator=params, generator_opt=opt,
                               generator_ema=ema_update(state.generator_ema, params, ema_decay))
        metrics = {"objective": value, "transport": terms.transport, "source_risk": terms.source_risk,
                   "pseudo_risk": terms.pseudo_risk, "agreement": terms.agreement,
                   "gap_source": terms.gaps[0], "gap_target": terms.gaps[1],
                   "critic_gap_source": gaps[-1, 0], "critic_gap_target": gaps[-1, 1]}
        return state, metrics

    def evaluated(state) -> DaspotModels:
        return nnx.merge(models_def, state.generator_ema, state.generator_rest)

    @jax.jit
    def _evaluate(state, key):
        models = evaluated(state)
        d_x, d_y = models.classifiers
        kz, kd = jax.random.split(key)
        gx, gy = models.generator(jax.random.normal(kz, (eval_samples, models.generator.latent_dim), dtype=xs.dtype))
        labels = jnp.argmax(d_x(gx), axis=-1)
        shares = jnp.mean(labels[:, None] == jnp.arange(data.n_classes), axis=0)
        return {"target_accuracy": jnp.mean(jnp.argmax(d_y(x_test), axis=-1) == y_test),
                "agreement_eval": jnp.mean(labels == jnp.argmax(d_y(gy), axis=-1)),
                "generated_classes": jnp.sum(shares >= 0.02),
                "marginal_sw_source": sliced_wasserstein(kd, gx, xs[:eval_samples], n_projections=64),
                "marginal_sw_target": sliced_wasserstein(kd, gy, xt[:eval_samples], n_projections=64)}

    def evaluate(state, key):
        return dict(_evaluate(state, key))

    @functools.cache
    def baseline() -> Classifier | None:
        if not baseline_steps:
            return None
        return train_source_only(data, optimizer, key=jax.random.fold_in(jax.random.PRNGKey(seed), 0xBA5E),
                                 steps=baseline_steps, batch_size=batch_size, embed_dim=embed_dim, hidden=hidden)

    def report(state, history):
        last = next((r for r in reversed(history) if "target_accuracy" in r), None)
        if last is None:
            return {}
        source_only = baseline()
        summary = {"step": last["step"], "target_accuracy": last["target_accuracy"],
                   "source_only_accuracy": None if source_only is None else _accuracy(source_only, x_test, y_test),
                   "agreement": last["agreement_eval"], "generated_classes": last["generated_classes"]}
        rows = [["DASPOT", last["step"], f"{100 * summary['target_accuracy']:.1f}"]]
        if source_only is not None:
            rows.append(["source only", baseline_steps, f"{100 * summary['source_only_accuracy']:.1f}"])
        print(format_table(["method", "steps", "target accuracy %"], rows,
                           title=f"{data.names[0]} -> {data.names[1]}: {x_test.shape[0]} held-out target images"))
        return summary

    def figures(state, history, out_dir):
        models = evaluated(state)
        z = jax.random.normal(jax.random.PRNGKey(seed + 1), (64, models.generator.latent_dim), dtype=xs.dtype)
        gx, gy = models.generator(z)
        d_x, d_y = models.classifiers
        labels = np.asarray(jnp.argmax(d_x(gx), axis=-1))
        paths = [daspot_figure(history, [np.asarray(gx), np.asarray(gy)], labels, data.point_shapes, out_dir,
                               names=data.names)]
        source_only = baseline()
        if source_only is not None:
            lifted = convert_format(xs, *data.point_shapes)
            before = (np.asarray(source_only.embed(lifted)), np.asarray(source_only.embed(x_test)))
            after = (np.asarray(d_x.embed(xs)), np.asarray(d_y.embed(x_test)))
            paths.append(embedding_figure(before, after, (np.asarray(vs), np.asarray(y_test)), out_dir,
                                          names=data.names))
        return paths

    return Trainer(init=init, step=step, evaluate=evaluate, figures=figures, report=report)
