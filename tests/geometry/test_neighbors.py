"""ot_jax.geometry.nearest_neighbors: k neighbours against brute force, gradients of the distances
against central finite differences (float64), and errors that name the bad argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ot_jax.geometry import nearest_neighbors


def _clouds(seed=0, n=13, m=17, d=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d))


@pytest.mark.parametrize("k, block_size", [(1, None), (3, 4), (17, 5)])
def test_k_neighbours_equal_brute_force(k, block_size):
    x, y = _clouds()
    index, sq = nearest_neighbors(x, y, k=k, block_size=block_size)
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    expected_index = order[:, 0] if k == 1 else order
    np.testing.assert_array_equal(np.asarray(index), expected_index)
    np.testing.assert_allclose(np.asarray(sq), np.take_along_axis(d2, order, 1).squeeze(1) if k == 1
                               else np.take_along_axis(d2, order, 1), rtol=1e-12)


def test_gradient_of_the_k_nearest_distances_matches_finite_differences():
    x, y = _clouds(1)
    weights = np.random.default_rng(2).uniform(size=(x.shape[0], 3))

    def f(x, y):
        return jnp.sum(weights * nearest_neighbors(x, y, k=3)[1])

    gx, gy = jax.grad(f, argnums=(0, 1))(x, y)
    h = 1e-6
    for arg, grad in ((0, gx), (1, gy)):
        base = (x, y)[arg]
        fd = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            step = np.zeros_like(base)
            step[idx] = h
            plus = (x + step, y) if arg == 0 else (x, y + step)
            minus = (x - step, y) if arg == 0 else (x, y - step)
            fd[idx] = (float(f(*plus)) - float(f(*minus))) / (2 * h)
        np.testing.assert_allclose(np.asarray(grad), fd, atol=1e-7)


@pytest.mark.parametrize("kwargs, args, message", [
    ({"k": 0}, None, "k must be an integer >= 1"),
    ({"k": 18}, None, "k = 18 neighbours asked but y has only 17 points"),
    ({"block_size": 0}, None, "block_size must be an integer >= 1"),
    ({}, "nan", "x contains NaN or inf"),
    ({}, "dims", "x has dimension d = 3 but y has d = 2"),
    ({}, "empty", "y is empty"),
])
def test_bad_input_is_named(kwargs, args, message):
    x, y = _clouds()
    if args == "nan":
        x = x.copy()
        x[0, 0] = np.nan
    elif args == "dims":
        y = y[:, :2]
    elif args == "empty":
        y = y[:0]
    with pytest.raises(ValueError, match=message):
        nearest_neighbors(x, y, **kwargs)
