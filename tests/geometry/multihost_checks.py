"""One sharded Sinkhorn problem over two processes (multi-host on localhost), run by test_sharding.py.

Usage: ``python multihost_checks.py PROCESS_ID PORT``, twice (ids 0 and 1), each with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``: two "hosts" of two CPU
devices each, joined by ``jax.distributed.initialize`` and talking through Gloo.
Process 0 prints one JSON object: the largest relative error of the cost and of the
gathered potentials against the unsharded solve, and the device counts. Nothing
runs on import.
"""

from __future__ import annotations

import json
import sys

N, M, D = 24, 16, 2


def main(process_id: int, port: int) -> dict | None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import ot_jax

    mesh = Mesh(np.array(jax.devices()), ("points",))  # all 4 devices of both processes
    shard = NamedSharding(mesh, PartitionSpec("points"))
    rng = np.random.default_rng(0)  # every process draws the same data and keeps its own rows
    x, y = rng.normal(size=(N, D)), rng.normal(size=(M, D)) + 0.5
    xs = jax.make_array_from_callback(x.shape, shard, lambda index: x[index])
    ys = jax.make_array_from_callback(y.shape, shard, lambda index: y[index])
    out = ot_jax.sinkhorn(ot_jax.PointCloud(xs, ys, mesh=mesh), epsilon=0.5, tol=1e-8)
    f, g = (multihost_utils.process_allgather(v, tiled=True) for v in (out.f, out.g))
    cost = float(out.cost)  # a replicated scalar: readable on every process
    if process_id != 0:
        return None
    ref = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.5, tol=1e-8)
    rel = lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v))) / np.max(np.abs(np.asarray(v))))  # noqa: E731
    return {"processes": jax.process_count(), "devices": jax.device_count(), "local": jax.local_device_count(),
            "cost": abs(cost - float(ref.cost)) / abs(float(ref.cost)), "f": rel(f, ref.f), "g": rel(g, ref.g),
            "status": int(out.status)}


if __name__ == "__main__":
    report = main(int(sys.argv[1]), int(sys.argv[2]))
    if report is not None:
        print("MULTIHOST_JSON " + json.dumps(report))
