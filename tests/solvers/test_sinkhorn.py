"""Sinkhorn against OTT-JAX and POT at the same epsilon; modes, schedules, warm start, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from ott.geometry import geometry as ott_geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn

import ot_jax
from ot_jax.solvers.results import Status
from tests.conftest import uniform_problem


def _ott(cost, a, b, eps):
    geom = ott_geometry.Geometry(cost_matrix=jnp.asarray(cost), epsilon=eps)
    out = ott_sinkhorn.Sinkhorn(threshold=1e-12, max_iterations=20000)(linear_problem.LinearProblem(geom, a=a, b=b))
    return out


@pytest.mark.parametrize("eps", [0.1, 0.01])
@pytest.mark.parametrize("weights", ["uniform", "random"])
def test_sinkhorn_equals_ott(rng, eps, weights):
    _, _, cost, a, b = uniform_problem(rng, 50, 40, d=4, weights=weights)
    ours = ot_jax.sinkhorn(cost, a, b, epsilon=eps, tol=1e-11, max_iters=20000)
    ref = _ott(cost, a, b, eps)
    assert bool(ours.converged)
    ott_cost = float(jnp.sum(ref.matrix * cost))
    assert abs(float(ours.cost) - ott_cost) <= 1e-5 * abs(ott_cost)
    # reg_cost = <C,P> + eps KL(P | a b^T): OTT's reg_ot_cost uses the same convention.
    assert abs(float(ours.reg_cost) - float(ref.reg_ot_cost)) <= 1e-5 * abs(float(ref.reg_ot_cost))
    np.testing.assert_allclose(np.asarray(ours.plan), np.asarray(ref.matrix), atol=1e-7)


def test_sinkhorn_equals_pot_log(rng):
    _, _, cost, a, b = uniform_problem(rng, 30, 30, d=3, weights="random")
    ours = ot_jax.sinkhorn(cost, a, b, epsilon=0.05, tol=1e-12, max_iters=20000)
    ref = ot.sinkhorn(a, b, cost, 0.05, method="sinkhorn_log", stopThr=1e-13, numItermax=20000)
    np.testing.assert_allclose(np.asarray(ours.plan), ref, atol=1e-9)


def test_scaling_mode_equals_log_mode(rng):
    _, _, cost, a, b = uniform_problem(rng, 40, 30, d=3, weights="random")
    log = ot_jax.sinkhorn(cost, a, b, epsilon=0.05, tol=1e-10)
    scl = ot_jax.sinkhorn(cost, a, b, epsilon=0.05, tol=1e-10, mode="scaling")
    auto = ot_jax.sinkhorn(cost, a, b, epsilon=0.05, tol=1e-10, mode="auto")
    np.testing.assert_allclose(float(scl.cost), float(log.cost), rtol=1e-9)
    np.testing.assert_allclose(float(auto.cost), float(log.cost), rtol=1e-9)


@pytest.mark.parametrize("eps", [3.0, 1.0, 0.3, 0.1])
def test_scaling_mode_is_right_or_flagged_never_silently_wrong(rng, eps):
    _, _, cost, _, _ = uniform_problem(rng, 30, 30, d=3)
    cost = jnp.asarray(cost * 100, jnp.float32)
    scl = ot_jax.sinkhorn(cost, epsilon=eps, mode="scaling", max_iters=20000)
    log = ot_jax.sinkhorn(cost, epsilon=eps, mode="log", max_iters=20000)
    assert bool(log.converged)
    if bool(scl.converged):
        np.testing.assert_allclose(float(scl.cost), float(log.cost), rtol=1e-3)
    else:
        assert int(scl.status) in (Status.NON_FINITE, Status.MAX_ITERS)
    # "auto" takes the log domain when (max C - min C) / eps is large, so it always converges.
    assert bool(ot_jax.sinkhorn(cost, epsilon=eps, mode="auto", max_iters=20000).converged)


def test_small_epsilon_float32_stable(rng):
    """eps = 1e-4 x mean cost in float32: finite, converges, close to the exact value."""
    _, _, cost, a, b = uniform_problem(rng, 64, 64, d=16)
    out = ot_jax.sinkhorn(jnp.asarray(cost, jnp.float32), epsilon=1e-4, relative_epsilon=True,
                          tol=1e-3, max_iters=50000)
    assert bool(out.converged), int(out.status)
    ref = ot.emd2(a, b, cost)
    assert np.isfinite(float(out.cost)) and abs(float(out.cost) - ref) / ref < 1e-3


def test_epsilon_scaling_reaches_same_solution(rng):
    _, _, cost, a, b = uniform_problem(rng, 60, 60, d=4)
    plain = ot_jax.sinkhorn(cost, a, b, epsilon=5e-3, tol=1e-6, max_iters=100000)
    sched = ot_jax.sinkhorn(cost, a, b, epsilon=5e-3, tol=1e-6, max_iters=100000, epsilon_init=1.0, epsilon_decay=0.8)
    assert bool(plain.converged) and bool(sched.converged)
    np.testing.assert_allclose(float(sched.cost), float(plain.cost), rtol=1e-5)
    # Convergence is only declared once the schedule reached the target: 1.0 * 0.8**t <= 5e-3.
    assert int(sched.n_iters) >= int(np.ceil(np.log(5e-3) / np.log(0.8)))


def test_warm_start_needs_fewer_iterations(rng):
    _, _, cost, a, b = uniform_problem(rng, 50, 50, d=3)
    first = ot_jax.sinkhorn(cost, a, b, epsilon=0.01, tol=1e-8)
    again = ot_jax.sinkhorn(cost, a, b, epsilon=0.01, tol=1e-8, init=(first.f, first.g))
    assert int(again.n_iters) <= 10 < int(first.n_iters)
    np.testing.assert_allclose(float(again.cost), float(first.cost), rtol=1e-7)


def test_lower_bound_is_below_exact_value(rng):
    _, _, cost, a, b = uniform_problem(rng, 40, 35, d=3, weights="random")
    out = ot_jax.sinkhorn(cost, a, b, epsilon=0.01, tol=1e-8)
    assert float(out.lower_bound) <= ot.emd2(a, b, cost) + 1e-12


def test_vmap_equals_loop(rng):
    costs = np.stack([uniform_problem(rng, 20, 25, d=3)[2] for _ in range(6)])
    solve = lambda c: ot_jax.sinkhorn(c, epsilon=0.02, tol=1e-9)
    batched = jax.jit(jax.vmap(solve))(costs)
    for k in range(len(costs)):
        np.testing.assert_allclose(float(batched.reg_cost[k]), float(solve(costs[k]).reg_cost), rtol=1e-9)


def _fd(fn, x, idx, h=1e-6):
    e = np.zeros_like(x)
    e[idx] = h
    return (float(fn(x + e)) - float(fn(x - e))) / (2 * h)


def test_envelope_grad_of_reg_cost_matches_fd(rng):
    """grad_mode="envelope" (potentials held fixed) is exact for reg_cost, a minimum value (Danskin)."""
    x, y, _, a, b = uniform_problem(rng, 12, 10, d=2, weights="random")
    eps = 0.05
    solve = lambda geom, a, eps: ot_jax.sinkhorn(geom, a, b, epsilon=eps, tol=1e-12, max_iters=20000,
                                                 grad_mode="envelope").reg_cost
    loss_x = jax.jit(lambda x: solve(ot_jax.PointCloud(x, y), a, eps))
    gx = np.asarray(jax.grad(loss_x)(x))
    for idx in [(0, 0), (7, 1)]:
        assert abs(_fd(loss_x, x, idx) - gx[idx]) < 1e-6
    cost = np.asarray(ot_jax.PointCloud(x, y).cost_matrix)
    loss_c = jax.jit(lambda c: solve(c, a, eps))
    gc = np.asarray(jax.grad(loss_c)(cost))
    for idx in [(0, 0), (5, 9)]:
        assert abs(_fd(loss_c, cost, idx) - gc[idx]) < 1e-6
    loss_a = jax.jit(lambda w: solve(cost, w, eps))
    ga = np.asarray(jax.grad(loss_a)(a))
    h = 1e-6
    d = np.zeros_like(a)
    d[2], d[8] = h, -h
    fd = (float(loss_a(a + d)) - float(loss_a(a - d))) / (2 * h)
    assert abs(fd - (ga[2] - ga[8])) < 1e-6
    loss_e = jax.jit(lambda e: solve(cost, a, e))
    assert abs(float(jax.grad(loss_e)(eps)) - (float(loss_e(eps + 1e-6)) - float(loss_e(eps - 1e-6))) / 2e-6) < 1e-5


def test_unrolled_grad_of_transport_cost_matches_fd(rng):
    x, y, _, a, b = uniform_problem(rng, 8, 7, d=2)
    loss = lambda x: ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.1, tol=1e-12, max_iters=3000,
                                     grad_mode="unroll").cost
    gx = np.asarray(jax.grad(loss)(x))
    for idx in [(0, 1), (6, 0)]:
        assert abs(_fd(loss, x, idx) - gx[idx]) < 1e-6


def test_lazy_pointcloud_equals_dense(rng):
    x, y = rng.normal(size=(70, 3)), rng.normal(size=(50, 3))
    lazy = ot_jax.sinkhorn(ot_jax.PointCloud(x, y, batch_size=16), epsilon=0.1, tol=1e-9)
    dense = ot_jax.sinkhorn(ot_jax.PointCloud(x, y).cost_matrix, epsilon=0.1, tol=1e-9)
    np.testing.assert_allclose(float(lazy.cost), float(dense.cost), rtol=1e-10)
    np.testing.assert_allclose(float(lazy.reg_cost), float(dense.reg_cost), rtol=1e-10)
    v = rng.normal(size=50)
    np.testing.assert_allclose(np.asarray(lazy.apply(v)), np.asarray(dense.plan) @ v, rtol=1e-9)
