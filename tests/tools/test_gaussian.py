"""Closed-form Gaussian OT: W2 against the exact LP and POT, the entropic plan against Sinkhorn."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax


def _spd(rng, d, floor=0.2):
    m = rng.normal(size=(d, d))
    return m @ m.T / d + floor * np.eye(d)


def test_thesis_case_w2_is_five():
    """mu = N((-2.5, 0), I), nu = N((2.5, 0), I): W2 = 5; the LP on a translated sample agrees."""
    m1, m2, eye = np.array([-2.5, 0.0]), np.array([2.5, 0.0]), np.eye(2)
    assert float(ot_jax.gaussian_w2(m1, eye, m2, eye)) == pytest.approx(5.0, rel=1e-12)
    # a sample and its translate: the identity plan is optimal, so the LP gives |shift|^2 exactly
    x = np.random.default_rng(0).normal(size=(60, 2)) + m1
    out = ot_jax.emd(ot_jax.PointCloud(x, x + (m2 - m1)))
    assert np.sqrt(float(out.cost)) == pytest.approx(5.0, rel=1e-8)


def test_w2_against_exact_lp_on_samples():
    """sqrt(exact OT) between two independent n=400 samples approximates W2 (d=3).

    The empirical W2 converges at rate n^(-1/d) in d=3; for n=400 and unit-scale
    covariances its bias in W2^2 is a few tenths, i.e. a few percent of W2 ~ 3.6
    here (measured: 2%). 10% relative leaves room for other seeds.
    """
    rng = np.random.default_rng(1)
    d, n = 3, 400
    a_cov, b_cov = _spd(rng, d), _spd(rng, d)
    m1, m2 = rng.normal(size=d), 2 * rng.normal(size=d)
    x, y = rng.multivariate_normal(m1, a_cov, n), rng.multivariate_normal(m2, b_cov, n)
    lp = np.sqrt(ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), ot.dist(x, y)))  # the exact LP (POT as oracle)
    closed = float(ot_jax.gaussian_w2(m1, a_cov, m2, b_cov))
    assert lp == pytest.approx(closed, rel=0.1)


def test_w2_matches_pot_and_diagonal_formula(rng):
    for d in (1, 2, 5):
        a_cov, b_cov = _spd(rng, d), _spd(rng, d)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        ref = float(ot.gaussian.bures_wasserstein_distance(m1, m2, a_cov, b_cov))
        np.testing.assert_allclose(float(ot_jax.gaussian_w2(m1, a_cov, m2, b_cov)), ref, rtol=1e-9)
    # commuting (diagonal) covariances: sqrt(|dm|^2 + |sqrt(diag A) - sqrt(diag B)|^2)
    da, db = rng.uniform(0.1, 3.0, 4), rng.uniform(0.1, 3.0, 4)
    da[0] = 0.0  # a degenerate direction is allowed (PSD)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    simple = np.sqrt(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(da) - np.sqrt(db)) ** 2))
    np.testing.assert_allclose(float(ot_jax.gaussian_w2(m1, np.diag(da), m2, np.diag(db))), simple, rtol=1e-12)
    assert float(ot_jax.gaussian_w2(m1, np.diag(da), m1, np.diag(da))) == pytest.approx(0.0, abs=1e-7)


def test_w2_grad_jit_vmap(rng):
    d = 3
    a_cov, b_cov = _spd(rng, d), _spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    f = jax.jit(lambda m, c: ot_jax.gaussian_w2(m, c, m2, b_cov))
    gm, gc = jax.grad(f, argnums=(0, 1))(jnp.asarray(m1), jnp.asarray(a_cov))
    h = 1e-6
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        np.testing.assert_allclose(gm[i], (float(f(m1 + e, a_cov)) - float(f(m1 - e, a_cov))) / (2 * h), rtol=1e-6)
    e = np.zeros((d, d))
    e[0, 1] = e[1, 0] = h  # symmetric perturbation: d/dt f(A + t E) = <grad, E>
    fd = (float(f(m1, a_cov + e)) - float(f(m1, a_cov - e))) / (2 * h)
    np.testing.assert_allclose(float(gc[0, 1] + gc[1, 0]), fd, rtol=1e-5)
    # repeated eigenvalues (identity covariances): gradients stay finite
    g_eye = jax.grad(lambda c: ot_jax.gaussian_w2(m1, c, m2, 2 * jnp.eye(d)))(jnp.eye(d))
    assert np.all(np.isfinite(np.asarray(g_eye)))
    # there W2^2 = |dm|^2 + tr A + tr B - 2 sqrt(2) tr A^1/2, so dW2/dA = (1 - sqrt 2) / (2 W2) I
    w_eye = float(ot_jax.gaussian_w2(m1, np.eye(d), m2, 2 * np.eye(d)))
    np.testing.assert_allclose(np.asarray(g_eye), (1 - np.sqrt(2)) / (2 * w_eye) * np.eye(d), atol=1e-12)
    means = rng.normal(size=(4, d))
    batched = jax.vmap(lambda m: ot_jax.gaussian_w2(m, a_cov, m2, b_cov))(means)
    np.testing.assert_allclose(np.asarray(batched), [float(ot_jax.gaussian_w2(m, a_cov, m2, b_cov)) for m in means],
                               rtol=1e-12)


def test_entropic_plan_closed_form_1d():
    for a, b, lam in [(1.0, 1.0, 1.0), (2.0, 0.5, 0.1), (0.3, 4.0, 3.0)]:
        mean, cov = ot_jax.gaussian_entropic_plan([0.5], [[a]], [-1.0], [[b]], lam=lam)
        np.testing.assert_allclose(np.asarray(mean), [0.5, -1.0])
        np.testing.assert_allclose(float(cov[0, 1]), (np.sqrt(16 * a * b + lam**2) - lam) / 4, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(cov), np.asarray(cov).T, atol=1e-14)
        np.testing.assert_allclose([float(cov[0, 0]), float(cov[1, 1])], [a, b], rtol=1e-14)


def test_entropic_plan_matches_fine_grid_sinkhorn():
    """Sinkhorn with epsilon = lam on 400-point grids (spacing 0.03) of the two densities.

    Grid discretisation shifts second moments by O(h^2/12) ~ 1e-4, so 1e-3 relative holds.
    """
    m1, m2, a, b, lam = 0.3, -0.5, 1.3, 0.7, 1.0
    gx, gy = np.linspace(-6, 6, 400) + m1, np.linspace(-6, 6, 400) + m2
    wa, wb = np.exp(-((gx - m1) ** 2) / (2 * a)), np.exp(-((gy - m2) ** 2) / (2 * b))
    wa, wb = wa / wa.sum(), wb / wb.sum()
    out = ot_jax.sinkhorn((gx[:, None] - gy[None, :]) ** 2, wa, wb, epsilon=lam, tol=1e-10, max_iters=20000)
    assert bool(out.converged)
    plan = np.asarray(out.plan)
    ex, ey = plan.sum(1) @ gx, plan.sum(0) @ gy
    emp = np.array([[plan.sum(1) @ (gx - ex) ** 2, np.sum(plan * np.outer(gx - ex, gy - ey))],
                    [np.sum(plan * np.outer(gx - ex, gy - ey)), plan.sum(0) @ (gy - ey) ** 2]])
    mean, cov = ot_jax.gaussian_entropic_plan([m1], [[a]], [m2], [[b]], lam=lam)
    np.testing.assert_allclose(emp, np.asarray(cov), rtol=1e-3)
    np.testing.assert_allclose([ex, ey], np.asarray(mean), atol=1e-6)


def test_entropic_plan_multivariate(rng):
    d = 3
    # diagonal covariances: the plan factorises, coordinate-wise 1-D closed forms
    da, db, lam = rng.uniform(0.2, 2.0, d), rng.uniform(0.2, 2.0, d), 0.7
    _, cov = ot_jax.gaussian_entropic_plan(np.zeros(d), np.diag(da), np.ones(d), np.diag(db), lam=lam)
    np.testing.assert_allclose(np.asarray(cov[:d, d:]), np.diag((np.sqrt(16 * da * db + lam**2) - lam) / 4),
                               atol=1e-12)
    # full covariances: the joint covariance is PSD, and as lam -> 0 the transport cost
    # E|x - y|^2 = tr A + tr B - 2 tr C tends to W2^2
    a_cov, b_cov = _spd(rng, d), _spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    w2 = float(ot_jax.gaussian_w2(m1, a_cov, m2, b_cov))
    for lam in (1.0, 1e-6):
        mean, cov = ot_jax.gaussian_entropic_plan(m1, a_cov, m2, b_cov, lam=lam)
        cov = np.asarray(cov)
        np.testing.assert_allclose(cov[:d, :d], a_cov, atol=1e-14)
        np.testing.assert_allclose(cov[d:, d:], b_cov, atol=1e-14)
        assert np.linalg.eigvalsh(cov).min() > -1e-9
        cost = np.sum((m1 - m2) ** 2) + np.trace(a_cov) + np.trace(b_cov) - 2 * np.trace(cov[:d, d:])
        if lam == 1e-6:
            np.testing.assert_allclose(cost, w2**2, rtol=1e-5)
        else:
            assert cost > w2**2
    def cross_trace(lam_):
        return jnp.trace(ot_jax.gaussian_entropic_plan(m1, a_cov, m2, b_cov, lam=lam_)[1][:d, d:])

    h = 1e-6
    fd = (float(cross_trace(0.5 + h)) - float(cross_trace(0.5 - h))) / (2 * h)
    np.testing.assert_allclose(float(jax.jit(jax.grad(cross_trace))(0.5)), fd, rtol=1e-6)


def test_invalid_inputs_raise_readable_errors(rng):
    eye = np.eye(2)
    with pytest.raises(ValueError, match=r"cov1 must have shape \(2, 2\)"):
        ot_jax.gaussian_w2(np.zeros(2), np.eye(3), np.zeros(2), eye)
    with pytest.raises(ValueError, match="dimensions differ"):
        ot_jax.gaussian_w2(np.zeros(2), eye, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="cov2 is not symmetric"):
        ot_jax.gaussian_w2(np.zeros(2), eye, np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="cov1 is not positive semi-definite"):
        ot_jax.gaussian_w2(np.zeros(2), np.diag([1.0, -0.5]), np.zeros(2), eye)
    with pytest.raises(ValueError, match="mean1 or cov1 contain NaN"):
        ot_jax.gaussian_w2(np.array([np.nan, 0.0]), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="mean1 must be a non-empty 1-D array"):
        ot_jax.gaussian_w2(np.zeros((2, 1)), eye, np.zeros(2), eye)
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        ot_jax.gaussian_entropic_plan(np.zeros(2), eye, np.zeros(2), eye, lam=0.0)
    with pytest.raises(ValueError, match="cov1 must be positive definite"):
        ot_jax.gaussian_entropic_plan(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), eye, lam=1.0)


# ----------------------------------------------------------------------------- maps, barycenters, entropic value
from ot_jax.tools import gaussian as gaussian_tools  # noqa: E402


def _spd(rng, d):
    m = rng.normal(size=(d, d))
    return m @ m.T + 0.5 * np.eye(d)


def test_monge_map_equals_pot_and_pushes_the_source_onto_the_target():
    rng = np.random.default_rng(0)
    a, b, m1, m2 = _spd(rng, 3), _spd(rng, 3), rng.normal(size=3), rng.normal(size=3)
    linear, shift = gaussian_tools.gaussian_monge_map(m1, a, m2, b)
    ref_linear, ref_shift = ot.gaussian.bures_wasserstein_mapping(m1, m2, a, b)
    np.testing.assert_allclose(np.asarray(linear), ref_linear, atol=1e-12)
    np.testing.assert_allclose(np.asarray(shift), ref_shift, atol=1e-12)
    linear = np.asarray(linear)
    np.testing.assert_allclose(linear @ a @ linear, b, atol=1e-10)  # T#N(m1, A) = N(m2, B)
    assert np.all(np.linalg.eigvalsh(linear) >= 0)  # the gradient of a convex function
    # Its cost is W2^2.
    w2 = float(ot_jax.gaussian_w2(m1, a, m2, b))
    cost = np.sum((m1 - (linear @ m1 + np.asarray(shift))) ** 2) + np.trace((np.eye(3) - linear) @ a @ (np.eye(3) - linear))
    assert abs(cost - w2 ** 2) <= 1e-10


def test_barycenter_equals_pot_and_its_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    d = 3
    covs = np.stack([_spd(rng, d) for _ in range(4)])
    means = rng.normal(size=(4, d))
    weights = rng.dirichlet(np.ones(4))
    out = gaussian_tools.gaussian_barycenter(means, covs, weights)
    ref_mean, ref_cov = ot.gaussian.bures_wasserstein_barycenter(means, covs, weights, num_iter=10000, eps=1e-14)
    assert bool(out.converged)
    np.testing.assert_allclose(np.asarray(out.cov), ref_cov, atol=1e-11)
    np.testing.assert_allclose(np.asarray(out.mean), ref_mean, atol=1e-12)
    probe = np.arange(d * d, dtype=float).reshape(d, d)
    value = lambda covs, weights: jnp.sum(gaussian_tools.gaussian_barycenter(means, covs, weights).cov * probe)
    grad_covs, grad_weights = jax.grad(value, argnums=(0, 1))(covs, weights)
    h = 1e-5
    for k, i, j in [(0, 0, 0), (0, 0, 2), (3, 1, 2)]:  # symmetric perturbations of covs[k]
        up, down = covs.copy(), covs.copy()
        up[k, i, j] += h
        up[k, j, i] = up[k, i, j]
        down[k, i, j] -= h
        down[k, j, i] = down[k, i, j]
        fd = (float(value(up, weights)) - float(value(down, weights))) / (2 * h)
        g = np.asarray(grad_covs)[k]
        expected = g[i, j] + g[j, i] if i != j else g[i, i]
        assert abs(fd - expected) <= 1e-5 * max(1.0, abs(fd))
    for k in range(4):
        up, down = weights.copy(), weights.copy()
        up[k] += h
        down[k] -= h
        fd = (float(value(covs, up)) - float(value(covs, down))) / (2 * h)
        assert abs(fd - float(grad_weights[k])) <= 1e-5 * max(1.0, abs(fd))


def test_entropic_cost_is_the_limit_of_sinkhorn_on_a_fine_grid():
    lam = 0.5
    xs = np.linspace(-9.0, 10.0, 1200)
    pa = np.exp(-xs ** 2 / 2.0)
    pb = np.exp(-(xs - 1.0) ** 2 / 4.0)
    out = ot_jax.sinkhorn((xs[:, None] - xs[None]) ** 2, pa / pa.sum(), pb / pb.sum(), epsilon=lam, tol=1e-10,
                          max_iters=20000)
    closed = gaussian_tools.gaussian_entropic_cost(np.zeros(1), np.eye(1), np.ones(1), 2.0 * np.eye(1), lam=lam)
    assert bool(out.converged)
    assert abs(float(out.reg_cost) - float(closed)) <= 1e-6
    # lam -> 0: the entropic value tends to W2^2.
    small = gaussian_tools.gaussian_entropic_cost(np.zeros(1), np.eye(1), np.ones(1), 2.0 * np.eye(1), lam=1e-8)
    w2 = float(ot_jax.gaussian_w2(np.zeros(1), np.eye(1), np.ones(1), 2.0 * np.eye(1)))
    assert abs(float(small) - w2 ** 2) <= 1e-6


def test_barycenter_input_errors():
    with pytest.raises(ValueError, match=r"covs must have shape \(2, 2, 2\)"):
        gaussian_tools.gaussian_barycenter(np.zeros((2, 2)), np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match="weights must be finite, >= 0"):
        gaussian_tools.gaussian_barycenter(np.zeros((2, 2)), np.stack([np.eye(2)] * 2), weights=[1.0, -0.5])
    with pytest.raises(ValueError, match="must be positive definite"):
        gaussian_tools.gaussian_barycenter(np.zeros((2, 2)), np.stack([np.eye(2), np.zeros((2, 2))]))
