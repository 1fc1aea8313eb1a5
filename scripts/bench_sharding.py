"""Sinkhorn on a PointCloud sharded over 1, 2, 4, 8 emulated CPU devices: time per iteration and memory.

Each device count runs in its own process (the count is fixed when JAX starts, through
``XLA_FLAGS=--xla_force_host_platform_device_count=P``). Log mode, a fixed number of
iterations (``tol=0``), squared Euclidean cost, uniform weights. Prints a markdown table.

    python scripts/bench_sharding.py                  # n = 10**6, m = 10**3, d = 2, float32
    python scripts/bench_sharding.py --n 100000 --iters 10 --dtype float64

Emulated devices share the host's cores, so more of them do not run faster; the point is
that the ring runs at every count and that the memory per device shrinks as ``1/P``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(args) -> dict:
    """One device count (this process's): compile, then time ``args.iters`` Sinkhorn iterations."""
    import resource

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import ot_jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)
    mesh = Mesh(np.array(jax.devices()), ("points",))
    shard = NamedSharding(mesh, PartitionSpec("points"))
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.uniform(size=(args.n, args.d)).astype(dtype), shard)
    y = jax.device_put(rng.uniform(size=(args.m, args.d)).astype(dtype), shard)

    @jax.jit
    def run(x, y):
        geom = ot_jax.PointCloud(x, y, mesh=mesh)
        out = ot_jax.sinkhorn(geom, epsilon=args.epsilon, tol=0.0, max_iters=args.iters,
                              check_every=args.iters, mode="log", grad_mode="envelope")
        return out.reg_cost, out.f

    start = time.perf_counter()
    jax.block_until_ready(run(x, y))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        cost, f = jax.block_until_ready(run(x, y))
        times.append(time.perf_counter() - start)
    stats = jax.devices()[0].memory_stats()
    peak_device = None if stats is None else stats.get("peak_bytes_in_use")
    return {
        "devices": jax.device_count(), "compile_s": compile_s, "ms_per_iter": 1e3 * min(times) / args.iters,
        "cost": float(cost), "f_spec": str(f.sharding.spec), "shard_rows": int(f.addressable_shards[0].data.shape[0]),
        "peak_device_bytes": peak_device,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**6)
    parser.add_argument("--m", type=int, default=10**3)
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("BENCH_JSON " + json.dumps(_worker(args)), flush=True)
        return

    import jax

    rows = []
    for count in (int(c) for c in args.devices.split(",")):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}", JAX_PLATFORMS="cpu",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--n", str(args.n), "--m", str(args.m),
               "--d", str(args.d), "--iters", str(args.iters), "--repeats", str(args.repeats),
               "--epsilon", str(args.epsilon), "--dtype", args.dtype]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
        if proc.returncode or not line:
            print(f"devices={count} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[0].split(" ", 1)[1]))
        print(f"devices={count} done", file=sys.stderr, flush=True)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import command_line, git_revision, write_section

    lines = [
        "## Many devices: Sinkhorn on a sharded PointCloud (`scripts/bench_sharding.py`)\n",
        "Generated by `make bench`, which runs `python scripts/bench_sharding.py` (defaults below); do not edit "
        "by hand, rerun instead.\n",
        f"- command: `{command_line()}` at {git_revision()}",
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__}",
        f"- n = {args.n:,}, m = {args.m:,}, d = {args.d}, {args.dtype}, log-domain Sinkhorn, "
        f"{args.iters} iterations per run (tol=0), best of {args.repeats}; each device count in its own process "
        "(`XLA_FLAGS=--xla_force_host_platform_device_count=P`).",
        "",
        "| devices | points of x per device | ms / iteration | compile (s) | peak device memory | process peak RSS (MiB) | cost |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dev = "n/a" if r["peak_device_bytes"] is None else f"{r['peak_device_bytes'] / 2**20:.1f} MiB"
        lines.append(f"| {r['devices']} | {r['shard_rows']:,} | {r['ms_per_iter']:.1f} | {r['compile_s']:.1f} | {dev} | "
                     f"{r['peak_rss_mib']:.0f} | {r['cost']:.6g} |")
    lines.append("\nThe devices are emulated on the host CPU and share its cores, so more devices do not run faster; "
                 "what the table shows is that the ring runs at every count and gives the same cost. "
                 "`memory_stats()` of a CPU device is None (device column n/a); the process peak RSS is that of all "
                 "emulated devices together (one process), so it does not show the per-device share. "
                 "Not measured on a GPU or on several hosts.")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("sharding", text)

if __name__ == "__main__":
    main()
