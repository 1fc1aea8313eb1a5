"""Free-support barycenters against POT's ``free_support_barycenter`` and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from ot_jax.solvers.results import SolverError, Status

K, N, KB, D = 3, 16, 8, 2  # measures, points per measure, barycenter points, dimension


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    ys = np.stack([rng.uniform(size=(N, D)) + 0.5 * i for i in range(K)])
    ws = np.stack([rng.dirichlet(3.0 * np.ones(N)) for _ in range(K)])
    return ys, ws, rng.uniform(size=(KB, D)), np.array([0.2, 0.3, 0.5])


def test_emd_equals_pot_stacked_and_listed():
    ys, ws, init, lam = _problem()
    ref = ot.lp.free_support_barycenter(list(ys), list(ws), init, weights=lam)
    stacked = ot_jax.free_support_barycenter(ys, init, point_weights=ws, weights=lam)
    assert int(stacked.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(stacked.locations), ref, atol=1e-10)
    listed = ot_jax.free_support_barycenter(list(ys), init, point_weights=list(ws), weights=lam)
    np.testing.assert_allclose(np.asarray(listed.locations), ref, atol=1e-10)
    # the objective at the returned points is sum_k lambda_k W2^2
    b = np.full(KB, 1.0 / KB)
    expected = sum(l * ot.emd2(b, w, ot.dist(ref, y)) for l, w, y in zip(lam, ws, ys))
    assert abs(float(stacked.cost) - expected) <= 1e-10


def test_emd_measures_of_different_sizes_equal_pot():
    rng = np.random.default_rng(1)
    ys = [rng.normal(size=(n, D)) for n in (9, 14, 11)]
    ws = [rng.dirichlet(np.ones(len(y))) for y in ys]
    init = rng.normal(size=(6, D))
    init_weights = rng.dirichlet(np.ones(6))
    ref = ot.lp.free_support_barycenter(ys, ws, init, b=init_weights)
    ours = ot_jax.free_support_barycenter(ys, init, point_weights=ws, init_weights=init_weights)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.locations), ref, atol=1e-10)


def test_barycenter_of_translated_copies_is_the_midpoint():
    """W2 geodesics between translates are translations: the barycenter of z and z + t is z + t/2."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(N, D))
    shift = np.array([3.0, -1.0])
    init = z + 0.05 * rng.normal(size=z.shape)
    out = ot_jax.free_support_barycenter(np.stack([z, z + shift]), init, init_weights=None)
    np.testing.assert_allclose(np.sort(np.asarray(out.locations), axis=0), np.sort(z + shift / 2, axis=0), atol=1e-12)
    assert abs(float(out.cost) - float(np.sum(shift ** 2) / 4)) <= 1e-12


@pytest.mark.parametrize("solver", ["ipot", "sinkhorn"])
def test_iterative_inner_solvers_reach_the_exact_objective(solver):
    """The problem is nonconvex in the locations, so the fixed points may differ; their values agree."""
    ys, ws, init, lam = _problem(3)
    exact = ot_jax.free_support_barycenter(ys, init, point_weights=ws, weights=lam)
    options = dict(solver="ipot") if solver == "ipot" else dict(solver="sinkhorn", epsilon=1e-3, inner_tol=1e-9)
    ours = ot_jax.free_support_barycenter(ys, init, point_weights=ws, weights=lam, inner_max_iters=20000, **options)
    assert int(ours.n_iters) < 100
    # measured: IPOT and Sinkhorn (eps = 1e-3) both within 3e-4 relative of the exact fixed point's value
    assert abs(float(ours.cost) - float(exact.cost)) <= 1e-3 * float(exact.cost)


def test_sinkhorn_inner_solver_equals_pot():
    ys, ws, init, lam = _problem(4)
    eps = 0.05
    ref = ot.bregman.free_support_sinkhorn_barycenter(list(ys), list(ws), init, reg=eps, weights=lam,
                                                      numInnerItermax=100000, stopThr=1e-7, method="sinkhorn_log")
    ours = ot_jax.free_support_barycenter(ys, init, point_weights=ws, weights=lam, solver="sinkhorn", epsilon=eps,
                                          inner_tol=1e-12, inner_max_iters=100000)
    np.testing.assert_allclose(np.asarray(ours.locations), ref, atol=1e-6)


def test_gradients_match_finite_differences():
    ys, ws, init, lam = _problem(5)
    ys, ws = jnp.asarray(ys), jnp.asarray(ws)
    rng = np.random.default_rng(0)
    direction = jnp.asarray(rng.normal(size=ys.shape))
    h = 1e-6

    def locations(y):
        return ot_jax.free_support_barycenter(y, init, point_weights=ws, weights=lam).locations

    probe = jnp.asarray(rng.normal(size=(KB, D)))
    fun = lambda y: jnp.sum(probe * locations(y))  # noqa: E731
    fd = (float(fun(ys + h * direction)) - float(fun(ys - h * direction))) / (2 * h)
    assert abs(float(jnp.sum(jax.grad(fun)(ys) * direction)) - fd) <= 1e-7 * max(1.0, abs(fd))

    cost = lambda y, l: ot_jax.free_support_barycenter(y, init, point_weights=ws, weights=l).cost  # noqa: E731
    fd = (float(cost(ys + h * direction, lam)) - float(cost(ys - h * direction, lam))) / (2 * h)
    assert abs(float(jnp.sum(jax.grad(cost)(ys, lam) * direction)) - fd) <= 1e-7 * max(1.0, abs(fd))
    dl = jnp.array([1.0, -2.0, 1.0])
    fd = (float(cost(ys, lam + h * dl)) - float(cost(ys, lam - h * dl))) / (2 * h)
    assert abs(float(jnp.sum(jax.grad(cost, argnums=1)(ys, jnp.asarray(lam)) * dl)) - fd) <= 1e-7 * max(1.0, abs(fd))


def test_jit_gives_the_same_answer():
    ys, ws, init, lam = _problem(6)
    eager = ot_jax.free_support_barycenter(ys, init, point_weights=ws, weights=lam)
    jitted = jax.jit(lambda y: ot_jax.free_support_barycenter(y, init, point_weights=ws, weights=lam).locations)(ys)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager.locations), atol=1e-12)


def test_bad_input_names_the_argument():
    ys, ws, init, lam = _problem(7)
    fsb = ot_jax.free_support_barycenter
    with pytest.raises(ValueError, match="solver must be one of"):
        fsb(ys, init, solver="lp")
    with pytest.raises(ValueError, match="needs epsilon"):
        fsb(ys, init, solver="sinkhorn")
    with pytest.raises(ValueError, match=r"points\[1\] has dimension 3"):
        fsb([ys[0], np.zeros((4, 3))], init)
    with pytest.raises(ValueError, match="points must be"):
        fsb(ys[0], init)
    with pytest.raises(ValueError, match="point_weights has 2 entries"):
        fsb(ys, init, point_weights=ws[:2])
    with pytest.raises(ValueError, match=r"point_weights\[0\] must sum to 1"):
        fsb(ys, init, point_weights=2 * ws)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        fsb(ys, init, weights=np.ones(K))
    with pytest.raises(ValueError, match="init contains NaN"):
        fsb(ys, np.full((KB, D), np.nan))
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        fsb(ys, init, solver="sinkhorn", epsilon=-1.0)
    with pytest.raises(SolverError, match="MAX_ITERS"):
        fsb(ys, init, point_weights=ws, max_iters=1, throw=True)


def test_ipot_locations_gradient_matches_finite_differences():
    """IPOT plans are exact only to their tolerance, so the plan-fixed derivative is close, not exact
    (measured: 7.6e-5 relative)."""
    ys, ws, init, lam = _problem(5)
    ys, ws = jnp.asarray(ys), jnp.asarray(ws)
    rng = np.random.default_rng(0)
    direction, probe = jnp.asarray(rng.normal(size=ys.shape)), jnp.asarray(rng.normal(size=(KB, D)))

    def fun(y):
        out = ot_jax.free_support_barycenter(y, init, point_weights=ws, weights=lam, solver="ipot", inner_tol=1e-10,
                                             inner_max_iters=100000)
        return jnp.sum(probe * out.locations)

    h = 1e-6
    fd = (float(fun(ys + h * direction)) - float(fun(ys - h * direction))) / (2 * h)
    assert abs(float(jnp.sum(jax.grad(fun)(ys) * direction)) - fd) <= 1e-3 * abs(fd)
