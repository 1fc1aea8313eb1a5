"""Sinkhorn's initializers (``init="gaussian"``, ``"sorting"``) and Anderson acceleration.

They change the number of iterations, never the answer: outputs and gradients equal the
plain run's; the sorting potentials are the exact LP dual; the Gaussian ones equal
OTT-JAX's ``GaussianInitializer``; iterations go down where the benchmark says they do.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.geometry.costs import Euclidean, PNorm, SqEuclidean
from ot_jax.solvers import _initializers


def _clouds(n, m, d, seed=0, dtype=jnp.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = 0.7 * rng.normal(size=(m, d)) + 1.0
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype)


@pytest.mark.parametrize("cost_fn", [SqEuclidean(), Euclidean(), PNorm(p=1.5)], ids=["sq", "euclid", "p1.5"])
def test_sorting_potential_is_the_exact_dual(cost_fn):
    """f from the monotone plan, with g its c-transform, is dual feasible and its value is the LP optimum."""
    rng = np.random.default_rng(3)
    n, m = 40, 55
    x, y = rng.normal(size=(n, 1)), 2.0 * rng.normal(size=(m, 1))
    a = rng.uniform(size=n)
    a[rng.uniform(size=n) < 0.2] = 0.0
    a /= a.sum()
    b = rng.uniform(size=m)
    b /= b.sum()
    geom = ot_jax.PointCloud(jnp.asarray(x), jnp.asarray(y), cost_fn=cost_fn)
    f = np.asarray(_initializers._sorting(geom, jnp.asarray(a), jnp.asarray(b)))
    cost = np.asarray(geom.cost_matrix)
    live = a > 0
    g = (cost[live] - f[live, None]).min(axis=0)
    dual = a[live] @ f[live] + b @ g
    exact = float(ot_jax.emd(jnp.asarray(cost), jnp.asarray(a), jnp.asarray(b)).cost)
    assert abs(dual - exact) < 1e-12 * max(1.0, exact)
    assert (f[live, None] + g[None, :] - cost[live]).max() < 1e-12


def test_gaussian_potential_matches_ott():
    from ott.geometry import pointcloud
    from ott.initializers.linear import initializers
    from ott.problems.linear import linear_problem

    # n = m: OTT-JAX fits unbiased covariances (times n / (n - 1)), ours biased ones; the
    # Monge map is invariant to one common scale of both covariances.
    x, y = _clouds(60, 60, 3)
    ours = _initializers._gaussian(x, y, jnp.full(60, 1 / 60), jnp.full(60, 1 / 60))
    problem = linear_problem.LinearProblem(pointcloud.PointCloud(x, y, epsilon=0.1))
    theirs = initializers.GaussianInitializer().init_fu(problem, lse_mode=True)
    np.testing.assert_allclose(ours - ours.mean(), theirs - theirs.mean(), atol=1e-9)


@pytest.mark.parametrize("options", [{"init": "gaussian"}, {"anderson": 3}, {"init": "gaussian", "anderson": 5},
                                     {"reg_m": 2.0, "anderson": 3}, {"epsilon_init": 1.0, "anderson": 4}],
                         ids=["gaussian", "anderson3", "gaussian+anderson5", "unbalanced+anderson", "scaling+anderson"])
def test_same_answer_and_gradients_as_plain(options):
    """Outputs and implicit gradients (of the cost and of a plan functional) equal the plain run's."""
    x, y = _clouds(30, 20, 2)
    plain_options = {k: v for k, v in options.items() if k == "reg_m"}

    def loss(x, **kw):
        out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.05, tol=1e-11, max_iters=50000, **kw)
        return out.reg_cost + jnp.sum(out.plan[:, 0] ** 2), out

    (value, out), grad = jax.value_and_grad(lambda x: loss(x, **options), has_aux=True)(x)
    (ref_value, ref), ref_grad = jax.value_and_grad(lambda x: loss(x, **plain_options), has_aux=True)(x)
    assert int(out.status) == 0 and int(ref.status) == 0
    assert abs(float(value - ref_value)) < 1e-9
    np.testing.assert_allclose(out.plan, ref.plan, atol=1e-9)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-8)


def test_sorting_init_same_answer_fewer_iterations():
    x, y = _clouds(150, 120, 1, seed=1)
    geom = ot_jax.PointCloud(x, y)
    plain = ot_jax.sinkhorn(geom, epsilon=1e-2, tol=1e-8, max_iters=50000)
    warm = ot_jax.sinkhorn(geom, epsilon=1e-2, tol=1e-8, max_iters=50000, init="sorting")
    assert int(plain.status) == 0 and int(warm.status) == 0
    assert abs(float(warm.reg_cost - plain.reg_cost)) < 1e-8
    np.testing.assert_allclose(warm.plan, plain.plan, atol=1e-8)
    loose = {name: int(ot_jax.sinkhorn(geom, epsilon=1e-2, tol=1e-4, init=init).n_iters)
             for name, init in (("plain", None), ("sorting", "sorting"))}
    assert loose["sorting"] * 2 <= loose["plain"], loose


def test_gaussian_init_and_anderson_save_iterations():
    """The savings the benchmark reports, on a smaller problem (float64, eps = 0.01, tol = 1e-4)."""
    x, y = _clouds(200, 150, 2, seed=2)
    geom = ot_jax.PointCloud(x, y)
    iters = {}
    for name, options in {"plain": {}, "gaussian": {"init": "gaussian"}, "anderson": {"anderson": 5}}.items():
        out = ot_jax.sinkhorn(geom, epsilon=1e-2, tol=1e-4, max_iters=50000, **options)
        assert int(out.status) == 0, name
        iters[name] = int(out.n_iters)
    assert iters["gaussian"] * 1.5 <= iters["plain"], iters
    assert iters["anderson"] * 4 <= iters["plain"], iters


def test_anderson_float32_small_epsilon_converges():
    """In float32 at eps = 1e-3 the mixing pauses at the rounding floor and the plain iterations finish."""
    x, y = _clouds(120, 100, 2, seed=4, dtype=jnp.float32)
    geom = ot_jax.PointCloud(x, y)
    plain = ot_jax.sinkhorn(geom, epsilon=1e-3, tol=1e-4, max_iters=40000)
    fast = ot_jax.sinkhorn(geom, epsilon=1e-3, tol=1e-4, max_iters=40000, anderson=5)
    assert int(plain.status) == 0 and int(fast.status) == 0
    assert int(fast.n_iters) < int(plain.n_iters)
    assert abs(float(fast.reg_cost - plain.reg_cost)) < 1e-4 * abs(float(plain.reg_cost))


def test_under_jit_and_vmap():
    x, y = _clouds(40, 30, 2, dtype=jnp.float32)
    batch = jnp.stack([x, x + 0.5])
    solve = lambda x, **kw: ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.05, **kw).reg_cost
    fast = jax.jit(jax.vmap(lambda x: solve(x, init="gaussian", anderson=3)))(batch)
    plain = jnp.stack([solve(v) for v in batch])
    np.testing.assert_allclose(fast, plain, rtol=1e-4)


@pytest.mark.parametrize("geom_kind, options, message", [
    ("cloud", {"init": "sorting"}, "one-dimensional"),
    ("cloud", {"init": "zeros"}, "init must be a pair"),
    ("matrix", {"init": "gaussian"}, "needs a PointCloud"),
    ("euclid", {"init": "gaussian"}, "squared Euclidean"),
    ("cloud", {"anderson": 0}, "anderson must be"),
    ("cloud", {"anderson": True}, "anderson must be"),
    ("cloud", {"anderson": 2, "mode": "scaling"}, "mode='log'"),
    ("cloud", {"anderson": 2, "grad_mode": "unroll"}, "grad_mode='implicit'"),
])
def test_bad_options_name_the_argument(geom_kind, options, message):
    x, y = _clouds(10, 8, 2, dtype=jnp.float32)
    geom = {"cloud": ot_jax.PointCloud(x, y), "matrix": ot_jax.PointCloud(x, y).cost_matrix,
            "euclid": ot_jax.PointCloud(x, y, cost_fn=Euclidean())}[geom_kind]
    with pytest.raises(ValueError, match=message):
        ot_jax.sinkhorn(geom, epsilon=0.1, **options)


@pytest.mark.parametrize("rho", [(1.0, 1.0), (0.3, 5.0), (2.0, None), (None, 0.5)], ids=["equal", "unequal", "b-hard", "a-hard"])
def test_translation_step_maximises_the_unbalanced_dual(rho):
    """Séjourné et al.'s translation: the closed-form shift is the maximiser of the dual along (f + t, g - t)."""
    import scipy.optimize

    from ot_jax.solvers import _entropic

    sinkhorn_module = __import__("sys").modules["ot_jax.solvers.sinkhorn"]
    rng = np.random.default_rng(5)
    cost = jnp.asarray(rng.uniform(size=(7, 6)))
    a, b = jnp.asarray(rng.uniform(0.5, 1.5, 7) / 7), jnp.asarray(rng.uniform(0.5, 1.5, 6) / 4)
    f, g, eps = 0.1 * jnp.asarray(rng.normal(size=7)), 0.1 * jnp.asarray(rng.normal(size=6)), 0.2
    rho = tuple(None if r is None else jnp.asarray(r) for r in rho)
    dual = lambda t: -float(_entropic._dual_objective(ot_jax.Geometry(cost), a, b, f + t, g - t, eps, rho))
    best = scipy.optimize.minimize_scalar(dual, bracket=(-1.0, 1.0), tol=1e-12).x
    assert abs(float(sinkhorn_module._translation(a, b, f, g, eps, rho)) - best) < 1e-6


def test_unbalanced_converges_fast_at_large_rho():
    """At rho / eps = 2000 the plain unbalanced iteration contracts the translation mode only by
    (rho / (rho + eps))^2 ~ 0.999 per step (POT's scaling iteration needs ~3e4 steps here); with
    the translation step ours takes a few hundred, to POT's plan."""
    import ot

    rng = np.random.default_rng(0)
    n = 60
    x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2)) + 0.5
    a = rng.uniform(0.5, 1.5, n)
    a /= a.sum()
    b = rng.uniform(0.5, 1.5, n)
    b = 1.3 * b / b.sum()
    cost = ot.dist(x, y)
    out = ot_jax.sinkhorn(jnp.asarray(cost), a, b, epsilon=0.05, reg_m=100.0, tol=1e-10, max_iters=5000)
    assert int(out.status) == 0 and int(out.n_iters) <= 1000, int(out.n_iters)
    ref = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, 0.05, 100.0, method="sinkhorn", stopThr=0.0,
                                            numItermax=30000)
    np.testing.assert_allclose(out.plan, ref, atol=1e-9)


def test_divergence_cross_term_accelerated():
    x, y = _clouds(50, 40, 2, seed=6)
    geom = ot_jax.PointCloud(x, y)
    plain = ot_jax.sinkhorn_divergence(geom, epsilon=0.02, tol=1e-9, max_iters=20000)
    fast = ot_jax.sinkhorn_divergence(geom, epsilon=0.02, tol=1e-9, max_iters=20000, init="gaussian", anderson=5)
    assert int(fast.status) == 0 and int(plain.status) == 0
    assert abs(float(fast.divergence - plain.divergence)) < 1e-8
    assert int(fast.xy.n_iters) < int(plain.xy.n_iters)
