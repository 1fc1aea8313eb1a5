"""IPOT converges to the exact LP value; jit/vmap/grad; the warm start matters."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from ot_jax.solvers.results import Status
from tests.conftest import uniform_problem


@pytest.fixture(scope="module")
def problem200():
    rng = np.random.default_rng(1)
    x, y, cost, a, b = uniform_problem(rng, 200, 200, d=16, normalise=False)
    return cost, ot.emd2(a, b, cost)


@pytest.mark.parametrize("rel_beta", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-4), (jnp.float32, 1e-3)])
def test_ipot_certifies_the_lp_value(problem200, rel_beta, dtype, tol):
    """At the dtype's default tolerance IPOT ends CONVERGED, and CONVERGED is a proof:
    lower_bound <= W <= upper_bound with a gap within tol, and cost inside that interval."""
    cost, ref = problem200
    beta = rel_beta * cost.max()
    out = jax.jit(lambda c: ot_jax.ipot(c, beta=beta, max_iters=100000))(jnp.asarray(cost, dtype))
    assert out.cost.dtype == dtype
    assert int(out.status) == Status.CONVERGED, (int(out.n_iters), float(out.gap) / ref)
    slack = 1e-6 if dtype == jnp.float32 else 1e-12  # the bounds are computed in the dtype
    assert float(out.lower_bound) <= ref * (1 + slack) and ref <= float(out.upper_bound) * (1 + slack)
    assert float(out.gap) <= tol * float(out.lower_bound) * (1 + slack)
    assert abs(float(out.cost) - ref) / ref <= tol


def test_ipot_nonuniform_rectangular_float64(rng):
    _, _, cost, a, b = uniform_problem(rng, 60, 45, d=4, weights="random")
    out = ot_jax.ipot(cost, a, b, tol=1e-8, max_iters=20000)
    ref = ot.emd2(a, b, cost)
    assert abs(float(out.cost) - ref) / ref < 1e-4
    assert float(out.lower_bound) <= ref + 1e-12
    # Columns are exact after the last sweep; rows approach a.
    rows, cols = out.marginals
    np.testing.assert_allclose(np.asarray(cols), b, atol=1e-10)


def test_ipot_plan_becomes_sparse_like_lp(rng):
    _, _, cost, a, b = uniform_problem(rng, 30, 30, d=2)
    plan = np.asarray(ot_jax.ipot(cost, tol=1e-9, max_iters=20000).plan)
    lp = np.asarray(ot_jax.emd(cost).plan)
    assert np.abs(plan - lp).sum() < 1e-3


def test_warm_start_is_what_makes_ipot_converge(rng):
    """Resetting v to ones each outer step (no warm start) stalls far from W."""
    _, _, cost, a, b = uniform_problem(rng, 40, 30, d=3, weights="random")
    ref = ot.emd2(a, b, cost)
    beta, steps = 0.1 * cost.max(), 2000
    good = ot_jax.ipot(cost, a, b, beta=beta, tol=0.0, max_iters=steps)
    # The thesis' scaling form without the warm start, in float64 (no underflow at this size).
    G, P = np.exp(-cost / beta), np.ones_like(cost)
    for _ in range(steps):
        Q = G * P
        u = a / (Q @ np.ones(len(b)))
        v = b / (Q.T @ u)
        P = u[:, None] * Q * v[None, :]
    cold = (P * cost).sum()
    assert abs(float(good.cost) - ref) / ref < 1e-4
    assert abs(cold - ref) / ref > 10 * abs(float(good.cost) - ref) / ref


def test_inner_iters_L_converges(rng):
    _, _, cost, a, b = uniform_problem(rng, 50, 50, d=3)
    ref = ot.emd2(a, b, cost)
    for L in (2, 5):
        out = ot_jax.ipot(cost, beta=0.1, inner_iters=L, tol=1e-7, max_iters=20000)
        assert abs(float(out.cost) - ref) / ref < 1e-5


def test_ipot_vmap_equals_loop(rng):
    costs = np.stack([uniform_problem(rng, 20, 15, d=3)[2] for _ in range(5)])
    solve = lambda c: ot_jax.ipot(c, tol=1e-7, max_iters=5000)
    batched = jax.jit(jax.vmap(solve))(costs)
    for k, c in enumerate(costs):
        single = solve(c)
        np.testing.assert_allclose(float(batched.cost[k]), float(single.cost), rtol=1e-7)
        assert int(batched.n_iters[k]) == int(single.n_iters)


def test_ipot_grad_wrt_points_matches_exact_fd(rng):
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)) + 1.0
    loss = lambda x: ot_jax.ipot(ot_jax.PointCloud(x, y), tol=1e-9, max_iters=20000).cost
    grad = np.asarray(jax.grad(loss)(x))
    exact = lambda x: ot.emd2(np.full(8, 1 / 8), np.full(8, 1 / 8), ot.dist(x, y))
    h = 1e-6
    for i, k in [(0, 0), (5, 1)]:
        e = np.zeros_like(x)
        e[i, k] = h
        fd = (exact(x + e) - exact(x - e)) / (2 * h)
        assert abs(fd - grad[i, k]) < 1e-4


def test_ipot_unrolled_grad_matches_envelope(rng):
    _, _, cost, a, b = uniform_problem(rng, 10, 10, d=2)
    env = jax.grad(lambda c: ot_jax.ipot(c, beta=0.05, tol=1e-9, max_iters=3000).cost)(cost)
    unr = jax.grad(lambda c: ot_jax.ipot(c, beta=0.05, tol=1e-9, max_iters=3000, grad_mode="unroll").cost)(cost)
    np.testing.assert_allclose(np.asarray(unr), np.asarray(env), atol=1e-4)


def test_ipot_throw_inside_jit_on_max_iters(rng):
    _, _, cost, _, _ = uniform_problem(rng, 20, 20, d=2)
    out = ot_jax.ipot(cost, beta=1.0, tol=1e-12, max_iters=20)
    assert int(out.status) == Status.MAX_ITERS and not bool(out.converged)
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(jax.jit(lambda c: ot_jax.ipot(c, beta=1.0, tol=1e-12, max_iters=20, throw=True).cost)(cost))


def test_ipot_zero_weights(rng):
    _, _, cost, a, b = uniform_problem(rng, 12, 10, d=2, weights="random")
    a[3], b[[0, 7]] = 0.0, 0.0
    a, b = a / a.sum(), b / b.sum()
    out = ot_jax.ipot(cost, a, b, tol=1e-8, max_iters=20000)
    assert np.isfinite(float(out.cost))
    assert abs(float(out.cost) - ot.emd2(a, b, cost)) / ot.emd2(a, b, cost) < 1e-4
    assert float(np.abs(np.asarray(out.plan)[3]).sum()) == 0.0


def test_float32_stall_names_the_certified_interval(float32):
    """Where float32 cannot reach tol, STALLED says so with the interval, and the interval holds W."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(100, 2)), rng.uniform(size=(100, 2))
    geom = ot_jax.PointCloud(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    out = ot_jax.ipot(geom)
    assert int(out.status) == Status.STALLED
    exact = ot.emd2(np.full(100, 0.01), np.full(100, 0.01), ot.dist(x, y))
    assert float(out.lower_bound) * (1 - 1e-6) <= exact <= float(out.upper_bound) * (1 + 1e-6)
    with pytest.raises(ot_jax.SolverError, match=r"STALLED: .* \(certified: [0-9.e-]+ <= W <= [0-9.e-]+, gap"):
        ot_jax.check_status(out, "ipot")
    with pytest.raises(ot_jax.SolverError, match="certified:"):
        ot_jax.ipot(geom, throw=True)
