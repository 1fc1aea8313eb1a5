"""Lazy PointCloud kernel operations equal the dense ones, for every cost; costs are right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.geometry import Geometry

COSTS = [
    ot_jax.SqEuclidean(),
    ot_jax.Euclidean(),
    ot_jax.PNorm(1.0),
    ot_jax.PNorm(3.0, power=1.0),
    ot_jax.Cosine(),
    lambda u, v: jnp.sum(jnp.abs(u - v) ** 1.5),
]


def test_cost_values(rng):
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    diff = x[:, None] - y[None]
    np.testing.assert_allclose(ot_jax.SqEuclidean().pairwise(x, y), (diff**2).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(ot_jax.Euclidean().pairwise(x, y), np.sqrt((diff**2).sum(-1)), rtol=1e-12)
    np.testing.assert_allclose(ot_jax.PNorm(1.0).pairwise(x, y), np.abs(diff).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(ot_jax.PNorm(3.0, power=1.0).pairwise(x, y), (np.abs(diff) ** 3).sum(-1) ** (1 / 3), rtol=1e-12)
    cos = 1 - (x @ y.T) / np.linalg.norm(x, axis=1)[:, None] / np.linalg.norm(y, axis=1)[None]
    np.testing.assert_allclose(ot_jax.Cosine().pairwise(x, y), cos, rtol=1e-12)
    # Zero distance: finite (zero) gradient for the Euclidean cost.
    g = jax.grad(lambda z: ot_jax.Euclidean()(z, z * 1.0))(jnp.ones(3))
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("cost_fn", COSTS, ids=lambda c: type(c).__name__)
def test_pointcloud_ops_equal_dense(rng, cost_fn):
    x, y = rng.normal(size=(37, 3)), rng.normal(size=(29, 3))
    lazy = ot_jax.PointCloud(x, y, cost_fn=cost_fn, batch_size=8)
    dense = Geometry(lazy.cost_matrix)
    f, g, eps = rng.normal(size=37), rng.normal(size=29), 0.3
    for axis, h in ((1, g), (0, f)):
        np.testing.assert_allclose(lazy.lse(h, eps, axis), dense.lse(h, eps, axis), rtol=1e-10)
        np.testing.assert_allclose(lazy.kernel_apply(jnp.abs(h), eps, axis), dense.kernel_apply(jnp.abs(h), eps, axis), rtol=1e-10)
    np.testing.assert_allclose(lazy.apply_plan(f, g, eps, g, 1), dense.plan(f, g, eps) @ g, rtol=1e-10)
    np.testing.assert_allclose(lazy.apply_plan(f, g, eps, f, 0), f @ dense.plan(f, g, eps), rtol=1e-10)
    np.testing.assert_allclose(lazy.transport_cost(f, g, eps), dense.transport_cost(f, g, eps), rtol=1e-10)
    np.testing.assert_allclose(lazy.c_transform(g), dense.c_transform(g), rtol=1e-12)
    np.testing.assert_allclose(lazy.max_cost(), np.max(dense.cost), rtol=1e-12)
    np.testing.assert_allclose(lazy.mean_cost(), np.mean(dense.cost), rtol=1e-12)


def test_pointcloud_grad_equals_dense_grad(rng):
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(15, 2))
    f, g = rng.normal(size=20), rng.normal(size=15)
    lazy = lambda x: ot_jax.PointCloud(x, y, batch_size=4).transport_cost(f, g, 0.5)
    dense = lambda x: Geometry(ot_jax.PointCloud(x, y).cost_matrix).transport_cost(f, g, 0.5)
    np.testing.assert_allclose(jax.grad(lazy)(x), jax.grad(dense)(x), rtol=1e-10)


def test_pointcloud_is_a_vmappable_pytree(rng):
    xs, ys = rng.normal(size=(4, 10, 2)), rng.normal(size=(4, 12, 2))
    out = jax.vmap(lambda g: ot_jax.sinkhorn(g, epsilon=0.1).cost)(ot_jax.PointCloud(xs, ys))
    single = [float(ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.1).cost) for x, y in zip(xs, ys)]
    np.testing.assert_allclose(np.asarray(out), single, rtol=1e-9)
