"""Health reporting shared by every result: status names, messages naming the solver's own
parameter, short reprs, and ``throw``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.losses import minibatch as mb
from ot_jax.solvers import status_message
from ot_jax.solvers._entropic import GRAD_MODES


@pytest.fixture(scope="module")
def cloud():
    x = jax.random.normal(jax.random.PRNGKey(0), (200, 2))
    return x, x + 1.0


def test_status_str_is_its_name():
    assert str(ot_jax.Status.MAX_ITERS) == "MAX_ITERS" and str(ot_jax.Status.CONVERGED) == "CONVERGED"


def test_messages_name_the_solvers_own_parameter():
    sink = status_message(ot_jax.Status.MAX_ITERS, "sinkhorn", "epsilon")
    ipot = status_message(ot_jax.Status.INVALID_INPUT, "ipot", "beta")
    assert "epsilon" in sink and "beta" not in sink and sink.startswith("ot_jax.sinkhorn: MAX_ITERS")
    assert "beta" in ipot and "epsilon" not in ipot
    assert "beta" not in status_message(ot_jax.Status.MAX_ITERS, "emd") and "epsilon" not in status_message(
        ot_jax.Status.MAX_ITERS, "emd")


@pytest.mark.parametrize("solve, name, absent", [
    (lambda g: ot_jax.sinkhorn(g, epsilon=1e-3, max_iters=10, throw=True), "epsilon", "beta"),
    (lambda g: ot_jax.ipot(g, max_iters=10, throw=True), "beta", "epsilon"),
])
def test_throw_raises_with_the_solvers_parameter(cloud, solve, name, absent):
    geom = ot_jax.PointCloud(*cloud)
    with pytest.raises(Exception, match="MAX_ITERS") as err:
        jax.block_until_ready(solve(geom).cost)
    line = [ln for ln in str(err.value).splitlines() if "MAX_ITERS" in ln][0]
    assert name in line and absent not in line


def test_repr_is_short_and_names_the_status(cloud):
    x, y = cloud
    geom = ot_jax.PointCloud(x, y)
    measures = jnp.stack([jnp.full(20, 0.05), jnp.arange(1.0, 21.0) / 210.0])
    results = [ot_jax.sinkhorn(geom, epsilon=0.1), ot_jax.ipot(geom), ot_jax.emd(geom), ot_jax.assignment(geom),
               ot_jax.barycenter(measures, (jnp.arange(20.0)[:, None] - jnp.arange(20.0)[None, :]) ** 2 / 400),
               mb.exact_loss(None, x, y), mb.sliced_loss(jax.random.PRNGKey(0), x, y)]
    for out in results:
        text = repr(out)
        assert len(text) < 300, text
        assert "CONVERGED" in text and text.startswith(type(out).__name__ + "(")
        assert "[[" not in text  # no array dump


def test_grad_mode_one_vocabulary():
    assert set(GRAD_MODES) == {"implicit", "envelope", "unroll", "forward"}
    with pytest.raises(ValueError, match="grad_mode must be one of 'implicit', 'envelope', 'unroll'"):
        ot_jax.sinkhorn(jnp.ones((3, 3)), epsilon=0.1, grad_mode="forward")
    with pytest.raises(ValueError, match="grad_mode must be one of 'envelope', 'unroll'"):
        ot_jax.ipot(jnp.ones((3, 3)), grad_mode="implicit")
    with pytest.raises(ValueError, match="grad_mode must be one of 'implicit', 'forward', 'unroll'"):
        ot_jax.barycenter(jnp.ones((2, 3)) / 3, jnp.ones((3, 3)), grad_mode="envelope")


def test_assignment_lower_bound(rng):
    from scipy.optimize import linear_sum_assignment

    cost = rng.uniform(size=(40, 40))
    rows, cols = linear_sum_assignment(cost)
    best = cost[rows, cols].sum()
    auction = ot_jax.assignment(cost, method="auction")
    assert float(auction.lower_bound) <= best + 1e-12 <= float(auction.cost) + 1e-12
    assert float(auction.cost - auction.lower_bound) == pytest.approx(1e-7 * (cost.max() - cost.min()))
    hungarian = ot_jax.assignment(cost, method="hungarian")
    assert float(hungarian.lower_bound) == float(hungarian.cost)
    stopped = ot_jax.assignment(cost, max_iters=3)
    assert np.isneginf(float(stopped.lower_bound)) and str(ot_jax.Status(int(stopped.status))) == "MAX_ITERS"
