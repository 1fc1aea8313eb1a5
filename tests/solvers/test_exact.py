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
