"""SPOT trainer (thesis ch. 3, Algorithm 3): a generator of coupled samples and one
spectral-normalised critic per marginal, trained on the minimax objective
:func:`ot_jax.losses.spot.spot_objective`.

One training step = ``n_critic`` ascent steps of the critics (each preceded by one
power-iteration step of their spectral normalisation) then one descent step of the
generator. ``build`` returns a :class:`train.loop.Trainer`; the generic loop does
the rest (``python -m train experiment=spot_w_distance``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ot_jax.losses.spot import entropic_spot_objective, multi_marginal_cost, spot_objective
from ot_jax.solvers.sliced import sliced_wasserstein
from train.common import AdversarialState, data_mesh, lr_decay_schedule, make_models, shard_batch, spot_critic_step
from train.data import Marginals
from train.report import format_table
from train.loop import Trainer
from train.figures.spot import spot_figure

__all__ = ["build"]


def build(*, data: Marginals, model: Callable, critic: Callable, optimizer: optax.GradientTransformation,
          cost: Callable, seed: int, output_dir: str, eta: float, n_critic: int, batch_size: int,
          coupling: str = "pairs", eval_samples: int = 10_000, true_value: float | None = None,
          critic_lr_scale: float = 1.0, ema_decay: float = 0.0, lr_decay: str = "none",
          decay_steps: int = 1, final_lr_fraction: float = 0.01, lam: float | None = None,
          devices: int = 1) -> Trainer:
    """The SPOT trainer.

    Args:
      data: K >= 2 marginals (:class:`train.data.Marginals`).
      model: partial generator constructor (``ot_jax.nn.Generator`` / ``ImageGenerator``).
      critic: partial critic constructor (``ot_jax.nn.Critic`` / ``ConvCritic``).
      optimizer: optax transformation of the generator (thesis: Adam, β = (0.5, 0.999)).
      cost: ground cost of two points (``ot_jax.geometry`` costs, ``ot_jax.SobelCost``).
      seed: the run seed (the fixed data sets are drawn from it).
      output_dir: where the figures go.
      eta: penalty weight η of the marginal terms (thesis: 1e4).
      n_critic: critic ascent steps per generator step.
      batch_size: samples per marginal and latent draws per step (thesis: 100).
      coupling: cost of K >= 3 marginals (``ot_jax.losses.spot.multi_marginal_cost``).
      eval_samples: latent draws of each evaluation of the transport cost.
      true_value: the exact OT cost when known; adds ``rel_error`` to the evaluations.
      critic_lr_scale: the critics' optimiser is ``optimizer`` followed by this scale.
      ema_decay: evaluations and samples use an exponential moving average of the
        generator's parameters with this decay (Polyak averaging, as in Yazıcı et al.
        2019 for GANs); 0 uses the current parameters.
      lr_decay: ``"none"``, or ``"cosine"`` / ``"linear"``: both optimisers' steps are
        scaled from 1 down to ``final_lr_fraction`` over ``decay_steps`` generator steps
        (the critics' schedule counts their ``n_critic`` updates per generator step).
      lam: None trains plain SPOT; a number ``λ >= 0`` makes the generator descend the
        entropy-regularised objective ``L_c + λ E log p_γ``
        (:func:`ot_jax.losses.spot.entropic_spot_objective`; ``model`` must build a
        :class:`ot_jax.nn.FlowGenerator`). The critics' steps are the same either way.
      devices: data-parallel training over the first ``devices`` devices: the data
        batches are split over a 1-D mesh (GSPMD partitions what follows from them),
        parameters and optimiser state are replicated (:func:`train.common.data_mesh`);
        ``batch_size`` must divide by it. 1 (default): no mesh, the single-device program.

    Returns:
      a :class:`train.loop.Trainer` with state :class:`AdversarialState`.
    """
    if len(data.samplers) < 2:
        raise ValueError(f"SPOT couples >= 2 marginals, the data has {len(data.samplers)}")
    if n_critic < 1 or batch_size < 1 or eval_samples < 1:
        raise ValueError(f"need n_critic, batch_size, eval_samples >= 1, got {n_critic}, {batch_size}, {eval_samples}")
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    if lam is not None and not lam >= 0:
        raise ValueError(f"lam must be >= 0 (or None for plain SPOT), got {lam}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    mesh = data_mesh(devices, batch_size)
    generator_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps, final_lr_fraction))
    critic_tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps * n_critic, final_lr_fraction),
                            optax.scale(critic_lr_scale))
    data_key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED)
    pools = data.pools(data_key)
    k = len(data.samplers)

    abstract = nnx.eval_shape(lambda: make_models(data, model, critic, jax.random.PRNGKey(0)))
    gen_def = nnx.graphdef(abstract[0])
    if lam is not None and not hasattr(abstract[0], "flow"):
        raise ValueError(f"lam={lam} needs a generator with a log-density (ot_jax.nn.FlowGenerator), "
                         f"got {type(abstract[0]).__name__}")
    crit_def = nnx.graphdef(abstract[1])

    def init(key) -> AdversarialState:
        generator, critics = make_models(data, model, critic, key)
        _, g_params, g_rest = nnx.split(generator, nnx.Param, ...)
        _, c_params, c_rest = nnx.split(critics, nnx.Param, ...)
        return AdversarialState(g_params, g_rest, c_params, c_rest, generator_tx.init(g_params), critic_tx.init(c_params),
                         g_params)

    def objective(g_params, g_rest, c_params, c_rest, batch, key):
        generator = nnx.merge(gen_def, g_params, g_rest)
        critics = nnx.merge(crit_def, c_params, c_rest)
        return spot_objective(generator, list(critics.members), batch, key, cost_fn=cost, eta=eta,
                              coupling=coupling)

    def critic_update(state: AdversarialState, key) -> tuple[AdversarialState, Any]:
        return spot_critic_step(state, key, objective=objective, critics_def=crit_def, tx=critic_tx,
                                batch=lambda kb: shard_batch(data.batch(pools, kb, batch_size), mesh))

    def generator_objective(g_params, state: AdversarialState, batch, key):
        if lam is None:
            return objective(g_params, state.generator_rest, state.critics, state.critics_rest, batch, key)
        generator = nnx.merge(gen_def, g_params, state.generator_rest)
        critics = nnx.merge(crit_def, state.critics, state.critics_rest)
        return entropic_spot_objective(generator, list(critics.members), batch, key, cost_fn=cost, eta=eta,
                                       lam=lam, coupling=coupling)

    def step(state: AdversarialState, key):
        kc, kb, kz = jax.random.split(key, 3)
        state, gaps = jax.lax.scan(critic_update, state, jax.random.split(kc, n_critic))
        batch = shard_batch(data.batch(pools, kb, batch_size), mesh)
        (value, terms), grads = jax.value_and_grad(generator_objective, has_aux=True)(state.generator, state,
                                                                                       batch, kz)
        updates, opt = generator_tx.update(grads, state.generator_opt, state.generator)
        params = optax.apply_updates(state.generator, updates)
        ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, state.generator_ema, params)
        state = state._replace(generator=params, generator_opt=opt, generator_ema=ema)
        metrics = {"objective": value, "transport": terms.transport}
        if lam is not None:
            metrics.update(neg_entropy=terms.neg_entropy, flow_converged=terms.flow_converged.astype(value.dtype))
        metrics.update({f"gap_{i}": terms.gaps[i] for i in range(k)})
        metrics.update({f"critic_gap_{i}": gaps[-1, i] for i in range(k)})
        return state, metrics

    @jax.jit
    def _evaluate(state: AdversarialState, key):
        kz, kd = jax.random.split(key)
        generator = nnx.merge(gen_def, state.generator_ema, state.generator_rest)
        z = jax.random.normal(kz, (eval_samples, generator.latent_dim))
        generated = generator(z)
        out = {"w_estimate": jnp.mean(multi_marginal_cost(generated, cost, coupling=coupling))}
        n_fit = min(eval_samples, 2000)
        real = data.batch(pools, kd, n_fit)
        for i in range(k):
            out[f"marginal_sw_{i}"] = sliced_wasserstein(kd, generated[i][:n_fit], real[i], n_projections=64)
        return out

    def evaluate(state, key):
        out = dict(_evaluate(state, key))
        if true_value is not None:
            out["rel_error"] = jnp.abs(out["w_estimate"] - true_value) / abs(true_value)
        return out

    def samples(state, key, n):
        """``n`` generated K-tuples and ``n`` data points per marginal (host arrays)."""
        generator = nnx.merge(gen_def, state.generator_ema, state.generator_rest)
        z = jax.random.normal(key, (n, generator.latent_dim))
        real = data.batch(pools, jax.random.fold_in(key, 1), n)
        return [np.asarray(g) for g in generator(z)], [np.asarray(r) for r in real]

    def report(state, history):
        last = next((r for r in reversed(history) if "w_estimate" in r), None)
        if last is None:
            return {}
        summary = {"step": last["step"], "w_estimate": last["w_estimate"], "true_value": true_value,
                   "rel_error": last.get("rel_error"),
                   "marginal_sw": [last[f"marginal_sw_{i}"] for i in range(k)]}
        row = ["SPOT", last["step"], last["w_estimate"], true_value,
               None if true_value is None else 100 * last["rel_error"]]
        print(format_table(["method", "steps", "estimated W", "true W", "rel. error %"], [row],
                           title=f"SPOT transport cost ({eval_samples} latent samples)"))
        return summary

    def figures(state, history, out_dir):
        generated, real = samples(state, jax.random.PRNGKey(seed + 1), 400)
        return [spot_figure(history, generated, real, data.point_shapes, out_dir, true_value=true_value,
                            names=data.names)]

    return Trainer(init=init, step=step, evaluate=evaluate, figures=figures, report=report, mesh=mesh)
