"""Shared fixtures. float64 is enabled for the whole suite; float32 tests cast explicitly.

One JAX compilation cache per test session, shared by the xdist workers and by the
subprocesses the tests start (``python -m train ...``): a function compiled once is not
compiled again by the next process. The directory is new for every session (created by
the first process, inherited through the environment), so no run reuses another's.

The suite compiles far more than it runs (hundreds of small programs, each run for
milliseconds), so XLA's CPU backend compiles at optimisation level 0 (compile time falls
by a fifth to a quarter) and emits fusions with its classic, not its MLIR, emitters
(backend compile time of tests/solvers/test_barycenter.py falls from 45 s to 19 s; the
whole suite on 2 cores from 829 s to 580 s); results agree with the default build to
rounding.
"""

import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="ot-jax-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _restore_x64():
    """Every test starts in float64: a run_config of a float32 experiment flips the global flag."""
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture
def float32():
    """Run a test with ``jax_enable_x64`` off (the training configs' precision), then restore it."""
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", True)


def uniform_problem(rng, n, m, d=16, weights="uniform", normalise=True):
    """d-dim uniform points, squared Euclidean cost (divided by its max), weights a [n], b [m]."""
    x, y = rng.uniform(size=(n, d)), rng.uniform(size=(m, d))
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    if normalise:
        cost = cost / cost.max()
    if weights == "uniform":
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    else:
        a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
        a, b = a / a.sum(), b / b.sum()
    return x, y, cost, a, b
