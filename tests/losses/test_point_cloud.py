"""Chamfer and EMD losses between point clouds (ot_jax.losses.point_cloud; the search itself is ot_jax.geometry.neighbors)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import ot_jax
from ot_jax.geometry import nearest_neighbors
from ot_jax.losses.point_cloud import chamfer_distance, exact_loss


def sq_dists(x, y):
    return ((np.asarray(x)[:, None, :] - np.asarray(y)[None, :, :]) ** 2).sum(-1)


def brute_chamfer(x, y, p=2.0):
    d = sq_dists(x, y) ** (p / 2)
    return d.min(1).mean() + d.min(0).mean()


def finite_difference_grad(f, x, h=1e-6):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return g


# ----------------------------------------------------------------------------- Chamfer


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
@pytest.mark.parametrize("n,m,d", [(40, 55, 3), (7, 3, 6), (1, 1, 2)])
def test_chamfer_equals_brute_force(rng, n, m, d, p):
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    np.testing.assert_allclose(chamfer_distance(x, y, p=p), brute_chamfer(x, y, p), rtol=1e-12)
    np.testing.assert_allclose(chamfer_distance(x, y, p=p, block_size=3), brute_chamfer(x, y, p), rtol=1e-12)


def test_nearest_neighbors_blocked(rng):
    x, y = rng.normal(size=(101, 4)), rng.normal(size=(37, 4))
    d = sq_dists(x, y)
    for block in (None, 1, 8, 500):
        idx, d2 = nearest_neighbors(x, y, block_size=block)
        np.testing.assert_array_equal(idx, d.argmin(1))
        np.testing.assert_allclose(d2, d.min(1), rtol=1e-12)


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_chamfer_gradient_finite_differences(rng, p):
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(6, 3))
    gx, gy = jax.grad(chamfer_distance, argnums=(0, 1))(x, y, p=p)
    np.testing.assert_allclose(gx, finite_difference_grad(lambda v: chamfer_distance(v, y, p=p), x), atol=1e-7)
    np.testing.assert_allclose(gy, finite_difference_grad(lambda v: chamfer_distance(x, v, p=p), y), atol=1e-7)


def test_chamfer_gradient_is_nearest_neighbour_gradient(rng):
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(15, 3))
    d = sq_dists(x, y)
    nn_x, nn_y = d.argmin(1), d.argmin(0)
    expected_x = 2 * (x - y[nn_x]) / 20
    np.add.at(expected_x, nn_y, 2 * (x[nn_y] - y) / 15)
    np.testing.assert_allclose(jax.grad(chamfer_distance)(x, y), expected_x, rtol=1e-10, atol=1e-14)


def test_chamfer_large_is_blocked_and_jits():
    x = jax.random.normal(jax.random.PRNGKey(0), (10_000, 3))
    y = jax.random.normal(jax.random.PRNGKey(1), (8_000, 3))
    val, grads = jax.jit(jax.value_and_grad(chamfer_distance, argnums=(0, 1)))(x, y)
    assert np.isfinite(float(val)) and grads[0].shape == x.shape and grads[1].shape == y.shape
    sub = slice(0, 300)  # spot check some nearest neighbours against numpy
    d = sq_dists(x[sub], y)
    np.testing.assert_allclose(nearest_neighbors(x[sub], y)[1], d.min(1), rtol=1e-10)


def test_chamfer_zero_iff_same_set(rng):
    x = rng.normal(size=(30, 3))
    assert float(chamfer_distance(x, x[::-1])) == 0.0
    assert float(chamfer_distance(x, np.concatenate([x, x[:5]]))) == 0.0  # multiplicity is invisible
    assert float(chamfer_distance(x, x + 1e-3)) > 0.0


# ----------------------------------------------------------------------------- EMD


@pytest.mark.parametrize("method", ["hungarian", "auction", "lp", "ipot"])
def test_emd_equals_scipy_assignment(rng, method):
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    cost = sq_dists(x, y)
    rows, cols = linear_sum_assignment(cost)
    rtol = 1e-5 if method == "ipot" else 1e-9
    np.testing.assert_allclose(exact_loss(x, y, method=method), cost[rows, cols].mean(), rtol=rtol)


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_emd_other_exponents(rng, p):
    x, y = rng.uniform(size=(25, 2)), rng.uniform(size=(25, 2))
    cost = sq_dists(x, y) ** (p / 2)
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(exact_loss(x, y, p=p), cost[rows, cols].mean(), rtol=1e-9)
    np.testing.assert_allclose(exact_loss(x, y, p=p, method="lp"), cost[rows, cols].mean(), rtol=1e-9)


def test_emd_at_least_one_sided_chamfer(rng):
    for _ in range(5):
        x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + rng.normal(size=3)
        d = sq_dists(x, y)
        loss = float(exact_loss(x, y))
        assert loss >= d.min(1).mean() - 1e-12 and loss >= d.min(0).mean() - 1e-12
        assert loss >= 0.5 * float(chamfer_distance(x, y)) - 1e-12


def test_emd_gradient(rng):
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    gx, gy = jax.grad(exact_loss, argnums=(0, 1))(x, y)
    perm = linear_sum_assignment(sq_dists(x, y))[1]
    np.testing.assert_allclose(gx, 2 * (x - y[perm]) / 8, rtol=1e-10)
    np.testing.assert_allclose(gx, finite_difference_grad(lambda v: exact_loss(v, y), x), atol=1e-7)
    np.testing.assert_allclose(gy, finite_difference_grad(lambda v: exact_loss(x, v), y), atol=1e-7)


@pytest.mark.parametrize("method", ["lp", "ipot"])
def test_emd_gradient_plan_path(rng, method):
    x, y = rng.normal(size=(8, 2)), rng.normal(size=(8, 2))
    # IPOT's gradient is its plan, whose distance to the LP plan the certified value gap bounds only
    # loosely: ask for a 1e-6 gap (its default, 1e-4, leaves entries ~5e-5 off here).
    options = {"tol": 1e-6} if method == "ipot" else {}
    g = jax.grad(lambda v: exact_loss(v, y, method=method, **options))(x)
    perm = linear_sum_assignment(sq_dists(x, y))[1]
    np.testing.assert_allclose(g, 2 * (x - y[perm]) / 8, atol=1e-5)


def test_emd_permutation_invariant_and_zero_iff_same_set(rng):
    x, y = rng.normal(size=(35, 4)), rng.normal(size=(35, 4))
    perm = rng.permutation(35)
    np.testing.assert_allclose(exact_loss(x, y[perm]), exact_loss(x, y), rtol=1e-12)
    np.testing.assert_allclose(exact_loss(x[perm], y), exact_loss(x, y), rtol=1e-12)
    assert float(exact_loss(x, x[perm])) == 0.0
    y2 = x.copy()
    y2[0] += 1e-3
    assert float(exact_loss(x, y2)) > 0.0
    # Chamfer cannot see multiplicity, EMD can.
    dup = np.concatenate([x[:34], x[:1]])
    assert float(chamfer_distance(x, dup)) > 0.0 and float(exact_loss(x, dup)) > 0.0
    x2 = np.concatenate([x[:2], x[:1]])
    y3 = np.concatenate([x[:2], x[1:2]])
    assert float(chamfer_distance(x2, y3)) == 0.0 and float(exact_loss(x2, y3)) > 0.0


def test_emd_batched_equals_loop(rng):
    x, y = rng.normal(size=(4, 20, 3)), rng.normal(size=(4, 20, 3))
    loop = np.array([float(exact_loss(x[i], y[i])) for i in range(4)])
    np.testing.assert_allclose(exact_loss(x, y), loop, rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(exact_loss)(x, y), loop, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.vmap(exact_loss))(x, y), loop, rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(chamfer_distance)(x, y),
                               [brute_chamfer(x[i], y[i]) for i in range(4)], rtol=1e-12)
    grads = jax.grad(lambda v: jnp.sum(exact_loss(v, y)))(x)
    np.testing.assert_allclose(grads[1], jax.grad(exact_loss)(x[1], y[1]), rtol=1e-12)


def test_emd_unequal_sizes_and_weights(rng):
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(18, 2))
    a, b = rng.uniform(0.5, 1.0, 12), rng.uniform(0.5, 1.0, 18)
    cost = sq_dists(x, y)
    exact = ot_jax.emd(cost, a / a.sum(), b / b.sum()).cost
    np.testing.assert_allclose(exact_loss(x, y, a, b, method="lp"), exact, rtol=1e-9)
    np.testing.assert_allclose(exact_loss(x, y, a, b, method="ipot"), exact, rtol=1e-5)
    np.testing.assert_allclose(exact_loss(x, y, method="lp"), ot_jax.emd(cost).cost, rtol=1e-9)
    batched = exact_loss(np.stack([x, x]), np.stack([y, y]), np.stack([a, a]), np.stack([b, b]), method="lp")
    np.testing.assert_allclose(batched, [exact, exact], rtol=1e-9)


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((np.zeros((3, 2)), np.zeros((4, 2))), {}, "equal sizes"),
        ((np.zeros((3, 2)), np.zeros((3, 3))), {}, "dimension"),
        ((np.zeros(3), np.zeros(3)), {}, r"\[n, d\]"),
        ((np.zeros((0, 2)), np.zeros((0, 2))), {}, "empty"),
        ((np.zeros((2, 3, 2)), np.zeros((3, 2))), {}, "batched"),
        ((np.zeros((2, 3, 2)), np.zeros((4, 3, 2))), {}, "batch sizes"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"method": "sinkhorn"}, "unknown method"),
        ((np.zeros((3, 2)), np.zeros((3, 2))), {"p": 0.0}, "p must be"),
        ((np.zeros((3, 2)), np.zeros((3, 2)), np.ones(3)), {}, "weights"),
        ((np.full((3, 2), np.nan), np.zeros((3, 2))), {}, "NaN"),
        ((np.zeros((3, 2)), np.zeros((4, 2)), np.ones(4)), {"method": "lp"}, r"shape \(3,\)"),
        ((np.zeros((3, 2)), np.zeros((4, 2)), np.array([1.0, -1.0, 1.0])), {"method": "ipot"}, ">= 0"),
        ((np.zeros((2, 3, 2)), np.zeros((2, 4, 2)), np.ones(3)), {"method": "lp"}, r"shape \(2, 3\)"),
    ],
)
def test_emd_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        exact_loss(*args, **kwargs)


@pytest.mark.parametrize(
    "x,y,kwargs,match",
    [
        (np.zeros((3, 2)), np.zeros((4, 3)), {}, "dimension"),
        (np.zeros((2, 3, 2)), np.zeros((3, 2)), {}, r"\[n, d\]"),
        (np.zeros((0, 2)), np.zeros((2, 2)), {}, "empty"),
        (np.zeros((3, 2)), np.zeros((3, 2)), {"p": -1.0}, "p must be"),
        (np.zeros((3, 2)), np.full((3, 2), np.inf), {}, "NaN or inf"),
    ],
)
def test_chamfer_errors(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chamfer_distance(x, y, **kwargs)


def test_losses_accept_closed_over_concrete_points_inside_jit():
    # Regression: the input check must not call bool() on a staged jnp op when the
    # points are concrete constants of a traced function (e.g. the target of a fit).
    rng = np.random.default_rng(3)
    x, y = jnp.asarray(rng.normal(size=(12, 2))), jnp.asarray(rng.normal(size=(12, 2)))

    def loss(x):
        return ot_jax.exact_loss(x, y) + ot_jax.chamfer_distance(x, y)

    grad = jax.jit(jax.grad(loss))(x)
    assert np.allclose(grad, jax.grad(loss)(x))
    final, _ = jax.lax.scan(lambda x, _: (x - 0.1 * jax.grad(loss)(x), None), x, None, length=3)
    assert np.all(np.isfinite(np.asarray(final)))


def test_exact_loss_method_names_and_throw():
    x = jnp.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(ValueError, match="'lp'"):
        exact_loss(x, x, method="emd")
    with pytest.raises(Exception, match="MAX_ITERS"):
        jax.block_until_ready(exact_loss(x, x + 1.0, method="ipot", max_iters=10, tol=1e-14, throw=True))
    assert float(exact_loss(x, x + 1.0, method="lp", throw=True)) == pytest.approx(2.0)  # |(1, 1)|^2


@pytest.mark.parametrize("k", [1, 3])
def test_nearest_neighbors_k_matches_brute_force(rng, k):
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(25, 3))
    idx, d2 = nearest_neighbors(x, y, k=k, block_size=7)
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    expect = np.take_along_axis(d, order, axis=1)
    if k == 1:
        assert idx.shape == (40,) and d2.shape == (40,)
        order, expect = order[:, 0], expect[:, 0]
    np.testing.assert_array_equal(np.asarray(idx), order)
    np.testing.assert_allclose(np.asarray(d2), expect, rtol=1e-10)
    with pytest.raises(ValueError, match="k = 26"):
        nearest_neighbors(x, y, k=26)
