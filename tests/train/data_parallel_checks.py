"""Run by test_data_parallel.py in a subprocess with 8 emulated CPU devices
(``--xla_force_host_platform_device_count=8``, fixed when JAX starts). Prints one line
``DATA_PARALLEL_JSON {...}``.

Tiny SPOT and minibatch-OT runs are built from composed configs and trained by the loop,
as :func:`train.runner.run_training` does (``build_trainer`` then ``fit``; the evaluation,
report and figure hooks are dropped: they are not what is sharded, and they cost most of
the time), with ``trainer.devices=1`` and ``=8``:

* SPOT: 1 device to step 4, checkpointed at steps 2 and 4; its step-2 checkpoint resumed on
  8 devices to step 4 (restored replicated, trained sharded, saved); that step-4
  checkpoint restored onto 1 device.
* minibatch OT (default: ``loss=exact loss.method=lp``, ``ot_jax.emd`` on the host through
  a ``pure_callback``; argv names other entries of :data:`RUNS`): 1 and 8 devices from scratch.

Inside the 8-device programs, the batches' shardings as XLA compiled them are recorded
(``jax.debug.inspect_array_sharding`` on what ``train.common.shard_batch`` returns). The two
families train in two threads (the compilations, most of the time, overlap).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402

import train.common  # noqa: E402
import train.minibatch_ot  # noqa: E402
import train.spot  # noqa: E402
from tests.train.configs import compose_config  # noqa: E402
from train.loop import fit  # noqa: E402
from train.runner import build_trainer, stamp_text  # noqa: E402

RUNS = {
    "spot": ["experiment=spot_w_distance", "data.n_samples=256", "trainer.batch_size=16", "trainer.n_critic=1"],
    "minibatch_sinkhorn": ["experiment=generator_mixture", "loss=sinkhorn", "loss.max_iters=20",
                           "model.hidden=[16,16]", "trainer.batch_size=16"],
    "minibatch_exact": ["experiment=generator_mixture", "loss=exact", "model.hidden=[16,16]",
                        "trainer.batch_size=16"],  # the Hungarian method, in JAX
    "minibatch_lp": ["experiment=generator_mixture", "loss=exact", "loss.method=lp", "model.hidden=[16,16]",
                     "trainer.batch_size=16"],  # ot_jax.emd: the network simplex on the host (pure_callback)
}
SEEN: dict[str, list[str]] = {"spot": [], "minibatch_ot": []}  # compiled batch shardings, 8-device programs


def _recording(module):
    def shard_batch(tree, mesh):
        out = train.common.shard_batch(tree, mesh)
        if mesh is not None:
            for leaf in jax.tree.leaves(out):
                jax.debug.inspect_array_sharding(
                    leaf, callback=lambda s, shape=leaf.shape: SEEN[module].append(
                        f"{tuple(shape)}:{s.spec}:{s.num_devices}"))
        return out

    return shard_batch


def _composed(overrides, devices, run_dir):
    cfg = compose_config([*overrides, f"trainer.devices={devices}"])
    assert bool(cfg.x64) == jax.config.jax_enable_x64  # the flag is global: set once, before the threads
    return cfg, run_dir


def _built(composed):
    """The trainer of the composed config (hooks dropped) and its fit arguments."""
    cfg, run_dir = composed
    trainer = build_trainer(cfg, str(run_dir))
    trainer = dataclasses.replace(trainer, evaluate=None, report=None, figures=None, snapshot=None)
    return trainer, dict(seed=int(cfg.seed), output_dir=str(run_dir), log_every=2, progress=False,
                         config_text=stamp_text(cfg))


def _fit(composed, steps, checkpoint_every=0):
    trainer, kwargs = _built(composed)
    result = fit(trainer, steps=steps, checkpoint_every=checkpoint_every, **kwargs)
    leaf = jax.tree.leaves(result.state)[0]
    records = [{k: v for k, v in r.items() if k != "train_seconds"} for r in result.history]
    placed = {"spec": str(leaf.sharding.spec) if hasattr(leaf.sharding, "spec") else None,
              "devices": len(leaf.sharding.device_set), "resumed_from": result.resumed_from}
    return records, placed, result.state


def _difference(a, b):
    """Largest absolute and relative difference of the numeric values of two histories."""
    worst_abs = worst_rel = 0.0
    assert [r["step"] for r in a] == [r["step"] for r in b], (a, b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            d = abs(ra[key] - rb[key])
            worst_abs = max(worst_abs, d)
            worst_rel = max(worst_rel, d / max(abs(ra[key]), 1e-30))
    return worst_abs, worst_rel


def _max_abs(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _restored_on_one_device(run_dir, like):
    """The latest checkpoint of ``run_dir`` restored with ``like``'s shardings (one device)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    manager = ocp.CheckpointManager(str(run_dir / "checkpoints"))
    try:
        step = manager.latest_step()
        state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    finally:
        manager.close()
    return step, state


def _spot(composed_one, composed_eight, one_dir, eight_dir):
    t0 = time.perf_counter()
    one, placed_one, state_one = _fit(composed_one, 4, checkpoint_every=2)
    shutil.copytree(one_dir, eight_dir)
    shutil.rmtree(eight_dir / "checkpoints" / "4")
    eight, placed_eight, state_eight = _fit(composed_eight, 4, checkpoint_every=2)
    abs_err, rel_err = _difference(one, eight)
    step, restored = _restored_on_one_device(eight_dir, state_one)
    return {"abs": abs_err, "rel": rel_err, "placed_1": placed_one, "placed_8": placed_eight,
            "history_1": one, "history_8": eight, "seconds": time.perf_counter() - t0,
            "restored_on_1": {"step": step, "devices": sorted({len(x.sharding.device_set)
                                                               for x in jax.tree.leaves(restored)}),
                              "max_abs_vs_8": _max_abs(restored, state_eight),
                              "max_abs_vs_1": _max_abs(restored, state_one)}}


def _minibatch(composed):
    t0 = time.perf_counter()
    out = {}
    for name, (composed_one, composed_eight) in composed.items():
        one, placed_one, _ = _fit(composed_one, 4)
        eight, placed_eight, _ = _fit(composed_eight, 4)
        abs_err, rel_err = _difference(one, eight)
        out[name] = {"abs": abs_err, "rel": rel_err, "placed_1": placed_one, "placed_8": placed_eight,
                     "history_1": one, "history_8": eight}
    out["seconds"] = time.perf_counter() - t0
    return out


def main(minibatch_runs):
    train.spot.shard_batch = _recording("spot")
    train.minibatch_ot.shard_batch = _recording("minibatch_ot")
    jax.config.update("jax_enable_x64", False)
    with tempfile.TemporaryDirectory() as directory:
        out = _checks(pathlib.Path(directory), minibatch_runs)
    print("DATA_PARALLEL_JSON " + json.dumps(out), flush=True)


def _checks(tmp, minibatch_runs):
    # Hydra's compose is not thread-safe: every config is composed here, then built and trained in two threads.
    spot = (_composed(RUNS["spot"], 1, tmp / "spot_1"), _composed(RUNS["spot"], 8, tmp / "spot_8"),
            tmp / "spot_1", tmp / "spot_8")
    minibatch = {name: (_composed(RUNS[name], 1, tmp / f"{name}_1"), _composed(RUNS[name], 8, tmp / f"{name}_8"))
                 for name in minibatch_runs}
    with ThreadPoolExecutor(2) as pool:
        spot_run, minibatch_run = pool.submit(_spot, *spot), pool.submit(_minibatch, minibatch)
        runs = {"spot": spot_run.result(), **minibatch_run.result()}
    seconds = {"spot": runs["spot"].pop("seconds"), "minibatch": runs.pop("seconds")}
    return {"devices": jax.device_count(), "runs": runs, "seconds": seconds,
            "seen": {name: sorted(set(values)) for name, values in SEEN.items()}}


if __name__ == "__main__":
    main(sys.argv[1:] or ["minibatch_lp"])
