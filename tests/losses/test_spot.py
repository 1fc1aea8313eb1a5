"""SPOT objective: the multi-marginal cost, and the minimax signs on a problem with a known answer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ot_jax.geometry import Euclidean, SqEuclidean
from ot_jax.losses.spot import multi_marginal_cost, spot_objective


class ConstantGenerator:
    """G(Z) = (a, b): a 1-D point mass per marginal (latent ignored)."""

    latent_dim = 1

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __call__(self, z):
        ones = jnp.ones((z.shape[0], 1), z.dtype)
        return self.a * ones, self.b * ones


def linear_critic(w):
    return lambda x: w * x[:, 0]


DATA = (jnp.zeros((16, 1)), jnp.full((16, 1), 5.0))  # mu = delta_0, nu = delta_5: W = 5


def objective(a, b, wx, wy, eta=10.0):
    return spot_objective(ConstantGenerator(a, b), [linear_critic(wx), linear_critic(wy)], DATA,
                          jax.random.PRNGKey(0), cost_fn=Euclidean(), eta=eta)


def test_value_is_transport_plus_eta_times_critic_gaps():
    value, terms = objective(1.0, 4.0, 0.5, -0.25)
    assert np.isclose(terms.transport, 3.0)
    np.testing.assert_allclose(terms.gaps, [0.5 * (1.0 - 0.0), -0.25 * (4.0 - 5.0)])
    assert np.isclose(value, 3.0 + 10.0 * (0.5 + 0.25))


def test_critics_ascend_to_the_w1_of_each_marginal_and_the_generator_descends_to_w():
    # Critics: 1-Lipschitz linear maps w x, |w| <= 1. Projected gradient ascent from w = 0.
    a, b, wx, wy = 1.0, 4.0, 0.0, 0.0
    for _ in range(20):
        gx, gy = jax.grad(lambda u, v: objective(a, b, u, v)[0], argnums=(0, 1))(wx, wy)
        wx, wy = float(np.clip(wx + 0.1 * gx, -1, 1)), float(np.clip(wy + 0.1 * gy, -1, 1))
    assert (wx, wy) == (1.0, -1.0)  # the optimal critics
    _, terms = objective(a, b, wx, wy)
    np.testing.assert_allclose(terms.gaps, [1.0, 1.0])  # = W1(delta_1, delta_0), W1(delta_4, delta_5)
    # Generator: descent moves a toward 0 and b toward 5, i.e. toward the optimal coupling.
    ga, gb = jax.grad(lambda u, v: objective(u, v, wx, wy)[0], argnums=(0, 1))(a, b)
    assert ga > 0 and gb < 0
    # At the marginals the objective equals the OT cost W = 5 whatever the critics.
    value, terms = objective(0.0, 5.0, wx, wy)
    assert np.isclose(value, 5.0) and np.isclose(terms.transport, 5.0)


def test_multi_marginal_cost_pairs_and_chain():
    x = [jnp.array([[0.0], [1.0]]), jnp.array([[1.0], [1.0]]), jnp.array([[3.0], [0.0]])]
    pairs = multi_marginal_cost(x, SqEuclidean(), coupling="pairs")
    chain = multi_marginal_cost(x, SqEuclidean(), coupling="chain")
    np.testing.assert_allclose(pairs, [1 + 9 + 4, 0 + 1 + 1])
    np.testing.assert_allclose(chain, [1 + 4, 0 + 1])
    np.testing.assert_allclose(multi_marginal_cost(x[:2], Euclidean()), [1.0, 0.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=0.0), "eta"),
    (dict(eta=1.0, coupling="star"), "coupling"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spot_objective(ConstantGenerator(0.0, 1.0), [linear_critic(1.0)] * 2, DATA, jax.random.PRNGKey(0),
                       cost_fn=Euclidean(), **kwargs)


def test_one_critic_per_marginal():
    with pytest.raises(ValueError, match="one critic per marginal"):
        spot_objective(ConstantGenerator(0.0, 1.0), [linear_critic(1.0)], DATA, jax.random.PRNGKey(0),
                       cost_fn=Euclidean(), eta=1.0)


def test_objective_is_jit_and_grad_compatible_with_a_traced_eta():
    value = jax.jit(lambda eta: objective(1.0, 4.0, 0.5, -0.25, eta=eta)[0])(10.0)
    assert np.isclose(value, 3.0 + 10.0 * 0.75)
    d_eta = jax.grad(lambda eta: objective(1.0, 4.0, 0.5, -0.25, eta=eta)[0])(10.0)
    assert np.isclose(d_eta, 0.75)  # = the sum of the critic gaps


def test_shape_mismatches_are_named():
    with pytest.raises(ValueError, match=r"marginal 1: the generator returns points of shape \(1,\), the data has \(2,\)"):
        spot_objective(ConstantGenerator(0.0, 1.0), [linear_critic(1.0)] * 2, (DATA[0], jnp.zeros((16, 2))),
                       jax.random.PRNGKey(0), cost_fn=Euclidean(), eta=1.0)
    with pytest.raises(ValueError, match="same B"):
        multi_marginal_cost([jnp.zeros((3, 1)), jnp.zeros((4, 1))], Euclidean())
