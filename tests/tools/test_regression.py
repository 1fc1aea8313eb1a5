"""Baselines of regression without correspondence (ot_jax.tools.regression) on problems with known answers."""

import jax
import numpy as np

from ot_jax.data.unpaired import shuffled_regression
from ot_jax.tools import regression


def _data(shuffled, snr=float("inf"), n=60, key=0):
    return shuffled_regression(jax.random.PRNGKey(key), n, d_paired=2, d_unpaired=3, shuffled=shuffled, snr=snr,
                               intercept=True)


def test_least_squares_with_the_true_matching_is_exact_without_noise():
    d = _data(1.0)
    beta = regression.least_squares(d.x_paired, d.x_unpaired, d.y, np.asarray(d.match))
    np.testing.assert_allclose(beta, np.asarray(d.beta), atol=1e-8)
    np.testing.assert_allclose(regression.predict(beta, d.x_val), np.asarray(d.y_val), atol=1e-8)
    cost = regression.residual_cost_matrix(beta, d.x_paired, d.x_unpaired, d.y)
    assert np.allclose(cost[np.arange(60), np.asarray(d.match)], 0.0, atol=1e-12)
    np.testing.assert_array_equal(regression.assign(cost), np.asarray(d.match))


def test_alt_min_stops_at_a_fixed_point_that_improves_on_least_squares():
    d = _data(0.2)
    beta, matching, iters = regression.alt_min(d.x_paired, d.x_unpaired, d.y)
    np.testing.assert_array_equal(regression.assign(regression.residual_cost_matrix(beta, d.x_paired, d.x_unpaired, d.y)),
                                  matching)  # a fixed point: reassigning changes nothing
    assert iters >= 2
    truth = np.asarray(d.beta)
    ls = regression.least_squares(d.x_paired, d.x_unpaired, d.y)
    rss = lambda b, m: float(np.sum(regression.residual_cost_matrix(b, d.x_paired, d.x_unpaired, d.y)[np.arange(60), m]))
    assert rss(beta, matching) < rss(ls, np.arange(60))  # each half-step lowers the residual sum of squares
    assert np.linalg.norm(beta - truth) < np.linalg.norm(ls - truth)


def test_stochastic_em_keeps_the_truth_on_unshuffled_nearly_noiseless_data():
    d = _data(0.0, snr=1e4)
    beta, matching = regression.stochastic_em(d.x_paired, d.x_unpaired, d.y, steps=3)
    assert np.linalg.norm(beta - np.asarray(d.beta)) < 1e-2 * np.linalg.norm(np.asarray(d.beta))
    # the sampled matching fits at about the noise level (it swaps rows of nearly equal residuals)
    resid = regression.residual_cost_matrix(np.asarray(d.beta), d.x_paired, d.x_unpaired, d.y)[np.arange(60), matching]
    noise_var = float(np.var(np.asarray(d.y))) / 1e4
    assert np.mean(resid) < 10 * noise_var
