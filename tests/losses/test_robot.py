"""ROBOT's objective: the hypergradient against finite differences, the exact limit, recovery of
a linear map from fully shuffled noiseless data, and the errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ot_jax
from ot_jax.data.unpaired import shuffled_regression
from ot_jax.losses.robot import matching_accuracy, recovered_matching, residual_cost, robot_loss

X = jax.random.uniform(jax.random.PRNGKey(0), (24, 2))
BETA = jnp.array([[1.0], [-2.0]])
Y = (X @ BETA + 0.05 * jax.random.normal(jax.random.PRNGKey(1), (24, 1)))[::-1]  # shuffled: reversed


def value(w, grad_mode="implicit", eps=5e-3):
    return robot_loss(residual_cost(Y, X @ w), epsilon=eps, grad_mode=grad_mode, tol=1e-12, max_iters=20000)[0]


def central_differences(fn, w, h=1e-5):
    out = np.zeros(w.shape)
    for idx in np.ndindex(w.shape):
        e = jnp.zeros(w.shape).at[idx].set(h)
        out[idx] = (fn(w + e) - fn(w - e)) / (2 * h)
    return out


W0 = jnp.array([[0.7], [-1.5]])


# unroll (~7 s, slow): the unrolled Sinkhorn gradient itself is checked fast in tests/solvers; implicit is the default
@pytest.mark.parametrize("grad_mode", ["implicit", pytest.param("unroll", marks=pytest.mark.slow)])
def test_hypergradient_matches_finite_differences(grad_mode):
    fd = central_differences(lambda w: float(value(w)), W0)
    g = np.asarray(jax.grad(value)(W0, grad_mode))
    assert np.linalg.norm(g - fd) <= 1e-5 * np.linalg.norm(fd)


def test_stop_gradient_drops_the_plans_derivative():
    """The plan-fixed gradient <dC, S*> is not the derivative of <C, S*> at eps > 0: the difference
    is the term <C, dS*> that the hypergradient adds."""
    fd = central_differences(lambda w: float(value(w)), W0)
    g_fixed = np.asarray(jax.grad(value)(W0, "stop_gradient"))
    _, res = robot_loss(residual_cost(Y, X @ W0), epsilon=5e-3, tol=1e-12, max_iters=20000)
    plan = np.asarray(res.plan)
    resid = np.asarray(Y)[:, None, 0] - (np.asarray(X) @ np.asarray(W0))[None, :, 0]  # [n, m]
    by_hand = np.array([[np.sum(plan * -2 * resid * np.asarray(X)[None, :, k])] for k in range(2)])
    np.testing.assert_allclose(g_fixed, by_hand, rtol=1e-8)
    assert np.max(np.abs(g_fixed - fd)) > 1e-3 * np.max(np.abs(fd))


def test_small_epsilon_hypergradient_is_altmins_assignment_gradient():
    """As eps -> 0 the hypergradient of <C, S_eps> tends to the gradient of the exact assignment's
    objective, <dC, P*> (envelope theorem of the LP, P* unique here): AltMin's gradient step. So at
    small eps ROBOT and AltMin with gradient steps take nearly the same steps (measured here: 0.2 %
    apart at eps = 1e-3)."""
    cost = residual_cost(Y, X @ W0).cost_matrix
    perm = ot_jax.assignment(cost, method="hungarian").permutation
    g_alt = jax.grad(lambda w: jnp.mean(jnp.sum((Y - (X @ w)[perm]) ** 2, -1)))(W0)
    g = jax.grad(value)(W0, "implicit", 1e-3)
    assert float(jnp.linalg.norm(g - g_alt)) < 0.01 * float(jnp.linalg.norm(g_alt))


def test_small_epsilon_limit_is_the_assignment_objective():
    """``0 <= <C, S_eps> - OT <= eps log n`` (the plan's KL to ``a b^T`` is at most ``log n``), and
    OT is the exact assignment's mean cost: the value tends to it as ``eps -> 0``."""
    cost = residual_cost(Y, X @ W0)
    n = Y.shape[0]
    exact = float(ot_jax.assignment(cost.cost_matrix, method="hungarian").cost) / n
    gaps = []
    for eps in (1e-2, 2e-3):
        v, res = robot_loss(cost, epsilon=eps, relative_epsilon=True, tol=1e-5, max_iters=100000)
        assert bool(res.converged)
        gaps.append(float(v) - exact)
        assert -1e-9 <= gaps[-1] <= float(res.plan_epsilon) * np.log(n)
    assert gaps[1] < 0.5 * gaps[0]


def test_recovers_a_linear_map_from_fully_shuffled_noiseless_data():
    data = shuffled_regression(jax.random.PRNGKey(2), 40, d_unpaired=2, n_outputs=2, shuffled=1.0,
                               snr=float("inf"), x_law="uniform")
    opt = optax.adam(1e-2)
    w = data.beta + 0.1 * jax.random.normal(jax.random.PRNGKey(4), data.beta.shape)

    @jax.jit
    def step(w, state, pots):
        (v, res), g = jax.value_and_grad(
            lambda w: robot_loss(residual_cost(data.y, data.x_unpaired @ w), epsilon=1e-4, relative_epsilon=True,
                                 tol=1e-6, max_iters=200, init=pots), has_aux=True)(w)
        up, state = opt.update(g, state, w)
        return optax.apply_updates(w, up), state, (res.f, res.g)

    state, pots = opt.init(w), (jnp.zeros(40), jnp.zeros(40))
    for _ in range(150):
        w, state, pots = step(w, state, pots)
    assert float(jnp.linalg.norm(w - data.beta) / jnp.linalg.norm(data.beta)) < 1e-3
    matching = recovered_matching(residual_cost(data.y, data.x_unpaired @ w))
    assert float(matching_accuracy(matching, data.match)) == 1.0


def test_bad_input_is_named():
    cost = residual_cost(Y, X[:20] @ W0)
    with pytest.raises(ValueError, match="mass"):
        robot_loss(cost, epsilon=1e-2)
    with pytest.raises(ValueError, match="grad_mode"):
        robot_loss(residual_cost(Y, X @ W0), epsilon=1e-2, grad_mode="envelope")
    with pytest.raises(ValueError, match="epsilon"):
        robot_loss(residual_cost(Y, X @ W0), epsilon=0.0)
    with pytest.raises(ValueError, match="x|NaN|finite"):
        robot_loss(residual_cost(Y.at[0, 0].set(jnp.nan), X @ W0), epsilon=1e-2)


def _fit(data, mass, steps=80):
    """Adam on ``W`` of ``y = x W`` from the truth plus noise; the relative error of the fit."""
    k = data.y.shape[0] + (mass is not None)
    opt = optax.adam(1e-2)
    w = data.beta + 0.1 * jax.random.normal(jax.random.PRNGKey(4), data.beta.shape)

    @jax.jit
    def step(w, state, pots):
        (_, res), g = jax.value_and_grad(
            lambda w: robot_loss(residual_cost(data.y, data.x_unpaired @ w), epsilon=1e-3, relative_epsilon=True,
                                 tol=1e-6, max_iters=200, init=pots, mass=mass), has_aux=True)(w)
        up, state = opt.update(g, state, w)
        return optax.apply_updates(w, up), state, (res.f, res.g)

    state, pots = opt.init(w), (jnp.zeros(k), jnp.zeros(k))
    for _ in range(steps):
        w, state, pots = step(w, state, pots)
    return float(jnp.linalg.norm(w - data.beta) / jnp.linalg.norm(data.beta))


@pytest.mark.slow  # two ROBOT fits to convergence (~18 s); the partial hypergradient is checked against finite differences in the fast suite
def test_partial_transport_ignores_outliers_that_pull_plain_robot():
    kw = dict(d_unpaired=2, n_outputs=2, shuffled=1.0, snr=100.0, x_law="uniform")
    clean = _fit(shuffled_regression(jax.random.PRNGKey(2), 60, **kw), None)
    dirty = shuffled_regression(jax.random.PRNGKey(2), 60, outliers=0.1, **kw)  # 6 unmatched rows on each side
    plain, partial = _fit(dirty, None), _fit(dirty, 60 / 66)
    assert partial <= 2 * clean < plain, (clean, partial, plain)


def test_partial_hypergradient_matches_finite_differences():
    x, y = X[:20], Y  # 24 responses, 20 predictions: 4 responses must stay unmatched
    eps = 5e-3

    def value(w, grad_mode="implicit"):
        return robot_loss(residual_cost(y, x @ w), epsilon=eps, mass=20 / 24, grad_mode=grad_mode, tol=1e-12,
                          max_iters=20000)[0]

    fd = central_differences(lambda w: float(value(w)), W0)
    g = np.asarray(jax.grad(value)(W0))
    assert np.linalg.norm(g - fd) <= 1e-5 * np.linalg.norm(fd)
    v, res = robot_loss(residual_cost(y, x @ W0), epsilon=eps, mass=20 / 24, tol=1e-12, max_iters=20000)
    plan = np.asarray(res.plan)
    np.testing.assert_allclose(plan[:24, :20].sum(), 20 / 24, atol=1e-9)  # the matched mass
    assert plan[24, 20] < 1e-12  # no mass between the dummies
    assert np.all(plan[:24, :20].sum(1) <= 1 / 24 + 1e-9)
