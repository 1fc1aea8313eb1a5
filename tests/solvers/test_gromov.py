"""Gromov-Wasserstein and fused GW (conditional gradient and entropic) against POT's ``ot.gromov``."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax
from ot_jax.solvers.results import SolverError, Status

N, M = 14, 11  # one problem size for the whole file: one compiled program per solver setting


def _spaces(seed=0, asymmetric=False):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(N, 2)), rng.normal(size=(M, 3))
    cost_x, cost_y = ot.dist(x, x), ot.dist(y, y)
    cost_x, cost_y = cost_x / cost_x.max(), cost_y / cost_y.max()
    if asymmetric:
        cost_x = cost_x + 0.3 * rng.uniform(size=(N, N))
        cost_y = cost_y + 0.3 * rng.uniform(size=(M, M))
    a, b = rng.uniform(0.5, 1.5, N), rng.uniform(0.5, 1.5, M)
    features = ot.dist(x, y[:, :2])
    return cost_x, cost_y, a / a.sum(), b / b.sum(), features / features.max()


@pytest.mark.parametrize("loss, pot_loss, shift", [("square", "square_loss", 0.0), ("kl", "kl_loss", 0.1)])
@pytest.mark.parametrize("asymmetric", [False, True])
def test_conditional_gradient_equals_pot(loss, pot_loss, shift, asymmetric):
    cost_x, cost_y, a, b, _ = _spaces(1, asymmetric)
    cost_x, cost_y = cost_x + shift, cost_y + shift
    ref_plan, log = ot.gromov.gromov_wasserstein(cost_x, cost_y, a, b, pot_loss, log=True)
    ours = ot_jax.gromov_wasserstein(cost_x, cost_y, a, b, loss=loss)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), ref_plan, atol=1e-9)
    assert abs(float(ours.cost) - float(log["gw_dist"])) <= 1e-9 * max(1.0, abs(float(log["gw_dist"])))
    plan = np.asarray(ours.plan)
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-12)


def test_conditional_gradient_ends_at_a_stationary_point():
    """The returned duals certify the plan for its linearised problem: zero Frank-Wolfe gap."""
    cost_x, cost_y, a, b, _ = _spaces(2)
    out = ot_jax.gromov_wasserstein(cost_x, cost_y, a, b)
    plan = np.asarray(out.plan)
    rows, cols = plan.sum(1), plan.sum(0)
    tensor = (cost_x ** 2 @ rows)[:, None] + (cost_y ** 2 @ cols)[None, :] - 2 * cost_x @ plan @ cost_y.T
    grad = 2 * tensor
    reduced = grad - np.asarray(out.f)[:, None] - np.asarray(out.g)[None, :]
    assert reduced.min() >= -1e-9  # dual feasible
    assert abs(float((reduced * plan).sum())) <= 1e-8  # complementary slackness: the FW gap
    # and the value is GW(T) from its definition, sum_ijkl (C_x[i, k] - C_y[j, l])^2 T_ij T_kl
    loss = (cost_x[:, None, :, None] - cost_y[None, :, None, :]) ** 2
    direct = np.einsum("ijkl,ij,kl->", loss, plan, plan)
    assert abs(float(out.cost) - direct) <= 1e-12


def test_fused_conditional_gradient_equals_pot():
    cost_x, cost_y, a, b, features = _spaces(3)
    ref_plan, log = ot.gromov.fused_gromov_wasserstein(features, cost_x, cost_y, a, b, alpha=0.3, log=True)
    ours = ot_jax.gromov_wasserstein(cost_x, cost_y, a, b, cost_xy=features, alpha=0.3)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), ref_plan, atol=1e-9)
    assert abs(float(ours.cost) - float(log["fgw_dist"])) <= 1e-9


@pytest.mark.parametrize("fused", [False, True])
def test_entropic_equals_pot(fused):
    cost_x, cost_y, a, b, features = _spaces(4)
    eps = 0.02
    options = dict(numItermax=100000, stopThr=1e-13)
    if fused:
        ref_plan, log = ot.gromov.entropic_fused_gromov_wasserstein(features, cost_x, cost_y, a, b, epsilon=eps,
                                                                    alpha=0.4, tol=1e-12, log=True, **options)
        ref_value = log["fgw_dist"]
        ours = ot_jax.gromov_wasserstein(cost_x, cost_y, a, b, cost_xy=features, alpha=0.4, epsilon=eps, tol=1e-12,
                                         inner_tol=1e-13, inner_max_iters=100000)
    else:
        ref_plan, log = ot.gromov.entropic_gromov_wasserstein(cost_x, cost_y, a, b, epsilon=eps, tol=1e-12, log=True,
                                                              **options)
        ref_value = log["gw_dist"]
        ours = ot_jax.gromov_wasserstein(cost_x, cost_y, a, b, epsilon=eps, tol=1e-12, inner_tol=1e-13,
                                         inner_max_iters=100000)
    assert int(ours.status) == Status.CONVERGED
    np.testing.assert_allclose(np.asarray(ours.plan), ref_plan, atol=1e-9)
    assert abs(float(ours.cost) - float(ref_value)) <= 1e-9
    plan = np.asarray(ours.plan)
    kl = float((plan * np.log(plan / np.outer(a, b))).sum())
    assert abs(float(ours.reg_cost) - (float(ref_value) + eps * kl)) <= 1e-9
    assert float(ours.lower_bound) == -np.inf and float(ours.upper_bound) == np.inf


def _central(fun, x, direction, h):
    return (float(fun(x + h * direction)) - float(fun(x - h * direction))) / (2 * h)


def test_conditional_gradient_envelope_gradients_match_finite_differences():
    cost_x, cost_y, a, b, features = _spaces(5)
    cost_x, cost_y, a, b, features = map(jnp.asarray, (cost_x, cost_y, a, b, features))
    rng = np.random.default_rng(0)

    def value(cx=cost_x, cy=cost_y, wa=a, wb=b, feat=features, alpha=0.6):
        return ot_jax.gromov_wasserstein(cx, cy, wa, wb, cost_xy=feat, alpha=alpha).cost

    sym = rng.normal(size=(N, N))
    cases = [(lambda v: value(cx=v), cost_x, sym + sym.T), (lambda v: value(cy=v), cost_y, rng.normal(size=(M, M))),
             (lambda v: value(feat=v), features, rng.normal(size=(N, M))), (lambda v: value(alpha=v), 0.6, 1.0),
             (lambda v: value(wa=v), a, rng.normal(size=N) - 0.0), (lambda v: value(wb=v), b, rng.normal(size=M))]
    for k, (fun, x, direction) in enumerate(cases):
        direction = np.asarray(direction, float)
        if k >= 4:
            direction = direction - direction.mean()  # stay on equal masses
        grad = np.asarray(jax.grad(fun)(jnp.asarray(x, float)))
        fd = _central(fun, jnp.asarray(x, float), jnp.asarray(direction), 1e-6)
        assert abs(float((grad * direction).sum()) - fd) <= 1e-7 * max(1.0, abs(fd)), k


def test_entropic_envelope_gradients_match_finite_differences():
    cost_x, cost_y, a, b, features = _spaces(6)
    cost_x, cost_y, a, b, features = map(jnp.asarray, (cost_x, cost_y, a, b, features))
    rng = np.random.default_rng(1)
    tight = dict(tol=1e-13, inner_tol=1e-13, inner_max_iters=20000)

    def value(cx=cost_x, wa=a, feat=features, eps=0.05):
        return ot_jax.gromov_wasserstein(cx, cost_y, wa, b, cost_xy=feat, alpha=0.5, epsilon=eps, **tight).reg_cost

    sym = rng.normal(size=(N, N))
    direction_a = rng.normal(size=N)
    cases = [(lambda v: value(cx=v), cost_x, sym + sym.T), (lambda v: value(feat=v), features, rng.normal(size=(N, M))),
             (lambda v: value(eps=v), 0.05, 1.0), (lambda v: value(wa=v), a, direction_a - direction_a.mean())]
    for k, (fun, x, direction) in enumerate(cases):
        grad = np.asarray(jax.grad(fun)(jnp.asarray(x, float)))
        fd = _central(fun, jnp.asarray(x, float), jnp.asarray(direction, float), 1e-5)
        assert abs(float((grad * direction).sum()) - fd) <= 1e-6 * max(1.0, abs(fd)), k
    # cost and the plan carry no derivative
    assert float(jax.grad(lambda v: ot_jax.gromov_wasserstein(v, cost_y, epsilon=0.05).cost)(cost_x).sum()) == 0.0


def test_recovers_a_rotated_and_permuted_point_cloud():
    """GW is invariant to isometries: a rotated, shuffled copy is matched point for point."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 2))
    theta = 0.9
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    perm = rng.permutation(N)
    y = (x @ rotation.T)[perm]
    out = ot_jax.gromov_wasserstein(ot_jax.PointCloud(x, x), ot_jax.PointCloud(y, y))
    assert float(out.cost) <= 1e-12
    np.testing.assert_array_equal(np.argmax(np.asarray(out.plan), axis=1), np.argsort(perm))
    # the linear OT between the raw coordinates does not match them
    linear = ot_jax.emd(ot_jax.PointCloud(x, y))
    assert np.mean(np.argmax(np.asarray(linear.plan), axis=1) == np.argsort(perm)) < 0.5


def test_fused_gw_matches_a_relabelled_graph():
    """Graph matching: a shuffled copy of a graph with noisy node labels; fused GW finds the node map."""
    rng = np.random.default_rng(8)
    adjacency = (rng.uniform(size=(N, N)) < 0.3).astype(float)
    adjacency = np.triu(adjacency, 1)
    adjacency = adjacency + adjacency.T
    perm = rng.permutation(N)
    labels = rng.normal(size=(N, 1))
    other = adjacency[np.ix_(perm, perm)]
    other_labels = labels[perm] + 0.01 * rng.normal(size=(N, 1))
    features = ot.dist(labels, other_labels)
    out = ot_jax.gromov_wasserstein(adjacency, other, cost_xy=features, alpha=0.5)
    assert int(out.status) == Status.CONVERGED
    np.testing.assert_array_equal(np.argmax(np.asarray(out.plan), axis=1), np.argsort(perm))


def test_jit_and_vmap_agree_with_single_calls():
    rng = np.random.default_rng(9)
    xs, ys = rng.normal(size=(3, N, 2)), rng.normal(size=(3, M, 2))

    def costs(z):
        return jnp.sum((z[:, None] - z[None]) ** 2, -1)

    for eps in (None, 0.1):
        batched = jax.jit(jax.vmap(lambda x, y: ot_jax.gromov_wasserstein(costs(x), costs(y), epsilon=eps).cost))
        single = [float(ot_jax.gromov_wasserstein(costs(x), costs(y), epsilon=eps).cost) for x, y in zip(xs, ys)]
        np.testing.assert_allclose(np.asarray(batched(xs, ys)), single, rtol=1e-9)


def test_bad_input_names_the_argument():
    cost_x, cost_y, a, b, features = _spaces(10)
    gw = ot_jax.gromov_wasserstein
    with pytest.raises(ValueError, match="cost_x must be a square"):
        gw(cost_x[:, :5], cost_y)
    with pytest.raises(ValueError, match="cost_xy must be a"):
        gw(cost_x, cost_y, cost_xy=features.T)
    with pytest.raises(ValueError, match="loss must be one of"):
        gw(cost_x, cost_y, loss="l1")
    with pytest.raises(ValueError, match="loss='kl' needs costs >= 0"):
        gw(cost_x - 1.0, cost_y, loss="kl")
    with pytest.raises(ValueError, match="alpha must be in"):
        gw(cost_x, cost_y, cost_xy=features, alpha=1.5)
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        gw(cost_x, cost_y, epsilon=0.0)
    with pytest.raises(ValueError, match="init must be a plan"):
        gw(cost_x, cost_y, a, b, init=np.ones((N, M)))
    with pytest.raises(ValueError, match="cost_y contains NaN"):
        gw(cost_x, np.full((M, M), np.nan))
    with pytest.raises(ValueError, match="weights a have shape"):
        gw(cost_x, cost_y, a[:-1], b)
    with pytest.raises(ValueError, match="unequal total mass"):
        gw(cost_x, cost_y, a, 2 * b)
    with pytest.raises(ValueError, match="max_iters must be an integer"):
        gw(cost_x, cost_y, max_iters=0)
    with pytest.raises(SolverError, match="MAX_ITERS"):
        gw(cost_x, cost_y, a, b, epsilon=0.01, max_iters=1, throw=True)
    # inside jit, bad values travel in the status
    out = jax.jit(lambda e: gw(cost_x, cost_y, epsilon=e))(-1.0)
    assert int(out.status) == Status.INVALID_INPUT
