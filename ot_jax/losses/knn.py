"""Soft kNN classification losses (Xie et al., NeurIPS 2020, "Differentiable Top-k with Optimal
Transport", kNN experiment): the top-k indicator of support scores, the soft vote it casts, its
cross-entropy, and the hard kNN prediction used to evaluate an embedding.

Shapes: queries ``[B, E]``, support ``[M, E]`` with labels ``[M]``, scores ``[B, M]``, votes ``[B, C]``.
``grad_mode`` of :func:`topk_indicator`: ``"implicit"`` (SOFT's gradient, implicit differentiation of
the Sinkhorn fixed point of :func:`ot_jax.soft_topk`), ``"unroll"`` (backpropagation through
``unroll_iters`` cold-started iterations; the forward value is the iterate reached) or
``"straight_through"`` (the hard ``jax.lax.top_k`` mask forward, SOFT's gradient backward).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ot_jax.tools.sorting import soft_topk

__all__ = ["GRAD_MODES", "sq_distances", "topk_indicator", "soft_vote", "vote_loss", "knn_predict"]

GRAD_MODES = ("implicit", "unroll", "straight_through")


def sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``||x_i - y_j||^2`` for ``x: [B, E]``, ``y: [M, E]`` -> ``[B, M]`` (clipped at 0)."""
    d = jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None, :] - 2.0 * x @ y.T
    return jnp.maximum(d, 0.0)


def topk_indicator(scores: jax.Array, k: int, *, epsilon: float, grad_mode: str = "implicit",
                   normalize: str = "minmax", unroll_iters: int = 100) -> jax.Array:
    """The top-k indicator ``[..., M]`` of ``scores: [..., M]`` (largest scores), differentiated as
    ``grad_mode`` says (module docstring): SOFT's soft indicator for ``"implicit"`` and ``"unroll"``,
    the hard mask with SOFT's gradient for ``"straight_through"``."""
    if grad_mode not in GRAD_MODES:
        raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
    if grad_mode == "unroll":
        return soft_topk(scores, k, epsilon=epsilon, normalize=normalize, grad_mode="unroll",
                                max_iters=unroll_iters)
    soft = soft_topk(scores, k, epsilon=epsilon, normalize=normalize)
    if grad_mode == "implicit":
        return soft
    _, idx = jax.lax.top_k(jax.lax.stop_gradient(scores), k)
    hard = jnp.sum(jax.nn.one_hot(idx, scores.shape[-1], dtype=scores.dtype), axis=-2)
    return hard + soft - jax.lax.stop_gradient(soft)


def soft_vote(scores: jax.Array, labels: jax.Array, k: int, n_classes: int, *, epsilon: float,
              grad_mode: str = "implicit", normalize: str = "minmax", unroll_iters: int = 100) -> jax.Array:
    """The soft kNN vote ``[B, C]``: ``sum_j A[i, j] onehot(labels_j) / k`` with ``A`` the top-k
    indicator of ``scores: [B, M]`` over the support (:func:`topk_indicator`), ``labels: [M]``.

    Each row is a distribution over the ``C`` classes; as ``epsilon -> 0`` it is the share of each
    class among the ``k`` highest-scoring support points (the hard kNN vote).
    """
    a = topk_indicator(scores, k, epsilon=epsilon, grad_mode=grad_mode, normalize=normalize,
                       unroll_iters=unroll_iters)
    return a @ jax.nn.one_hot(labels, n_classes, dtype=a.dtype) / k


def vote_loss(vote: jax.Array, labels: jax.Array, *, floor: float = 1e-3) -> jax.Array:
    """Cross-entropy of a vote ``[B, C]`` against ``labels: [B]``: ``mean -log(vote[y] + floor)``."""
    picked = jnp.take_along_axis(vote, labels[:, None], axis=1)[:, 0]
    return -jnp.mean(jnp.log(picked + floor))


@functools.partial(jax.jit, static_argnames=("k", "n_classes"))
def knn_predict(train_x: jax.Array, train_y: jax.Array, query_x: jax.Array, k: int, n_classes: int) -> jax.Array:
    """Hard kNN labels ``[Q]`` of ``query_x: [Q, E]`` against ``train_x: [N, E]`` with labels ``train_y: [N]``:
    majority vote of the ``k`` nearest (squared Euclidean) training points; a tie goes to the nearest
    neighbour's class when it is among the tied classes, else to the smallest label."""
    _, idx = jax.lax.top_k(-sq_distances(query_x, train_x), k)  # nearest first
    neighbours = train_y[idx]  # [Q, k]
    counts = jnp.sum(jax.nn.one_hot(neighbours, n_classes), axis=1)
    counts = counts + 0.5 * jax.nn.one_hot(neighbours[:, 0], n_classes)  # counts are integers: only ties move
    return jnp.argmax(counts, axis=1)
