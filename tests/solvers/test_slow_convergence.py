"""Long convergence runs (``make test-slow``): larger problems than the fast suite."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from tests.conftest import uniform_problem

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("n", [1000, 2000])
def test_ipot_float64_reaches_lp_value_at_scale(n):
    _, _, cost, a, b = uniform_problem(np.random.default_rng(n), n, n, d=16)
    ref = ot.emd2(a, b, cost, numItermax=10**8)
    out = jax.jit(lambda c: ot_jax.ipot(c, max_iters=50000))(cost)
    assert bool(out.converged), int(out.status)
    assert abs(float(out.cost) - ref) / ref <= 1e-5
    assert float(out.lower_bound) <= ref * (1 + 1e-9)


def test_ipot_float32_default_beta_reaches_1e4_at_n4096():
    _, _, cost, a, b = uniform_problem(np.random.default_rng(7), 4096, 4096, d=16)
    ref = ot.emd2(a, b, cost, numItermax=10**8)
    out = jax.jit(lambda c: ot_jax.ipot(c, beta=0.005, tol=1e-4))(jnp.asarray(cost, jnp.float32))
    assert abs(float(out.cost) - ref) / ref <= 1e-4


def test_lazy_sinkhorn_small_epsilon_float32_matches_dense():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=(3000, 2)).astype(np.float32), rng.uniform(size=(2500, 2)).astype(np.float32)
    lazy = ot_jax.sinkhorn(ot_jax.PointCloud(x, y, batch_size=256), epsilon=1e-4, relative_epsilon=True,
                           tol=1e-3, max_iters=50000)
    dense = ot_jax.sinkhorn(ot_jax.PointCloud(x, y).cost_matrix, epsilon=1e-4, relative_epsilon=True,
                            tol=1e-3, max_iters=50000)
    assert bool(lazy.converged) and bool(dense.converged)
    np.testing.assert_allclose(float(lazy.cost), float(dense.cost), rtol=1e-4)
