"""Beam search through SOFT top-k (Xie et al., NeurIPS 2020, beam-search application): the hard and
the sorted soft selection of ``K`` beams among candidates, mixture-beam decoding, and the two
training losses (teacher forcing; the soft beam loss on the top soft beam).

A beam is a mixture: each decoding step scores the ``K V`` candidates (beam x token), and a
selection matrix ``W: [K V, K]`` makes each new beam a ``W``-weighted mixture of candidates
(states, input embeddings, scores and token histories). *Hard* selection (:func:`hard_weights`,
one-hot of the ``K`` best, best first) is ordinary beam search; *soft* selection
(:func:`rank_weights`) is the sorted SOFT top-k: column ``j`` is
``soft_topk(x, j + 1) - soft_topk(x, j)`` of the min-max normalised scores
(:func:`ot_jax.soft_topk`, implicit gradients), so the columns are non-negative, each sums to 1
and, as ``epsilon -> 0``, they are the one-hot columns of the sorted hard top-``K``. The paper
solves one problem onto ``K + 1`` anchors; this solves ``K`` two-anchor problems and takes
differences (same hard limit; the weights differ at finite ``epsilon``).

The model is any module with ``encode``, ``step``, ``embed``, ``embed_soft``, ``bos`` and
``tgt_vocab`` (:class:`ot_jax.nn.Seq2SeqGRU`). Shapes: sources ``[B, S]``, targets ``[B, T]``,
histories ``[B, K, T, V]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from ot_jax.tools.sorting import soft_topk

__all__ = ["hard_weights", "rank_weights", "decode_beams", "beam_search", "teacher_forcing_loss", "soft_beam_loss"]

_FLOOR = 1e-6


def _masked(scores: jax.Array, live: jax.Array | None) -> jax.Array:
    return jnp.ones(scores.shape, bool) if live is None else jnp.broadcast_to(live, scores.shape)


def hard_weights(scores: jax.Array, k: int, live: jax.Array | None = None) -> jax.Array:
    """``scores: [..., n]`` -> ``[..., n, k]``: column ``j`` the one-hot of the ``j``-th largest
    score among the ``live`` candidates (``[..., n]`` bool; default all)."""
    _, idx = jax.lax.top_k(jnp.where(_masked(scores, live), scores, -jnp.inf), k)
    return jnp.swapaxes(jax.nn.one_hot(idx, scores.shape[-1], dtype=scores.dtype), -1, -2)


def rank_weights(scores: jax.Array, k: int, live: jax.Array | None = None, *, epsilon: float,
                 grad_mode: str = "implicit") -> jax.Array:
    """Sorted soft top-``k`` weights from SOFT indicators (module docstring).

    The live scores are min-max normalised to ``[0, 1]`` (as ``soft_topk``'s default
    ``normalize="minmax"`` does) and dead candidates placed at ``-1``, where their share of
    anchor 1 is below ``exp(-2 / epsilon)``: the weights of the live candidates are those of
    the SOFT top-k of the live scores alone.

    Args:
      scores: ``[..., n]`` candidate scores, ``0 < k < n``, at least ``k`` of them live.
      k: number of beams (static).
      live: ``[..., n]`` bool, the candidates that exist (default: all).
      epsilon: SOFT top-k temperature (normalised squared-distance units).
      grad_mode: ``"implicit"`` or ``"unroll"`` (:func:`ot_jax.soft_topk`).

    Returns:
      ``[..., n, k]``: column ``j`` is ``soft_topk(x, j + 1) - soft_topk(x, j)`` of the
      normalised scores ``x``; each column sums to 1; the hard limit is :func:`hard_weights`.
    """
    live = _masked(scores, live)
    low = jnp.min(jnp.where(live, scores, jnp.inf), axis=-1, keepdims=True)
    high = jnp.max(jnp.where(live, scores, -jnp.inf), axis=-1, keepdims=True)
    x = jnp.where(live, (scores - low) / jnp.maximum(high - low, jnp.finfo(scores.dtype).tiny), -1.0)
    masks = [jnp.zeros_like(x)]
    masks += [soft_topk(x, j, epsilon=epsilon, normalize="none", grad_mode=grad_mode)
              for j in range(1, k + 1)]
    return jnp.stack([masks[j + 1] - masks[j] for j in range(k)], axis=-1)


def decode_beams(model, src: jax.Array, steps: int, k: int, select: Callable):
    """Beam decoding with mixture beams (module docstring).

    Args:
      model: a :class:`ot_jax.nn.Seq2SeqGRU` (or any module with ``encode``, ``step``,
        ``embed``, ``embed_soft``, ``bos`` and ``tgt_vocab``).
      src: ``[B, S]`` source tokens.
      steps: ``T``, tokens decoded.
      k: ``K`` beams, ``K <= V``.
      select: ``(scores [B, n], K, live [B, n]) -> weights [B, n, K]`` (:func:`hard_weights`,
        or :func:`rank_weights` with its temperature bound).

    Returns:
      ``(history [B, K, T, V], scores [B, K])``: beam ``j``'s (soft) token distribution per
      position, best beam first, and its (soft) score.
    """
    v = model.tgt_vocab
    context = model.encode(src)  # [B, H]
    b = src.shape[0]

    def expand(carry, t):
        h, x, scores, alive, history = carry
        h, logits = model.step(h, context[:, None], x)  # [B, K, H], [B, K, V]
        cand = (scores[..., None] + jax.nn.log_softmax(logits, axis=-1)).reshape(b, k * v)
        live = jnp.repeat(alive, v, axis=1)  # [B, K V]
        w = select(cand, k, live)  # [B, K V, K]
        scores = jnp.einsum("bnk,bn->bk", w, jnp.where(live, cand, 0.0))
        w = w.reshape(b, k, v, k)
        parent, token = w.sum(axis=2), jnp.swapaxes(w.sum(axis=1), 1, 2)  # [B, K, K], [B, K, V]
        h = jnp.einsum("bpk,bph->bkh", parent, h)
        history = jnp.einsum("bpk,bptv->bktv", parent, history)
        history = jax.lax.dynamic_update_index_in_dim(history, token, t, axis=2)
        return (h, model.embed_soft(token), scores, jnp.ones_like(alive), history), None

    # All K beams start from the start state; only the first is alive at step 0, so that
    # step 0 selects among the V tokens of one state (one scan over every step).
    start = (jnp.broadcast_to(context[:, None], (b, k, context.shape[-1])),
             model.embed(jnp.full((b, k), model.bos, jnp.int32)), jnp.zeros((b, k), context.dtype),
             jnp.broadcast_to(jnp.arange(k) == 0, (b, k)), jnp.zeros((b, k, steps, v), context.dtype))
    (_, _, scores, _, history), _ = jax.lax.scan(expand, start, jnp.arange(steps))
    return history, scores


def beam_search(model, src: jax.Array, steps: int, k: int) -> jax.Array:
    """Hard beam search with ``k`` beams (``k = 1``: greedy): ``[B, T]`` tokens of the best beam."""
    history, _ = decode_beams(model, src, steps, k, hard_weights)
    return jnp.argmax(history[:, 0], axis=-1).astype(jnp.int32)


def teacher_forcing_loss(model, src: jax.Array, tgt: jax.Array) -> jax.Array:
    """Mean token cross-entropy of ``tgt: [B, T]`` given its own prefix."""
    context = model.encode(src)
    bos = jnp.full((tgt.shape[0], 1), model.bos, jnp.int32)
    inputs = model.embed(jnp.concatenate([bos, tgt[:, :-1]], axis=1))  # [B, T, E]
    h, losses = context, []
    for t in range(tgt.shape[1]):
        h, logits = model.step(h, context, inputs[:, t])
        losses.append(optax.softmax_cross_entropy_with_integer_labels(logits, tgt[:, t]))
    return jnp.mean(jnp.stack(losses, axis=1))


def soft_beam_loss(model, src: jax.Array, tgt: jax.Array, k: int, *, epsilon: float,
                   grad_mode: str = "implicit") -> jax.Array:
    """Cross-entropy between ``tgt: [B, T]`` and the top soft beam's history (module docstring)."""
    select = functools.partial(rank_weights, epsilon=epsilon, grad_mode=grad_mode)
    history, _ = decode_beams(model, src, tgt.shape[1], k, select)
    mass = jnp.take_along_axis(history[:, 0], tgt[..., None], axis=-1)[..., 0]  # [B, T]
    return -jnp.mean(jnp.log(jnp.maximum(mass, _FLOOR)))
