"""ot_jax.emd against POT's network simplex, plus jit/vmap/grad."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from tests.conftest import uniform_problem


@pytest.mark.parametrize("n,m,weights", [(30, 30, "uniform"), (40, 25, "random"), (17, 60, "random"), (80, 80, "random")])
def test_emd_equals_pot(rng, n, m, weights):
    _, _, cost, a, b = uniform_problem(rng, n, m, d=5, weights=weights, normalise=False)
    out = ot_jax.emd(cost, a, b)
    ref = ot.emd2(a, b, cost)
    assert abs(float(out.cost) - ref) <= 1e-9 * abs(ref)
    plan = np.asarray(out.plan)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-12)
    assert plan.min() >= 0
    assert bool(out.converged)
    # Strong duality: the returned potentials are feasible and attain the value.
    f, g = np.asarray(out.f), np.asarray(out.g)
    assert np.all(f[:, None] + g[None, :] <= cost + 1e-9)
    assert abs(f @ a + g @ b - ref) <= 1e-9 * abs(ref)


def test_emd_jit_and_vmap(rng):
    costs = np.stack([uniform_problem(rng, 12, 9, d=3)[2] for _ in range(4)])
    batched = jax.jit(jax.vmap(lambda c: ot_jax.emd(c).cost))(costs)
    looped = [ot.emd2(np.full(12, 1 / 12), np.full(9, 1 / 9), c) for c in costs]
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-10)


def test_emd_grad_wrt_cost_is_plan_and_matches_fd(rng):
    _, _, cost, a, b = uniform_problem(rng, 8, 6, d=2, weights="random")
    grad = jax.grad(lambda c: ot_jax.emd(c, a, b).cost)(cost)
    plan = np.asarray(ot_jax.emd(cost, a, b).plan)
    np.testing.assert_allclose(np.asarray(grad), plan, atol=1e-12)
    # Finite differences of the exact value (piecewise linear in C; generic instances are smooth).
    h = 1e-7
    for i, j in [(0, 0), (3, 2), (7, 5)]:
        e = np.zeros_like(cost)
        e[i, j] = h
        fd = (ot.emd2(a, b, cost + e) - ot.emd2(a, b, cost - e)) / (2 * h)
        assert abs(fd - grad[i, j]) < 1e-6


def test_emd_grad_wrt_weights_matches_fd(rng):
    _, _, cost, a, b = uniform_problem(rng, 7, 9, d=2, weights="random")
    ga = np.asarray(jax.grad(lambda w: ot_jax.emd(cost, w, b).cost)(a))
    h = 1e-7
    # Mass-preserving direction e_i - e_k: the derivative is f_i - f_k.
    for i, k in [(0, 1), (2, 6)]:
        d = np.zeros_like(a)
        d[i], d[k] = h, -h
        fd = (ot.emd2(a + d, b, cost) - ot.emd2(a - d, b, cost)) / (2 * h)
        assert abs(fd - (ga[i] - ga[k])) < 1e-6


def test_emd_grad_wrt_points_matches_fd(rng):
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    loss = lambda x: ot_jax.emd(ot_jax.PointCloud(x, y)).cost
    grad = np.asarray(jax.grad(loss)(x))
    h = 1e-6
    for i, k in [(0, 0), (4, 1)]:
        e = np.zeros_like(x)
        e[i, k] = h
        fd = (float(loss(x + e)) - float(loss(x - e))) / (2 * h)
        assert abs(fd - grad[i, k]) < 1e-5


def test_emd_float32_and_rectangular():
    cost = jnp.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]], jnp.float32)
    out = ot_jax.emd(cost, jnp.array([0.5, 0.5], jnp.float32), jnp.array([0.25, 0.5, 0.25], jnp.float32))
    assert out.cost.dtype == jnp.float32
    assert abs(float(out.cost) - 0.5) < 1e-6


# ----------------------------------------------------------------------------- the network simplex


def _certified(out, cost, a, b, ref):
    """Exact value, feasible plan and dual-feasible potentials (the certificate behind CONVERGED)."""
    assert bool(out.converged), ot_jax.Status(int(out.status))
    scale = np.abs(cost).max()
    assert abs(float(out.cost) - ref) <= 1e-9 * max(abs(ref), 1e-300)
    plan, f, g = np.asarray(out.plan), np.asarray(out.f), np.asarray(out.g)
    assert plan.min() >= 0
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-9 * a.sum(), rtol=0)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-9 * a.sum(), rtol=0)
    assert (cost - f[:, None] - g[None, :]).min() >= -1e-9 * scale


@pytest.mark.parametrize("d,weights", [(2, "uniform"), (16, "random")])
def test_emd_is_exact_and_certified_at_a_few_hundred_points(rng, d, weights):
    _, _, cost, a, b = uniform_problem(rng, 300, 280, d=d, weights=weights, normalise=False)
    out = ot_jax.emd(cost, a, b)
    _certified(out, cost, a, b, ot.emd2(a, b, cost, numItermax=10**7))
    assert abs(float(np.asarray(out.f) @ a + np.asarray(out.g) @ b) - float(out.cost)) <= 1e-9 * float(out.cost)


def test_emd_tiny_and_zero_weights_match_pot(rng):
    # POT's own 1-D Gaussian histograms: tails far below 1e-100.
    n = 100
    x = np.arange(n, dtype=np.float64)
    a, b = ot.datasets.make_1D_gauss(n, m=20, s=3), ot.datasets.make_1D_gauss(n, m=60, s=10)
    assert a.min() < 1e-100
    cost = ot.dist(x[:, None], x[:, None])
    _certified(ot_jax.emd(cost, a, b), cost, a, b, ot.emd2(a, b, cost))
    # Random weights with 30 % of the entries at 1e-9, then at 1e-300, then exact zeros.
    _, _, cost, a0, b0 = uniform_problem(rng, 60, 50, d=3, weights="random")
    for tiny in (1e-9, 1e-300, 0.0):
        a, b = a0.copy(), b0.copy()
        a[rng.uniform(size=60) < 0.3] = tiny
        b[rng.uniform(size=50) < 0.3] = tiny
        a, b = a / a.sum(), b / b.sum()
        out = ot_jax.emd(cost, a, b)
        _certified(out, cost, a, b, ot.emd2(a, b, cost))
        assert np.all(np.isfinite(np.asarray(out.f))) and np.all(np.isfinite(np.asarray(out.g)))
    # Exact zeros are left out of the simplex: no flow, and their duals are the tightest ones.
    reduced = cost - np.asarray(out.f)[:, None] - np.asarray(out.g)[None, :]
    assert np.all(np.asarray(out.plan)[a == 0] == 0) and np.all(np.asarray(out.plan)[:, b == 0] == 0)
    np.testing.assert_allclose(reduced[a == 0].min(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(reduced[:, b == 0].min(axis=0), 0.0, atol=1e-12)


def test_emd_degenerate_integer_costs_and_single_rows(rng):
    # Many ties: every pivot of a transportation problem is degenerate (the strongly feasible rule must not cycle).
    cost = rng.integers(0, 3, size=(70, 70)).astype(np.float64)
    a = b = np.full(70, 1 / 70)
    _certified(ot_jax.emd(cost, a, b), cost, a, b, ot.emd2(a, b, cost))
    for shape in ((1, 5), (5, 1), (1, 1)):
        cost = rng.uniform(size=shape)
        a, b = np.full(shape[0], 1 / shape[0]), np.full(shape[1], 1 / shape[1])
        _certified(ot_jax.emd(cost, a, b), cost, a, b, ot.emd2(a, b, cost))


def test_emd_max_iters_is_reported_and_raises(rng):
    _, _, cost, a, b = uniform_problem(rng, 30, 30, d=2)
    out = ot_jax.emd(cost, a, b, max_iters=5)
    assert int(out.status) == ot_jax.Status.MAX_ITERS and not bool(out.converged)
    assert float(out.lower_bound) == -np.inf and int(out.n_iters) == 5
    with pytest.raises(ot_jax.SolverError, match="emd: MAX_ITERS: the network simplex stopped after max_iters"):
        ot_jax.emd(cost, a, b, max_iters=5, throw=True)
    with pytest.raises(ValueError, match="max_iters must be an integer >= 1"):
        ot_jax.emd(cost, a, b, max_iters=0)


def test_vmap_solves_the_batch_in_one_host_call(rng, monkeypatch):
    from ot_jax.solvers import exact

    calls = []
    host = exact._host_solve
    monkeypatch.setattr(exact, "_host_solve", lambda *args: calls.append(args[0].shape) or host(*args))
    costs = np.stack([uniform_problem(rng, 11, 13, d=2)[2] for _ in range(6)])
    a = rng.dirichlet(np.ones(11), size=6)
    out = jax.jit(jax.vmap(lambda c, w: ot_jax.emd(c, w)))(costs, a)
    assert calls == [(6, 11, 13)]
    for k in range(6):
        assert abs(float(out.cost[k]) - ot.emd2(a[k], np.full(13, 1 / 13), costs[k])) <= 1e-12


def test_several_targets_in_one_call(rng):
    """b: [m, K] (POT's convention): K problems, one host call, fields with a leading K."""
    cost = rng.uniform(size=(6, 5))
    a = np.full(6, 1 / 6)
    targets = rng.uniform(size=(5, 3))
    targets /= targets.sum(axis=0)
    out = ot_jax.emd(cost, a, targets)
    assert out.plan.shape == (3, 6, 5) and out.f.shape == (3, 6) and bool(np.all(out.converged))
    np.testing.assert_allclose(np.asarray(out.cost), ot.emd2(a, targets, cost), rtol=1e-12)
    grad = jax.grad(lambda c: ot_jax.emd(c, a, targets).cost.sum())(cost)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(out.plan).sum(0), atol=1e-15)
    bad = targets.copy()
    bad[0, 1] = -1.0
    with pytest.raises(ValueError, match=r"negative .*column 1 of b"):
        ot_jax.emd(cost, a, bad)
