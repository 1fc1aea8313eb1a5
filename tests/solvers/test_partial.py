"""Partial OT (exact and entropic) against POT's ``partial_wasserstein`` and ``entropic_partial_wasserstein``."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from ot_jax.solvers.results import Status


def _problem(seed=0, n=8, m=6):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 1.0
    a, b = rng.uniform(0.5, 1.5, n), rng.uniform(0.5, 1.5, m)
    return x, y, a / a.sum(), 0.8 * b / b.sum(), ot.dist(x, y)


def _central_differences(fun, args, k, h=1e-6):
    arg = np.asarray(args[k], float)
    out = np.zeros(arg.shape)
    for idx in np.ndindex(arg.shape):
        up, down = list(args), list(args)
        up[k], down[k] = arg.copy(), arg.copy()
        up[k][idx] += h
        down[k][idx] -= h
        out[idx] = (float(fun(*up)) - float(fun(*down))) / (2 * h)
    return out


@pytest.mark.parametrize("mass", [0.3, 0.8])
def test_partial_emd_equals_pot(mass):
    _, _, a, b, cost = _problem()
    ours = ot_jax.partial_emd(cost, a, b, mass=mass)
    ref = ot.partial.partial_wasserstein(a, b, cost, m=mass)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), ref, atol=1e-12)
    assert abs(float(ours.cost) - float((ref * cost).sum())) <= 1e-12
    plan = np.asarray(ours.plan)
    assert abs(plan.sum() - mass) <= 1e-12
    assert np.all(plan.sum(1) <= a + 1e-12) and np.all(plan.sum(0) <= b + 1e-12)


@pytest.mark.parametrize("mass", [0.3, 0.7])
def test_partial_sinkhorn_equals_pot(mass):
    _, _, a, b, cost = _problem(1)
    eps = 0.2
    ours = ot_jax.partial_sinkhorn(cost, a, b, mass=mass, epsilon=eps, tol=1e-12, max_iters=100000)
    ref = ot.partial.entropic_partial_wasserstein(a, b, cost, eps, m=mass, numItermax=100000, stopThr=1e-15)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), ref, atol=1e-10)
    plan = np.asarray(ours.plan)
    assert abs(float(ours.reg_cost) - ((plan * cost).sum() + eps * (plan * np.log(plan)).sum())) <= 1e-10


def test_partial_sinkhorn_tends_to_the_exact_value():
    _, _, a, b, cost = _problem(2)
    exact = float(ot_jax.partial_emd(cost, a, b, mass=0.5).cost)
    errors = [abs(float(ot_jax.partial_sinkhorn(cost, a, b, mass=0.5, epsilon=eps, tol=1e-10,
                                                max_iters=100000).cost) - exact) for eps in (0.3, 0.03)]
    assert errors[1] < 0.2 * errors[0]


def test_partial_emd_gradients_match_finite_differences():
    x, y, a, b, _ = _problem(3, 6, 5)
    value = lambda x, a, b, mass: ot_jax.partial_emd(ot_jax.PointCloud(x, y), a, b, mass=mass).cost
    args = (x, a, b, 0.5)
    grads = jax.grad(value, argnums=(0, 1, 2, 3))(*args)
    for k in range(4):
        np.testing.assert_allclose(np.asarray(grads[k]), _central_differences(value, args, k), atol=1e-8)


# unroll (~4 s, slow): the same unrolled loop as plain Sinkhorn, whose unrolled gradient is checked fast
@pytest.mark.parametrize("grad_mode", ["envelope", pytest.param("unroll", marks=pytest.mark.slow)])
def test_partial_sinkhorn_gradients_match_finite_differences(grad_mode):
    x, y, a, b, _ = _problem(4, 6, 5)
    weights = np.random.default_rng(5).normal(size=(6, 5))

    def value(x, a, b, mass, eps):
        # envelope needs the optimum (Danskin); unroll differentiates the 200 iterations it runs.
        out = ot_jax.partial_sinkhorn(ot_jax.PointCloud(x, y), a, b, mass=mass, epsilon=eps, tol=1e-13,
                                      max_iters=3000 if grad_mode == "envelope" else 200, grad_mode=grad_mode)
        # envelope: reg_cost is the differentiable output; unroll: any function of the plan too.
        return out.reg_cost if grad_mode == "envelope" else out.reg_cost + jnp.sum(out.plan * weights)

    args = (x, a, b, 0.5, 0.3)
    grads = jax.grad(value, argnums=(0, 1, 2, 3, 4))(*args)
    for k in range(5):
        np.testing.assert_allclose(np.asarray(grads[k]), _central_differences(value, args, k), atol=1e-8)


def test_partial_input_errors():
    _, _, a, b, cost = _problem()
    with pytest.raises(ValueError, match=r"mass must be in \(0, min\(sum\(a\), sum\(b\)\)\]"):
        ot_jax.partial_emd(cost, a, b, mass=0.9)
    with pytest.raises(ValueError, match="mass must be in"):
        ot_jax.partial_sinkhorn(cost, a, b, mass=-0.1, epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        ot_jax.partial_sinkhorn(cost, a, b, mass=0.5, epsilon=0.0)
    with pytest.raises(ValueError, match="grad_mode must be one of 'envelope', 'unroll'"):
        ot_jax.partial_sinkhorn(cost, a, b, mass=0.5, epsilon=0.1, grad_mode="implicit")
    bad = jax.jit(lambda mass: ot_jax.partial_emd(cost, a, b, mass=mass).status)(jnp.asarray(2.0))
    assert int(bad) == Status.INVALID_INPUT
    with pytest.raises(ValueError, match="not differentiable with grad_mode='envelope'"):
        jax.grad(lambda c: jnp.sum(ot_jax.partial_sinkhorn(c, a, b, mass=0.5, epsilon=0.1).plan))(cost)
