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
  steps, go to ``metrics.jsonl`` (one JSON object per line) and, at the end of every
  session (finished, stopped or diverged), to ``metrics.csv`` (one row per record,
  ``step`` first, columns the union of the records' keys; rewritten from the whole
  history, so it matches ``metrics.jsonl`` across resumes). TensorBoard events are
  optional (``tensorboard=True``, needs ``tensorboardX``).
* **Progress.** With a terminal on stdout: a tqdm bar sized to its width with the
  latest metrics. Without one (``python -m train | cat``, ``nohup``, SLURM): plain
  lines ``[time] step s/total (p%), r steps/s, ETA t | metric value, ...`` on stdout,
  at the first chunk, then every ``progress_every_s`` seconds (default 30) and at the
  last step; evaluation metrics are carried into the following lines. ``steps/s`` and
  ``ETA`` count this session's wall-clock time (compilation excluded; evaluations and
  checkpoints included). The same lines are always appended to
  ``<output_dir>/train.log`` (the file Hydra's job logging also appends to; a run
  without Hydra gets it too), with a start line (``train N steps into DIR`` or
  ``continue from checkpoint step S to step N in DIR``) and an end line (``finished
  step N/N: r steps/s over t of training ...``, the rate of the compiled chunks only,
  or ``stopped at step s/N (error); last checkpoint: step c``); the start and end
  lines are shown on stdout beside a bar too. ``progress=False`` silences stdout
  only: ``train.log`` still gets every line.
* **Checkpoints and exact resume.** Orbax checkpoints every ``checkpoint_every``
  steps (and at the end) in ``<output_dir>/checkpoints``. Rerunning the same command
  in the same run directory restores the latest one and continues: the final
  parameters are bit-identical to an uninterrupted run.
* **Extension.** ``steps`` is the run's total: rerunning a finished run directory with
  a larger ``steps`` restores its final checkpoint and trains on to the new total; the
  history is continued, not duplicated. Without a schedule that depends on ``steps``
  the result is bit-identical to a run trained to the larger total in one go. A
  checkpoint past ``steps`` is refused (raise ``steps``, or ``resume=False``).
  (:mod:`train.runner`: ``loop.steps`` is neither in the run directory's name nor in
  the config stamp; trainer fields that follow ``loop.steps``, such as the
  learning-rate decay's ``trainer.decay_steps``, keep the value the run started with,
  so the steps already taken keep their schedule and a decayed learning rate stays at
  its final value past the old total. A rerun of a finished run directory with the
  same ``loop.steps`` trains nothing and leaves its files as they are.)
* **Config stamp.** With ``config_text``, the checkpoints are stamped with it
  (``checkpoints/config.yaml``); resuming under another config is refused with the
  differing keys, ``key: old (checkpoint) vs new (now)``.
* **Divergence.** A chunk with a non-finite metric or parameter stops the run with
  :class:`TrainingDiverged`, before anything non-finite is checkpointed; the last
  good checkpoint stays on disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import yaml
from tqdm.auto import tqdm

from train.report import to_jsonable, write_csv

__all__ = ["Trainer", "FitResult", "TrainingDiverged", "fit", "all_finite", "read_history", "read_config_stamp",
           "config_differences", "latest_checkpoint", "log_line"]

Metrics = dict[str, Any]

_ABSENT = object()


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
      mesh: optional 1-D ``jax.sharding.Mesh`` of data-parallel training
        (``trainer.devices > 1``, :func:`train.common.data_mesh`): the loop places the
        state, initial or restored, replicated on every device of it, and ``step``
        shards its batches over it (:func:`train.common.shard_batch`). None (default):
        the single-device program.
    """

    init: Callable[[jax.Array], Any]
    step: Callable[[Any, jax.Array], tuple[Any, Metrics]]
    evaluate: Callable[[Any, jax.Array], Metrics] | None = None
    figures: Callable[[Any, list[Metrics], str], list[str]] | None = None
    report: Callable[[Any, list[Metrics]], Metrics] | None = None
    snapshot: Callable[[Any, int, str], None] | None = None
    mesh: Any = None  # jax.sharding.Mesh | None


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`fit`.

    Attributes:
      state: the final pytree.
      history: the logged records (``metrics.jsonl``), resumed ones included.
      resumed_from: the checkpoint step the run continued from (0: a fresh start).
      compile_seconds: this session's compilation time.
      train_seconds: the run's training time (compiled chunks; resumes included).
      steps_per_second: the run's training rate, steps over ``train_seconds``
        (compile, evaluations and checkpoints excluded; nan when nothing was timed).
      summary: ``Trainer.report``'s metrics.
    """

    state: Any
    history: list[Metrics]
    resumed_from: int
    compile_seconds: float
    train_seconds: float
    steps_per_second: float
    summary: Metrics


class TrainingDiverged(RuntimeError):
    """A training step produced NaN or inf; the message names the steps, the metrics and the last checkpoint."""


def all_finite(tree) -> jax.Array:
    """True when every inexact leaf of ``tree`` is finite (a scalar bool array)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if isinstance(x, jax.Array | np.ndarray) and jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _replicate(tree, mesh):
    """``tree`` replicated over ``mesh`` (parameters and optimiser state of data-parallel runs); as is when None."""
    if mesh is None:
        return tree
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


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
    """Metrics as Python numbers (scalars) and nested lists (arrays)."""
    return {name: np.asarray(value).tolist() for name, value in metrics.items()}


def _json_line(record: Metrics) -> str:
    return json.dumps(to_jsonable(record))


def log_line(output_dir: str, text: str, *, echo: bool = True) -> str:
    """Append ``[time] text`` to ``<output_dir>/train.log`` (and print it when ``echo``); returns the line."""
    line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {text}"
    with open(os.path.join(output_dir, "train.log"), "a") as fh:
        fh.write(line + "\n")
    if echo:
        print(line, flush=True)
    return line


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _stdout_is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty is not None and isatty())


class _Progress:
    """A fit's progress: tqdm bar on a terminal, else plain lines on stdout; always lines in train.log."""

    def __init__(self, output_dir: str, *, total: int, initial: int, show: bool, every_s: float):
        self.output_dir, self.total, self.every_s = output_dir, total, every_s
        terminal = show and _stdout_is_terminal()
        self.show, self.terminal, self.echo = show, terminal, show and not terminal
        self.bar = tqdm(total=total, initial=initial, file=sys.stdout, disable=not terminal, dynamic_ncols=True,
                        unit="step", leave=False)
        self.latest: Metrics = {}
        self.last_line: float | None = None
        self.session_steps = 0

    def line(self, text: str, *, milestone: bool = False) -> None:
        """Append a line to train.log; on stdout too when lines are shown there (milestones: also beside a bar)."""
        line = log_line(self.output_dir, text, echo=self.echo)
        if milestone and self.terminal:
            tqdm.write(line, file=sys.stdout)  # above the bar, which is redrawn below

    def update(self, step: int, n: int, record: Metrics, seconds: float) -> None:
        """After a chunk of ``n`` steps ending at ``step``; ``seconds``: the session's wall time, compile excluded."""
        self.session_steps += n
        self.latest.update({k: v for k, v in record.items() if k not in ("step", "train_seconds")})
        scalars = {k: v for k, v in self.latest.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in scalars.items()}, refresh=False)
        self.bar.update(n)
        now = time.monotonic()
        if self.last_line is not None and now - self.last_line < self.every_s and step < self.total:
            return
        self.last_line = now
        rate = self.session_steps / seconds if seconds > 0 else float("nan")
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in scalars.items())
        self.line(f"step {step}/{self.total} ({100 * step / max(self.total, 1):.0f}%), {rate:.3g} steps/s, "
                  f"ETA {_duration(eta)}" + (f" | {shown}" if shown else ""))

    def close(self) -> None:
        self.bar.close()


def _check_schedule(steps, log_every, eval_every, checkpoint_every, progress_every_s):
    if steps < 0 or log_every < 1:
        raise ValueError(f"need steps >= 0 and log_every >= 1, got steps={steps}, log_every={log_every}")
    for name, every in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if every < 0 or every % log_every:
            raise ValueError(f"{name}={every} must be 0 (never) or a multiple of log_every={log_every}: "
                             "the loop stops only between compiled chunks of log_every steps")
    if not progress_every_s >= 0:
        raise ValueError(f"progress_every_s={progress_every_s} must be >= 0 (seconds between progress lines)")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _parse_config(text: str) -> dict[str, Any] | None:
    """``text`` (YAML) as ``{dotted key: value}``; None when it is not a mapping."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return _flatten(tree) if isinstance(tree, dict) else None


def read_config_stamp(output_dir: str) -> dict[str, Any] | None:
    """The config the checkpoints of ``output_dir`` were stamped with (``checkpoints/config.yaml``),
    as ``{dotted key: value}``; None when there is no stamp (or it is not a YAML mapping)."""
    path = os.path.join(output_dir, "checkpoints", "config.yaml")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return _parse_config(fh.read())


def config_differences(old_text: str, new_text: str) -> list[str]:
    """One ``key: old (checkpoint) vs new (now)`` line per key whose value differs between two YAML configs
    (``absent`` for a key only one of them has); empty when they agree."""
    old, new = _parse_config(old_text), _parse_config(new_text)
    if old is None or new is None:
        return [] if old_text == new_text else [f"config text: {old_text!r} (checkpoint) vs {new_text!r} (now)"]

    def show(value):
        return "absent" if value is _ABSENT else json.dumps(value, default=str)

    lines = []
    for key in list(dict.fromkeys([*old, *new])):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if a is _ABSENT or b is _ABSENT or a != b:
            lines.append(f"{key}: {show(a)} (checkpoint) vs {show(b)} (now)")
    return lines


def _check_stamp(directory: str, config_text: str) -> None:
    """Refuse the checkpoints of ``directory`` when their stamp differs from ``config_text`` (write it when absent)."""
    stamp = os.path.join(directory, "config.yaml")
    if os.path.exists(stamp):
        with open(stamp) as fh:
            differences = config_differences(fh.read(), config_text)
        if differences:
            raise RuntimeError(
                f"{directory} holds checkpoints of a different config:\n  " + "\n  ".join(differences)
                + "\nrerun with resume=false to start afresh there, or choose another hydra.run.dir")
    else:
        with open(stamp, "w") as fh:
            fh.write(config_text)


def _manager(directory: str, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), enable_async_checkpointing=False,
                                           create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def latest_checkpoint(output_dir: str, *, config_text: str | None = None) -> int | None:
    """The step of the latest checkpoint in ``<output_dir>/checkpoints`` (None: none), after checking
    its config stamp against ``config_text`` when given (RuntimeError naming the differing keys)."""
    directory = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(directory):
        return None
    if config_text is not None and os.path.exists(os.path.join(directory, "config.yaml")):
        _check_stamp(directory, config_text)
    manager = ocp.CheckpointManager(os.path.abspath(directory), options=ocp.CheckpointManagerOptions(create=False))
    try:
        return manager.latest_step()
    finally:
        manager.close()


def _open_checkpoints(directory: str, keep: int, config_text: str | None, resume: bool):
    """The checkpoint manager, after checking the run directory holds this config's checkpoints."""
    if os.path.isdir(directory) and not resume:
        shutil.rmtree(directory)
    os.makedirs(directory, exist_ok=True)
    if config_text is not None:
        _check_stamp(directory, config_text)
    return _manager(directory, keep)


def fit(trainer: Trainer, *, seed: int, output_dir: str, steps: int, log_every: int = 100, eval_every: int = 0,
        checkpoint_every: int = 0, keep_checkpoints: int = 2, progress: bool = True,
        progress_every_s: float = 30.0, tensorboard: bool = False, resume: bool = True,
        config_text: str | None = None) -> FitResult:
    """Train ``trainer`` up to step ``steps`` into ``output_dir`` (see the module docstring).

    Args:
      trainer: the method (:class:`Trainer`).
      seed: the run's seed: ``key(seed)`` is split into the init key and the step keys.
      output_dir: the run directory (``metrics.jsonl``, ``metrics.csv``, ``train.log``,
        ``checkpoints/``, figures).
      steps: total training steps (a resumed or extended run counts the restored ones).
      log_every: steps per compiled chunk and per metrics record.
      eval_every, checkpoint_every: multiples of ``log_every``; 0 turns them off
        (a final evaluation and, when checkpointing, a final checkpoint always happen).
      keep_checkpoints: how many checkpoints Orbax keeps.
      progress: show progress on stdout (a tqdm bar on a terminal, else plain lines);
        ``train.log`` gets the lines either way.
      progress_every_s: seconds between two progress lines (the first chunk and the last
        step always get one; 0: every chunk).
      tensorboard: also write the records with ``tensorboardX`` (optional extra).
      resume: continue from the latest checkpoint in ``output_dir`` (False: delete them).
      config_text: the resolved config (YAML); resuming under a different one is refused.

    Returns:
      :class:`FitResult`.

    Raises:
      TrainingDiverged: a step produced NaN/inf (the last good checkpoint is kept).
      RuntimeError: the checkpoints were stamped with another config (the message lists
        each differing key with both values).
      ValueError: a schedule setting is invalid, or the latest checkpoint is past ``steps``.
    """
    _check_schedule(steps, log_every, eval_every, checkpoint_every, progress_every_s)
    os.makedirs(output_dir, exist_ok=True)
    init_key, run_key, eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    state = _replicate(trainer.init(init_key), trainer.mesh)
    history_path = os.path.join(output_dir, "metrics.jsonl")
    checkpoint_dir = os.path.join(output_dir, "checkpoints")

    manager = None
    start = 0
    if checkpoint_every:
        manager = _open_checkpoints(checkpoint_dir, keep_checkpoints, config_text, resume)
        latest = manager.latest_step()
        if latest is not None and latest > steps:
            manager.close()
            raise ValueError(f"{checkpoint_dir} holds a checkpoint at step {latest}, past steps={steps}: "
                             f"raise steps to at least {latest}, or rerun with resume=false to start afresh")
        if latest is not None:
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
            # The abstract state carries this run's shardings: a checkpoint written with another
            # trainer.devices is restored onto this run's devices.
            state = _replicate(manager.restore(latest, args=ocp.args.StandardRestore(abstract)), trainer.mesh)
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

    timed = bool(history) and "train_seconds" in history[-1]
    elapsed = float(history[-1]["train_seconds"]) if timed else 0.0
    timed_from = 0 if timed or not start else start  # the steps that elapsed counts start there
    bar = _Progress(output_dir, total=steps, initial=start, show=progress, every_s=progress_every_s)
    if start == 0:
        bar.line(f"train {steps} steps into {output_dir}", milestone=True)
    elif start < steps:
        bar.line(f"continue from checkpoint step {start} to step {steps} in {output_dir}", milestone=True)
    else:
        bar.line(f"checkpoint at step {start} = steps: nothing to train in {output_dir}", milestone=True)
    loop_t0 = time.perf_counter()
    step = start
    try:
        while step < steps:
            n = min(log_every, steps - step)
            run = compiled_chunk(n)
            t0 = time.perf_counter()
            new_state, means, finite = run(state, jnp.asarray(step, jnp.int32))
            finite = bool(finite)
            dt = time.perf_counter() - t0
            means = _to_python(means)
            if not finite:
                bad = sorted(k for k, v in means.items() if not np.all(np.isfinite(v)))
                last = manager.latest_step() if manager is not None else None
                where = (f"the last good checkpoint (step {last}) is kept in {checkpoint_dir}"
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
            bar.update(step, n, record, time.perf_counter() - loop_t0 - compile_seconds)
    except BaseException as err:
        bar.close()
        last = manager.latest_step() if manager is not None else None
        bar.line(f"stopped at step {step}/{steps} ({type(err).__name__}: {err}); "
                 + (f"last checkpoint: step {last}" if last is not None else "no checkpoint"), milestone=True)
        raise
    finally:
        bar.close()
        if manager is not None:
            manager.wait_until_finished()
            manager.close()
        if writer is not None:
            writer.close()
        write_csv(history, os.path.join(output_dir, "metrics.csv"))

    if start == steps and trainer.evaluate is not None and not history:
        history.append({"step": step, **_to_python(trainer.evaluate(state, jax.random.fold_in(eval_key, step)))})
    rate = (step - timed_from) / elapsed if elapsed > 0 else float("nan")
    if step > start:
        bar.line(f"finished step {step}/{steps}: {rate:.3g} steps/s over {_duration(elapsed)} of training "
                 f"(compile {compile_seconds:.1f} s, session {_duration(time.perf_counter() - loop_t0)})",
                 milestone=True)
    summary = trainer.report(state, history) if trainer.report is not None else {}
    if trainer.figures is not None:
        trainer.figures(state, history, output_dir)
    return FitResult(state=state, history=history, resumed_from=start, compile_seconds=compile_seconds,
                     train_seconds=elapsed, steps_per_second=rate, summary=summary)
