"""ot_jax.assignment (auction and Hungarian) against scipy's linear_sum_assignment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import ot_jax
from ot_jax.solvers.results import Status

METHODS = ["auction", "hungarian"]


def optimum(cost):
    rows, cols = linear_sum_assignment(np.asarray(cost))
    return np.asarray(cost)[rows, cols].sum()


def assert_injection(perm, n, m):
    perm = np.asarray(perm)
    assert perm.shape == (n,) and perm.dtype == np.int32
    assert perm.min() >= 0 and perm.max() < m
    assert len(np.unique(perm)) == n


def check_optimal(out, cost, exact):
    cost = np.asarray(cost)
    n, m = cost.shape
    assert_injection(out.permutation, n, m)
    assert bool(out.converged) and int(out.status) == Status.CONVERGED
    value = float(out.cost)
    assert value == pytest.approx(cost[np.arange(n), np.asarray(out.permutation)].sum(), rel=1e-12)
    ref = optimum(cost)
    if exact:
        assert value == pytest.approx(ref, rel=1e-10, abs=1e-10)
    else:  # auction on float costs: within the reported bound of the optimum (and close in any case)
        assert ref - 1e-10 <= value <= ref + float(out.bound) + 1e-10
        assert value == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [5, 30, 100])
def test_float_costs_match_scipy(rng, method, n):
    cost = rng.uniform(size=(n, n))
    out = ot_jax.assignment(cost, method=method)
    check_optimal(out, cost, exact=method == "hungarian")
    if method == "hungarian":
        assert float(out.bound) == 0.0


def test_auction_large_float(rng):
    cost = rng.uniform(size=(300, 300))
    out = ot_jax.assignment(cost, method="auction")
    check_optimal(out, cost, exact=False)
    span = cost.max() - cost.min()
    assert float(out.bound) == pytest.approx(1e-7 * span)  # default: bound = 1e-7 * (max C - min C)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,m", [(40, 40), (25, 40), (1, 6)])
def test_integer_costs_are_exact(rng, method, n, m):
    cost = rng.integers(0, 1000, size=(n, m))
    out = ot_jax.assignment(cost, method=method)
    check_optimal(out, cost, exact=True)
    if method == "auction":
        assert float(out.bound) < 1.0  # m * eps_final < 1 with integer costs: optimal


def test_auction_user_eps_final_integer_valued_floats(rng):
    cost = rng.integers(0, 50, size=(30, 30)).astype(np.float64)
    out = ot_jax.assignment(cost, eps_final=0.99 / 30)
    check_optimal(out, cost, exact=True)
    assert float(out.bound) == pytest.approx(0.99)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,m", [(20, 35), (7, 8), (1, 1)])
def test_rectangular_float(rng, method, n, m):
    cost = rng.normal(size=(n, m)) * 3.0 + 10.0
    out = ot_jax.assignment(cost, method=method)
    check_optimal(out, cost, exact=method == "hungarian")


@pytest.mark.parametrize("method", METHODS)
def test_ties_and_constant_costs(method):
    for cost in (np.zeros((6, 6)), np.ones((4, 9)), np.tile(np.arange(5.0), (5, 1))):
        out = ot_jax.assignment(cost, method=method)
        check_optimal(out, cost, exact=True)


@pytest.mark.parametrize("method", METHODS)
def test_float32(rng, method):
    cost = rng.uniform(size=(40, 40)).astype(np.float32)
    out = ot_jax.assignment(jnp.asarray(cost, jnp.float32), method=method)
    assert out.cost.dtype == jnp.float32
    assert_injection(out.permutation, 40, 40)
    ref = optimum(cost.astype(np.float64))
    assert float(out.cost) <= ref + float(out.bound) + 1e-4
    assert float(out.cost) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap_equal_loop(rng, method):
    costs = rng.uniform(size=(16, 20, 20))
    fn = lambda c: ot_jax.assignment(c, method=method)  # noqa: E731
    batched = jax.jit(jax.vmap(fn))(costs)
    single = jax.jit(fn)
    for k in range(16):
        one = single(costs[k])
        np.testing.assert_array_equal(np.asarray(batched.permutation[k]), np.asarray(one.permutation))
        assert float(batched.cost[k]) == pytest.approx(float(one.cost), rel=1e-12)
        assert float(batched.cost[k]) == pytest.approx(optimum(costs[k]), rel=1e-6)
        assert int(batched.n_iters[k]) == int(one.n_iters)
    assert bool(jnp.all(batched.converged))


@pytest.mark.parametrize("method", METHODS)
def test_grad_wrt_cost_is_assignment_matrix(rng, method):
    cost = rng.uniform(size=(9, 12))
    grad = jax.grad(lambda c: ot_jax.assignment(c, method=method).cost)(jnp.asarray(cost))
    out = ot_jax.assignment(cost, method=method)
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(out.matrix(12)))
    assert np.asarray(grad).sum() == 9


@pytest.mark.parametrize("method", METHODS)
def test_grad_wrt_points_matches_finite_differences(rng, method):
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))

    def loss(x, y):
        cost = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        return ot_jax.assignment(cost, method=method).cost

    gx, gy = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, y)
    h = 1e-6
    for arr, grad, which in ((x, gx, 0), (y, gy, 1)):
        for idx in [(0, 0), (3, 1), (9, 0)]:
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += h
            minus[idx] -= h
            args_p = (plus, y) if which == 0 else (x, plus)
            args_m = (minus, y) if which == 0 else (x, minus)
            fd = (float(loss(*args_p)) - float(loss(*args_m))) / (2 * h)
            assert float(grad[idx]) == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_point_cloud_input(rng):
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(15, 3))
    out = ot_jax.assignment(ot_jax.PointCloud(x, y), method="hungarian")
    check_optimal(out, ((x[:, None] - y[None]) ** 2).sum(-1), exact=True)


def test_max_iters_reports_status_and_keeps_a_valid_injection(rng):
    cost = rng.uniform(size=(30, 30))
    out = ot_jax.assignment(cost, max_iters=3)
    assert int(out.status) == Status.MAX_ITERS and not bool(out.converged)
    assert_injection(out.permutation, 30, 30)
    assert np.isinf(float(out.bound))
    with pytest.raises(Exception, match="max_iters"):
        jax.block_until_ready(ot_jax.assignment(cost, max_iters=3, throw=True).cost)


@pytest.mark.parametrize(
    "cost,kwargs,match",
    [
        (np.ones(4), {}, r"must be 2-D"),
        (np.ones((0, 3)), {}, r"empty problem"),
        (np.ones((5, 3)), {}, r"more rows than columns \(5 > 3\)"),
        (np.where(np.eye(3) > 0, np.nan, 1.0), {}, r"costs contain NaN or inf \(first at \[0, 0\]\)"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), {"method": "hungarian"}, r"costs contain NaN or inf"),
        (np.ones((3, 3)), {"method": "munkres"}, r"unknown method 'munkres'"),
        (np.ones((3, 3)), {"eps_final": 0.0}, r"eps_final must be a finite number > 0"),
        (np.ones((3, 3)), {"eps_scale": 1.0}, r"eps_scale must be > 1"),
        (np.ones((3, 3)), {"max_iters": 0}, r"max_iters must be >= 1"),
    ],
)
def test_bad_inputs_raise(cost, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ot_jax.assignment(cost, **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_traced_invalid_input_sets_status(method):
    cost = np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 3.0]])
    out = jax.jit(lambda c: ot_jax.assignment(c, method=method))(cost)
    assert int(out.status) == Status.INVALID_INPUT and not bool(out.converged)
    assert_injection(out.permutation, 2, 3)
    with pytest.raises(Exception, match="invalid input"):
        jax.block_until_ready(jax.jit(lambda c: ot_jax.assignment(c, method=method, throw=True).cost)(cost))
