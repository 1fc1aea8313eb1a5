"""lower_bound <= W <= upper_bound on every entropic result, against POT's exact emd2."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from ot_jax.solvers._entropic import round_plan

RNG = np.random.default_rng(7)
N, M = 30, 24
X, Y = RNG.uniform(size=(N, 3)), RNG.uniform(size=(M, 3))
A, B = RNG.dirichlet(np.ones(N)), RNG.dirichlet(np.ones(M))
EXACT = ot.emd2(A, B, np.asarray(ot_jax.PointCloud(X, Y).cost_matrix))


def test_rounding_is_feasible_and_costs_what_it_says():
    geom = ot_jax.PointCloud(X, Y)
    out = ot_jax.sinkhorn(geom, A, B, epsilon=0.05, tol=1e-2)  # loose: rows are off
    f_r, g_r, rows, cols, cost = round_plan(geom, jnp.asarray(A), jnp.asarray(B), out.f, out.g, out.plan_epsilon)
    plan = np.asarray(geom.plan(f_r, g_r, out.plan_epsilon)) + np.outer(rows, cols)
    assert plan.min() >= 0
    np.testing.assert_allclose(plan.sum(1), A, atol=1e-14)
    np.testing.assert_allclose(plan.sum(0), B, atol=1e-14)
    np.testing.assert_allclose(float(cost), np.sum(plan * np.asarray(geom.cost_matrix)), rtol=1e-12)


@pytest.mark.parametrize("solve", [
    lambda g: ot_jax.sinkhorn(g, A, B, epsilon=0.05),
    lambda g: ot_jax.sinkhorn(g, A, B, epsilon=0.005, tol=1e-2),
    lambda g: ot_jax.ipot(g, A, B, tol=1e-3),
    lambda g: ot_jax.ipot(g, A, B, max_iters=20),
], ids=["sinkhorn", "sinkhorn-loose", "ipot", "ipot-early"])
def test_interval_contains_the_exact_value(solve):
    out = jax.jit(solve)(ot_jax.PointCloud(X, Y))
    assert float(out.lower_bound) <= EXACT * (1 + 1e-12)
    assert float(out.upper_bound) >= EXACT * (1 - 1e-12)
    assert float(out.gap) >= 0


def test_grid_rounding_is_separable():
    grid = ot_jax.Grid.regular((6, 5))
    a = jax.nn.softmax(jnp.asarray(RNG.normal(size=30)))
    b = jax.nn.softmax(jnp.asarray(RNG.normal(size=30)))
    out = ot_jax.sinkhorn(grid, a, b, epsilon=0.05, tol=1e-3)
    dense = ot_jax.sinkhorn(ot_jax.Geometry(grid.cost_matrix), a, b, epsilon=0.05, tol=1e-3)
    np.testing.assert_allclose(out.upper_bound, dense.upper_bound, rtol=1e-10)
    assert float(out.lower_bound) <= ot.emd2(np.asarray(a), np.asarray(b), np.asarray(grid.cost_matrix)) <= float(
        out.upper_bound) * (1 + 1e-12)
