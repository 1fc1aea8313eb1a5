"""ot_jax.assignment (auction and Hungarian) against scipy's linear_sum_assignment."""

import functools
import sys

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
        assert ref - 1e-10 <= value <= ref + float(out.cost - out.lower_bound) + 1e-10
        assert value == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [5, 30, 100])
def test_float_costs_match_scipy(rng, method, n):
    cost = rng.uniform(size=(n, n))
    out = ot_jax.assignment(cost, method=method)
    check_optimal(out, cost, exact=method == "hungarian")
    if method == "hungarian":
        assert float(out.cost - out.lower_bound) == 0.0


def test_auction_large_float(rng):
    cost = rng.uniform(size=(300, 300))
    out = ot_jax.assignment(cost, method="auction")
    check_optimal(out, cost, exact=False)
    span = cost.max() - cost.min()
    assert float(out.cost - out.lower_bound) == pytest.approx(1e-7 * span)  # default: bound = 1e-7 * (max C - min C)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,m", [(40, 40), (25, 40), (1, 6)])
def test_integer_costs_are_exact(rng, method, n, m):
    cost = rng.integers(0, 1000, size=(n, m))
    out = ot_jax.assignment(cost, method=method)
    check_optimal(out, cost, exact=True)
    if method == "auction":
        assert float(out.cost - out.lower_bound) < 1.0  # m * eps_final < 1 with integer costs: optimal


def test_auction_user_eps_final_integer_valued_floats(rng):
    cost = rng.integers(0, 50, size=(30, 30)).astype(np.float64)
    out = ot_jax.assignment(cost, eps_final=0.99 / 30)
    check_optimal(out, cost, exact=True)
    assert float(out.cost - out.lower_bound) == pytest.approx(0.99)


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
    assert float(out.cost) <= ref + float(out.cost - out.lower_bound) + 1e-4
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
    assert np.isneginf(float(out.lower_bound))
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


def test_scipy_method_under_jit_vmap_and_grad(rng):
    """method="scipy": the host solver, batched in one call, with the envelope gradient and
    the Hungarian method's optimum on square, rectangular, integer, float32 and invalid inputs."""
    costs = rng.uniform(size=(2, 3, 9, 12))
    fn = jax.jit(lambda c: ot_jax.assignment(c, method="scipy"))
    batched = jax.jit(jax.vmap(jax.vmap(lambda c: ot_jax.assignment(c, method="scipy"))))(costs)
    assert batched.permutation.shape == (2, 3, 9) and bool(jnp.all(batched.converged))
    for i in range(2):
        for j in range(3):
            exact = ot_jax.assignment(costs[i, j], method="hungarian")
            np.testing.assert_array_equal(np.asarray(batched.permutation[i, j]), np.asarray(exact.permutation))
            check_optimal(fn(costs[i, j]), costs[i, j], exact=True)
    grad = jax.grad(lambda c: ot_jax.assignment(c, method="scipy").cost)(jnp.asarray(costs[0, 0]))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(batched.permutation[0, 0][:, None] == np.arange(12)))
    integer = rng.integers(0, 9, size=(6, 6))
    check_optimal(ot_jax.assignment(integer, method="scipy"), integer, exact=True)
    out32 = ot_jax.assignment(jnp.asarray(costs[0, 0], jnp.float32), method="scipy")
    assert out32.cost.dtype == jnp.float32 and out32.permutation.tolist() == batched.permutation[0, 0].tolist()
    bad = jax.jit(lambda c: ot_jax.assignment(c, method="scipy"))(np.where(np.eye(3) > 0, np.nan, 1.0))
    assert int(bad.status) == Status.INVALID_INPUT
    assert_injection(bad.permutation, 3, 3)


# ----------------------------------------------------------------------------- auction internals
# The auction computes bids only for a compacted queue of candidate rows, in a few static
# chunk sizes (lax.switch), with a reverse stage for rectangular problems (see the module
# docstring). The tests below check each of those code paths against scipy.

asg = sys.modules["ot_jax.solvers.assignment"]


def solve_recording(costs):
    """The auction on each of ``costs`` (one shape), traced afresh with a ``_jacobi`` that
    records every ``(pool, chunk size)`` it runs. Returns ``([(perm, bound, status)], used)``."""
    used = set()
    original = asg._jacobi

    def recording(make_round, sizes, sentinel, *args, **kwargs):
        def make(k):
            run = make_round(k)

            def wrapped(carry, queue):
                jax.debug.callback(functools.partial(used.add, (sentinel, k)))
                return run(carry, queue)
            return wrapped
        return original(make, sizes, sentinel, *args, **kwargs)

    asg._jacobi = recording
    try:
        solve = jax.jit(lambda c: asg._solve.__wrapped__(c, 1.0, True, False, method="auction",
                                                         eps_scale=8.0, max_iters=1_000_000))
        results = []
        for cost in costs:
            perm, bound, _, _, status = jax.block_until_ready(solve(jnp.asarray(cost, jnp.float64)))
            results.append((np.asarray(perm), float(bound), int(status)))
    finally:
        asg._jacobi = original
    return results, used


@pytest.mark.parametrize("groups", [1, 16])
def test_best_two_matches_numpy(rng, groups):
    L = 64
    a = np.concatenate([rng.uniform(size=(40, L)), rng.integers(0, 3, size=(40, L)).astype(float)])
    p = rng.uniform(size=L) * 0.1
    p[rng.random(L) < 0.5] = 0.0  # ties survive in the integer rows
    start = rng.integers(0, L, size=80)
    j, best, second = jax.jit(jax.vmap(lambda a, s: asg._best_two(a, jnp.asarray(p), s, groups)))(a, start)
    vals = a - p
    top = np.sort(vals, axis=1)
    np.testing.assert_array_equal(np.asarray(best), top[:, -1])
    np.testing.assert_array_equal(np.asarray(second), top[:, -2])  # a tie for the best gives second == best
    j = np.asarray(j)
    np.testing.assert_array_equal(vals[np.arange(80), j], top[:, -1])
    if groups == 1:  # the first maximiser at or after `start`, cyclically
        for r in range(80):
            order = np.roll(np.arange(L), -start[r])
            assert j[r] == order[np.argmax(vals[r, order] == top[r, -1])]
    ties = (vals == top[:, -1:]).sum(1) > 1
    assert ties.sum() > 10 and len(np.unique(j[ties])) > 5  # tied rows do not all pick the same column


def test_chunk_sizes_are_all_exercised(rng):
    # 60 x 300: forward chunks (60, 4, 2) over rows of 300 (16 groups in the best/second-best
    # scan) and the reverse stage over the 240 spare columns in chunks (240, 15, 2). Every size
    # runs (over three problems), and every result is within its bound of the optimum.
    n, m = 60, 300
    assert asg._chunk_sizes(n) == (60, 4, 2) and asg._chunk_sizes(m - n) == (240, 15, 2)
    assert asg._n_groups(m) == 16
    costs = [rng.uniform(size=(n, m)) for _ in range(3)]
    results, used = solve_recording(costs)
    assert {k for pool, k in used if pool == n} == set(asg._chunk_sizes(n))
    assert {k for pool, k in used if pool == m} == set(asg._chunk_sizes(m - n))
    for cost, (perm, bound, status) in zip(costs, results):
        assert status == Status.CONVERGED
        assert_injection(perm.astype(np.int32), n, m)
        ref = optimum(cost)
        assert ref - 1e-10 <= cost[np.arange(n), perm].sum() <= ref + bound + 1e-10
        assert bound == pytest.approx(1e-7 * (cost.max() - cost.min()))


def test_vmap_equals_loop_with_compaction(rng):
    # 40 x 50: forward chunks (40, 3, 2), then the reverse stage. Under vmap one chunk serves the
    # whole batch (the custom_vmap rule), which must not change any result.
    costs = rng.uniform(size=(4, 40, 50))
    costs[0] = rng.integers(0, 4, size=(40, 50))  # a problem with many ties in the batch
    batched = jax.jit(jax.vmap(lambda c: ot_jax.assignment(c)))(costs)
    assert bool(jnp.all(batched.converged))
    assert len(set(np.asarray(batched.n_iters).tolist())) > 1  # the problems need different numbers of rounds
    for k in range(4):
        one = ot_jax.assignment(costs[k])
        np.testing.assert_array_equal(np.asarray(batched.permutation[k]), np.asarray(one.permutation))
        assert int(batched.n_iters[k]) == int(one.n_iters)
        ref = optimum(costs[k])
        assert ref - 1e-10 <= float(batched.cost[k]) <= ref + float(batched.cost[k] - batched.lower_bound[k]) + 1e-10


@pytest.mark.parametrize("kind", ["uniform", "points", "integer-valued"])
def test_rectangular_auction_matches_scipy(rng, kind):
    n, m = 100, 200
    if kind == "uniform":
        cost = rng.uniform(size=(n, m))
    elif kind == "points":
        x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(m, 2))
        cost = ((x[:, None] - y[None]) ** 2).sum(-1)
    else:  # floats with many ties
        cost = rng.integers(0, 4, size=(n, m)).astype(np.float64)
    out = ot_jax.assignment(cost)
    check_optimal(out, cost, exact=False)
    assert float(out.cost - out.lower_bound) == pytest.approx(1e-7 * (cost.max() - cost.min()))  # n * eps_final


def test_rectangular_integer_costs_are_exact(rng):
    for high in (5, 1000):  # many ties / few ties
        cost = rng.integers(0, high, size=(100, 200))
        out = ot_jax.assignment(cost)
        check_optimal(out, cost, exact=True)
        assert float(out.cost - out.lower_bound) == pytest.approx(100 / 101)  # n * eps_final < 1


def test_constant_costs_large_finish_in_one_round():
    # Without the row-dependent tie-break every row would bid for column 0 (about n rounds).
    for cost in (np.zeros((300, 300)), np.ones((100, 200))):
        out = ot_jax.assignment(cost)
        check_optimal(out, cost, exact=True)
        assert int(out.n_iters) == 1 and float(out.cost - out.lower_bound) == 0.0


@pytest.mark.slow
def test_rectangular_max_iters_reports_status(rng):
    # The solve is deterministic: one round short of what it needs (here: in the reverse stage,
    # the last one) must report MAX_ITERS, an infinite bound and still a valid injection.
    cost = rng.uniform(size=(100, 200))
    needed = int(ot_jax.assignment(cost).n_iters)
    for max_iters in (5, needed - 1):
        out = ot_jax.assignment(cost, max_iters=max_iters)
        assert int(out.status) == Status.MAX_ITERS and not bool(out.converged)
        assert int(out.n_iters) == max_iters
        assert_injection(out.permutation, 100, 200)
        assert np.isneginf(float(out.lower_bound))
    assert bool(ot_jax.assignment(cost, max_iters=needed).converged)


@pytest.mark.slow
@pytest.mark.parametrize("n,m", [(200, 200), (500, 500), (10, 300), (190, 200), (260, 600)])
def test_auction_bound_vs_scipy_families(rng, n, m):
    x, y = rng.uniform(size=(n, 2)), rng.uniform(size=(m, 2))
    families = {
        "uniform": rng.uniform(size=(n, m)),
        "points": ((x[:, None] - y[None]) ** 2).sum(-1),
        "lognormal": rng.lognormal(0.0, 2.0, size=(n, m)),
        "ties": np.round(rng.uniform(size=(n, m)) * 2),
    }
    for name, cost in families.items():
        out = ot_jax.assignment(cost)
        assert bool(out.converged), name
        assert_injection(out.permutation, n, m)
        value, ref = float(out.cost), optimum(cost)
        assert float(out.cost - out.lower_bound) == pytest.approx(1e-7 * (cost.max() - cost.min())), name
        # the guarantee (a lognormal span is large next to the optimum, so only the bound is promised)
        assert ref - 1e-9 * abs(ref) <= value <= ref + float(out.cost - out.lower_bound) + 1e-9 * abs(ref), name
    cost = rng.integers(0, 100, size=(n, m))
    check_optimal(ot_jax.assignment(cost), cost, exact=True)


@pytest.mark.slow
def test_auction_float32_large(rng):
    cost = rng.uniform(size=(300, 300)).astype(np.float32)
    out = ot_jax.assignment(jnp.asarray(cost))
    assert out.cost.dtype == jnp.float32 and bool(out.converged)
    ref = optimum(cost.astype(np.float64))
    value = cost.astype(np.float64)[np.arange(300), np.asarray(out.permutation)].sum()
    assert ref - 1e-9 <= value <= ref + float(out.cost - out.lower_bound) + 1e-9
    # bound = n * 16 * float32 machine epsilon * span: the float32 floor of eps_final
    assert float(out.cost - out.lower_bound) == pytest.approx(300 * 16 * np.finfo(np.float32).eps * (cost.max() - cost.min()), rel=1e-3)  # float32 rounding of cost - lower_bound


@pytest.mark.slow
def test_nested_vmap_equals_loop(rng):
    costs = rng.uniform(size=(2, 3, 40, 40))
    fn = lambda c: ot_jax.assignment(c)  # noqa: E731
    batched = jax.jit(jax.vmap(jax.vmap(fn)))(costs)
    for a in range(2):
        for b in range(3):
            one = fn(costs[a, b])
            np.testing.assert_array_equal(np.asarray(batched.permutation[a, b]), np.asarray(one.permutation))
            assert int(batched.n_iters[a, b]) == int(one.n_iters)
