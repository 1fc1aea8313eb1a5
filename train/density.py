"""Density-recovery trainer (thesis §3.4): entropy-regularised SPOT with a neural-ODE generator.

The generator is a :class:`ot_jax.nn.FlowGenerator` on ``z = (x, y)``; the generator
descends ``L_c + λ E log p_γ(G(Z))`` (:func:`ot_jax.losses.spot.entropic_spot_objective`),
the critics are SPOT's. Training is :func:`train.spot.build` with ``lam`` set; this
module adds what makes the run a density-recovery experiment for two 1-D marginals:

* a **reference plan** ``reference(lam=λ)`` (:mod:`train.density_reference`: the
  closed form for Gaussians, a fine-grid Sinkhorn plan otherwise), checked against
  the data's first two moments at build time;
* **evaluations**: the recovered log-density on the reference grid (integrated
  backwards from every node), ``KL(reference ‖ recovered)``, the mean absolute
  log-density error, the cross-covariance against the reference's, the transport
  cost ``E|x − y|²`` and the W1 distance of each generated marginal to its data;
* **figures**: ``density.png`` (heat maps and marginals) and ``density_grid.npz``
  (the grids, for :mod:`scripts.density_figures`, which assembles thesis fig. 3.4).

``python -m train experiment=density_gaussian trainer.lam=0.5``
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ot_jax.nn.cnf import FlowSettings
from ot_jax.solvers.sliced import wasserstein_1d
from train import spot
from train.common import make_models
from train.data import Marginals
from train.figures.density import density_figure
from train.density_reference import PlanReference, density_metrics
from train.report import format_table
from train.loop import Trainer

__all__ = ["build", "EVAL_FLOW"]

#: ODE settings used to evaluate the recovered density (adaptive and accurate,
#: whatever the training settings); keys of :class:`ot_jax.nn.cnf.FlowSettings`.
EVAL_FLOW = {"solver": "tsit5", "step_size": "adaptive", "rtol": 1e-5, "atol": 1e-5, "trace": "exact"}


def _check_reference(reference: PlanReference, data: Marginals, key) -> None:
    """Refuse a reference whose marginals disagree with the data's (a config mismatch)."""
    samples = [np.asarray(s(k, 20_000), np.float64)[:, 0]
               for s, k in zip(data.samplers, jax.random.split(key, 2))]
    ref = reference.moments()
    for name, x, m, v in (("x", samples[0], ref["mean_x"], ref["var_x"]), ("y", samples[1], ref["mean_y"], ref["var_y"])):
        se = np.sqrt(v / x.size)
        if abs(x.mean() - m) > 6 * se + 1e-3 or abs(x.var() / v - 1) > 0.05:
            raise ValueError(f"the reference plan's {name}-marginal (mean {m:.4g}, variance {v:.4g}) does not match "
                             f"the data (mean {x.mean():.4g}, variance {x.var():.4g}): check trainer.reference "
                             "against the data config")


def build(*, data: Marginals, model: Callable, critic: Callable, optimizer: optax.GradientTransformation,
          cost: Callable, seed: int, output_dir: str, lam: float, reference: Callable[..., PlanReference],
          eval_flow: dict | None = None, eval_samples: int = 20_000, **spot_options: Any) -> Trainer:
    """The density-recovery trainer.

    Args:
      data: two 1-D marginals.
      model: partial :class:`ot_jax.nn.FlowGenerator` constructor.
      critic, optimizer, cost, seed, output_dir: as in :func:`train.spot.build`.
      lam: entropy weight λ > 0 (the ε of the reference plan).
      reference: ``reference(lam=λ) -> PlanReference`` (:mod:`train.density_reference`).
      eval_flow: ODE settings of the evaluations (default :data:`EVAL_FLOW`).
      eval_samples: generated pairs per evaluation of the moments and marginal W1.
      spot_options: the remaining :func:`train.spot.build` options (``eta``, ``n_critic``,
        ``batch_size``, ``ema_decay``, learning-rate decay, ...).

    Returns:
      a :class:`train.loop.Trainer` (state :class:`train.common.AdversarialState`).
    """
    if len(data.samplers) != 2 or data.dims != (1, 1):
        raise ValueError(f"density recovery couples two 1-D marginals, the data has dimensions {data.dims}")
    if not lam > 0:
        raise ValueError(f"lam must be > 0 (the reference is an entropic plan), got {lam}")
    probe = [float(cost(jnp.array([0.0]), jnp.array([d]))) for d in (1.0, 2.0, -3.0)]
    if not np.allclose(probe, [1.0, 4.0, 9.0]):
        raise ValueError("the reference plans solve min E|x - y|^2 + lam KL: density recovery needs the squared "
                         f"Euclidean cost (cost=sq_euclidean), got a cost with c(0, 1), c(0, 2), c(0, -3) = {probe}")
    eval_settings = dict(EVAL_FLOW if eval_flow is None else eval_flow)
    FlowSettings(**eval_settings)  # validate now
    ref = reference(lam=lam)
    _check_reference(ref, data, jax.random.PRNGKey(seed + 7))
    ref_moments = ref.moments()
    trainer = spot.build(data=data, model=model, critic=critic, optimizer=optimizer, cost=cost, seed=seed,
                         output_dir=output_dir, lam=lam, eval_samples=eval_samples, **spot_options)
    abstract = nnx.eval_shape(lambda: make_models(data, model, critic, jax.random.PRNGKey(0)))
    gen_def = nnx.graphdef(abstract[0])
    grid = ref.points

    def evaluated_generator(state):
        generator = nnx.merge(gen_def, state.generator_ema, state.generator_rest)
        generator.settings = dataclasses.replace(generator.settings, **eval_settings)
        return generator

    @jax.jit
    def _log_density(state, points):
        out = evaluated_generator(state).log_density(points)
        return out.log_density, out.converged

    last = {}  # the latest evaluation's state and grid log-density: the figures reuse the final one

    def grid_log_density(state, chunk: int = 8192) -> tuple[np.ndarray, bool]:
        """The recovered log-density ``[nx, ny]`` on the reference grid (backward solves, fixed-size chunks)."""
        if last.get("state") is state:
            return last["log_p"], last["ok"]
        chunk = min(chunk, len(grid))
        padded = np.concatenate([grid, np.repeat(grid[-1:], -len(grid) % chunk, axis=0)])
        values, ok = [], True
        for start in range(0, len(padded), chunk):
            lp, good = _log_density(state, jnp.asarray(padded[start:start + chunk], dtype=jnp.result_type(float)))
            values.append(np.asarray(lp, np.float64))
            ok = ok and bool(good)
        log_p = np.concatenate(values)[:len(grid)].reshape(ref.log_density.shape)
        last.update(state=state, log_p=log_p, ok=ok)
        return log_p, ok

    @jax.jit
    def _samples(state, key):
        generator = evaluated_generator(state)
        z = jax.random.normal(key, (eval_samples, generator.latent_dim))
        return generator(z)

    def samples(state, key) -> tuple[np.ndarray, np.ndarray]:
        x, y = _samples(state, key)
        return np.asarray(x, np.float64)[:, 0], np.asarray(y, np.float64)[:, 0]

    def evaluate(state, key):
        kg, kd = jax.random.split(key)
        x, y = samples(state, kg)
        real = [np.asarray(s(k, eval_samples), np.float64)[:, 0]
                for s, k in zip(data.samplers, jax.random.split(kd, 2))]
        cov = np.cov(x, y)
        log_p, ok = grid_log_density(state)
        out = density_metrics(ref, log_p)
        out.update(cross_cov=float(cov[0, 1]), var_x=float(cov[0, 0]), var_y=float(cov[1, 1]),
                   cross_cov_rel_error=abs(float(cov[0, 1]) - ref_moments["cross_cov"]) / abs(ref_moments["cross_cov"]),
                   transport_eval=float(np.mean((x - y) ** 2)),
                   w1_x=float(wasserstein_1d(jnp.asarray(x), jnp.asarray(real[0]))),
                   w1_y=float(wasserstein_1d(jnp.asarray(y), jnp.asarray(real[1]))),
                   density_ok=float(ok))
        return out

    def report(state, history):
        last = next((r for r in reversed(history) if "kl" in r), None)
        if last is None:
            return {}
        keys = ("kl", "mean_abs_log_error", "cross_cov", "cross_cov_rel_error", "transport_eval", "w1_x", "w1_y",
                "recovered_mass")
        summary = {"step": last["step"], "lam": lam, **{k: last[k] for k in keys},
                   "reference": {"method": ref.method, **ref_moments}}
        print(format_table(
            ["λ", "steps", "KL(ref‖rec)", "mean |Δlog p|", "cross-cov", "ref cross-cov", "rel. err %",
             "E|x−y|²", "ref E|x−y|²", "W1(x)", "W1(y)"],
            [[lam, last["step"], last["kl"], last["mean_abs_log_error"], last["cross_cov"], ref_moments["cross_cov"],
              100 * last["cross_cov_rel_error"], last["transport_eval"], ref_moments["transport"], last["w1_x"],
              last["w1_y"]]],
            title=f"Density recovery against the reference plan ({ref.method})"))
        return summary

    def figures(state, history, out_dir):
        log_p, _ = grid_log_density(state)
        x, y = samples(state, jax.random.PRNGKey(seed + 1))
        path = os.path.join(out_dir, "density_grid.npz")
        np.savez(path, xs=ref.xs, ys=ref.ys, recovered=log_p, reference=ref.log_density, lam=lam,
                 method=ref.method, samples_x=x[:5000], samples_y=y[:5000])
        return [density_figure(ref, log_p, x, y, out_dir, lam=lam, metrics=density_metrics(ref, log_p)), path]

    return dataclasses.replace(trainer, evaluate=evaluate, report=report, figures=figures)
