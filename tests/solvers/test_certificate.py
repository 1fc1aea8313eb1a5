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
    assert float(out.marginal_error) > 1e-4
    rounding = round_plan(geom, jnp.asarray(A), jnp.asarray(B), out.f, out.g, out.plan_epsilon)
    plan = np.asarray(geom.plan(rounding.f, rounding.g, out.plan_epsilon)) + np.outer(rounding.rows, rounding.cols)
    assert plan.min() >= 0
    np.testing.assert_allclose(plan.sum(1), A, atol=1e-14)
    np.testing.assert_allclose(plan.sum(0), B, atol=1e-14)
    np.testing.assert_allclose(float(rounding.upper), np.sum(plan * np.asarray(geom.cost_matrix)), rtol=1e-12)
    # The result's rounded() is that plan, lazily: apply, marginals and cost agree with it.
    feasible = out.rounded()
    np.testing.assert_allclose(np.asarray(feasible.plan), plan, atol=1e-15)
    vec = RNG.normal(size=(M, 2))
    np.testing.assert_allclose(np.asarray(feasible.apply(vec)), plan @ vec, rtol=1e-12)
    vec0 = RNG.normal(size=N)
    np.testing.assert_allclose(np.asarray(feasible.apply(vec0, axis=0)), plan.T @ vec0, rtol=1e-12)
    rows, cols = feasible.marginals
    np.testing.assert_allclose(np.asarray(rows), A, atol=1e-14)
    np.testing.assert_allclose(np.asarray(cols), B, atol=1e-14)
    assert float(feasible.marginal_error) < 1e-13
    assert float(feasible.cost) == pytest.approx(float(out.upper_bound), rel=1e-12)


def test_rounded_cost_has_the_implicit_gradient_of_the_fixed_point():
    """At a tight tolerance the rounding is the identity up to 1e-12, and the implicit
    derivative of rounded().cost matches central finite differences in float64."""
    f = jax.jit(lambda x: ot_jax.sinkhorn(ot_jax.PointCloud(x, Y), A, B, epsilon=0.05, tol=1e-12).rounded().cost)
    direction = RNG.normal(size=X.shape)
    h = 1e-6
    fd = (float(f(X + h * direction)) - float(f(X - h * direction))) / (2 * h)
    np.testing.assert_allclose(float(jnp.vdot(jax.jit(jax.grad(f))(X), direction)), fd, rtol=1e-6)


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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cost_fn", [ot_jax.SqEuclidean(), ot_jax.Euclidean()], ids=["sq-euclidean", "euclidean"])
def test_ipot_converged_is_a_proof_under_vmap(dtype, cost_fn):
    """Dirichlet weights, four problems under vmap, default tol of the dtype: every
    CONVERGED problem is within tol of POT's exact value, and every problem (whatever
    its status) has lower_bound <= W <= upper_bound and cost inside the interval."""
    rng = np.random.default_rng(3)
    n, d, batch = 40, 8, 4
    xs, ys = rng.uniform(size=(batch, n, d)), rng.uniform(size=(batch, n, d))
    a_s, b_s = rng.dirichlet(np.ones(n), size=batch), rng.dirichlet(np.ones(n), size=batch)
    exact = np.array([ot.emd2(a, b, np.asarray(ot_jax.PointCloud(x, y, cost_fn=cost_fn).cost_matrix))
                      for x, y, a, b in zip(xs, ys, a_s, b_s)])
    dt = jnp.dtype(dtype)
    out = jax.jit(jax.vmap(lambda x, y, a, b: ot_jax.ipot(ot_jax.PointCloud(x, y, cost_fn=cost_fn), a, b)))(
        *(jnp.asarray(v, dt) for v in (xs, ys, a_s, b_s)))
    tol = 1e-3 if dtype == "float32" else 1e-4
    slack = 1e-5 if dtype == "float32" else 1e-12
    status, cost = np.asarray(out.status), np.asarray(out.cost, np.float64)
    lower, upper = np.asarray(out.lower_bound, np.float64), np.asarray(out.upper_bound, np.float64)
    assert np.all(lower <= exact * (1 + slack)) and np.all(exact <= upper * (1 + slack))
    assert np.all((lower * (1 - slack) <= cost) & (cost <= upper * (1 + slack)))
    converged = status == int(ot_jax.Status.CONVERGED)
    assert np.all(np.abs(cost - exact)[converged] <= tol * exact[converged] * (1 + slack))
    assert np.all(np.isin(status, [int(ot_jax.Status.CONVERGED), int(ot_jax.Status.STALLED),
                                   int(ot_jax.Status.MAX_ITERS)]))
    if dtype == "float64":  # not vacuous (float32 ends STALLED here; test_ipot has float32 CONVERGED cases)
        assert converged.any(), (status, (upper - lower) / lower)
