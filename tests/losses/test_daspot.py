"""DASPOT's objective (ot_jax.losses.daspot): each term against a direct computation, the pseudo-label
gradient, and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ot_jax.losses.daspot import daspot_objective, embedding_cost
from ot_jax.nn import Classifier


class Pair:
    """G(z) = (A z, B z): a linear generator of two domains."""

    latent_dim = 3

    def __init__(self, key, dx, dy):
        ka, kb = jax.random.split(key)
        self.a = jax.random.normal(ka, (3, dx))
        self.b = jax.random.normal(kb, (3, dy))

    def __call__(self, z):
        return z @ self.a, z @ self.b


def _setup(dx=5, dy=7, n=16):
    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    gen = Pair(k1, dx, dy)
    d_x = Classifier(dx, 4, embed_dim=6, hidden=[8], rngs=nnx.Rngs(k2))
    d_y = Classifier(dy, 4, embed_dim=6, hidden=[8], rngs=nnx.Rngs(k3))
    critics = [lambda x: jnp.sum(x, axis=-1) * 0.1, lambda y: jnp.tanh(y[:, 0])]
    x = jax.random.normal(k4, (n, dx))
    v = jnp.arange(n) % 4
    y = jax.random.normal(k5, (n + 4, dy))
    return gen, critics, (d_x, d_y), (x, v, y)


def test_terms_match_a_direct_computation():
    gen, critics, (d_x, d_y), batch = _setup()
    key = jax.random.PRNGKey(3)
    value, terms = daspot_objective(gen, critics, (d_x, d_y), batch, key, eta=10.0, lam_s=0.5, lam_da=2.0)
    x, v, y = batch
    z = jax.random.normal(key, (x.shape[0], 3))
    gx, gy = gen(z)
    transport = np.mean(np.sum((np.asarray(d_x.embed(gx)) - np.asarray(d_y.embed(gy))) ** 2, axis=1))
    gaps = [np.mean(critics[0](gx)) - np.mean(critics[0](x)), np.mean(critics[1](gy)) - np.mean(critics[1](y))]
    logp_x = np.asarray(jax.nn.log_softmax(d_x(x)))
    source = -np.mean(logp_x[np.arange(x.shape[0]), np.asarray(v)])
    pseudo = np.argmax(np.asarray(d_x(gx)), axis=1)
    logp_y = np.asarray(jax.nn.log_softmax(d_y(gy)))
    pseudo_risk = -np.mean(logp_y[np.arange(len(pseudo)), pseudo])
    np.testing.assert_allclose(terms.transport, transport, rtol=1e-5)
    np.testing.assert_allclose(terms.gaps, gaps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms.source_risk, source, rtol=1e-5)
    np.testing.assert_allclose(terms.pseudo_risk, pseudo_risk, rtol=1e-5)
    np.testing.assert_allclose(value, transport + 10.0 * sum(gaps) + 0.5 * source + 2.0 * pseudo_risk, rtol=1e-5)
    assert terms.agreement == pytest.approx(np.mean(np.argmax(np.asarray(d_y(gy)), axis=1) == pseudo))
    # the single-point ground cost is the same distance of embeddings
    cost = embedding_cost(d_x, d_y)
    np.testing.assert_allclose(jax.vmap(cost)(gx, gy).mean(), transport, rtol=1e-5)


def test_pseudo_labels_are_constants_of_the_gradient():
    """The pseudo-label term's gradient w.r.t. D_X is zero (argmax), w.r.t. D_Y it is the cross-entropy's."""
    gen, critics, (d_x, d_y), batch = _setup()
    key = jax.random.PRNGKey(1)
    graph_x, px = nnx.split(d_x, nnx.Param)

    def pseudo_only(p):
        dx = nnx.merge(graph_x, p)
        return daspot_objective(gen, critics, (dx, d_y), batch, key, eta=1.0, lam_s=0.0, lam_da=1.0)[1].pseudo_risk

    grads = jax.grad(pseudo_only)(px)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
    # a descent step of D_Y on the objective lowers the pseudo-label risk
    graph_y, py = nnx.split(d_y, nnx.Param)

    def risk(p):
        return daspot_objective(gen, critics, (d_x, nnx.merge(graph_y, p)), batch, key, eta=1.0, lam_s=0.0,
                                lam_da=1.0)[1].pseudo_risk

    g = jax.grad(risk)(py)
    stepped = jax.tree.map(lambda p, d: p - 0.05 * d, py, g)
    assert risk(stepped) < risk(py)
    assert np.isfinite(float(optax.global_norm(g))) and float(optax.global_norm(g)) > 0


def test_bad_input():
    gen, critics, (d_x, d_y), (x, v, y) = _setup()
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="labels v must be"):
        daspot_objective(gen, critics, (d_x, d_y), (x, v[:-1], y), key, eta=1.0, lam_s=1.0, lam_da=1.0)
    with pytest.raises(ValueError, match="two classifiers"):
        daspot_objective(gen, critics, (d_x,), (x, v, y), key, eta=1.0, lam_s=1.0, lam_da=1.0)
    with pytest.raises(ValueError, match="eta must be > 0"):
        daspot_objective(gen, critics, (d_x, d_y), (x, v, y), key, eta=0.0, lam_s=1.0, lam_da=1.0)
    with pytest.raises(ValueError, match="one critic per marginal"):
        daspot_objective(gen, critics[:1], (d_x, d_y), (x, v, y), key, eta=1.0, lam_s=1.0, lam_da=1.0)


def test_gradient_matches_finite_differences():
    """d/dt L(θ + t u) at t = 0 for the generator, both classifiers and the critics' inputs, float64
    (the pseudo-labels are an argmax: constant under the small steps used here)."""
    gen, critics, (d_x, d_y), batch = _setup()
    key = jax.random.PRNGKey(2)
    gx, px = nnx.split(d_x, nnx.Param)
    gy, py = nnx.split(d_y, nnx.Param)

    def value(a, px, py):
        gen.a = a
        out = daspot_objective(gen, critics, (nnx.merge(gx, px), nnx.merge(gy, py)), batch, key, eta=3.0,
                               lam_s=0.7, lam_da=1.3)[0]
        return out

    a0 = gen.a
    grads = jax.grad(value, argnums=(0, 1, 2))(a0, px, py)
    directions = jax.tree.map(lambda g: jax.random.normal(jax.random.PRNGKey(7), g.shape, g.dtype), (a0, px, py))
    analytic = sum(float(jnp.vdot(g, u)) for g, u in zip(jax.tree.leaves(grads), jax.tree.leaves(directions)))
    h = 1e-6
    plus = jax.tree.map(lambda p, u: p + h * u, (a0, px, py), directions)
    minus = jax.tree.map(lambda p, u: p - h * u, (a0, px, py), directions)
    numeric = (float(value(*plus)) - float(value(*minus))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
