"""Minibatch OT losses (ot_jax.losses.minibatch): values against the exact LP, gradients against
finite differences, the shrinkage of the Sinkhorn primal loss, jit/grad and input errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.losses import minibatch as mb

LOSSES = {
    "ipot": mb.ipot_loss,
    "sinkhorn": functools.partial(mb.sinkhorn_loss, epsilon=0.5),
    "exact": mb.exact_loss,
    "exact_lp": functools.partial(mb.exact_loss, method="lp"),
    "auction": functools.partial(mb.exact_loss, method="auction"),
    "sliced": mb.sliced_loss,
}


def points(rng, n, m, d=2, shift=0.5):
    return jnp.asarray(rng.normal(size=(n, d))), jnp.asarray(rng.normal(size=(m, d)) + shift)


def lp_value(x, y, cost=ot_jax.SqEuclidean()):
    return float(ot_jax.emd(ot_jax.PointCloud(x, y, cost_fn=cost)).cost)


def jitted(loss, key=None, **settings):
    """``(x, y) -> MinibatchLoss`` compiled once (eager solver calls dispatch op by op: slow)."""
    return jax.jit(lambda x, y: loss(key, x, y, **settings))


def fd_grad(f, y, h=1e-6):
    """Central finite differences of the scalar ``f`` at ``y`` (f is jitted once)."""
    f = jax.jit(f)
    y = np.asarray(y)
    grad = np.zeros_like(y)
    for idx in np.ndindex(y.shape):
        step = np.zeros_like(y)
        step[idx] = h
        grad[idx] = (float(f(jnp.asarray(y + step))) - float(f(jnp.asarray(y - step)))) / (2 * h)
    return grad


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("method", ["hungarian", "auction", "lp"])
def test_exact_loss_equals_lp(rng, method):
    x, y = points(rng, 20, 20, d=3)
    out = jitted(mb.exact_loss, method=method)(x, y)
    np.testing.assert_allclose(float(out.value), lp_value(x, y), rtol=1e-7 if method == "auction" else 1e-12)
    assert bool(out.converged) and int(out.status) == ot_jax.Status.CONVERGED
    assert int(out.n_iters) > 0  # assignment rounds/steps, simplex pivots


def test_exact_loss_lp_unequal_sizes(rng):
    # uniform on [z; z] (2k points) is the same law as uniform on z: same OT value as the matching z <-> y
    z, y = points(rng, 10, 10, d=3)
    two = jitted(mb.exact_loss, method="lp")(jnp.concatenate([z, z]), y)
    np.testing.assert_allclose(float(two.value), float(jitted(mb.exact_loss)(z, y).value), rtol=1e-10)


def test_exact_loss_euclidean_cost(rng):
    x, y = points(rng, 15, 15)
    cost = ot_jax.Euclidean()
    np.testing.assert_allclose(float(jitted(mb.exact_loss, cost=cost)(x, y).value), lp_value(x, y, cost), rtol=1e-12)


def test_ipot_loss_converges_to_lp(rng):
    x, y = points(rng, 20, 20, d=3)
    out = jitted(mb.ipot_loss, tol=1e-10, max_iters=3000)(x, y)
    assert bool(out.converged) and 0 < int(out.n_iters) < 3000
    lp = lp_value(x, y)
    assert abs(float(out.value) - lp) <= 1e-4 * lp


def test_sinkhorn_primal_biased_up_and_tends_to_lp(rng):
    x, y = points(rng, 20, 20, d=3)
    lp = lp_value(x, y)
    kw = dict(relative_epsilon=True, tol=1e-4, max_iters=5000)

    @jax.jit
    def both(eps):  # a traced epsilon: one compilation for the three values
        return (mb.sinkhorn_loss(None, x, y, epsilon=eps, **kw),
                mb.sinkhorn_loss(None, x, y, epsilon=eps, objective="regularised", **kw))

    rel = []
    for eps in (1.0, 0.1, 0.01):
        out, reg = both(eps)
        assert bool(out.converged)
        assert float(reg.value) > float(out.value)  # + eps KL(P | a b^T) > 0
        rel.append((float(out.value) - lp) / lp)
    assert rel[0] > 1.0  # large eps: far above the exact value (the blurred plan)
    assert rel[0] > rel[1] > rel[2] > 0.0
    assert rel[2] < 1e-2


# ----------------------------------------------------------------------------- gradients


def test_exact_loss_gradient_finite_differences(rng):
    x, y = points(rng, 12, 12)
    for method in ("lp", "hungarian"):
        loss = lambda v, method=method: mb.exact_loss(None, x, v, method=method).value
        np.testing.assert_allclose(jax.jit(jax.grad(loss))(y), fd_grad(loss, y), atol=1e-7)


def test_exact_loss_gradient_is_the_matching(rng):
    # d/dy_j (1/n) sum_i |x_i - y_sigma(i)|^2 = (2/n) (y_j - x_i) for the matched x_i
    x, y = points(rng, 12, 12)
    perm = np.asarray(jax.jit(lambda x, y: ot_jax.assignment(ot_jax.PointCloud(x, y), method="hungarian"))(x, y)
                      .permutation)
    expected = np.zeros(y.shape)
    expected[perm] = 2.0 / 12 * (np.asarray(y)[perm] - np.asarray(x))
    np.testing.assert_allclose(jax.jit(jax.grad(lambda v: mb.exact_loss(None, x, v).value))(y), expected, atol=1e-12)


def test_ipot_envelope_gradient_is_the_lp_gradient(rng):
    x, y = points(rng, 12, 12)
    grad = jax.jit(jax.grad(lambda v: mb.ipot_loss(None, x, v, tol=1e-10, max_iters=3000).value))(y)
    np.testing.assert_allclose(grad, fd_grad(lambda v: mb.exact_loss(None, x, v, method="lp").value, y),
                               atol=1e-6)


def test_sinkhorn_regularised_envelope_gradient(rng):
    x, y = points(rng, 12, 12)
    loss = lambda v: mb.sinkhorn_loss(None, x, v, epsilon=0.5, tol=1e-12, max_iters=3000,
                                      objective="regularised").value
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(y), fd_grad(loss, y), atol=1e-7)


def test_sinkhorn_primal_implicit_and_unrolled_gradients(rng):
    x, y = points(rng, 12, 12)
    kw = dict(epsilon=0.5, tol=1e-12, max_iters=300)
    fd = fd_grad(lambda v: mb.sinkhorn_loss(None, x, v, **kw).value, y)
    implicit = jax.jit(jax.grad(lambda v: mb.sinkhorn_loss(None, x, v, **kw).value))(y)  # the default
    np.testing.assert_allclose(implicit, fd, atol=1e-7)
    unrolled = jax.jit(jax.grad(lambda v: mb.sinkhorn_loss(None, x, v, grad_mode="unroll", **kw).value))(y)
    np.testing.assert_allclose(unrolled, fd, atol=1e-7)
    # the envelope gradient of the primal holds the plan fixed: a different (biased) direction
    envelope = jax.jit(jax.grad(lambda v: mb.sinkhorn_loss(None, x, v, grad_mode="envelope", **kw).value))(y)
    assert np.abs(np.asarray(envelope) - fd).max() > 1e-3


@pytest.mark.parametrize("cost", [ot_jax.SqEuclidean(), ot_jax.Euclidean()])
def test_sliced_loss_gradient_and_value(rng, cost):
    x, y = points(rng, 12, 10, d=3)
    key = jax.random.PRNGKey(3)
    loss = lambda v: mb.sliced_loss(key, x, v, cost=cost, n_projections=20).value
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(y), fd_grad(loss, y), atol=1e-7)
    p = 2.0 if isinstance(cost, ot_jax.SqEuclidean) else 1.0
    sw = ot_jax.sliced_wasserstein(key, x, y, n_projections=20, p=p)
    np.testing.assert_allclose(float(jax.jit(loss)(y)), float(sw) ** p, rtol=1e-12)


# ----------------------------------------------------------------------------- shrinkage


def _descend(loss, x, y0, steps=300):
    """Gradient descent on the generated points; step n/4 moves y_j halfway to its target."""
    lr = x.shape[0] / 4

    @jax.jit
    def run(y):
        return jax.lax.fori_loop(0, steps, lambda _, v: v - lr * jax.grad(lambda w: loss(w).value)(v), y)

    return float(jnp.std(run(y0)) / jnp.std(x))


def test_sinkhorn_primal_shrinks_ipot_does_not():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(16, 2)))
    y0 = x + 0.3 * jnp.asarray(rng.normal(size=(16, 2)))
    # the thesis's gradient (plan held fixed) is the one that shrinks
    sinkhorn_ratio = _descend(lambda v: mb.sinkhorn_loss(None, x, v, epsilon=1.0, relative_epsilon=True,
                                                         grad_mode="envelope"), x, y0)
    ipot_ratio = _descend(lambda v: mb.ipot_loss(None, x, v), x, y0)
    assert abs(ipot_ratio - 1.0) < 1e-2
    assert sinkhorn_ratio < 0.8 * ipot_ratio


def test_sinkhorn_divergence_objective_is_debiased_and_does_not_shrink():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(16, 2)))
    y0 = x + 0.3 * jnp.asarray(rng.normal(size=(16, 2)))
    loss = lambda v: mb.sinkhorn_loss(None, x, v, epsilon=1.0, relative_epsilon=True, objective="divergence",
                                      grad_mode="envelope", tol=1e-9, max_iters=5000)
    assert abs(float(loss(x).value)) < 1e-9  # zero at y = x, where the primal objective is far from 0
    eps = float(jnp.mean(jnp.sum((x[:, None] - y0[None]) ** 2, -1)))
    direct = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, y0), epsilon=eps, tol=1e-9, max_iters=5000)
    assert abs(float(loss(y0).value) - float(direct.divergence)) < 1e-10
    ratio = _descend(loss, x, y0)
    primal = _descend(lambda v: mb.sinkhorn_loss(None, x, v, epsilon=1.0, relative_epsilon=True,
                                                 grad_mode="envelope"), x, y0)
    assert abs(ratio - 1.0) < 0.02 and ratio > primal + 0.2


# ----------------------------------------------------------------------------- jit, grad, dtypes


@pytest.mark.parametrize("name", list(LOSSES))
def test_jit_and_grad(rng, key, name):
    loss = LOSSES[name]
    x, y = points(rng, 8, 8)

    def objective(x, y):
        out = loss(key, x, y, cost=ot_jax.SqEuclidean())
        return out.value, out

    (value, out), grads = jax.jit(jax.value_and_grad(objective, argnums=(0, 1), has_aux=True))(x, y)
    assert float(value) == float(out.value) and np.isfinite(float(value))
    assert out.value.shape == () and out.converged.dtype == jnp.bool_ and out.n_iters.dtype == jnp.int32
    assert out.converged.shape == () and out.n_iters.shape == ()
    assert bool(out.converged)
    assert all(g.shape == (8, 2) and np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert np.abs(np.asarray(grads[1])).max() > 0


@pytest.mark.parametrize("name", ["ipot", "sinkhorn", "exact", "sliced"])
def test_float32(float32, name):
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    y = jax.random.normal(jax.random.PRNGKey(1), (16, 2))
    value, grad = jax.jit(jax.value_and_grad(lambda v: LOSSES[name](jax.random.PRNGKey(2), x, v).value))(y)
    assert value.dtype == jnp.float32 and grad.dtype == jnp.float32
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("x_shape, y_shape, match", [
    ((5, 2), (5, 3), "dimension"),
    ((5,), (5, 2), "2-D"),
    ((0, 2), (0, 2), "empty"),
])
def test_bad_shapes(key, name, x_shape, y_shape, match):
    with pytest.raises(ValueError, match=match):
        LOSSES[name](key, jnp.ones(x_shape), jnp.zeros(y_shape))


@pytest.mark.parametrize("call, match", [
    (lambda x, y: mb.exact_loss(None, x, y, method="simplex"), "unknown method"),
    (lambda x, y: mb.exact_loss(None, x, y[:4]), "method='lp'"),
    (lambda x, y: mb.exact_loss(None, x, y[:4], method="auction"), "method='lp'"),
    (lambda x, y: mb.sinkhorn_loss(None, x, y, epsilon=0.1, objective="dual"), "unknown objective"),
    (lambda x, y: mb.sinkhorn_loss(None, x, y, epsilon=0.0), "epsilon"),
    (lambda x, y: mb.sinkhorn_loss(None, x, y, epsilon=-1.0), "epsilon"),
    (lambda x, y: mb.sinkhorn_loss(None, x, y, epsilon=0.1, grad_mode="forward"), "grad_mode"),
    (lambda x, y: mb.ipot_loss(None, x, y, beta=0.0), "beta"),
    (lambda x, y: mb.sliced_loss(jax.random.PRNGKey(0), x, y, cost=ot_jax.Cosine()), "SqEuclidean"),
    (lambda x, y: mb.sliced_loss(jax.random.PRNGKey(0), x, y, n_projections=0), "n_projections"),
])
def test_bad_settings(call, match):
    x, y = jnp.ones((5, 2)), jnp.zeros((5, 2))
    with pytest.raises(ValueError, match=match):
        call(x, y)


@pytest.mark.parametrize("call", [
    lambda x, y: mb.sinkhorn_loss(None, x, y, epsilon=-1.0),
    lambda x, y: mb.ipot_loss(None, x, y, beta=-1.0),
    lambda x, y: mb.exact_loss(None, x, y[:4]),
])
def test_bad_static_settings_raise_under_jit(call):
    with pytest.raises(ValueError):
        jax.jit(lambda x, y: call(x, y).value)(jnp.ones((5, 2)), jnp.zeros((5, 2)))


def test_status_and_throw():
    x = jax.random.normal(jax.random.PRNGKey(0), (12, 2))
    y = x + 1.0
    out = mb.ipot_loss(None, x, y, max_iters=10, tol=1e-12)
    assert int(out.status) == ot_jax.Status.MAX_ITERS and not bool(out.converged)
    with pytest.raises(Exception, match="ot_jax.ipot_loss: MAX_ITERS.*beta"):
        jax.block_until_ready(mb.ipot_loss(None, x, y, max_iters=10, tol=1e-12, throw=True).value)
    ok = mb.exact_loss(None, x, y, method="lp", throw=True)
    assert int(ok.status) == ot_jax.Status.CONVERGED and bool(ok.converged)
    # the minibatch adapter and the point-cloud loss compute the same exact cost
    np.testing.assert_allclose(float(ok.value), float(ot_jax.exact_loss(x, y)), rtol=1e-6)
