"""SPOT training throughput: generator steps per second of the trainer's compiled chunk.

Run: ``python scripts/bench_train.py [--chunk 200] [--repeats 3] [--min-sample 0.5] [--quick] [--no-write]``.

Configs (composed with Hydra's compose API from ``conf/``, built with
:func:`train.runner.build_trainer`, as ``python -m train`` does):

* ``spot_w_distance``: 2-D Gaussians, MLP generators and critics with 8 hidden units
  (thesis §3.6.1), then the same with 32 and 256 hidden units
  (``model.hidden=[h,h] critic.hidden=[h]``);
* ``spot_digit_pairs``: conv generator and conv critics on 8x8 digit images.

What is timed is what :func:`train.loop.fit` runs between two log records: one
jit-compiled ``lax.scan`` of ``--chunk`` training steps (``train.loop._make_chunk``),
compiled ahead of time (``lower().compile()``, reported separately) and run once as
a warm-up. A timed sample then calls the compiled chunk back to back as often as
needed to last about ``--min-sample`` seconds (cheap configs would otherwise be
timed over a few milliseconds), the state advancing from call to call as in
training (``block_until_ready`` at the end); the table gives the median of
``--repeats`` samples, the configs sampled in turn (round robin) so that load from
other processes hits them alike. One generator step = ``n_critic`` critic steps
(each with one power iteration of the spectral normalisation and a fresh batch) +
one generator step + the EMA update.
Float32 (``jax_enable_x64`` off, the experiments' setting). The block ``train`` of
``docs/benchmarks.md`` is rewritten (``scripts/_timing.write_section``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(1, REPO)
from _timing import command_line, cpu_model, git_revision, median_time, write_section  # noqa: E402

CONF = os.path.join(REPO, "conf")

# (label, experiment, overrides)
CONFIGS = [
    ("spot_w_distance, 8 hidden", "spot_w_distance", []),
    ("spot_w_distance, 32 hidden", "spot_w_distance", ["model.hidden=[32,32]", "critic.hidden=[32]"]),
    ("spot_w_distance, 256 hidden", "spot_w_distance", ["model.hidden=[256,256]", "critic.hidden=[256]"]),
    ("spot_digit_pairs", "spot_digit_pairs", []),
]
QUICK = ("spot_w_distance, 8 hidden", "spot_digit_pairs")


def compose(experiment: str, overrides: list[str]):
    """The config ``python -m train experiment=<experiment> <overrides>`` would run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    importlib.import_module("train.config")  # registers the schemas

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return hydra_compose(config_name="config", overrides=[f"experiment={experiment}", *overrides])
    finally:
        GlobalHydra.instance().clear()


def _count(tree) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _describe(cfg) -> str:
    model, critic = cfg.model, cfg.critic
    target = lambda node: str(node._target_).rsplit(".", 1)[-1]  # noqa: E731
    if "channels" in model:
        gen = f"{target(model)} (latent {model.latent_dim}, dense {model.hidden}, channels {list(model.channels)})"
    else:
        gen = f"{target(model)} (latent {model.latent_dim}, hidden {list(model.hidden)})"
    crit = (f"{target(critic)} (channels {list(critic.channels)})" if "channels" in critic
            else f"{target(critic)} (hidden {list(critic.hidden)})")
    return f"{gen}; {crit}"


class Case:
    """One config: its trainer, compiled chunk and a ``run()`` that trains one chunk further."""

    def __init__(self, label: str, experiment: str, overrides: list[str], chunk: int, out_dir: str):
        from train.loop import _make_chunk
        from train.runner import build_trainer

        self.label, self.experiment, self.overrides, self.chunk = label, experiment, overrides, chunk
        cfg = compose(experiment, overrides)
        if bool(cfg.x64):
            raise RuntimeError(f"{experiment} runs with x64 on; this benchmark times the float32 setting")
        self.cfg = cfg
        self.description = _describe(cfg)
        trainer = build_trainer(cfg, out_dir)
        init_key, run_key, _ = jax.random.split(jax.random.PRNGKey(int(cfg.seed)), 3)  # as train.loop.fit
        self.state = trainer.init(init_key)
        self.generator_params = _count(self.state.generator)
        self.critic_params = _count(self.state.critics)
        start = time.perf_counter()
        self.compiled = _make_chunk(trainer.step, run_key).lower(self.state, jnp.asarray(0, jnp.int32), chunk).compile()
        self.compile_seconds = time.perf_counter() - start
        self.step = 0
        self.calls = 1  # compiled chunks per timed sample (set by warm_up)
        self.times: list[float] = []  # seconds per generator step, one per sample

    def _chunk(self):
        state, means, finite = self.compiled(self.state, jnp.asarray(self.step, jnp.int32))
        self.state, self.step = state, self.step + self.chunk
        return state, means, finite

    def warm_up(self, min_sample_seconds: float) -> None:
        """Run one chunk (first execution, untimed; NaN check) and size the samples: one chunk per
        sample if the warm-up already lasted ``min_sample_seconds``, else from a second, timed chunk."""
        start = time.perf_counter()
        _, _, finite = jax.block_until_ready(self._chunk())
        seconds = time.perf_counter() - start
        if not bool(finite):
            raise RuntimeError(f"{self.label}: non-finite values while benchmarking")
        if seconds < min_sample_seconds:
            seconds = median_time(self._chunk, 1)
        self.calls = max(1, math.ceil(min_sample_seconds / max(seconds, 1e-9)))

    def sample(self) -> None:
        """Time ``calls`` chunks back to back; record seconds per generator step."""
        def run():
            out = None
            for _ in range(self.calls):
                out = self._chunk()
            return out

        self.times.append(median_time(run, 1) / (self.calls * self.chunk))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=200, help="generator steps per compiled chunk (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed samples per config (median; default 3)")
    parser.add_argument("--min-sample", type=float, default=0.5,
                        help="a timed sample runs the compiled chunk back to back until it lasts about this many "
                             "seconds (sized from the warm-up; default 0.5)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 configs, 20-step chunks, 3 repeats; prints only (implies --no-write)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.chunk, args.repeats, args.min_sample, args.no_write = 20, 3, 0.1, True
    if args.chunk < 1 or args.repeats < 1:
        parser.error("--chunk and --repeats must be >= 1")
    jax.config.update("jax_enable_x64", False)
    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.perf_counter()
    load_start = os.getloadavg()

    out_dir = tempfile.mkdtemp(prefix="bench_train_")
    try:
        cases = []
        for label, experiment, overrides in CONFIGS:
            if args.quick and label not in QUICK:
                continue
            case = Case(label, experiment, overrides, args.chunk, out_dir)
            case.warm_up(args.min_sample)
            cases.append(case)
            print(f"{label}: compiled in {case.compile_seconds:.2f} s; {case.calls} chunk(s) per sample", flush=True)
        for _ in range(args.repeats):  # round robin
            for case in cases:
                case.sample()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    import flax
    import optax

    import ot_jax

    rows = []
    for case in cases:
        seconds = float(np.median(case.times))  # per generator step
        t = case.cfg.trainer
        rows.append(dict(label=case.label, description=case.description, batch=int(t.batch_size),
                         n_critic=int(t.n_critic), generator_params=case.generator_params,
                         critic_params=case.critic_params, compile_seconds=case.compile_seconds,
                         steps_per_second=1.0 / seconds, ms_per_step=1e3 * seconds, calls=case.calls,
                         spread=(1e3 * min(case.times), 1e3 * max(case.times))))
        print(rows[-1], flush=True)

    lines = [
        "## SPOT training throughput (`scripts/bench_train.py`)",
        "",
        f"- command: `{command_line()}`",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- git: {git_revision()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores (`os.cpu_count()`); load average at start: "
        f"{', '.join(f'{x:.2f}' for x in load_start)}; at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- JAX backend: {jax.default_backend()}; versions: python {platform.python_version()}, jax {jax.__version__}, "
        f"flax {flax.__version__}, optax {optax.__version__}, ot_jax {ot_jax.__version__}, numpy {np.__version__}",
        f"- timed: the compiled chunk of `train.loop.fit` ({args.chunk} training steps in one jit-compiled "
        f"`lax.scan`, chunk means of the metrics and the finiteness check included). Each config: one warm-up "
        f"call (untimed), then the median of {args.repeats} timed samples (`block_until_ready`), a sample being "
        f"the compiled chunk called back to back as often as needed to last about {args.min_sample:g} s "
        "(column `chunks per sample`); the configs are timed in turn (round robin) so that load from "
        "other processes hits them alike; float32 (`jax_enable_x64` off, as the experiments run). Compile time "
        "(ahead of time, `lower().compile()`) is excluded and reported; evaluation, logging and checkpoints "
        "are not timed.",
        "- one **generator step** = `n_critic` critic ascent steps (each: one power iteration of the spectral "
        "normalisation, a fresh batch of each marginal, a gradient of the SPOT objective) + one generator "
        "descent step + the EMA of the generator's parameters; `loop.steps` counts generator steps.",
        "- no rival column: neither POT nor OTT-JAX has a SPOT (or any generator/critic minimax) training step.",
        "",
        "| config | generator; critics | batch | n_critic | params (generator / critics) | compile (s) "
        "| chunks per sample | generator steps / s | ms / generator step | min - max ms / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['description']} | {r['batch']} | {r['n_critic']} "
                     f"| {r['generator_params']:,} / {r['critic_params']:,} | {r['compile_seconds']:.1f} "
                     f"| {r['calls']} | {_rate(r['steps_per_second'])} | {r['ms_per_step']:.3g} "
                     f"| {r['spread'][0]:.3g} - {r['spread'][1]:.3g} |")
    lines += ["", f"Wall time of this run: {time.perf_counter() - wall:.0f} s."]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        write_section("train", markdown)
        print("-> docs/benchmarks.md (block `train`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
