"""Sinkhorn divergence against OTT-JAX's ``sinkhorn_divergence``: values, gradients, self terms, inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence as ott_divergence

import ot_jax
from ot_jax.solvers.results import Status


def _clouds(seed=0, n=30, m=20):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), 0.7 * rng.normal(size=(m, 2)) + 0.5
    a, b = rng.uniform(0.5, 1.5, n), rng.uniform(0.5, 1.5, m)
    return x, y, a / a.sum(), b / b.sum()


def _ott(x, y, a, b, eps):
    value, _ = ott_divergence.sinkhorn_divergence(
        pointcloud.PointCloud, jnp.asarray(x), jnp.asarray(y), a=jnp.asarray(a), b=jnp.asarray(b), epsilon=eps,
        solve_kwargs=dict(threshold=1e-12, max_iterations=20000))
    return value


@pytest.mark.parametrize("eps", [1.0, 0.05])
def test_divergence_equals_ott(eps):
    x, y, a, b = _clouds()
    ours = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=eps, tol=1e-12, max_iters=20000)
    assert bool(ours.converged)
    assert abs(float(ours.divergence) - float(_ott(x, y, a, b, eps))) <= 1e-9
    # The self terms are OT_eps(a, a) solved by the symmetric update: Sinkhorn's value, in
    # far fewer iterations (at eps = 0.05 plain Sinkhorn needs thousands to reach 1e-6,
    # the symmetric update 1e-12 in under a hundred).
    plain = ot_jax.sinkhorn(ot_jax.PointCloud(x, x), a, a, epsilon=eps, tol=1e-6, max_iters=20000)
    assert bool(plain.converged) and bool(ours.xx.converged)
    assert abs(float(ours.xx.reg_cost) - float(plain.reg_cost)) <= 1e-6 * float(plain.reg_cost)
    if eps < 0.1:
        assert 10 * int(ours.xx.n_iters) <= int(plain.n_iters)
    np.testing.assert_allclose(np.asarray(ours.xx.f), np.asarray(ours.xx.g))


def test_divergence_of_cost_triple_equals_point_cloud():
    x, y, a, b = _clouds(1, 12, 9)
    sq = lambda p, q: ((p[:, None] - q[None]) ** 2).sum(-1)
    lazy = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=0.1, tol=1e-12, max_iters=20000)
    dense = ot_jax.sinkhorn_divergence((sq(x, y), sq(x, x), sq(y, y)), a, b, epsilon=0.1, tol=1e-12,
                                       max_iters=20000)
    assert abs(float(lazy.divergence) - float(dense.divergence)) <= 1e-12


@pytest.mark.parametrize("grad_mode", [
    pytest.param("implicit", marks=pytest.mark.slow),  # ~20 s of compiling both implicit backward passes;
    "envelope",  # exact for the divergence; the implicit mode's gradients are checked fast in test_implicit.py
])
def test_divergence_gradient_equals_ott(grad_mode):
    x, y, a, b = _clouds(2, 15, 10)
    ours = jax.grad(lambda x: ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=0.1, tol=1e-12,
                                                         max_iters=20000, grad_mode=grad_mode).divergence)(x)
    ref = jax.grad(lambda x: _ott(x, y, a, b, 0.1))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-9)


def test_divergence_vanishes_on_equal_measures_and_is_positive_otherwise():
    x, _, a, _ = _clouds(3)
    x = 0.3 * x  # cost diameter ~ 3 eps: Sinkhorn converges to 1e-11 in a few hundred iterations
    solve = lambda y: ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, a, epsilon=0.5, tol=1e-11,
                                                 max_iters=20000)
    same = solve(x)
    assert bool(same.converged) and abs(float(same.divergence)) <= 1e-10
    # Squared Euclidean cost: translating a cloud by t adds separable terms to the cost and
    # |t|^2 to OT_eps, so the debiased value is exactly |t|^2 = 2 shift^2 (the bias is gone).
    values = [float(solve(x + shift).divergence) for shift in (0.1, 0.5, 1.0)]
    np.testing.assert_allclose(values, [0.02, 0.5, 2.0], rtol=1e-8)


def test_divergence_input_errors():
    x, y, a, b = _clouds()
    with pytest.raises(TypeError, match="PointCloud"):
        ot_jax.sinkhorn_divergence(np.ones((30, 20)), a, b, epsilon=0.1)
    with pytest.raises(ValueError, match=r"self costs must be \[n, n\]"):
        ot_jax.sinkhorn_divergence((np.ones((30, 20)), np.ones((30, 30)), np.ones((30, 30))), a, b, epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=0.0)
    out = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=0.01, max_iters=20)
    assert int(out.status) == Status.MAX_ITERS
    with pytest.raises(ot_jax.SolverError, match="sinkhorn_divergence"):
        ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y), a, b, epsilon=0.01, max_iters=20, throw=True)
