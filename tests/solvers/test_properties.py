"""Hypothesis property tests: marginal constraints hold for random problems."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ot_jax

# Sizes from a few values, so that examples of one shape share one compiled solver (a new
# shape recompiles, which was most of these tests' time); values stay random per example.
problems = st.tuples(st.sampled_from([2, 12]), st.sampled_from([3, 11]), st.integers(0, 2**31 - 1))


def _problem(n, m, seed):
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0, 1, (n, m))
    a, b = rng.uniform(0.05, 1, n), rng.uniform(0.05, 1, m)
    return cost, a / a.sum(), b / b.sum()


@settings(max_examples=25, deadline=None)
@given(problems)
def test_emd_plan_is_feasible(p):
    cost, a, b = _problem(*p)
    plan = np.asarray(ot_jax.emd(cost, a, b).plan)
    assert plan.min() >= 0
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(problems, st.sampled_from([1.0, 0.1, 0.03]))
def test_sinkhorn_marginals_within_tol(p, eps):
    cost, a, b = _problem(*p)
    out = ot_jax.sinkhorn(cost, a, b, epsilon=eps, tol=1e-8, max_iters=20000)
    assert bool(out.converged)
    rows, cols = (np.asarray(v) for v in out.marginals)
    assert np.abs(rows - a).sum() <= 1e-8
    np.testing.assert_allclose(cols, b, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(problems)
def test_ipot_columns_exact_bound_valid_and_converged_means_accurate(p):
    cost, a, b = _problem(*p)
    out = ot_jax.ipot(cost, a, b, tol=1e-7, max_iters=20000)
    rows, cols = (np.asarray(v) for v in out.marginals)
    np.testing.assert_allclose(cols, b, atol=1e-10)
    exact = float(ot_jax.emd(cost, a, b).cost)
    assert float(out.lower_bound) <= exact + 1e-12
    # Not every tiny degenerate LP converges at the default beta with L = 1 (reported in
    # status); but a result that says converged is accurate.
    if bool(out.converged):
        assert abs(float(out.cost) - exact) <= 1e-5 * max(exact, 1e-3)
    else:
        assert int(out.status) == 1
