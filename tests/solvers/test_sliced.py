"""Exact 1-D OT and sliced Wasserstein: against POT, gradients, jit/vmap, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax


def _weighted(rng, n, m):
    x, y = rng.normal(size=n), rng.normal(0.4, 1.5, size=m)
    a, b = rng.uniform(0.1, 1.0, n), rng.uniform(0.1, 1.0, m)
    return x, y, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("weights", ["uniform", "random"])
def test_wasserstein_1d_matches_pot(rng, p, weights):
    x, y, a, b = _weighted(rng, 37, 53)
    if weights == "uniform":
        a = b = None
    ours = float(ot_jax.wasserstein_1d(x, y, a, b, p=p))
    ref = float(ot.wasserstein_1d(x, y, a, b, p=p))  # POT returns W_p^p
    np.testing.assert_allclose(ours**p, ref, rtol=1e-10)


def test_wasserstein_1d_ties_and_zero_weights(rng):
    # repeated values, zero weights and a point mass: breakpoints coincide exactly
    x = np.array([0.0, 0.0, 1.0, 1.0, 2.0, -1.0])
    a = np.array([0.25, 0.0, 0.25, 0.0, 0.25, 0.25])
    y = np.array([0.5, 0.5, 3.0, -2.0])
    b = np.array([0.25, 0.25, 0.25, 0.25])
    for p in (1.0, 2.0):
        np.testing.assert_allclose(
            float(ot_jax.wasserstein_1d(x, y, a, b, p=p)) ** p, ot.wasserstein_1d(x, y, a, b, p=p), rtol=1e-12
        )
    assert float(ot_jax.wasserstein_1d(np.array([3.0]), np.array([1.0, 5.0]), p=2.0)) == pytest.approx(2.0)
    assert float(ot_jax.wasserstein_1d(x, x, a, a, p=2.0)) == 0.0


def test_wasserstein_1d_unnormalised_equal_mass(rng):
    x, y, a, b = _weighted(rng, 9, 14)
    w1 = float(ot_jax.wasserstein_1d(x, y, a, b, p=2.0))
    w3 = float(ot_jax.wasserstein_1d(x, y, 3 * a, 3 * b, p=2.0))
    np.testing.assert_allclose(w3**2, 3 * w1**2, rtol=1e-12)  # W_p^p is linear in the common mass


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_wasserstein_1d_grad_matches_finite_differences(rng, p):
    x, y, a, b = _weighted(rng, 11, 17)
    f = jax.jit(lambda x_: ot_jax.wasserstein_1d(x_, y, a, b, p=p))
    g = np.asarray(jax.grad(f)(jnp.asarray(x)))
    h = 1e-6
    fd = np.array([(float(f(x + h * e)) - float(f(x - h * e))) / (2 * h) for e in np.eye(len(x))])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-7)
    gy = jax.grad(lambda y_: ot_jax.wasserstein_1d(x, y_, a, b, p=p))(jnp.asarray(y))
    assert np.all(np.isfinite(np.asarray(gy)))
    # the gradient at a zero distance is 0, not NaN
    g0 = jax.grad(lambda x_: ot_jax.wasserstein_1d(x_, x, p=p))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(g0), 0.0)


def test_wasserstein_1d_vmap_and_jit_equal_loop(rng):
    xs, ys = rng.normal(size=(5, 20)), rng.normal(1.0, 2.0, size=(5, 31))
    a = rng.uniform(0.1, 1.0, size=(5, 20))
    a /= a.sum(1, keepdims=True)
    f = jax.jit(jax.vmap(lambda x, y, a: ot_jax.wasserstein_1d(x, y, a, p=2.0)))
    batched = np.asarray(f(xs, ys, a))
    loop = np.array([float(ot_jax.wasserstein_1d(xs[i], ys[i], a[i], p=2.0)) for i in range(5)])
    np.testing.assert_allclose(batched, loop, rtol=1e-12)
    jitted = jax.jit(ot_jax.wasserstein_1d, static_argnames="p")(xs[0], ys[0], a[0], p=2.0)
    np.testing.assert_allclose(float(jitted), loop[0], rtol=1e-12)


def test_wasserstein_1d_float32(rng):
    x, y, a, b = _weighted(rng, 30, 40)
    out = ot_jax.wasserstein_1d(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32),
                                jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), p=2.0)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(float(out) ** 2, ot.wasserstein_1d(x, y, a, b, p=2), rtol=1e-4)


# ----------------------------------------------------------------------------- emd_1d: plan and duals
def _check_emd_1d(out, x, y, a, b, p):
    """The sparse plan is POT's dense one, the cost is the LP value, the duals certify it."""
    cost = np.abs(x[:, None] - y[None, :]) ** p
    plan = np.asarray(out.plan())
    np.testing.assert_allclose(plan, ot.emd_1d(x, y, a, b, metric="minkowski", p=p), atol=1e-13)
    np.testing.assert_allclose(float(out.cost), ot.emd2(a, b, cost), rtol=1e-12, atol=1e-14)
    f, g = np.asarray(out.f), np.asarray(out.g)
    assert (cost - f[:, None] - g[None, :]).min() >= -1e-12  # dual feasible on every pair
    np.testing.assert_allclose(a @ f + b @ g, float(out.cost), rtol=1e-12, atol=1e-14)  # and optimal
    np.testing.assert_allclose(a @ f, b @ g, atol=1e-12)  # the centring
    assert int(out.status) == ot_jax.Status.CONVERGED and float(out.lower_bound) == float(out.cost)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0])
def test_emd_1d_plan_cost_and_duals_match_the_lp(rng, p):
    x, y, a, b = _weighted(rng, 13, 9)
    _check_emd_1d(ot_jax.emd_1d(x, y, a, b, p=p), x, y, a, b, p)
    # repeated points, zero weights and a single sample on one side
    x2, y2 = np.array([0.3, -1.0, 0.3, 2.0, 0.3]), np.array([0.0, 1.0, 1.0])
    a2, b2 = np.array([0.2, 0.0, 0.3, 0.25, 0.25]), np.array([0.5, 0.0, 0.5])
    _check_emd_1d(ot_jax.emd_1d(x2, y2, a2, b2, p=p), x2, y2, a2, b2, p)
    _check_emd_1d(ot_jax.emd_1d(x2[:1], y2, np.ones(1), b2, p=p), x2[:1], y2, np.ones(1), b2, p)


def test_emd_1d_gradients_vmap_and_invalid_weights(rng):
    x, y, a, b = _weighted(rng, 6, 8)
    fn = jax.jit(lambda x, a: ot_jax.emd_1d(x, y, a, b, p=2.0).cost)
    gx, ga = jax.grad(fn, argnums=(0, 1))(x, a)
    h = 1e-6
    for i in (0, 3):
        e = np.eye(6)[i] * h
        np.testing.assert_allclose(gx[i], (fn(x + e, a) - fn(x - e, a)) / (2 * h), rtol=1e-6)
        # d/da along a mass-preserving direction (a_i up, a_5 down) = f_i - f_5
        d = (np.eye(6)[i] - np.eye(6)[5]) * h
        np.testing.assert_allclose(ga[i] - ga[5], (fn(x, a + d) - fn(x, a - d)) / (2 * h), rtol=1e-5)
    f = np.asarray(ot_jax.emd_1d(x, y, a, b, p=2.0).f)
    np.testing.assert_allclose(np.asarray(ga - ga[0]), f - f[0], atol=1e-10)
    # the potentials and plan values differentiate too (the staircase fixed; generic points)
    duals = jax.jit(lambda x, a: (lambda r: jnp.sum(r.f * w) + jnp.sum(r.g * v) + jnp.sum(r.values * u))(
        ot_jax.emd_1d(x, y, a, b, p=2.0)))
    w, v, u = rng.normal(size=6), rng.normal(size=8), rng.normal(size=14)
    dx, da = jax.grad(duals, argnums=(0, 1))(x, a)
    for i in (1, 4):
        e = np.eye(6)[i] * h
        np.testing.assert_allclose(dx[i], (duals(x + e, a) - duals(x - e, a)) / (2 * h), rtol=1e-5, atol=1e-8)
        d = (np.eye(6)[i] - np.eye(6)[5]) * h
        np.testing.assert_allclose(da[i] - da[5], (duals(x, a + d) - duals(x, a - d)) / (2 * h), rtol=1e-5,
                                   atol=1e-8)
    # W_2^2 equals wasserstein_1d's value squared; vmap equals the loop
    np.testing.assert_allclose(float(fn(x, a)), float(ot_jax.wasserstein_1d(x, y, a, b, p=2.0)) ** 2, rtol=1e-12)
    xs = rng.normal(size=(4, 6))
    batched = jax.vmap(lambda x: ot_jax.emd_1d(x, y, a, b, p=2.0))(xs)
    for k in range(4):
        np.testing.assert_allclose(np.asarray(batched.f[k]), np.asarray(ot_jax.emd_1d(xs[k], y, a, b, p=2.0).f),
                                   atol=1e-13)
    bad = jax.jit(lambda a: ot_jax.emd_1d(x, y, a, b))(-a)
    assert int(bad.status) == ot_jax.Status.INVALID_INPUT and np.isnan(float(bad.cost))
    with pytest.raises(ValueError, match="emd_1d"):
        ot_jax.emd_1d(x, y, -a, b)


@pytest.mark.parametrize("weights", ["uniform", "random"])
@pytest.mark.parametrize("p", [1.0, 2.0])
@pytest.mark.parametrize("m", [45, 60])  # m == n takes the shared-breakpoint fast path
def test_sliced_same_directions_as_pot(rng, weights, p, m):
    x, y = rng.normal(size=(60, 3)), rng.normal(1.0, 1.0, size=(m, 3))
    a = b = None
    if weights == "random":
        a, b = rng.uniform(0.1, 1, 60), rng.uniform(0.1, 1, m)
        a, b = a / a.sum(), b / b.sum()
    proj = ot.sliced.get_random_projections(3, 50, seed=0)  # [d, k], unit columns
    ref = ot.sliced_wasserstein_distance(x, y, a, b, p=p, projections=proj)
    ours = ot_jax.sliced_wasserstein(None, x, y, a, b, p=p, projections=proj.T)
    np.testing.assert_allclose(float(ours), ref, rtol=1e-10)


def test_sliced_random_directions_within_monte_carlo_error(rng):
    """Random-direction estimates (ours and POT's) agree with the sliced value to 4 MC std.

    The 'exact' sliced value is the mean over 5000 directions; the per-direction W_2^2
    values give the Monte-Carlo std of a k-direction mean, s / sqrt(k).
    """
    x, y = rng.normal(size=(200, 3)), rng.normal(size=(150, 3)) * np.array([2.0, 1.0, 0.5]) + 1.0
    theta = np.asarray(jax.random.normal(jax.random.PRNGKey(42), (5000, 3)))
    theta = theta / np.linalg.norm(theta, axis=1, keepdims=True)
    per_dir = np.asarray(jax.jit(jax.vmap(lambda t: ot_jax.wasserstein_1d(x @ t, y @ t, p=2.0)))(theta)) ** 2
    exact_sq, s = per_dir.mean(), per_dir.std()
    k = 200
    ours_sq = float(ot_jax.sliced_wasserstein(jax.random.PRNGKey(3), x, y, n_projections=k, p=2.0)) ** 2
    pot_sq = ot.sliced_wasserstein_distance(x, y, n_projections=k, p=2, seed=3) ** 2
    tol = 4 * s / np.sqrt(k) + 4 * s / np.sqrt(len(theta))
    assert abs(ours_sq - exact_sq) < tol
    assert abs(pot_sq - exact_sq) < tol
    # and the max over the same directions is the largest per-direction value
    sw = ot_jax.sliced_wasserstein(jax.random.PRNGKey(3), x, y, n_projections=k, p=2.0)
    msw = ot_jax.sliced_wasserstein(jax.random.PRNGKey(3), x, y, n_projections=k, p=2.0, max_sliced=True)
    assert float(msw) >= float(sw)
    np.testing.assert_allclose(float(msw) ** 2, per_dir.max(), rtol=0.1)  # best of 200 vs best of 5000
    msw_all = ot_jax.sliced_wasserstein(None, x, y, p=2.0, projections=theta, max_sliced=True)
    np.testing.assert_allclose(float(msw_all) ** 2, per_dir.max(), rtol=1e-10)


def test_sliced_grad_jit_vmap(rng):
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 0.5
    key = jax.random.PRNGKey(0)
    f = jax.jit(lambda x_: ot_jax.sliced_wasserstein(key, x_, y, n_projections=20, p=2.0))
    g = np.asarray(jax.grad(f)(jnp.asarray(x)))
    h, idx = 1e-6, [(0, 0), (3, 1), (17, 0)]
    for i, j in idx:
        e = np.zeros_like(x)
        e[i, j] = h
        fd = (float(f(x + e)) - float(f(x - e))) / (2 * h)
        np.testing.assert_allclose(g[i, j], fd, rtol=1e-5, atol=1e-8)
    jf = jax.jit(ot_jax.sliced_wasserstein, static_argnames=("n_projections", "p", "max_sliced"))
    np.testing.assert_allclose(float(jf(key, x, y, n_projections=20, p=2.0)), float(f(x)), rtol=1e-12)
    keys = jax.random.split(key, 4)
    batched = jax.vmap(lambda k: ot_jax.sliced_wasserstein(k, x, y, n_projections=20))(keys)
    loop = [float(ot_jax.sliced_wasserstein(k, x, y, n_projections=20)) for k in keys]
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-12)


def test_sliced_one_dimensional_is_exact(rng):
    x, y, a, b = _weighted(rng, 20, 30)
    sw = ot_jax.sliced_wasserstein(jax.random.PRNGKey(0), x[:, None], y[:, None], a, b, n_projections=5, p=2.0)
    np.testing.assert_allclose(float(sw), float(ot_jax.wasserstein_1d(x, y, a, b, p=2.0)), rtol=1e-12)


def test_invalid_inputs_raise_readable_errors(rng):
    x, y = rng.normal(size=5), rng.normal(size=4)
    with pytest.raises(ValueError, match="p must be a finite number >= 1"):
        ot_jax.wasserstein_1d(x, y, p=0.5)
    with pytest.raises(ValueError, match="x must be a 1-D array"):
        ot_jax.wasserstein_1d(x[:, None], y)
    with pytest.raises(ValueError, match="y is empty"):
        ot_jax.wasserstein_1d(x, y[:0])
    with pytest.raises(ValueError, match=r"weights a have shape \(4,\) but x has 5"):
        ot_jax.wasserstein_1d(x, y, np.full(4, 0.25))
    with pytest.raises(ValueError, match="weights b are negative at index 1"):
        ot_jax.wasserstein_1d(x, y, None, np.array([0.5, -0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="unequal total mass"):
        ot_jax.wasserstein_1d(x, y, np.full(5, 0.2), np.full(4, 0.5))
    with pytest.raises(ValueError, match="weights a contain NaN"):
        ot_jax.wasserstein_1d(x, y, np.array([np.nan, 0.25, 0.25, 0.25, 0.25]))
    with pytest.raises(ValueError, match="points x contain NaN"):
        ot_jax.wasserstein_1d(np.array([np.nan, 1.0]), y)
    X, Y, key = rng.normal(size=(5, 3)), rng.normal(size=(4, 2)), jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="x has dimension d = 3 but y has d = 2"):
        ot_jax.sliced_wasserstein(key, X, Y)
    with pytest.raises(ValueError, match="n_projections must be an integer >= 1"):
        ot_jax.sliced_wasserstein(key, X, X, n_projections=0)
    with pytest.raises(ValueError, match="must be a 2-D array of points"):
        ot_jax.sliced_wasserstein(key, X[:, 0], X)
    with pytest.raises(ValueError, match=r"projections must have shape \[k, 3\]"):
        ot_jax.sliced_wasserstein(key, X, X, projections=np.ones((4, 2)))
    with pytest.raises(ValueError, match="unequal total mass"):
        ot_jax.sliced_wasserstein(key, X, X, np.full(5, 0.2), np.full(5, 0.3))
    # inside jit value errors cannot raise: the result is NaN
    bad = jax.jit(lambda a: ot_jax.wasserstein_1d(x, y, a))(jnp.array([0.2, 0.2, 0.2, 0.2, -0.8]))
    assert np.isnan(float(bad))
