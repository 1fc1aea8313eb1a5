"""Beam search trained through SOFT top-k (Xie et al., 2020, "Differentiable Top-k with
Optimal Transport", NeurIPS, beam-search section), on a generated toy task.

**Task** (:func:`ot_jax.data.digit_addition`): the sum of two ``n_digits``-digit numbers,
written most significant digit first; the leading digits hinge on carries that greedy
decoding must guess and that the later digits check (see that module for why beam search
can recover from an early mistake there). Training problems are drawn fresh every step;
the evaluation uses one fixed test set of ``test_size`` problems.

**Model**: :class:`ot_jax.nn.Seq2SeqGRU` (``model`` group), decoded for exactly
``n_digits + 1`` steps (no end token).

**Decoding** (:func:`ot_jax.losses.beam.decode_beams`). ``K`` beams carry a decoder state ``h_j``, the
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
(:func:`ot_jax.losses.beam.rank_weights`; ``soft_topk(., 0) = 0``), the differences of the SOFT indicators
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

from ot_jax.data import ADDITION_VOCAB, digit_addition
from ot_jax.losses.beam import beam_search, soft_beam_loss, teacher_forcing_loss
from train.common import lr_decay_schedule
from train.loop import Trainer
from train.report import format_table

__all__ = ["build", "SeqState", "MODES", "accuracies"]

MODES = ("teacher_forcing", "soft_beam")


class SeqState(NamedTuple):
    """The training state (a pytree of arrays; what Orbax checkpoints)."""

    params: Any  # nnx.State of the model's nnx.Param
    rest: Any  # its other variables (none for Seq2SeqGRU)
    opt: Any  # optax state
    step: Any  # int32 scalar: steps taken (the soft beam loss starts after warmup_steps)


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
