"""GW barycenters against POT's ``gromov_barycenters`` / ``entropic_gromov_barycenters``."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

import ot_jax


def _spaces(sizes, seed=0):
    rng = np.random.default_rng(seed)
    costs = []
    for s, n in enumerate(sizes):
        x = rng.normal(size=(n, 2)) * (1 + 0.3 * s)
        cost = ot.dist(x, x)
        costs.append(cost / cost.max())
    xi = rng.normal(size=(8, 2))
    init = ot.dist(xi, xi)
    return costs, init / init.max(), rng


@pytest.mark.parametrize("loss, pot_loss", [("square", "square_loss"), ("kl", "kl_loss")])
def test_equals_pot(loss, pot_loss):
    costs, init, rng = _spaces((12, 15, 10))
    lam = np.array([0.5, 0.3, 0.2])
    qs = [rng.uniform(0.5, 1.5, c.shape[0]) for c in costs]
    qs = [q / q.sum() for q in qs]
    p = rng.uniform(0.5, 1.5, 8)
    p /= p.sum()
    if loss == "kl":
        # With these random masses and weights the KL iteration cycles between two plans
        # forever, in POT as in ours (both end after max_iters, equal to 6e-16); uniform
        # ones converge.
        qs = [np.full(c.shape[0], 1.0 / c.shape[0]) for c in costs]
        p, lam = np.full(8, 1.0 / 8), np.full(3, 1.0 / 3)
    out = ot_jax.gromov_barycenter(costs, init, point_weights=qs, init_weights=p, weights=lam, loss=loss)
    ref = ot.gromov.gromov_barycenters(8, costs, ps=qs, p=p, lambdas=list(lam), loss_fun=pot_loss, init_C=init,
                                       max_iter=1000, tol=1e-9)
    assert ot_jax.Status(int(out.status)) == ot_jax.Status.CONVERGED
    np.testing.assert_allclose(out.cost_matrix, ref, atol=1e-10)
    # cost: the lambda-weighted GW objectives of the final plans, which POT's gromov_wasserstein2 also finds
    value = sum(w * ot.gromov.gromov_wasserstein2(np.asarray(out.cost_matrix), c, p, q, pot_loss)
                for w, c, q in zip(lam, costs, qs))
    assert abs(float(out.cost) - value) < 1e-9


def test_entropic_equals_pot():
    costs, init, _ = _spaces((12, 15, 10))
    out = ot_jax.gromov_barycenter(costs, init, epsilon=0.05)
    ref = ot.gromov.entropic_gromov_barycenters(8, costs, lambdas=[1 / 3] * 3, epsilon=0.05, init_C=init,
                                                max_iter=1000, tol=1e-9)
    assert int(out.status) == 0
    np.testing.assert_allclose(out.cost_matrix, ref, atol=1e-9)


def test_copies_of_one_space_give_that_space():
    """The barycenter of relabelled copies of one structure is that structure (GW distance 0)."""
    costs, _, rng = _spaces((9,), seed=3)
    base = costs[0]
    copies = [base[np.ix_(perm, perm)] for perm in (np.arange(9), rng.permutation(9), rng.permutation(9))]
    out = ot_jax.gromov_barycenter(jnp.asarray(np.stack(copies)), base + 0.05 * rng.uniform(size=(9, 9)))
    assert int(out.status) == 0
    assert float(out.cost) < 1e-12
    assert float(ot_jax.gromov_wasserstein(out.cost_matrix, base).cost) < 1e-12


def test_stacked_equals_list_and_jit():
    costs, init, _ = _spaces((10, 10))
    listed = ot_jax.gromov_barycenter(costs, init)
    stacked = jax.jit(lambda c: ot_jax.gromov_barycenter(c, init).cost_matrix)(jnp.asarray(np.stack(costs)))
    np.testing.assert_allclose(stacked, listed.cost_matrix, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(costs=[np.ones((3, 2))]), r"costs\[0\] must be a non-empty square"),
    (dict(init=np.ones((3, 2))), "init must be a non-empty square"),
    (dict(costs=[]), "costs is empty"),
    (dict(costs=[np.full((3, 3), np.nan)]), r"costs\[0\] contains NaN"),
    (dict(loss="l1"), "loss must be one of"),
    (dict(loss="kl", init=-np.ones((3, 3))), "needs costs >= 0"),
    (dict(weights=np.array([0.2, 0.2])), "weights must sum to 1"),
    (dict(point_weights=[np.ones(3) / 3]), "point_weights has 1 entries"),
    (dict(init_weights=np.array([0.5, 0.5, 0.0])), "init_weights must be > 0"),
    (dict(max_iters=0), "max_iters must be an integer"),
])
def test_bad_input_names_the_argument(kwargs, message):
    args = dict(costs=[np.eye(3), 1.0 - np.eye(3)], init=np.ones((3, 3)))
    args.update(kwargs)
    costs, init = args.pop("costs"), args.pop("init")
    with pytest.raises(ValueError, match=message):
        ot_jax.gromov_barycenter(costs, init, **args)


def test_differentiating_raises_instead_of_a_silent_zero():
    costs, init, _ = _spaces((6, 7))
    with pytest.raises(ValueError, match="offers no derivative"):
        jax.grad(lambda c: ot_jax.gromov_barycenter([c, costs[1]], init).cost)(jnp.asarray(costs[0]))
    # Not differentiated: the same values as before.
    value = ot_jax.gromov_barycenter(costs, init)
    assert np.isfinite(float(value.cost))
