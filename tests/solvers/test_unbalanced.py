"""Unbalanced Sinkhorn (``reg_m``) against POT and OTT-JAX; its bounds, gradients and input checks."""

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

EPS = 0.3


def _problem(seed=0, n=7, m=5):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) + 1.0
    a = rng.uniform(0.5, 1.5, n)
    b = 2.0 * rng.uniform(0.5, 1.5, m)  # about 1.5 times the mass of a
    return x, y, a, b, ot.dist(x, y)


def _kl(p, q):
    return float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0) - p + q))


def _pair(reg_m):
    return (reg_m, reg_m) if np.isscalar(reg_m) else reg_m


REG_M = [1.0, (0.5, 3.0), (np.inf, 1.0), (2.0, np.inf)]


@pytest.mark.parametrize("reg_m", REG_M, ids=["both", "pair", "hard-a", "hard-b"])
def test_unbalanced_equals_pot(reg_m):
    _, _, a, b, cost = _problem()
    ours = ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=reg_m, tol=1e-12, max_iters=20000)
    plan, log = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, EPS, reg_m, stopThr=1e-13, numItermax=100000,
                                                  log=True)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), plan, atol=1e-10)
    assert abs(float(ours.cost) - log["cost"]) <= 1e-10 * log["cost"]
    # reg_cost is the whole objective with generalised KL terms (sum p log(p/q) - p + q);
    # POT's total_cost drops the mass terms -p + q of each KL: add them back to compare.
    rho_a, rho_b = _pair(reg_m)
    rows, cols = plan.sum(1), plan.sum(0)
    primal = (plan * cost).sum() + EPS * _kl(plan.ravel(), np.outer(a, b).ravel())
    pot_total = log["total_cost"] + EPS * (a.sum() * b.sum() - plan.sum())
    for rho, w, mass in ((rho_a, a, rows), (rho_b, b, cols)):
        if np.isfinite(rho):
            primal += rho * _kl(mass, w)
            pot_total += rho * (w.sum() - mass.sum())
    assert abs(float(ours.reg_cost) - primal) <= 1e-9 * abs(primal)
    assert abs(float(ours.reg_cost) - pot_total) <= 1e-9 * abs(primal)
    # A hard side keeps its marginal.
    for rho, w, mass in ((rho_a, a, rows), (rho_b, b, cols)):
        if not np.isfinite(rho):
            np.testing.assert_allclose(np.asarray(ours.marginals[0] if w is a else ours.marginals[1]), w, atol=1e-9)


def test_unbalanced_equals_ott_tau():
    _, _, a, b, cost = _problem(1)
    rho_a, rho_b = 0.7, 2.0
    # OTT-JAX regularises by the entropy of P, we (and POT) by KL(P | a b^T); the two
    # differ by the linear term -eps <P, log a + log b>, so OTT on the shifted cost
    # C - eps (log a_i + log b_j) solves our problem.
    shifted = cost - EPS * (np.log(a)[:, None] + np.log(b)[None, :])
    geom = ott_geometry.Geometry(cost_matrix=jnp.asarray(shifted), epsilon=EPS)
    problem = linear_problem.LinearProblem(geom, a=jnp.asarray(a), b=jnp.asarray(b), tau_a=rho_a / (rho_a + EPS),
                                           tau_b=rho_b / (rho_b + EPS))
    ref = ott_sinkhorn.Sinkhorn(threshold=1e-12, max_iterations=20000)(problem)
    ours = ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=(rho_a, rho_b), tol=1e-12, max_iters=20000)
    np.testing.assert_allclose(np.asarray(ours.plan), np.asarray(ref.matrix), atol=1e-9)


def test_unbalanced_bounds_bracket_the_unregularised_value():
    _, _, a, b, cost = _problem(2)
    reg_m = (1.0, 2.0)
    exact = ot.unbalanced.mm_unbalanced2(a, b, cost, reg_m, div="kl", numItermax=200000, stopThr=1e-15,
                                         returnCost="total")
    gaps = []
    for eps in (0.3, 0.03):
        out = ot_jax.sinkhorn(cost, a, b, epsilon=eps, reg_m=reg_m, tol=1e-11, max_iters=50000)
        assert float(out.lower_bound) <= exact + 1e-9 <= float(out.upper_bound) + 2e-9
        gaps.append(float(out.gap))
    assert gaps[1] < 0.3 * gaps[0]  # a smaller epsilon certifies a tighter bracket


def test_large_penalty_recovers_balanced_transport():
    _, _, a, _, cost = _problem(3)
    b = np.full(5, a.sum() / 5)
    balanced = ot_jax.sinkhorn(cost, a, b, epsilon=EPS, tol=1e-12, max_iters=20000)
    nearly = ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=1e6, tol=1e-12, max_iters=20000)
    np.testing.assert_allclose(np.asarray(nearly.plan), np.asarray(balanced.plan), atol=1e-5)


@pytest.mark.parametrize("sides", ["both", "hard-a"])
def test_unbalanced_implicit_gradients_match_finite_differences(sides):
    x, y, a, b, _ = _problem(4, n=5, m=4)
    weights = np.random.default_rng(5).normal(size=(5, 4))

    def outputs(x, a, b, eps, rho):
        reg_m = (rho, 2.0 * rho) if sides == "both" else (np.inf, rho)
        out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), a, b, epsilon=eps, reg_m=reg_m, tol=1e-13, max_iters=50000)
        return jnp.stack([out.cost, out.reg_cost, jnp.sum(out.plan * weights), out.marginals[0] @ jnp.arange(5.0)])

    args = (x, a, b, 0.4, 1.3)
    jac = jax.jacrev(outputs, argnums=tuple(range(5)))(*args)
    h = 1e-6
    for k, arg in enumerate(args):
        arg = np.asarray(arg, float)
        fd = np.zeros((4,) + arg.shape)
        for idx in np.ndindex(arg.shape):
            up, down = list(args), list(args)
            up[k], down[k] = arg.copy(), arg.copy()
            up[k][idx] += h
            down[k][idx] -= h
            fd[(slice(None),) + idx] = (np.asarray(outputs(*up)) - np.asarray(outputs(*down))) / (2 * h)
        np.testing.assert_allclose(np.asarray(jac[k]), fd, atol=1e-7 * max(1.0, np.abs(fd).max()))


def test_unbalanced_envelope_gradient_of_reg_cost_is_exact():
    x, y, a, b, _ = _problem(6, n=6, m=5)

    def reg_cost(x, a, eps, rho, grad_mode):
        out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), a, b, epsilon=eps, reg_m=(rho, 2.0 * rho), tol=1e-13,
                              max_iters=50000, grad_mode=grad_mode)
        return out.reg_cost

    envelope = jax.grad(reg_cost, argnums=(0, 1, 2, 3))(x, a, 0.4, 1.3, "envelope")
    implicit = jax.grad(reg_cost, argnums=(0, 1, 2, 3))(x, a, 0.4, 1.3, "implicit")
    for e, i in zip(envelope, implicit):
        np.testing.assert_allclose(np.asarray(e), np.asarray(i), atol=1e-10)


def test_traced_reg_m_under_vmap_matches_single_solves():
    _, _, a, b, cost = _problem(7)
    rhos = jnp.array([0.5, 1.0, 4.0])
    solve = lambda rho: ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=rho, tol=1e-11, max_iters=20000)
    batched = jax.vmap(solve)(rhos)
    assert np.all(np.asarray(batched.status) == Status.CONVERGED)
    for k, rho in enumerate([0.5, 1.0, 4.0]):
        np.testing.assert_allclose(float(batched.cost[k]), float(solve(rho).cost), rtol=1e-10)
    bad = jax.jit(solve)(jnp.asarray(-1.0))
    assert int(bad.status) == Status.INVALID_INPUT


def test_unbalanced_input_errors():
    _, _, a, b, cost = _problem()
    with pytest.raises(ValueError, match="unequal total mass"):
        ot_jax.sinkhorn(cost, a, b, epsilon=EPS)
    with pytest.raises(ValueError, match=r"reg_m\[1\] must be > 0"):
        ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=(1.0, 0.0))
    with pytest.raises(ValueError, match="reg_m must be a number or a pair"):
        ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="needs mode='log'"):
        ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=1.0, mode="scaling")
    out = ot_jax.sinkhorn(cost, a, b, epsilon=EPS, reg_m=1.0)
    with pytest.raises(ValueError, match="no marginals to round onto"):
        out.rounded()
