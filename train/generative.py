"""What the trainers of a generator of *one* data law share (WGAN: :mod:`train.wgan`,
minibatch OT: :mod:`train.minibatch_ot`): the latent law, the generator as pure
functions of its parameters, and the evaluation, snapshots, figures and report.

* **Latent law** ``latent``: ``"uniform"`` on ``[0, 1]^k`` (the thesis' noise in §2.4.3)
  or ``"normal"``. The latent dimension is the model's ``latent_dim``.
* **Evaluation** (every ``eval_every`` steps, on the EMA parameters): ``std_ratio``
  (generated vs data spread, < 1 is shrinkage toward the mean), ``heldout_w2`` (exact
  W2 by :func:`ot_jax.emd` between ``w2_samples`` generated points and as many
  held-out data points) and the metrics of an optional ``probe``
  (:class:`train.gen_metrics.MixtureProbe`: modes covered, high-quality share;
  :class:`train.gen_metrics.DigitsProbe`: classifier label histogram, digits covered,
  nearest-neighbour precision/recall).
* **Held-out data** ``heldout``: a sampler of data never trained on (the digits' test
  split); by default fresh draws from the data sampler, which are held out whenever
  the data are drawn fresh for every batch (``n_samples: 0``).
* **Snapshots**: at every evaluation the generator's image of one fixed latent batch
  goes to ``snapshots/step_<step>.npy``; the end-of-run figure (and the sweep figures
  of :mod:`scripts.generator_figures`) draw the progress from them.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from train.data import Marginals
from train.report import format_table
from train.gen_metrics import heldout_w2, std_ratio
from train.figures.generator import generator_figures
from train.loop import Trainer
from train.common import make_generator

__all__ = ["LATENTS", "latent_sampler", "GeneratorRun", "read_snapshots"]

LATENTS = ("uniform", "normal")

Sampler = Callable[[jax.Array, int], jax.Array]


def latent_sampler(kind: str, dim: int) -> Sampler:
    """``f(key, n) -> [n, dim]``: uniform on ``[0, 1]^dim`` or standard normal."""
    if kind not in LATENTS:
        raise ValueError(f"latent must be one of {LATENTS}, got {kind!r}")
    if kind == "uniform":
        return lambda key, n: jax.random.uniform(key, (n, dim))
    return lambda key, n: jax.random.normal(key, (n, dim))


def read_snapshots(run_dir: str) -> list[tuple[int, np.ndarray]]:
    """``(step, samples [n, d])`` of every snapshot a run wrote, by step."""
    paths = glob.glob(os.path.join(run_dir, "snapshots", "step_*.npy"))
    return sorted((int(os.path.basename(p)[5:-4]), np.load(p)) for p in paths)


@dataclasses.dataclass(frozen=True)
class GeneratorRun:
    """A generator of ``data``'s single law and the host-side hooks of its run.

    Built by :meth:`create`; every method takes the generator's parameters and other
    variables (``params``, ``rest``: ``nnx.State`` pytrees) explicitly.
    """

    data: Marginals
    pools: Any  # the fixed data set (None: fresh draws), Marginals.pools
    graphdef: Any
    latent: str
    latent_dim: int
    seed: int
    probe: Callable[[np.ndarray], dict] | None
    heldout: Sampler
    eval_samples: int
    w2_samples: int
    snapshot_samples: int

    @classmethod
    def create(cls, *, data: Marginals, model: Callable, seed: int, latent: str = "uniform",
               probe: Callable | None = None, heldout: Sampler | None = None, eval_samples: int = 2000,
               w2_samples: int = 500, snapshot_samples: int = 500) -> GeneratorRun:
        if len(data.samplers) != 1:
            raise ValueError(f"a generator of one law needs data with one sampler, got {len(data.samplers)}")
        if latent not in LATENTS:
            raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
        for name, n in (("eval_samples", eval_samples), ("w2_samples", w2_samples),
                        ("snapshot_samples", snapshot_samples)):
            if n < 2:
                raise ValueError(f"{name} must be >= 2, got {n}")
        abstract = nnx.eval_shape(lambda: make_generator(data, model, jax.random.PRNGKey(0)))
        if len(abstract.out_features) != 1:
            raise ValueError(f"the model generates {len(abstract.out_features)} marginals; need one")
        pools = data.pools(jax.random.fold_in(jax.random.PRNGKey(seed), 0x5EED))
        return cls(data=data, pools=pools, graphdef=nnx.graphdef(abstract), latent=latent,
                   latent_dim=int(abstract.latent_dim), seed=seed, probe=probe,
                   heldout=heldout if heldout is not None else data.samplers[0], eval_samples=eval_samples,
                   w2_samples=w2_samples, snapshot_samples=snapshot_samples)

    # -- pure pieces, used inside the trainers' jitted steps --------------------------------
    def init(self, key: jax.Array, model: Callable) -> tuple[Any, Any]:
        """``(params, rest)`` of a freshly initialised generator."""
        _, params, rest = nnx.split(make_generator(self.data, model, key), nnx.Param, ...)
        return params, rest

    def sample_latent(self, key: jax.Array, n: int) -> jax.Array:
        """``[n, latent_dim]`` latent draws."""
        return latent_sampler(self.latent, self.latent_dim)(key, n)

    def apply(self, params, rest, z: jax.Array) -> jax.Array:
        """``g(z): [n, latent_dim] -> [n, d]``."""
        return nnx.merge(self.graphdef, params, rest)(z)[0]

    def sample(self, params, rest, key: jax.Array, n: int) -> jax.Array:
        """``[n, d]`` generated points."""
        return self.apply(params, rest, self.sample_latent(key, n))

    def data_batch(self, key: jax.Array, n: int) -> jax.Array:
        """``[n, d]`` training data (rows of the fixed data set, or fresh draws)."""
        return self.data.batch(self.pools, key, n)[0]

    # -- host-side hooks ------------------------------------------------------------------
    @functools.cached_property
    def _sample_jit(self):
        return jax.jit(self.sample, static_argnums=3)

    def evaluate(self, params, rest, key: jax.Array) -> dict:
        """``std_ratio``, ``heldout_w2`` and the probe's metrics (see the module docstring)."""
        kz, kh, kw = jax.random.split(key, 3)
        generated = np.asarray(self._sample_jit(params, rest, kz, self.eval_samples), np.float64)
        real = np.asarray(self.heldout(kh, self.eval_samples), np.float64)
        out = {"std_ratio": std_ratio(generated, real)}
        n = self.w2_samples
        fresh = np.asarray(self._sample_jit(params, rest, kw, n), np.float64)
        out["heldout_w2"] = heldout_w2(fresh, real[:n])
        if self.probe is not None:
            out.update(self.probe(generated))
        return out

    def snapshot(self, params, rest, step: int, output_dir: str) -> None:
        """Save the image of the fixed snapshot latents: ``snapshots/step_<step>.npy``."""
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), 0x5A47)
        points = np.asarray(self._sample_jit(params, rest, key, self.snapshot_samples), np.float32)
        os.makedirs(os.path.join(output_dir, "snapshots"), exist_ok=True)
        np.save(os.path.join(output_dir, "snapshots", f"step_{step:08d}.npy"), points)

    def figures(self, params, rest, history: list[dict], output_dir: str, title: str) -> list[str]:
        """``generator.png`` (snapshots over the data, or image grids; the metric curves) and,
        for images from a 2-D latent, ``latent_grid.png``."""
        real = np.asarray(self.heldout(jax.random.PRNGKey(self.seed + 3), 2000), np.float64)
        grid = None
        if self.latent_dim == 2 and len(self.data.point_shapes[0]) == 3:
            grid = np.asarray(self.apply(params, rest, latent_grid(self.latent, 16)), np.float32)
            np.save(os.path.join(output_dir, "latent_grid.npy"), grid)  # for scripts/generator_figures.py
        return generator_figures(read_snapshots(output_dir), real, history, self.data.point_shapes[0],
                                 output_dir, title=title, latent_images=grid)

    def trainer(self, init: Callable, step: Callable, method: str) -> Trainer:
        """The :class:`train.loop.Trainer` of ``init``/``step`` with this run's hooks, on the
        state's ``generator_ema`` and ``generator_rest`` (both trainers' states have them)."""
        return Trainer(
            init=init, step=step,
            evaluate=lambda state, key: self.evaluate(state.generator_ema, state.generator_rest, key),
            snapshot=lambda state, s, out: self.snapshot(state.generator_ema, state.generator_rest, s, out),
            figures=lambda state, history, out: self.figures(state.generator_ema, state.generator_rest, history,
                                                             out, title=method),
            report=lambda state, history: self.report(history, method))

    def report(self, history: list[dict], method: str) -> dict:
        """Print and return the last evaluation's metrics."""
        last = next((r for r in reversed(history) if "heldout_w2" in r), None)
        if last is None:
            return {}
        keys = ["heldout_w2", "std_ratio", "modes_covered", "high_quality", "digits_covered", "nn_precision",
                "nn_recall"]
        summary = {"step": last["step"], "train_seconds": last.get("train_seconds"),
                   **{k: last[k] for k in keys if k in last}}
        names = [k for k in keys if k in last]
        print(format_table(["method", "steps", "train s", *names],
                           [[method, last["step"], last.get("train_seconds"), *[last[k] for k in names]]],
                           title=f"{method}: final evaluation"))
        return summary


def latent_grid(latent: str, size: int) -> jax.Array:
    """``[size * size, 2]`` latent points on a regular grid (row-major, first coordinate slowest):
    ``[0, 1]^2`` for the uniform latent, normal quantiles 0.02 … 0.98 for the normal one."""
    u = (jnp.arange(size) + 0.5) / size
    if latent == "normal":
        u = jax.scipy.stats.norm.ppf(0.02 + 0.96 * u)
    a, b = jnp.meshgrid(u, u, indexing="ij")
    return jnp.stack([a.ravel(), b.ravel()], axis=1)
