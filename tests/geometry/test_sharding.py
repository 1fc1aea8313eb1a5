"""A PointCloud sharded over a device mesh equals the unsharded one, and never holds [n, m] or all of y.

The sharded checks need 8 devices, fixed when JAX starts: they run once, in a
subprocess with ``--xla_force_host_platform_device_count=8`` (sharding_checks.py),
and the tests below read its JSON report. The multi-host check runs two such
processes joined by ``jax.distributed`` on localhost (multihost_checks.py). The
argument checks run here, on a one-device mesh.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import ot_jax

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = 1e-10


@pytest.fixture(scope="module")
def report():
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env = dict(os.environ, XLA_FLAGS=flags, JAX_ENABLE_X64="1",
               PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    script = pathlib.Path(__file__).with_name("sharding_checks.py")
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("SHARDING_JSON "))
    out = json.loads(line.split(" ", 1)[1])
    assert out["devices"] == 8
    return out


@pytest.mark.slow  # two processes over a TCP coordinator (~12 s); the 8-device single-process checks stay fast
def test_two_processes_solve_one_sharded_problem():
    """Multi-host: 2 processes x 2 CPU devices, one mesh, one Sinkhorn; equal to the unsharded solve."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    flags = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env = dict(os.environ, XLA_FLAGS=flags, JAX_ENABLE_X64="1", PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    script = pathlib.Path(__file__).with_name("multihost_checks.py")
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        outs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-4000:]
    line = next(ln for ln in outs[0][0].splitlines() if ln.startswith("MULTIHOST_JSON "))
    report = json.loads(line.split(" ", 1)[1])
    assert (report["processes"], report["devices"], report["local"], report["status"]) == (2, 4, 2, 0)
    assert max(report["cost"], report["f"], report["g"]) <= TOL, report


def test_kernel_ops_equal_unsharded(report):
    bad = {name: err for name, err in report["ops"].items() if not err <= TOL}
    assert not bad
    assert len(report["ops"]) == 20


def test_outputs_stay_sharded(report):
    assert set(report["op_specs"].values()) == {"P('points',)"}
    assert report["specs"] == {"x": "P('points',)", "f": "P('points',)", "g": "P('points',)"}
    for grads in report["grad"].values():
        assert grads["spec_x"] == grads["spec_y"] == "P('points',)"


def test_sinkhorn_equal_unsharded(report):
    out = report["sinkhorn"]
    assert out.pop("status") == [0, 0]
    n_iters = out.pop("n_iters")
    assert n_iters[0] == n_iters[1]
    assert max(out.values()) <= TOL, out


def test_ipot_equal_unsharded(report):
    out = report["ipot"]
    assert out.pop("status") == [0, 0]
    n_iters = out.pop("n_iters")
    assert n_iters[0] == n_iters[1]
    assert max(out.values()) <= 1e-10, out


@pytest.mark.parametrize("solver", ["sinkhorn", "ipot"])
def test_gradients_equal_unsharded(report, solver):
    grads = report["grad"][solver]
    assert grads["x"] <= 1e-10 and grads["y"] <= 1e-10, grads


def test_compiled_programs_hold_no_cost_matrix_nor_all_points(report):
    for name, hlo in report["hlo"].items():
        assert hlo["collective_permute"], name
        assert not (hlo["cost_nm"] or hlo["cost_mn"]), name
        assert not (hlo["all_y"] or hlo["all_x"]), name
        assert hlo["all_gathers"] == [], (name, hlo["all_gathers"])


def test_indivisible_sizes_error_names_the_cloud(report):
    err = report["indivisible_error"]
    assert err is not None and "x has 60 points" in err and "8 devices" in err and "zero weight" in err


# ---------------------------------------------------------------- in this process (one device)
def test_one_device_mesh_equals_no_mesh(rng):
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2))
    mesh = Mesh(np.array(jax.devices()[:1]), ("points",))
    plain, sharded = ot_jax.PointCloud(x, y), ot_jax.PointCloud(x, y, mesh=mesh)
    assert sharded.axis_name == "points"
    g = rng.normal(size=9)
    np.testing.assert_allclose(sharded.lse(g, 0.5, 1), plain.lse(g, 0.5, 1), rtol=1e-12)
    np.testing.assert_allclose(sharded.c_transform(g), plain.c_transform(g), rtol=1e-12)
    # The mesh is static (pytree aux data): a jitted function sees it unchanged.
    assert jax.jit(lambda geom: geom)(sharded).mesh == mesh


def test_mesh_argument_errors(rng):
    x, y = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    mesh2 = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    with pytest.raises(ValueError, match="axis_name="):
        ot_jax.PointCloud(x, y, mesh=mesh2)
    assert ot_jax.PointCloud(x, y, mesh=mesh2, axis_name="model").axis_name == "model"
    with pytest.raises(ValueError, match="axis_name='nope' is not an axis"):
        ot_jax.PointCloud(x, y, mesh=mesh2, axis_name="nope")
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        ot_jax.PointCloud(x, y, mesh="points")
    with pytest.raises(ValueError, match="axis_name='points' needs a mesh"):
        ot_jax.PointCloud(x, y, axis_name="points")
    with pytest.raises(ValueError, match="with a mesh, x must be"):
        ot_jax.PointCloud(np.zeros((2, 4, 2)), np.zeros((2, 4, 2)), mesh=mesh2, axis_name="data")
