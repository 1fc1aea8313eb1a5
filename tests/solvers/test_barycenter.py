"""Barycenters: IPOT reaches the exact (LP) barycenter, Sinkhorn/IBP equals POT and is blurred as predicted."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from scipy.optimize import brentq

import ot_jax
from ot_jax.solvers.results import Status


# ----------------------------------------------------------------------------- helpers
def line(n):
    """1-D grid on [0, 1] and its squared-distance cost ``[n, n]``."""
    x = np.linspace(0.0, 1.0, n)
    return x, (x[:, None] - x[None, :]) ** 2


def gaussian(x, mean, std):
    h = np.exp(-((x - mean) ** 2) / (2 * std**2))
    return h / h.sum()


def moments(x, q):
    q = np.asarray(q, float)
    mean = q @ x / q.sum()
    return mean, np.sqrt(q @ (x - mean) ** 2 / q.sum())


def objective(q, measures, weights, cost):
    """Exact ``sum_k lambda_k W(q, p_k)`` by POT's network simplex (q clipped at 0 and renormalised)."""
    q = np.clip(np.array(q, float), 0.0, None)
    q /= q.sum()
    return sum(w * ot.emd2(q, p, cost) for w, p in zip(weights, measures))


def entropic_barycenter_std(stds, weights, eps):
    """Std of the IBP barycenter of 1-D Gaussians, problem ``min sum_k lambda_k (<C, G_k> - eps H(G_k))``.

    For Gaussian couplings with correlation rho_k between q = N(m, s^2) and N(m_k, s_k^2),
    the objective is ``sum_k lambda_k (s^2 + s_k^2 - 2 rho_k s s_k - eps log s + eps/2 log(1 - rho_k^2))``
    up to constants; stationarity gives ``2 s s_k (1 - rho_k^2) = eps rho_k`` and
    ``2 s - 2 sum_k lambda_k rho_k s_k - eps / s = 0`` (for equal s_k: ``s^2 = s_k^2 + eps / 2``).
    """
    def rho(s, sk):
        c = eps / (2 * s * sk)
        return (-c + np.sqrt(c * c + 4)) / 2

    return brentq(lambda s: 2 * s - 2 * sum(w * rho(s, sk) * sk for w, sk in zip(weights, stds)) - eps / s,
                  1e-6, 10.0)


@pytest.fixture(scope="module")
def gaussians():
    """N(0.3, 0.04) and N(0.7, 0.06) on 150 points; the W2 barycenter is N(0.5, 0.05)."""
    x, cost = line(150)
    return x, cost, np.stack([gaussian(x, 0.3, 0.04), gaussian(x, 0.7, 0.06)])


@pytest.fixture(scope="module")
def small_lp():
    """K = 3 positive histograms on 30 random points of the plane, and the exact (LP) barycenter objective."""
    rng = np.random.default_rng(1)
    y = rng.uniform(size=(30, 2))
    cost = ot.dist(y, y)
    cost /= cost.max()
    measures = rng.uniform(0.2, 1.0, size=(3, 30))
    measures /= measures.sum(axis=1, keepdims=True)
    weights = np.array([0.2, 0.3, 0.5])
    lp = ot.lp.barycenter(measures.T, cost, weights)
    return cost, measures, weights, lp, objective(lp, measures, weights, cost)


# ----------------------------------------------------------------------------- accuracy
def test_ipot_barycenter_of_gaussians_is_the_w2_barycenter(gaussians):
    """Mean and std are the lambda-averages (exact W2 barycenter of 1-D Gaussians); objective = LP's."""
    x, cost, p = gaussians
    out = ot_jax.barycenter(p, cost)
    assert bool(out.converged), (int(out.status), int(out.n_iters))
    mean, std = moments(x, out.barycenter)
    assert abs(mean - 0.5) < 1e-4
    assert abs(std - 0.05) < 5e-4  # grid spacing 6.7e-3
    np.testing.assert_allclose(float(jnp.sum(out.barycenter)), 1.0, atol=1e-4)
    lp = ot.lp.barycenter(p.T, cost, np.array([0.5, 0.5]))
    ref = objective(lp, p, [0.5, 0.5], cost)
    assert abs(objective(out.barycenter, p, [0.5, 0.5], cost) - ref) <= 1e-5 * ref


def test_ipot_equal_std_matches_the_discretised_midpoint_gaussian():
    x, cost = line(150)
    p = np.stack([gaussian(x, 0.3, 0.05), gaussian(x, 0.7, 0.05)])
    out = ot_jax.barycenter(p, cost)
    assert np.abs(np.asarray(out.barycenter) - gaussian(x, 0.5, 0.05)).sum() < 5e-3


def test_sinkhorn_blur_is_the_predicted_one_and_grows_with_eps(gaussians):
    """Std of the IBP barycenter = the closed form for Gaussians, increasing in eps, above IPOT's."""
    x, cost, p = gaussians
    ipot_std = moments(x, ot_jax.barycenter(p, cost).barycenter)[1]
    stds = []
    for eps in (1e-4, 3e-4, 1e-3, 3e-3):
        out = ot_jax.barycenter(p, cost, method="sinkhorn", epsilon=eps, tol=1e-9)
        assert bool(out.converged)
        std = moments(x, out.barycenter)[1]
        np.testing.assert_allclose(std, entropic_barycenter_std((0.04, 0.06), (0.5, 0.5), eps), rtol=2e-3)
        stds.append(std)
    assert np.all(np.diff(stds) > 0) and stds[0] > ipot_std


@pytest.mark.slow  # 64,000 IPOT steps (~10 s); the fast suite checks the LP objective on the Gaussians above
def test_ipot_objective_equals_the_lp_barycenter(small_lp):
    """The LP is degenerate (its barycenter is not unique: L1(q, q_LP) ~ 0.08 at equal objective), so compare
    the objective sum_k lambda_k W(q, p_k), evaluated exactly at IPOT's q."""
    cost, measures, weights, lp, ref = small_lp
    out = ot_jax.barycenter(measures, cost, weights=weights, tol=1e-5, max_iters=100000)
    assert bool(out.converged), (int(out.status), int(out.n_iters))
    assert abs(objective(out.barycenter, measures, weights, cost) - ref) <= 1e-5 * ref
    assert abs(float(out.cost) - ref) <= 1e-4 * ref
    rows, cols = out.marginals
    np.testing.assert_allclose(np.asarray(rows), np.broadcast_to(np.asarray(out.barycenter), rows.shape), atol=1e-10)
    np.testing.assert_allclose(np.asarray(cols), measures, atol=1e-4)


def test_thesis_order_of_updates_misses_the_barycenter_ours_does_not():
    """Algorithm 2 as printed recomputes a_k = q / (H_k b_k) at the start of every proximal step, which breaks
    sum_k lambda_k log a_k = 0 (the barycenter's dual condition) and converges to a wrong point when
    H_k b_k varies over the support; our order (a_k updated last, starting from 1) keeps it."""
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(30, 1))
    cost = ot.dist(y, y)
    p = rng.uniform(size=(3, 30)) ** 3
    p /= p.sum(axis=1, keepdims=True)
    lam = np.array([0.2, 0.3, 0.5])
    ref = objective(ot.lp.barycenter(p.T, cost, lam), p, lam, cost)
    beta, steps = 0.01 * cost.max(), 2000
    kernel = np.exp(-cost / beta)
    plans, b, q = np.ones((3, 30, 30)), np.full((3, 30), 1 / 30), np.full(30, 1 / 30)
    for _ in range(steps):  # the thesis' scaling form, L = 1, float64
        h = kernel[None] * plans
        a = q[None] / np.einsum("kij,kj->ki", h, b)
        b = p / np.einsum("kij,ki->kj", h, a)
        q = np.exp(lam @ np.log(a * np.einsum("kij,kj->ki", h, b)))
        plans = a[:, :, None] * h * b[:, None, :]
    thesis = objective(q, p, lam, cost) / ref - 1
    ours = objective(ot_jax.barycenter(p, cost, weights=lam, tol=0.0, max_iters=steps).barycenter, p, lam, cost)
    ours = ours / ref - 1
    assert thesis > 0.05 and ours < 0.01, (thesis, ours)


@pytest.mark.parametrize("weights,pot_methods", [
    (np.full(3, 1 / 3), ("sinkhorn", "sinkhorn_log")),
    # POT's "sinkhorn" starts from an unweighted geometric mean and, like the thesis' order, keeps the
    # wrong invariant: with non-uniform weights only "sinkhorn_log" is right (PythonOT/POT PR #870).
    (np.array([0.5, 0.2, 0.3]), ("sinkhorn_log",)),
])
def test_sinkhorn_equals_pot(rng, weights, pot_methods):
    """Same problem as POT's ``ot.barycenter(A, M, reg)``: kernel exp(-M / reg), objective <C, G> - reg H(G)."""
    x, cost = line(60)
    a = rng.uniform(0.1, 1.0, size=(3, 60))
    a /= a.sum(axis=1, keepdims=True)
    for pot_method in pot_methods:
        ref = ot.barycenter(a.T, cost, 1e-2, weights=weights, method=pot_method, stopThr=1e-13, numItermax=100000)
        for mode in ("log", "scaling"):
            out = ot_jax.barycenter(a, cost, weights=weights, method="sinkhorn", epsilon=1e-2, mode=mode, tol=1e-12)
            assert bool(out.converged)
            np.testing.assert_allclose(np.asarray(out.barycenter), ref, atol=1e-10)


def test_grid_equals_dense_and_pot_convolutional(rng):
    grid = ot_jax.Grid.regular((12, 10))
    dense = np.asarray(grid.cost_matrix)
    a = rng.uniform(0.1, 1.0, size=(3, 120))
    a /= a.sum(axis=1, keepdims=True)
    for kw in (dict(method="ipot", tol=1e-3), dict(method="sinkhorn", epsilon=1e-2)):
        on_grid, on_dense = ot_jax.barycenter(a, grid, **kw), ot_jax.barycenter(a, dense, **kw)
        assert int(on_grid.n_iters) == int(on_dense.n_iters)
        np.testing.assert_allclose(np.asarray(on_grid.barycenter), np.asarray(on_dense.barycenter), atol=1e-10)
        np.testing.assert_allclose(float(on_grid.cost), float(on_dense.cost), rtol=1e-8)
    # Solomon et al.'s convolutional barycenter (POT, images on the same [0, 1]^2 grid).
    ref = ot.bregman.convolutional_barycenter2d(a.reshape(3, 12, 10), 1e-2, stopThr=1e-13, numItermax=100000)
    out = ot_jax.barycenter(a, grid, method="sinkhorn", epsilon=1e-2, mode="scaling", tol=1e-12)
    np.testing.assert_allclose(np.asarray(out.barycenter).reshape(12, 10), ref, atol=1e-10)


def test_pointcloud_and_rectangular_support(rng):
    """A PointCloud(y, y) gives the dense result; a barycenter on other points (m != n) has the right marginals."""
    y = rng.uniform(size=(25, 2))
    a = rng.uniform(0.1, 1.0, size=(2, 25))
    a /= a.sum(axis=1, keepdims=True)
    dense = ot_jax.barycenter(a, ot.dist(y, y))
    cloud = ot_jax.barycenter(a, ot_jax.PointCloud(y, y))
    assert int(cloud.n_iters) == int(dense.n_iters)
    np.testing.assert_allclose(np.asarray(cloud.barycenter), np.asarray(dense.barycenter), atol=1e-8)
    z = rng.uniform(size=(15, 2))
    out = ot_jax.barycenter(a, ot_jax.PointCloud(z, y))
    assert out.barycenter.shape == (15,) and bool(out.converged)
    rows, cols = out.marginals
    np.testing.assert_allclose(np.asarray(cols), a, atol=1e-4)
    assert out.plans.shape == (2, 15, 25)


# ----------------------------------------------------------------------------- weights, zeros, float32
def test_weight_on_one_measure_returns_it(rng):
    x, cost = line(80)
    a = rng.uniform(0.1, 1.0, size=(2, 80))
    a /= a.sum(axis=1, keepdims=True)
    out = ot_jax.barycenter(a, cost, weights=np.array([1.0, 0.0]))
    assert bool(out.converged)
    assert np.abs(np.asarray(out.barycenter) - a[0]).sum() < 1e-6
    # Sinkhorn with one measure: one column projection of exp(-C/eps), q = K (p / K^T 1).
    eps = 1e-3
    out = ot_jax.barycenter(a, cost, weights=np.array([0.0, 1.0]), method="sinkhorn", epsilon=eps)
    kernel = np.exp(-cost / eps)
    np.testing.assert_allclose(np.asarray(out.barycenter), kernel @ (a[1] / kernel.sum(axis=0)), atol=1e-12)


def test_sparse_histograms_with_zeros(rng):
    x, cost = line(60)
    a = rng.uniform(size=(3, 60)) * (rng.uniform(size=(3, 60)) < 0.4)
    a /= a.sum(axis=1, keepdims=True)
    for kw in (dict(max_iters=30000), dict(method="sinkhorn", epsilon=1e-2)):
        out = ot_jax.barycenter(a, cost, **kw)
        assert bool(out.converged) and np.all(np.isfinite(np.asarray(out.barycenter)))
        assert np.all(np.isneginf(np.asarray(out.g)[a == 0]))


def test_float32(gaussians):
    x, cost, p = gaussians
    out = jax.jit(lambda p, c: ot_jax.barycenter(p, c))(jnp.asarray(p, jnp.float32), jnp.asarray(cost, jnp.float32))
    assert out.barycenter.dtype == jnp.float32 and bool(out.converged)
    mean, std = moments(x, out.barycenter)
    assert abs(mean - 0.5) < 1e-3 and abs(std - 0.05) < 1e-3


def test_float32_implicit_gradient_matches_float64(rng):
    """The GMRES-based implicit gradient in float32 agrees with float64 along mass-preserving directions."""
    x, cost = line(50)
    p = np.stack([np.exp(-((x - c) ** 2) / 0.01) + 1e-3 for c in (0.3, 0.7)])
    p /= p.sum(axis=1, keepdims=True)
    w = rng.normal(size=50)

    def grad(dtype):
        loss = lambda p: jnp.sum(ot_jax.barycenter(p, jnp.asarray(cost, dtype), method="sinkhorn",  # noqa: E731
                                                   epsilon=0.01).barycenter * jnp.asarray(w, dtype))
        g = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(p, dtype)), np.float64)
        return g - g.mean(axis=1, keepdims=True)

    g64 = grad(jnp.float64)
    with jax.enable_x64(False):
        g32 = grad(jnp.float32)
    assert np.abs(g32 - g64).max() <= 2e-5 * np.abs(g64).max()


def test_scaling_mode_underflow_is_reported(gaussians):
    x, cost, p = gaussians
    out = ot_jax.barycenter(p, cost, method="sinkhorn", epsilon=1e-4, mode="scaling")
    assert int(out.status) == Status.NON_FINITE and not bool(out.converged)


# ----------------------------------------------------------------------------- jit, vmap, batch, grad, throw
def test_batched_input_equals_loop_and_vmap(rng):
    x, cost = line(24)
    means, stds = rng.uniform(0.3, 0.7, size=(2, 2, 2)), rng.uniform(0.05, 0.1, size=(2, 2, 2))
    a = np.exp(-((x - means[..., None]) ** 2) / (2 * stds[..., None] ** 2))
    a /= a.sum(axis=-1, keepdims=True)
    batched = ot_jax.barycenter(a, cost, max_iters=500)
    assert batched.barycenter.shape == (2, 2, 24) and batched.f.shape == (2, 2, 2, 24)
    assert batched.cost.shape == (2, 2) and batched.plans.shape == (2, 2, 2, 24, 24)
    solve = jax.jit(lambda p: ot_jax.barycenter(p, cost, max_iters=500))
    for i in range(2):
        for j in range(2):
            single = solve(a[i, j])
            np.testing.assert_allclose(np.asarray(batched.barycenter[i, j]), np.asarray(single.barycenter),
                                       atol=1e-12)
            assert int(batched.n_iters[i, j]) == int(single.n_iters)
            np.testing.assert_allclose(float(batched.cost[i, j]), float(single.cost), rtol=1e-8)
    # jax.vmap over the problems gives the internally batched result.
    sink = dict(method="sinkhorn", epsilon=1e-2)
    mapped = jax.jit(jax.vmap(lambda p: ot_jax.barycenter(p, cost, **sink).barycenter))(a.reshape(4, 2, 24))
    np.testing.assert_allclose(np.asarray(mapped).reshape(2, 2, 24),
                               np.asarray(ot_jax.barycenter(a, cost, **sink).barycenter), atol=1e-12)


@pytest.mark.parametrize("method,kw", [
    pytest.param("sinkhorn", dict(epsilon=0.05), marks=pytest.mark.slow),  # ~11 s; Sinkhorn's implicit gradient is checked fast
    ("ipot", dict(beta=0.05)),
])
def test_unrolled_grad_matches_finite_differences(rng, method, kw):
    x, cost = line(8)
    a0 = rng.uniform(0.5, 1.0, size=(2, 8))
    w = rng.normal(size=8)

    @jax.jit
    def loss(a):
        a = a / a.sum(axis=1, keepdims=True)
        out = ot_jax.barycenter(a, cost, method=method, grad_mode="unroll", max_iters=60, tol=1e-10, **kw)
        return jnp.sum(out.barycenter * w)

    grad = np.asarray(jax.grad(loss)(a0))
    h = 1e-6
    for k, i in [(0, 0), (0, 5), (1, 3)]:
        e = np.zeros_like(a0)
        e[k, i] = h
        fd = (loss(a0 + e) - loss(a0 - e)) / (2 * h)
        assert abs(fd - grad[k, i]) < 1e-6 * max(1.0, abs(fd)), (k, i, fd, grad[k, i])
    # Forward mode works through the default (early-stopping) loop.
    tangent = rng.normal(size=a0.shape)
    jvp = jax.jvp(lambda a: jnp.sum(ot_jax.barycenter(a / a.sum(1, keepdims=True), cost, method=method,
                                                      max_iters=60, tol=1e-10, **kw).barycenter * w),
                  (a0,), (tangent,))[1]
    fd = (loss(a0 + h * tangent) - loss(a0 - h * tangent)) / (2 * h)
    assert abs(float(jvp) - fd) < 1e-6


def test_throw_inside_jit_and_invalid_status(gaussians):
    x, cost, p = gaussians
    out = ot_jax.barycenter(p, cost, tol=1e-12, max_iters=20)
    assert int(out.status) == Status.MAX_ITERS and not bool(out.converged)
    with pytest.raises(Exception, match="did not converge"):
        jax.block_until_ready(jax.jit(lambda p: ot_jax.barycenter(p, cost, tol=1e-12, max_iters=20,
                                                                  throw=True).barycenter)(p))
    bad = p.copy()
    bad[1] *= 1.5  # unequal mass: raises eagerly, INVALID_INPUT under jit
    out = jax.jit(lambda p: ot_jax.barycenter(p, cost, max_iters=20))(bad)
    assert int(out.status) == Status.INVALID_INPUT
    out = jax.jit(lambda b: ot_jax.barycenter(p, cost, beta=b, max_iters=20))(-1.0)
    assert int(out.status) == Status.INVALID_INPUT


# ----------------------------------------------------------------------------- bad input
P2 = np.full((2, 4), 0.25)
C4 = np.abs(np.arange(4.0)[:, None] - np.arange(4.0)[None, :])


@pytest.mark.parametrize(
    "measures,geom,kw,match",
    [
        (P2, np.ones((4, 5)), {}, r"measures have 4 bins .* the geometry has 5 columns"),
        (np.full(4, 0.25), C4, {}, r"measures must have shape \[K, n\]"),
        (np.zeros((0, 4)), C4, {}, r"empty problem"),
        (np.array([[0.5, 0.5, 0.5, -0.5], [0.25] * 4]), C4, {}, r"measures are negative at index \(0, 3\)"),
        (np.array([[0.5, np.nan, 0.25, 0.25], [0.25] * 4]), C4, {}, r"measures contain NaN or inf"),
        (np.array([[0.5] * 4, [0.25] * 4]), C4, {}, r"unequal total mass"),
        (np.zeros((2, 4)), C4, {}, r"zero total mass"),
        (P2, C4, dict(weights=[0.5, 0.6]), r"weights must sum to 1"),
        (P2, C4, dict(weights=[1.5, -0.5]), r"weights are negative at index 1"),
        (P2, C4, dict(weights=[1.0]), r"weights have shape \(1,\) but there are 2 measures"),
        (P2, C4, dict(beta=0.0), r"beta must be a finite number > 0"),
        (P2, C4, dict(method="sinkhorn", epsilon=-1.0), r"epsilon must be a finite number > 0"),
        (P2, C4, dict(method="sinkhorn"), r"needs epsilon"),
        (P2, C4, dict(epsilon=0.1), r"epsilon is for method='sinkhorn'"),
        (P2, C4, dict(method="lp"), r"method must be one of"),
        (P2, C4, dict(mode="scaling"), r"method='ipot' runs in the log domain only"),
        (P2, C4, dict(grad_mode="implicit"), r"grad_mode=.implicit. is for method=.sinkhorn."),
        (P2, C4, dict(grad_mode="envelope"), r"grad_mode must be one of"),
        (P2, np.where(C4 > 2, np.inf, C4), {}, r"the costs contain NaN or inf"),
    ],
)
def test_bad_input_raises(measures, geom, kw, match):
    with pytest.raises(ValueError, match=match):
        ot_jax.barycenter(measures, geom, **kw)


@pytest.mark.slow
def test_ipot_gaussians_float64_tight(gaussians):
    """At tol 1e-6 the moments are those of the W2 barycenter to the grid's resolution."""
    x, cost, p = gaussians
    out = ot_jax.barycenter(p, cost, tol=1e-6, max_iters=100000)
    mean, std = moments(x, out.barycenter)
    assert abs(mean - 0.5) < 1e-5 and abs(std - 0.05) < 1e-4


@pytest.mark.parametrize("mode", ["log", "scaling"])
def test_implicit_grad_of_every_input_matches_finite_differences(rng, mode):
    """Default Sinkhorn barycenter: d(q . w + cost) in the points, measures, weights and epsilon."""
    n = 10
    x = jnp.asarray(rng.normal(size=(n, 2)))
    p = jnp.asarray(rng.dirichlet(np.ones(n), size=3))
    lam = jnp.asarray([0.2, 0.5, 0.3])
    w = jnp.asarray(rng.normal(size=n))

    @jax.jit
    def loss(x, p, lam, eps):
        out = ot_jax.barycenter(p, ot_jax.PointCloud(x, x), weights=lam, method="sinkhorn", epsilon=eps,
                                mode=mode, tol=1e-13, max_iters=20000)
        return jnp.sum(out.barycenter * w) + 0.1 * out.cost

    args = (x, p, lam, jnp.asarray(0.3))
    grads = jax.grad(loss, argnums=(0, 1, 2, 3))(*args)
    # Directions that keep the masses equal and the weights summing to 1.
    dirs = [rng.normal(size=x.shape), rng.normal(size=p.shape), rng.normal(size=3), np.ones(())]
    dirs[1] -= dirs[1].mean(axis=1, keepdims=True)
    dirs[2] -= dirs[2].mean()
    h = 1e-6
    for i, (g, d) in enumerate(zip(grads, dirs)):
        shift = lambda t: [a + t * d if j == i else a for j, a in enumerate(args)]
        fd = (float(loss(*shift(h))) - float(loss(*shift(-h)))) / (2 * h)
        assert abs(float(jnp.sum(g * d)) - fd) <= 1e-6 * max(1.0, abs(fd)), (i, float(jnp.sum(g * d)), fd)
    # Forward mode agrees with reverse mode.
    jvp = jax.jvp(lambda x_: loss(x_, *args[1:]), (x,), (jnp.asarray(dirs[0]),))[1]
    np.testing.assert_allclose(float(jvp), float(jnp.sum(grads[0] * dirs[0])), rtol=1e-8)
