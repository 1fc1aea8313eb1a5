"""Beam search trained through SOFT top-k (Xie et al., 2020, "Differentiable Top-k with
Optimal Transport", NeurIPS, beam-search section), on a generated toy task.

**Task** (:func:`ot_jax.data.digit_addition`): the sum of two ``n_digits``-digit numbers,
written most significant digit first; the leading digits hinge on carries that greedy
decoding must guess and that the later digits check (see that module for why beam search
can recover from an early mistake there). Training problems are drawn fresh every step;
the evaluation uses one fixed test set of ``test_size`` problems.

**Model**: :class:`ot_jax.nn.Seq2SeqGRU` (``model`` group), decoded for exactly
``n_digits + 1`` steps (no end token).

**Decoding** (:func:`decode_beams`). ``K`` beams carry a decoder state ``h_j``, the
distribution of their last token, a score ``s_j`` (sum of log-probabilities) and their
token history ``[T, V]``. At step ``t`` the decoder expands every beam by every token:
``n = K V`` candidates ``i = (k, v)`` with score ``s_k + log p(v | beam k)`` (at ``t = 0``
only the ``V`` candidates of the first beam are live: every beam starts from the
start state and the others are masked). A selection returns weights ``W: [n, K]``,
column ``j`` saying how much candidate ``i`` is the ``j``-th new beam, and every new beam
is the ``W``-mixture of its candidates:

* state ``h'_j = sum_i W_ij h_parent(i)`` (the parent's state after the step),
* next input ``e'_j = sum_i W_ij E[token(i)]`` (a mixture of token embeddings),
* score ``s'_j = sum_i W_ij score_i``,
* history ``H'_j = sum_i W_ij H_parent(i)`` with row ``t`` set to ``sum_i W_ij onehot(token(i))``.

*Hard* selection (``W`` = one-hot of the ``K`` best candidates, best first) is ordinary
beam search, used for every evaluation; ``K = 1`` is greedy decoding. *Soft* selection is
the sorted SOFT top-k: column ``j`` is ``soft_topk(scores, j) - soft_topk(scores, j - 1)``
(:func:`rank_weights`; ``soft_topk(., 0) = 0``), the differences of the SOFT indicators
(:func:`ot_jax.soft_topk`, entropic OT of the normalised scores onto the anchors 0 and 1,
implicit gradients). Each indicator is a sigmoid of the normalised score around a
threshold that grows with ``j``, so the columns are non-negative, each sums to 1, together
they sum to the SOFT top-``K`` indicator, and as ``epsilon -> 0`` they are the one-hot
columns of the sorted hard top-``K``. **Simplification**: the paper's sorted SOFT top-k
solves *one* entropic OT problem onto ``K + 1`` anchors and reads the beams' weights from
its plan; we solve ``K`` two-anchor problems (the operator the library has) and take
differences. Both give mixtures weighted by a transport plan's columns and the same hard
limit; the soft weights differ at finite ``epsilon``.

**Training** (``mode``):

* ``teacher_forcing``: token cross-entropy of the reference given its own prefix (the baseline).
* ``soft_beam``: ``tf_weight`` times that cross-entropy plus the *soft beam loss*: decode
  the batch with soft selection and take the cross-entropy between the reference and the
  top soft beam's history, ``-(1/T) sum_t log H'_1[t, y_t]`` (floored at ``1e-6``). With
  hard selection this is the token error of beam search's output, piecewise constant in
  the parameters; through the soft selection its gradient reaches the scores, that is the
  model's log-probabilities along the beams (and the mixed states and embeddings). The
  teacher-forcing term keeps the model learning while the beams are still poor (the paper
  trains the decoder on its beam states; how it mixes in the reference is our choice).

**Evaluation** (every ``eval_every`` steps, on the test set): sequence accuracy (all digits
right) and token accuracy of greedy decoding and of hard beam search with ``beam_size``
beams: ``greedy_seq_acc``, ``greedy_token_acc``, ``beam_seq_acc``, ``beam_token_acc``.

``python -m train experiment=soft_beam_seq`` (``trainer.mode=teacher_forcing`` for the
baseline); ``python scripts/soft_beam_table.py`` runs both modes over three seeds.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import ot_jax
from ot_jax.data import ADDITION_VOCAB, digit_addition
from train.common import lr_decay_schedule
from train.loop import Trainer
from train.report import format_table

__all__ = ["build", "SeqState", "MODES", "rank_weights", "hard_weights", "decode_beams", "beam_search",
           "teacher_forcing_loss", "soft_beam_loss", "accuracies"]

MODES = ("teacher_forcing", "soft_beam")
_FLOOR = 1e-6


class SeqState(NamedTuple):
    """The training state (a pytree of arrays; what Orbax checkpoints)."""

    params: Any  # nnx.State of the model's nnx.Param
    rest: Any  # its other variables (none for Seq2SeqGRU)
    opt: Any  # optax state
    step: Any  # int32 scalar: steps taken (the soft beam loss starts after warmup_steps)


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
    masks += [ot_jax.soft_topk(x, j, epsilon=epsilon, normalize="none", grad_mode=grad_mode)
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


def accuracies(pred: np.ndarray, tgt: np.ndarray) -> tuple[float, float]:
    """``(sequence accuracy, token accuracy)`` of ``pred`` against ``tgt`` (both ``[B, T]``)."""
    right = np.asarray(pred) == np.asarray(tgt)
    return float(np.mean(np.all(right, axis=1))), float(np.mean(right))


def build(*, model: Callable, optimizer: optax.GradientTransformation, seed: int, output_dir: str,
          mode: str = "soft_beam", n_digits: int = 4, batch_size: int = 128, beam_size: int = 3,
          epsilon: float = 0.05, tf_weight: float = 1.0, beam_weight: float = 1.0, warmup_steps: int = 0,
          grad_mode: str = "implicit", test_size: int = 1000,
          lr_decay: str = "none", decay_steps: int = 1, final_lr_fraction: float = 0.01) -> Trainer:
    """The sequence trainer (module docstring).

    Args:
      model: partial constructor of :class:`ot_jax.nn.Seq2SeqGRU` (completed with the
        vocabularies, source length and ``rngs``).
      optimizer: optax transformation.
      seed, output_dir: the run's seed and directory.
      mode: ``"teacher_forcing"`` or ``"soft_beam"``.
      n_digits: digits per operand (targets have ``n_digits + 1``).
      batch_size: fresh problems per step.
      beam_size: ``K``, beams of the soft beam training and of the evaluated beam search
        (``1 <= K <= 10``; ``K = 1`` trains through a soft greedy decoding).
      epsilon: SOFT top-k temperature of the soft selection.
      tf_weight: weight of the teacher-forcing term in ``soft_beam`` mode.
      grad_mode: gradients of the SOFT top-k (``"implicit"`` or ``"unroll"``).
      test_size: problems in the fixed test set.
      lr_decay, decay_steps, final_lr_fraction: optional learning-rate decay.

    Returns:
      a :class:`train.loop.Trainer` with state :class:`SeqState`; step metrics ``loss``,
      ``tf_loss`` and, in ``soft_beam`` mode, ``beam_loss``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 1 <= beam_size <= ADDITION_VOCAB:
        raise ValueError(f"beam_size must be in [1, {ADDITION_VOCAB}], got {beam_size}")
    if not epsilon > 0 or tf_weight < 0:
        raise ValueError(f"need epsilon > 0 and tf_weight >= 0, got {epsilon}, {tf_weight}")
    if batch_size < 1 or test_size < 1 or n_digits < 1:
        raise ValueError(f"need batch_size, test_size, n_digits >= 1, got {batch_size}, {test_size}, {n_digits}")
    src_len, steps = 2 * n_digits, n_digits + 1
    make = functools.partial(model, ADDITION_VOCAB, ADDITION_VOCAB, src_len)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make(rngs=nnx.Rngs(0))))
    tx = optax.chain(optimizer, lr_decay_schedule(lr_decay, decay_steps, final_lr_fraction))
    test_src, test_tgt = digit_addition(jax.random.fold_in(jax.random.PRNGKey(seed), 0x7E57), test_size,
                                        n_digits=n_digits)

    def init(key) -> SeqState:
        _, params, rest = nnx.split(make(rngs=nnx.Rngs(key)), nnx.Param, ...)
        return SeqState(params, rest, tx.init(params), jnp.zeros((), jnp.int32))

    def step(state: SeqState, key):
        src, tgt = digit_addition(key, batch_size, n_digits=n_digits)

        def tf_loss(params):
            tf = teacher_forcing_loss(nnx.merge(graphdef, params, state.rest), src, tgt)
            return tf, {"tf_loss": tf, "beam_loss": jnp.zeros_like(tf), "soft_beam": jnp.zeros_like(tf)}

        def beam_loss(params):
            net = nnx.merge(graphdef, params, state.rest)
            tf = teacher_forcing_loss(net, src, tgt)
            beam = soft_beam_loss(net, src, tgt, beam_size, epsilon=epsilon, grad_mode=grad_mode)
            return tf_weight * tf + beam_weight * beam, {"tf_loss": tf, "beam_loss": beam,
                                                        "soft_beam": jnp.ones_like(tf)}

        def grads_of(loss_fn):
            return lambda params: jax.value_and_grad(loss_fn, has_aux=True)(params)

        if mode == "teacher_forcing":
            (loss, parts), grads = grads_of(tf_loss)(state.params)
            parts = {"tf_loss": parts["tf_loss"]}
        elif warmup_steps == 0:
            (loss, parts), grads = grads_of(beam_loss)(state.params)
        else:
            (loss, parts), grads = jax.lax.cond(state.step >= warmup_steps, grads_of(beam_loss), grads_of(tf_loss),
                                                state.params)
        updates, opt = tx.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        return SeqState(params, state.rest, opt, state.step + 1), {"loss": loss, **parts}

    @functools.partial(jax.jit, static_argnums=2)
    def decode(params, rest, k):
        return beam_search(nnx.merge(graphdef, params, rest), test_src, steps, k)

    def evaluate(state: SeqState, key) -> dict:
        del key  # the test set is fixed
        out = {}
        for name, k in (("greedy", 1), ("beam", beam_size)):
            seq, tok = accuracies(decode(state.params, state.rest, k), test_tgt)
            out[f"{name}_seq_acc"], out[f"{name}_token_acc"] = seq, tok
        return out

    def report(state: SeqState, history: list[dict]) -> dict:
        last = next((r for r in reversed(history) if "beam_seq_acc" in r), None)
        if last is None:
            return {}
        keys = ["greedy_seq_acc", "greedy_token_acc", "beam_seq_acc", "beam_token_acc"]
        summary = {"mode": mode, "beam_size": beam_size, "epsilon": epsilon, "step": last["step"],
                   "train_seconds": last.get("train_seconds"), **{k: last[k] for k in keys}}
        print(format_table(["mode", "K", "eps", "steps", "train s", *keys],
                           [[mode, beam_size, epsilon, last["step"], last.get("train_seconds"),
                             *[last[k] for k in keys]]], title="digit addition: final evaluation"))
        return summary

    def figures(state: SeqState, history: list[dict], out: str) -> list[str]:
        from train.figures.soft_beam import curves_figure

        return [curves_figure({mode: history}, os.path.join(out, "soft_beam.png"),
                              title=f"digit addition, {mode} (K = {beam_size})")]

    return Trainer(init=init, step=step, evaluate=evaluate, report=report, figures=figures)
