"""Bad input raises a readable error (eagerly) or sets Status.INVALID_INPUT (inside jit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.solvers.results import Status

SOLVERS = {
    "emd": lambda c, a=None, b=None, **kw: ot_jax.emd(c, a, b, **kw),
    "sinkhorn": lambda c, a=None, b=None, **kw: ot_jax.sinkhorn(c, a, b, epsilon=0.1, **kw),
    "ipot": lambda c, a=None, b=None, **kw: ot_jax.ipot(c, a, b, **kw),
}
COST = np.abs(np.arange(12.0).reshape(3, 4) - 5.0) / 7.0
A, B = np.full(3, 1 / 3), np.full(4, 1 / 4)


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize(
    "cost,a,b,match",
    [
        (COST, np.full(4, 0.25), B, r"weights a have shape \(4,\) but the geometry has 3 rows"),
        (COST, A, np.full(3, 1 / 3), r"weights b have shape \(3,\) but the geometry has 4 columns"),
        (COST, np.array([0.5, 0.7, -0.2]), B, r"weights a are negative at index 2"),
        (COST, np.array([0.5, np.nan, 0.5]), B, r"weights a contain NaN or inf"),
        (COST, A, np.full(4, 0.3), r"unequal total mass, sum\(a\) = 1 but sum\(b\) = 1.2"),
        (COST, A * 0, B * 0, r"weights a have zero total mass"),
        (np.where(COST > 0.5, np.inf, COST), A, B, r"the costs contain NaN or inf"),
        (np.zeros((0, 4)), None, None, r"empty problem"),
        (np.ones(5), None, None, r"cost matrix must be 2-D"),
    ],
)
def test_bad_input_raises(name, cost, a, b, match):
    with pytest.raises(ValueError, match=match):
        SOLVERS[name](cost, a, b)


@pytest.mark.parametrize("eps", [0.0, -1.0, np.nan])
def test_bad_epsilon_and_beta(eps):
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        ot_jax.sinkhorn(COST, epsilon=eps)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        ot_jax.ipot(COST, beta=eps)


def test_nan_points_in_pointcloud():
    x = np.zeros((3, 2))
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match="the points contain NaN or inf"):
        ot_jax.sinkhorn(ot_jax.PointCloud(x, np.ones((4, 2))), epsilon=0.1)


def test_bad_options():
    with pytest.raises(ValueError, match="mode must be"):
        ot_jax.sinkhorn(COST, epsilon=0.1, mode="fast")
    with pytest.raises(ValueError, match="grad_mode must be"):
        ot_jax.ipot(COST, grad_mode="implicit-ish")
    with pytest.raises(ValueError, match="inner_iters must be >= 1"):
        ot_jax.ipot(COST, inner_iters=0)


@pytest.mark.parametrize("name", SOLVERS)
def test_invalid_inside_jit_sets_status_and_throw_raises(name):
    bad_a = jnp.array([0.5, 0.7, -0.2])
    out = jax.jit(lambda a: SOLVERS[name](COST, a, B))(bad_a)
    assert int(out.status) == Status.INVALID_INPUT and not bool(out.converged)
    with pytest.raises(Exception, match="invalid input"):
        jax.block_until_ready(jax.jit(lambda a: SOLVERS[name](COST, a, B, throw=True).cost)(bad_a))


def test_vmap_flags_only_the_bad_problem():
    costs = jnp.stack([jnp.asarray(COST), jnp.asarray(COST).at[0, 0].set(jnp.nan)])
    out = jax.vmap(lambda c: ot_jax.sinkhorn(c, epsilon=0.1))(costs)
    assert [int(s) for s in out.status] == [Status.CONVERGED, Status.INVALID_INPUT]


@pytest.mark.parametrize("name", SOLVERS)
def test_jit_over_a_batch_with_concrete_closed_over_weights(name):
    """Inside jit, checks on concrete closed-over weights are staged: no eager bool() on them."""
    costs = jnp.stack([jnp.asarray(COST), jnp.asarray(COST) * 2.0])
    a, b = jnp.asarray(A), jnp.asarray(B)
    out = jax.jit(jax.vmap(lambda c: SOLVERS[name](c, a, b).cost))(costs)
    single = [float(SOLVERS[name](c, a, b).cost) for c in costs]
    np.testing.assert_allclose(np.asarray(out), single, rtol=1e-6)


# ------------------------------------------------------------------ errors that name the problem
@pytest.mark.parametrize("x, y, match", [
    (np.ones((3, 2)), np.ones((4, 3)), r"same dimension d, got x of shape \(3, 2\) and y of shape \(4, 3\)"),
    (np.ones(3), np.ones((4, 1)), r"x must be \[n, d\] points, got shape \(3,\); a 1-D cloud"),
    (np.ones((5, 3, 2)), np.ones((4, 2)), r"same leading batch shape in x and y, got x of shape \(5, 3, 2\)"),
])
def test_point_cloud_names_the_bad_argument(x, y, match):
    with pytest.raises(ValueError, match=match):
        ot_jax.PointCloud(x, y)


def test_batched_result_points_to_vmap():
    xs = jnp.ones((2, 3, 2)) * jnp.arange(3.0)[None, :, None]
    out = jax.vmap(lambda x: ot_jax.sinkhorn(ot_jax.PointCloud(x, x + 1.0), epsilon=1.0))(xs)
    assert out.geom.x.shape == (2, 3, 2)  # batched clouds rebuild without the user-facing checks
    with pytest.raises(ValueError, match=r"marginal_error: this result holds a batch .*jax.vmap"):
        out.marginal_error


@pytest.mark.parametrize("mode", ["log", "scaling"])
def test_sinkhorn_init_shapes_checked_in_every_mode(mode):
    with pytest.raises(ValueError, match=r"init potentials must have shapes \(3,\) and \(4,\)"):
        ot_jax.sinkhorn(COST, epsilon=1.0, mode=mode, init=(np.zeros(3), np.zeros(3)))


def test_throw_raises_solver_error_with_the_message_first():
    with pytest.raises(ot_jax.SolverError) as err:
        ot_jax.sinkhorn(COST, epsilon=1e-3, max_iters=2, check_every=1, tol=1e-14, throw=True)
    assert str(err.value).splitlines()[0].startswith("ot_jax.sinkhorn: MAX_ITERS")
    # a jitted solve: the status travels out, check_status raises the same plain error
    out = jax.jit(lambda c: ot_jax.sinkhorn(c, epsilon=1e-3, max_iters=2, check_every=1, tol=1e-14))(COST)
    with pytest.raises(ot_jax.SolverError, match=r"^ot_jax.sinkhorn: MAX_ITERS"):
        ot_jax.check_status(out, "sinkhorn")


def test_ipot_certifies_an_exact_value_of_zero():
    """x against itself: W = 0, so a purely relative rule could never stop."""
    x = np.random.default_rng(0).uniform(size=(40, 2))
    out = ot_jax.ipot(ot_jax.PointCloud(x, x), tol=1e-6)
    assert int(out.status) == Status.CONVERGED
    max_cost = float(ot_jax.PointCloud(x, x).max_cost())
    assert 0.0 <= float(out.cost) <= 1e-6 * 1e-3 * max_cost  # the documented absolute floor
    assert np.diag(np.asarray(out.plan)).min() > 0.99 / 40


def test_ipot_envelope_mode_refuses_to_differentiate_the_plan():
    grad = jax.grad(lambda c: ot_jax.ipot(c, tol=1e-6).plan.sum())
    with pytest.raises(ValueError, match="not differentiable with grad_mode='envelope'"):
        grad(jnp.asarray(COST))
