"""Checks of a sharded PointCloud on 8 emulated devices, run by test_sharding.py in a subprocess.

The device count is fixed when JAX starts, so this runs as its own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and prints one JSON object:
for every check the largest relative error against the unsharded cloud, plus the
shardings of the outputs and what the compiled programs contain. Nothing runs on import.
"""

from __future__ import annotations

import json
import re

N, M, D = 64, 48, 2


def _rel(a, b) -> float:
    """Largest entrywise error relative to the largest entry of ``b`` (inf for NaN)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    finite = np.isfinite(b)
    if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(a[~finite], b[~finite]):
        return float("inf")
    scale = max(float(np.max(np.abs(b[finite]), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a[finite] - b[finite]), initial=0.0)) / scale


def _ops(geom, f, g, vn, vm, eps):
    """Every kernel operation of ot_jax.geometry.base on both axes: name -> output."""
    stats = geom.primal_dual_stats(f, g, eps)
    rows, cols = geom.marginals(f, g, eps)
    return {
        "lse_rows": geom.lse(g, eps, 1), "lse_cols": geom.lse(f, eps, 0),
        "kernel_apply_rows": geom.kernel_apply(vm, eps, 1), "kernel_apply_cols": geom.kernel_apply(vn, eps, 0),
        "apply_plan_rows": geom.apply_plan(f, g, eps, vm, 1), "apply_plan_cols": geom.apply_plan(f, g, eps, vn, 0),
        "plan_matvec_rows": geom.plan_matvec(f, g, eps, vm, 1), "plan_matvec_cols": geom.plan_matvec(f, g, eps, vn, 0),
        "marginals_rows": rows, "marginals_cols": cols,
        "transport_cost": geom.transport_cost(f, g, eps),
        "transport_cost_plan_gradient": geom.transport_cost(f, g, eps, plan_gradient=True),
        "primal_dual_cost_rows": stats[0], "primal_dual_row_mass": stats[1], "primal_dual_f_ctrans": stats[2],
        "apply_cost_rows": geom.apply_cost(vm, 1), "apply_cost_cols": geom.apply_cost(vn, 0),
        "c_transform": geom.c_transform(g), "max_cost": geom.max_cost(), "mean_cost": geom.mean_cost(),
    }


def _spec(arr) -> str:
    return str(getattr(arr.sharding, "spec", arr.sharding))


def main() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import ot_jax

    out = {"devices": jax.device_count()}
    mesh = Mesh(np.array(jax.devices()), ("points",))
    shard = NamedSharding(mesh, PartitionSpec("points"))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(N, D)), rng.normal(size=(M, D)) + 0.5
    xs, ys = jax.device_put(x, shard), jax.device_put(y, shard)
    dense = ot_jax.PointCloud(x, y, batch_size=4)
    sharded = ot_jax.PointCloud(xs, ys, batch_size=4, mesh=mesh)

    # Kernel operations, with a -inf potential entry (a point of zero weight) on each side.
    f, g = rng.normal(size=N), rng.normal(size=M)
    f[3], g[5] = -np.inf, -np.inf
    vn, vm = rng.normal(size=N), rng.normal(size=M)
    ops = jax.jit(_ops)
    want, got = ops(dense, f, g, vn, vm, 0.7), ops(sharded, f, g, vn, vm, 0.7)
    out["ops"] = {name: _rel(got[name], want[name]) for name in want}
    out["op_specs"] = {name: _spec(got[name]) for name in got if got[name].ndim == 1}

    # Sinkhorn (log mode, uneven weights) and IPOT: outputs and gradients in the points from one
    # compiled program per solver and geometry (value_and_grad with the other outputs as aux).
    a = rng.uniform(0.5, 1.5, size=N)
    a /= a.sum()
    b = np.full(M, 1.0 / M)

    def sinkhorn_outputs(px, py, mesh_):
        r = ot_jax.sinkhorn(ot_jax.PointCloud(px, py, batch_size=4, mesh=mesh_), a, b, epsilon=0.5, tol=1e-6,
                            mode="log")
        return r.cost, {"reg_cost": r.reg_cost, "f": r.f, "g": r.g, "apply_rows": r.apply(vm, axis=1),
                        "apply_cols": r.apply(vn, axis=0), "lower_bound": r.lower_bound,
                        "upper_bound": r.upper_bound, "status": r.status, "n_iters": r.n_iters}

    def ipot_outputs(px, py, mesh_):
        r = ot_jax.ipot(ot_jax.PointCloud(px, py, batch_size=4, mesh=mesh_), tol=1e-2, check_every=10)
        return r.cost, {"lower_bound": r.lower_bound, "upper_bound": r.upper_bound, "status": r.status,
                        "n_iters": r.n_iters}

    grads, texts = {}, {}
    for name, fn in (("sinkhorn", sinkhorn_outputs), ("ipot", ipot_outputs)):
        both = jax.jit(jax.value_and_grad(fn, argnums=(0, 1), has_aux=True), static_argnums=2)
        compiled = both.lower(xs, ys, mesh).compile()  # compiled once: run, and its program inspected below
        (c0, aux0), (gx0, gy0) = both(x, y, None)
        (c1, aux1), (gx1, gy1) = compiled(xs, ys)
        counts = {key: [int(aux1.pop(key)), int(aux0.pop(key))] for key in ("status", "n_iters")}
        out[name] = {"cost": _rel(c1, c0), **{key: _rel(aux1[key], aux0[key]) for key in aux0}, **counts}
        if name == "sinkhorn":
            out["specs"] = {"x": _spec(xs), "f": _spec(aux1["f"]), "g": _spec(aux1["g"])}
        grads[name] = {"x": _rel(gx1, gx0), "y": _rel(gy1, gy0), "spec_x": _spec(gx1), "spec_y": _spec(gy1)}
        texts[f"{name}_grad"] = compiled.as_text()
    out["grad"] = grads

    # What the compiled (per-device) programs hold: no [n, m] cost, no all of y or of x.
    # (The gradient programs hold the forward solves too.)
    shapes = {"cost_nm": f"f64[{N},{M}]", "cost_mn": f"f64[{M},{N}]", "all_y": f"f64[{M},{D}]",
              "all_x": f"f64[{N},{D}]"}
    out["hlo"] = {
        name: {
            **{key: shape in text for key, shape in shapes.items()},
            "all_gathers": sorted(set(re.findall(r"(\S+\[[\d,]*\])\S* all-gather", text))),
            "collective_permute": "collective-permute" in text,
            # The reverse pass of the ring keeps the P - 1 blocks of y that visited a device.
            "stacked_visiting_points": f"f64[{jax.device_count() - 1},{M // jax.device_count()},{D}]" in text,
        }
        for name, text in texts.items()
    }

    # Sizes that do not split over the devices.
    try:
        ot_jax.PointCloud(xs[:60], ys, mesh=mesh)
        out["indivisible_error"] = None
    except ValueError as err:
        out["indivisible_error"] = str(err)
    del jnp
    return out


if __name__ == "__main__":
    print("SHARDING_JSON " + json.dumps(main()))
