"""JDOT (ot_jax.tools.jdot): one block-coordinate step against NumPy and POT, monotone descent, adaptation."""

import jax
import numpy as np
import ot
import pytest

from ot_jax.data import rotated_moons, shifted_gaussians
from ot_jax.geometry import nearest_neighbors
from ot_jax.tools import jdot


def _reference_step(xs, ys, xt, alpha, ridge, gamma, n_classes):
    """One JDOT iteration by hand: plan on the feature cost (POT), weighted kernel ridge, the next plan."""
    n, m = len(xs), len(xt)
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    y = np.eye(n_classes)[ys]
    feature = alpha * ot.dist(xs, xt)
    plan = ot.emd(a, b, feature)
    cols = plan.sum(0)
    yhat = plan.T @ y / cols[:, None]
    k = np.exp(-gamma * ot.dist(xt, xt))
    coef = np.linalg.solve(cols[:, None] * k + ridge * np.eye(m), cols[:, None] * yhat)
    # the weighted ridge optimality condition: K (diag(b) (K coef - yhat) + ridge coef) = 0
    np.testing.assert_allclose(k @ (cols[:, None] * (k @ coef - yhat) + ridge * coef), 0.0, atol=1e-10)
    cost = feature + ot.dist(y, k @ coef)
    objective = np.sum(plan * cost) + ridge * np.sum(coef * (k @ coef))
    return coef, objective, ot.emd(a, b, cost)


def test_one_iteration_equals_a_numpy_and_pot_reference():
    d = rotated_moons(jax.random.PRNGKey(0), 30, 25, angle=40.0)
    xs, ys, xt = (np.asarray(v) for v in (d.xs, d.ys, d.xt))
    out = jdot.jdot(xs, ys, xt, alpha=0.5, ridge=0.1, gamma=2.0, n_iters=1)
    coef, objective, plan = _reference_step(xs, ys, xt, 0.5, 0.1, 2.0, 2)
    np.testing.assert_allclose(out.weights, coef, atol=1e-10)
    np.testing.assert_allclose(out.objective[0], objective, rtol=1e-12)
    np.testing.assert_allclose(out.plan, plan, atol=1e-12)
    np.testing.assert_allclose(jdot.predict(out, xt), np.exp(-2.0 * ot.dist(xt, xt)) @ coef, atol=1e-10)


@pytest.mark.parametrize("model", ["rbf", "linear"])
def test_the_objective_never_increases(model):
    d = rotated_moons(jax.random.PRNGKey(1), 40, 40, angle=50.0)
    out = jdot.jdot(d.xs, d.ys, d.xt, model=model, n_iters=6, gamma=2.0)
    assert bool(out.converged)
    obj = np.asarray(out.objective)
    assert np.all(np.diff(obj) <= 1e-12 * obj[0]) and obj[-1] < obj[0]


def test_regression_responses_and_a_shift_the_source_model_misses():
    d = shifted_gaussians(jax.random.PRNGKey(2), 60, 60, shift=3.0)
    source_only = np.mean(np.asarray(d.ys)[np.asarray(nearest_neighbors(d.xt, d.xs)[0])] == np.asarray(d.yt))
    out = jdot.jdot(d.xs, d.ys, d.xt, alpha=1.0, gamma=1.0, n_iters=5)
    adapted = np.mean(np.argmax(np.asarray(jdot.predict(out, d.xt)), 1) == np.asarray(d.yt))
    assert source_only < 0.7 and adapted > 0.95
    real = jdot.jdot(d.xs, np.asarray(d.ys, float), d.xt, classification=False, model="linear", n_iters=2)
    assert jdot.predict(real, d.xt).shape == (60, 1)


def test_bad_input_names_the_argument():
    d = rotated_moons(jax.random.PRNGKey(0), 20, 20)
    with pytest.raises(ValueError, match=r"ys must be \[20\] class labels"):
        jdot.jdot(d.xs, d.ys[:-1], d.xt)
    with pytest.raises(ValueError, match="integer class labels"):
        jdot.jdot(d.xs, np.asarray(d.ys, float), d.xt)
    with pytest.raises(ValueError, match="model must be one of"):
        jdot.jdot(d.xs, d.ys, d.xt, model="svm")
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        jdot.jdot(d.xs, d.ys, d.xt, alpha=-1.0)
    with pytest.raises(ValueError, match="xt contains NaN"):
        jdot.jdot(d.xs, d.ys, np.full((20, 2), np.nan))
