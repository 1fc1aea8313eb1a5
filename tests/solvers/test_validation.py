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
