"""One training loop for every trainer (SPOT, WGAN, minibatch OT, density recovery).

A method hands the loop a :class:`Trainer`: pure ``init(key) -> state`` and
``step(state, key) -> (state, metrics)`` functions over a pytree ``state``, plus
host-side hooks for evaluation, figures and the final report. The loop owns
everything else:

* **Compilation.** ``log_every`` steps run inside one jit-compiled ``lax.scan``
  (compiled once, ahead of time, and timed separately from training).
* **Randomness.** Step ``s`` uses ``fold_in(key(seed), s)``: a run is a function of
  its seed and config, whatever the chunking or interruptions.
* **Metrics.** The chunk mean of every step metric, the cumulative training time
  ``train_seconds`` (compiled chunks only: compilation, evaluations and checkpoints
  excluded; carried over a resume), plus evaluation metrics every ``eval_every``
  steps, go to ``metrics.jsonl`` (one JSON object per line; optional
  TensorBoard) and to a tqdm progress bar.
* **Checkpoints and exact resume.** Orbax checkpoints every ``checkpoint_every``
  steps (and at the end) in ``<output_dir>/checkpoints``. Rerunning the same command
  in the same run directory restores the latest one and continues: the final
  parameters are bit-identical to an uninterrupted run.
* **Divergence.** A chunk with a non-finite metric or parameter stops the run with
  :class:`TrainingDiverged`, before anything non-finite is checkpointed; the last
  good checkpoint stays on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

__all__ = ["Trainer", "FitResult", "TrainingDiverged", "fit", "all_finite", "read_history"]

Metrics = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """What a training method gives the loop.

    Attributes:
      init: ``key -> state``, the initial pytree (parameters, optimiser and other
        state); must be a pytree of arrays (Orbax saves it as is).
      step: ``(state, key) -> (state, metrics)``, one training step (for minimax
        methods: the critic steps and one generator step); pure and jit-able;
        ``metrics`` maps names to scalars.
      evaluate: optional host-side ``(state, key) -> metrics`` run every ``eval_every``
        steps and at the end.
      figures: optional ``(state, history, output_dir) -> list of paths`` at the end.
      report: optional ``(state, history) -> metrics`` at the end: the run's summary
        (printed by the method, stored in ``metrics.json``).
      snapshot: optional ``(state, step, output_dir) -> None``, called after each
        evaluation (every ``eval_every`` steps and at the end) to save what a figure of
        the run's progress needs (e.g. generated samples); files written there survive
        an interruption, so a resumed run's figures still show the early steps.
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, Metrics]]
    evaluate: Callable[[Any, jax.Array], Metrics] | None = None
    figures: Callable[[Any, list[Metrics], str], list[str]] | None = None
    report: Callable[[Any, list[Metrics]], Metrics] | None = None
    snapshot: Callable[[Any, int, str], None] | None = None


@dataclasses.dataclass(frozen=True)
class FitResult:
    """state: the final pytree; history: the logged records; resumed_from: the checkpoint
    step the run continued from (0: a fresh start); compile_seconds; steps_per_second
    (training chunks only, compile excluded); summary: ``Trainer.report``'s metrics."""

    state: Any
    history: list[Metrics]
    resumed_from: int
    compile_seconds: float
    steps_per_second: float
    summary: Metrics


class TrainingDiverged(RuntimeError):
    """A training step produced NaN or inf; the message names the steps, the metrics and the last checkpoint."""


def all_finite(tree) -> jax.Array:
    """True when every inexact leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if isinstance(x, jax.Array | np.ndarray) and jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _make_chunk(step_fn, run_key):
    """``chunk(state, start, n) -> (state, mean metrics, finite)``: steps start+1 … start+n in one scan."""

    def chunk(state, start, n):
        def body(carry, i):
            new_state, metrics = step_fn(carry, jax.random.fold_in(run_key, start + i))
            return new_state, metrics

        state, metrics = jax.lax.scan(body, state, jnp.arange(n))
        means = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
        return state, means, all_finite((state, metrics))

    return jax.jit(chunk, static_argnums=2)


def read_history(path: str, *, up_to: int | None = None) -> list[Metrics]:
    """The records of a ``metrics.jsonl`` file (those with ``step <= up_to`` when given)."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return [r for r in records if up_to is None or r["step"] <= up_to]


def _to_python(metrics) -> Metrics:
    out = {}
    for name, value in metrics.items():
        value = np.asarray(value)
        out[name] = value.item() if value.ndim == 0 else value.tolist()
    return out


def _json_line(record: Metrics) -> str:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps({k: clean(v) for k, v in record.items()})


def _check_schedule(steps, log_every, eval_every, checkpoint_every):
    if steps < 0 or log_every < 1:
        raise ValueError(f"need steps >= 0 and log_every >= 1, got steps={steps}, log_every={log_every}")
    for name, every in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if every < 0 or every % log_every:
            raise ValueError(f"{name}={every} must be 0 (never) or a multiple of log_every={log_every}: "
                             "the loop stops only between compiled chunks of log_every steps")


def _open_checkpoints(directory: str, keep: int, config_text: str | None, resume: bool):
    """The checkpoint manager, after checking the run directory holds this config's checkpoints."""
    stamp = os.path.join(directory, "config.yaml")
    if os.path.isdir(directory) and not resume:
        shutil.rmtree(directory)
    os.makedirs(directory, exist_ok=True)
    if config_text is not None:
        if os.path.exists(stamp):
            with open(stamp) as fh:
                if fh.read() != config_text:
                    raise RuntimeError(
                        f"{directory} holds checkpoints of a different config; rerun with resume=false to start "
                        "afresh there, or choose another hydra.run.dir")
        else:
            with open(stamp, "w") as fh:
                fh.write(config_text)
    options = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), enable_async_checkpointing=False,
                                           create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def fit(trainer: Trainer, *, seed: int, output_dir: str, steps: int, log_every: int = 100, eval_every: int = 0,
        checkpoint_every: int = 0, keep_checkpoints: int = 2, progress: bool = True, tensorboard: bool = False,
        resume: bool = True, config_text: str | None = None) -> FitResult:
    """Train ``trainer`` for ``steps`` steps into ``output_dir`` (see the module docstring).

    Args:
      trainer: the method (:class:`Trainer`).
      seed: the run's seed: ``key(seed)`` is split into the init key and the step keys.
      output_dir: the run directory (``metrics.jsonl``, ``checkpoints/``, figures).
      steps: total training steps (a resumed run counts the restored ones).
      log_every: steps per compiled chunk and per metrics record.
      eval_every, checkpoint_every: multiples of ``log_every``; 0 turns them off
        (a final evaluation and, when checkpointing, a final checkpoint always happen).
      keep_checkpoints: how many checkpoints Orbax keeps.
      progress: show a tqdm bar with the latest metrics.
      tensorboard: also write the records with ``tensorboardX`` (optional extra).
      resume: continue from the latest checkpoint in ``output_dir`` (False: delete them).
      config_text: the resolved config; resuming under a different one is refused.

    Returns:
      :class:`FitResult`.

    Raises:
      TrainingDiverged: a step produced NaN/inf (the last good checkpoint is kept).
    """
    _check_schedule(steps, log_every, eval_every, checkpoint_every)
    os.makedirs(output_dir, exist_ok=True)
    init_key, run_key, eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    state = trainer.init(init_key)
    history_path = os.path.join(output_dir, "metrics.jsonl")

    manager = None
    start = 0
    if checkpoint_every:
        manager = _open_checkpoints(os.path.join(output_dir, "checkpoints"), keep_checkpoints, config_text, resume)
        latest = manager.latest_step()
        if latest is not None:
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
            state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
            start = int(latest)
    history = read_history(history_path, up_to=start) if start else []
    with open(history_path, "w") as fh:
        fh.writelines(_json_line(r) + "\n" for r in history)

    writer = None
    if tensorboard:
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise ImportError("tensorboard=true needs tensorboardX: pip install 'ot-jax[tensorboard]'") from err
        writer = SummaryWriter(os.path.join(output_dir, "tensorboard"))

    chunk = _make_chunk(trainer.step, run_key)
    compiled, compile_seconds = {}, 0.0

    def compiled_chunk(n):
        nonlocal compile_seconds
        if n not in compiled:
            t0 = time.perf_counter()
            compiled[n] = chunk.lower(state, jnp.asarray(start, jnp.int32), n).compile()
            compile_seconds += time.perf_counter() - t0
        return compiled[n]

    def log(record):
        history.append(record)
        with open(history_path, "a") as fh:
            fh.write(_json_line(record) + "\n")
        if writer is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float):
                    writer.add_scalar(name, value, record["step"])

    elapsed = float(history[-1].get("train_seconds", 0.0)) if history else 0.0
    bar = tqdm(total=steps, initial=start, disable=None if progress else True,  # None: off without a terminal
               dynamic_ncols=True, leave=False)
    train_seconds, trained = 0.0, 0
    step = start
    try:
        while step < steps:
            n = min(log_every, steps - step)
            run = compiled_chunk(n)
            t0 = time.perf_counter()
            new_state, means, finite = run(state, jnp.asarray(step, jnp.int32))
            finite = bool(finite)
            dt = time.perf_counter() - t0
            train_seconds += dt
            trained += n
            means = _to_python(means)
            if not finite:
                bad = sorted(k for k, v in means.items() if not np.all(np.isfinite(v)))
                last = manager.latest_step() if manager is not None else None
                where = (f"the last good checkpoint (step {last}) is kept in {os.path.join(output_dir, 'checkpoints')}"
                         if last is not None else "no checkpoint was written")
                raise TrainingDiverged(
                    f"non-finite values during steps {step + 1}..{step + n}"
                    f" (metrics: {', '.join(bad) or 'none; the parameters'}); training stopped and {where}. "
                    "Check the data for NaN/inf and lower the learning rate.")
            state, step = new_state, step + n
            elapsed += dt
            record = {"step": step, **means, "train_seconds": elapsed}
            at_eval = eval_every and step % eval_every == 0 or step == steps
            if at_eval and trainer.evaluate is not None:
                record.update(_to_python(trainer.evaluate(state, jax.random.fold_in(eval_key, step))))
            if at_eval and trainer.snapshot is not None:
                trainer.snapshot(state, step, output_dir)
            log(record)
            if manager is not None and (step % checkpoint_every == 0 or step == steps):
                manager.save(step, args=ocp.args.StandardSave(state), force=True)
            bar.update(n)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step" and isinstance(v, float)},
                            refresh=False)
    finally:
        bar.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
        if writer is not None:
            writer.close()

    if start == steps and trainer.evaluate is not None and not history:
        history.append({"step": step, **_to_python(trainer.evaluate(state, jax.random.fold_in(eval_key, step)))})
    summary = trainer.report(state, history) if trainer.report is not None else {}
    if trainer.figures is not None:
        trainer.figures(state, history, output_dir)
    return FitResult(state=state, history=history, resumed_from=start, compile_seconds=compile_seconds,
                     steps_per_second=trained / train_seconds if train_seconds > 0 else float("nan"),
                     summary=summary)
