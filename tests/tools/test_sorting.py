"""Soft top-k, sort, rank and quantile: hard limits, OTT-JAX at matched settings, gradients, checks.

Small problems (n = 8-12) in float64; every function is compiled for a few shapes only
and reused across tests (the settings that change are dynamic arguments).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax import SolverError, soft_quantile, soft_rank, soft_sort, soft_topk

jax.config.update("jax_enable_x64", True)

N = 8
TIGHT = dict(tol=1e-12)


@pytest.fixture(scope="module")
def values():
    """[N] values near a permutation of 0..N-1: distinct, well spread."""
    rng = np.random.default_rng(1)
    return rng.permutation(N) + rng.uniform(-0.1, 0.1, N)


def _hard_mask(scores, k, descending=True):
    _, idx = jax.lax.top_k(scores if descending else -scores, k)
    return np.isin(np.arange(scores.shape[-1]), np.asarray(idx)).astype(float)


# ----------------------------------------------------------------------------- top-k


@pytest.fixture(scope="module")
def scores():
    """[4, N] scores: three random rows and one with a tie across the top-3 boundary."""
    rng = np.random.default_rng(0)
    tied = rng.permutation(np.array([5.0, 4.0, 3.0, 3.0, 1.0, 0.0, -1.0, -2.0]))
    return np.vstack([rng.normal(size=(3, N)), tied])


def test_topk_hard_limit_and_ties(scores):
    for row in scores[:3]:
        for k in (1, 3, N - 1):
            for descending in (True, False):
                soft = soft_topk(row, k, epsilon=1e-4, descending=descending)
                np.testing.assert_allclose(soft, _hard_mask(jnp.asarray(row), k, descending), atol=1e-6)
    # The two tied scores share the last of the top-3 places evenly.
    tied = scores[3]
    np.testing.assert_allclose(soft_topk(tied, 3, epsilon=1e-4),
                               np.where(tied > 3, 1.0, np.where(tied == 3, 0.5, 0.0)), atol=1e-6)


def test_topk_is_a_soft_indicator_summing_to_k(scores):
    for eps in (1e-2, 1e-1, 1.0):
        for row in scores:
            soft = np.asarray(soft_topk(row, 4, epsilon=eps))
            assert np.all(soft > -1e-9) and np.all(soft < 1 + 1e-4)
            assert soft.sum() == pytest.approx(4.0, abs=1e-9)
    hot = np.asarray(soft_topk(scores[0], 4, epsilon=1e3))
    np.testing.assert_allclose(hot, 4 / N, atol=1e-3)  # a hot plan is the product measure


# ----------------------------------------------------------------------------- sort, rank, quantile


def test_sort_and_rank_hard_limits(values):
    x = jnp.asarray(values)
    np.testing.assert_allclose(soft_sort(x, epsilon=1e-3, normalize="minmax"), jnp.sort(x), atol=1e-5)
    np.testing.assert_allclose(soft_rank(x, epsilon=1e-3, normalize="minmax"), jnp.argsort(jnp.argsort(x)), atol=1e-5)
    z = (x - x.min()) / (x.max() - x.min())  # "none": the values are the points
    np.testing.assert_allclose(soft_sort(z, epsilon=1e-3, normalize="none"), jnp.sort(z), atol=1e-5)
    # Decreasing order: sort -x and negate (exact with a symmetric normalisation).
    np.testing.assert_allclose(-soft_sort(-x, epsilon=0.05)[::-1], soft_sort(x, epsilon=0.05), atol=1e-6)


def _window_mean(x, q, w):
    """eps -> 0 limit: mean of the sorted values over cumulative mass [q - w/2, q + w/2]."""
    n = x.size
    edges = np.arange(n + 1) / n
    overlap = np.clip(np.minimum(edges[1:], q + w / 2) - np.maximum(edges[:-1], q - w / 2), 0.0, None)
    return float(np.sum(np.sort(x) * overlap) / w)


Q = np.array([0.7, 0.3])


def test_quantile_hard_limit(values):
    """n = 8: the default level mass w = 0.02 lies inside one value's mass 1/8, so the limit is a sorted value."""
    kw = dict(epsilon=1e-3, normalize="minmax", tol=1e-8)
    out = np.asarray(soft_quantile(values, Q, **kw))
    np.testing.assert_allclose(out, np.sort(values)[np.floor(Q * N).astype(int)], atol=1e-5)
    np.testing.assert_allclose(out, [_window_mean(values, level, 0.02) for level in Q], atol=1e-5)
    wide = np.asarray(soft_quantile(values, Q, weight=0.25, **kw))  # capped at half the gap 0.3: w = 0.15
    np.testing.assert_allclose(wide, [_window_mean(values, level, 0.15) for level in Q], atol=1e-5)


# ----------------------------------------------------------------------------- OTT-JAX


def test_matches_ott_jax(values):
    """Same definitions as ott.tools.soft_sort at matched epsilon and target measure."""
    soft_sort_ott = pytest.importorskip("ott.tools.soft_sort")
    x = jnp.asarray(values)
    eps, ott_kw = 0.05, dict(threshold=1e-11, max_iterations=20000)
    ott = jax.jit(lambda x: (soft_sort_ott.sort(x, epsilon=eps, **ott_kw),
                             soft_sort_ott.ranks(x, epsilon=eps, **ott_kw),
                             soft_sort_ott.topk_mask(x, k=3, epsilon=eps, **ott_kw),
                             soft_sort_ott.quantile(x, jnp.asarray(Q), epsilon=eps, **ott_kw)))(x)
    ours = (soft_sort(x, epsilon=eps, **TIGHT), soft_rank(x, epsilon=eps, **TIGHT),
            soft_topk(x, 3, epsilon=eps, normalize="sigmoid", **TIGHT),
            soft_quantile(x, Q, epsilon=eps, **TIGHT))
    for name, a, b in zip(("sort", "ranks", "topk_mask", "quantile"), ours, ott):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=name)
    # n = 40 > 32 anchors: sort and rank run on a lazy PointCloud (one program for both).
    x40 = jnp.asarray(np.random.default_rng(9).normal(size=40))
    ott40 = jax.jit(lambda x: (soft_sort_ott.sort(x, epsilon=eps, **ott_kw),
                               soft_sort_ott.ranks(x, epsilon=eps, **ott_kw)))(x40)
    np.testing.assert_allclose(soft_sort(x40, epsilon=eps, **TIGHT), ott40[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(soft_rank(x40, epsilon=eps, **TIGHT), ott40[1], rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- gradients

OPS = {
    "topk": lambda x, mode: soft_topk(x, 3, epsilon=0.05, grad_mode=mode, **TIGHT),
    "sort": lambda x, mode: soft_sort(x, epsilon=0.05, grad_mode=mode, **TIGHT),
    "rank": lambda x, mode: soft_rank(x, epsilon=0.05, grad_mode=mode, **TIGHT),
}
WEIGHTS = np.random.default_rng(4).normal(size=N)


def _loss(op, mode="implicit"):
    return lambda x: jnp.sum(WEIGHTS * OPS[op](x, mode))


def _check_fd(loss, x, g):
    """Central differences along two random directions: relative error <= 1e-5 (float64)."""
    h = 1e-5
    for seed in (5, 6):
        direction = np.random.default_rng(seed).normal(size=x.shape)
        fd = (float(loss(x + h * direction)) - float(loss(x - h * direction))) / (2 * h)
        assert abs(fd - np.vdot(g, direction)) <= 1e-5 * abs(fd), (fd, np.vdot(g, direction))


def _unrolled_derivative(loss, x, directions):
    """Directional derivatives through the unrolled iterations (forward mode: the same derivative as
    reverse mode through them, at a fraction of the compile time)."""
    jvp = jax.jit(lambda x, d: jax.jvp(loss, (x,), (d,))[1])
    return np.array([float(jvp(x, d)) for d in directions])


def test_topk_gradients_jit_batching_fd_and_unroll(values):
    """jit(grad) of a [3, 5, n] input (no vmap): each slice's gradient against central differences of that
    slice alone, and the implicit gradient (default) against the unrolled iterations."""
    xs = jnp.asarray(values + np.random.default_rng(6).normal(scale=0.05, size=(3, 5, N))).at[0, 0].set(values)
    g = np.asarray(jax.jit(jax.grad(_loss("topk")))(xs))
    assert g.shape == (3, 5, N)
    for i, j in ((0, 0), (2, 4), (1, 3)):
        _check_fd(_loss("topk"), xs[i, j], g[i, j])  # eager and one slice: the forward program of other tests
    directions = np.random.default_rng(7).normal(size=(2,) + xs.shape)
    unrolled = _unrolled_derivative(_loss("topk", "unroll"), xs, directions)
    np.testing.assert_allclose(unrolled, [np.vdot(g, d) for d in directions], rtol=1e-6)
    shapes = jax.eval_shape(lambda x: (soft_rank(x, num_targets=3), soft_quantile(x, 0.5)), xs)
    assert [s.shape for s in shapes] == [(3, 5, N), (3, 5)]


def test_sort_gradient_fd_and_unroll(values):
    x = jnp.asarray(values)
    g = np.asarray(jax.jit(jax.grad(_loss("sort")))(x))
    _check_fd(_loss("sort"), x, g)
    unrolled = _unrolled_derivative(_loss("sort", "unroll"), x, np.eye(N))  # the whole gradient
    np.testing.assert_allclose(unrolled, g, rtol=1e-5, atol=1e-9 * np.abs(g).max())


def test_rank_derivative_fd(values):
    """Forward mode (jvp) of the implicit rule; reverse mode is the transposed rule, tested above."""
    x = jnp.asarray(values)
    directions = np.random.default_rng(8).normal(size=(2, N))
    jvp = jax.jit(lambda x, d: jax.jvp(_loss("rank"), (x,), (d,))[1])
    h = 1e-5
    for d in directions:
        fd = (float(_loss("rank")(x + h * d)) - float(_loss("rank")(x - h * d))) / (2 * h)
        assert abs(fd - float(jvp(x, d))) <= 1e-5 * abs(fd)


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x: soft_topk(x, 0), "k must be an integer with 0 < k < n = 8"),
        (lambda x: soft_topk(x, N), "k must be"),
        (lambda x: soft_topk(x, 2.5), "k must be"),
        (lambda x: soft_topk(x, 2, epsilon=0.0), "epsilon must be a finite number > 0"),
        (lambda x: soft_sort(x, epsilon=-1.0), "soft_sort: epsilon"),
        (lambda x: soft_topk(x.at[2].set(np.nan), 2), "soft_topk: scores contains NaN or inf"),
        (lambda x: soft_rank(x.at[0].set(np.inf)), "soft_rank: x contains NaN or inf"),
        (lambda x: soft_quantile(x, 1.0), r"q must lie in the open interval \(0, 1\)"),
        (lambda x: soft_quantile(x, [0.2, -0.1]), "q must lie"),
        (lambda x: soft_quantile(x, [0.2, 0.2]), "distinct"),
        (lambda x: soft_quantile(x, [[0.5]]), "q must be a scalar or a non-empty 1-D array"),
        (lambda x: soft_quantile(x, 0.5, weight=0.0), "weight must be"),
        (lambda x: soft_sort(x, normalize="zscore"), "normalize must be one of"),
        (lambda x: soft_sort(x, grad_mode="envelope"), "envelope"),
        (lambda x: soft_topk(x, 2, grad_mode="forward"), "grad_mode must be 'implicit' \\(default\\) or 'unroll'"),
        (lambda x: soft_topk(x, 2, max_iters=0), "max_iters must be an integer >= 1"),
        (lambda x: soft_rank(x, num_targets=1), "num_targets must be an integer >= 2"),
        (lambda x: soft_sort(x[0]), "got a scalar"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(values, call, match):
    with pytest.raises(ValueError, match=match):
        call(jnp.asarray(values))


def test_traced_bad_inputs_give_nan_and_status(values):
    """Inside jit bad values cannot raise at once: the slice's output is NaN, and throw=True raises at run time."""
    x = jnp.asarray(values)
    f = jax.jit(lambda x, eps, q: soft_quantile(x, q, epsilon=eps))
    assert np.all(np.isfinite(f(x, 0.05, Q)))
    assert np.all(np.isnan(f(x.at[1].set(np.nan), 0.05, Q)))
    assert np.all(np.isnan(f(x, -1.0, Q)))
    assert np.all(np.isnan(f(x, 0.05, np.array([0.7, 1.5]))))
    assert np.all(np.isnan(f(x, 0.05, np.array([0.3, 0.3]))))
    g = jax.jit(lambda x: soft_topk(x, 2, throw=True))
    assert np.all(np.isfinite(g(x)))
    with pytest.raises(Exception, match="ot_jax.soft_topk: INVALID_INPUT: scores must be finite"):
        jax.block_until_ready(g(x.at[3].set(np.inf)))
    with pytest.raises(SolverError, match="soft_sort: MAX_ITERS"):
        soft_sort(x, epsilon=1e-3, throw=True)  # 5000 iterations are not enough here


def test_exported():
    for name in ("soft_topk", "soft_sort", "soft_rank", "soft_quantile"):
        assert name in ot_jax.__all__ and name in ot_jax.tools.__all__
        assert getattr(ot_jax, name) is getattr(ot_jax.tools, name)
