"""kNN classification trained through the SOFT top-k operator (Xie et al., NeurIPS 2020, kNN experiment).

An embedding network ``e: [d] -> [E]`` (``model``, an :class:`ot_jax.nn.MLP`) is trained so that
hard k-nearest-neighbour classification in its embedding works. One step:

1. a random permutation of the training set gives ``batch_size`` queries ``x_q`` and, disjoint
   from them, ``support_size`` support points ``x_s`` with labels ``y_s`` (so no query is its
   own neighbour);
2. scores ``S[i, j] = -||e(x_q,i) - e(x_s,j)||^2``, ``[B, M]``;
3. the soft top-k indicator over the support, ``A = soft_topk(S, k, epsilon=epsilon)``
   (:func:`ot_jax.soft_topk`, min-max normalised scores by default, rows in ``[0, 1]`` summing
   to ``k``);
4. the soft vote ``v_i = sum_j A[i, j] onehot(y_s,j) / k``, ``[B, C]``, a distribution over
   the classes (it sums to 1);
5. the loss, cross-entropy of the soft vote against the query's label with a floor ``delta``
   (``vote_floor``): ``mean_i -log(v_i[y_q,i] + delta)``. The floor keeps the loss and its
   gradient bounded when none of a query's soft neighbours shares its label (``v = 0``, likely
   at small ``epsilon``, where ``A`` is nearly hard).

How the top-k is differentiated (``grad_mode``):

* ``"implicit"`` (default): SOFT's gradient, by implicit differentiation of the Sinkhorn fixed
  point (:func:`ot_jax.soft_topk`'s default; warm-started solve).
* ``"unroll"``: backpropagation through ``unroll_iters`` Sinkhorn iterations from a cold start
  (``soft_topk(grad_mode="unroll", max_iters=unroll_iters)``; the forward value is that of the
  iterate reached, which need not have converged).
* ``"straight_through"``: the forward pass uses the hard top-k mask (``jax.lax.top_k``), the
  backward pass the implicit SOFT gradient (``A_hard + A_soft - stop_gradient(A_soft)``).

The baseline ``method="cross_entropy"`` trains the same network with a linear head
``[E] -> [C]`` and softmax cross-entropy on the query batch; the head is discarded at test time.

Evaluation (every ``eval_every`` steps and at the end; no gradient): hard kNN in the learned
embedding, each test point against the *full* training set, majority vote of its ``k`` nearest
neighbours (squared Euclidean distance; a tie between classes goes to the class of the nearest
neighbour when it is among the tied, else to the smallest label), giving ``test_accuracy``;
``test_accuracy_k<k>`` for every ``k`` of ``eval_ks``. The report adds ``pixel_accuracy``, the
same hard kNN on the raw inputs (no training), and ``head_accuracy`` for the cross-entropy
baseline (the head's own test accuracy).

``python -m train experiment=soft_knn_digits`` (``trainer.grad_mode=unroll``,
``trainer.method=cross_entropy`` for the baselines; ``scripts/soft_knn_table.py`` runs them all
over three seeds).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ot_jax.losses.knn import GRAD_MODES, knn_predict, soft_vote, sq_distances, vote_loss
from train.data import Labeled
from train.loop import Trainer
from train.report import format_table

__all__ = ["build", "KnnState", "METHODS", "knn_accuracy"]

METHODS = ("soft_knn", "cross_entropy")


class KnnState(NamedTuple):
    """The training state (a pytree of arrays; what Orbax checkpoints)."""

    params: Any  # nnx.State of the embedding (and head) nnx.Param
    rest: Any  # other variables (none for an MLP)
    opt: Any  # optax state


class _Network(nnx.Module):
    """The embedding network, with a linear classification head for the cross-entropy baseline."""

    def __init__(self, embed: nnx.Module, n_classes: int | None, *, rngs: nnx.Rngs):
        self.embed = embed
        self.head = nnx.Linear(embed.out_features, n_classes, rngs=rngs) if n_classes else None


def knn_accuracy(train_x, train_y, query_x, query_y, k: int, n_classes: int) -> float:
    """Share of ``query_x`` whose hard kNN label (:func:`knn_predict`) is ``query_y``."""
    pred = knn_predict(jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(query_x), k=k, n_classes=n_classes)
    return float(jnp.mean(pred == jnp.asarray(query_y)))


def build(*, data: Labeled, model: Callable, optimizer: optax.GradientTransformation, seed: int, output_dir: str,
          method: str = "soft_knn", k: int = 9, epsilon: float = 1e-2, grad_mode: str = "implicit",
          normalize: str = "minmax", unroll_iters: int = 100, vote_floor: float = 1e-3, batch_size: int = 100,
          support_size: int = 200, eval_ks: Sequence[int] = (1, 3, 5, 9, 15)) -> Trainer:
    """The soft-kNN trainer (module docstring).

    Args:
      data: a labelled set with a held-out split (:class:`train.data.Labeled`).
      model: partial embedding constructor, called with ``in_features=`` and ``rngs=``
        (``ot_jax.nn.MLP`` with ``out_features`` = the embedding dimension).
      optimizer: optax transformation of the network.
      seed, output_dir: the run's seed and directory.
      method: ``"soft_knn"`` (the soft vote's cross-entropy) or ``"cross_entropy"`` (a linear head).
      k: neighbours, in training (``0 < k < support_size``) and in the evaluation's ``test_accuracy``.
      epsilon: SOFT's temperature (normalised scores: ``epsilon`` is in units of the squared score range).
      grad_mode: ``"implicit"`` | ``"unroll"`` | ``"straight_through"`` (module docstring).
      normalize: score normalisation of :func:`ot_jax.soft_topk` (``"minmax"``, as SOFT).
      unroll_iters: Sinkhorn iterations of ``grad_mode="unroll"``.
      vote_floor: ``delta`` of the loss ``-log(v[y] + delta)``.
      batch_size: queries per step; support_size: support points per step (disjoint from the queries).
      eval_ks: the ``k`` of the extra evaluation metrics ``test_accuracy_k<k>``.

    Returns:
      a :class:`train.loop.Trainer` with state :class:`KnnState`; step metrics ``loss`` and
      ``batch_accuracy`` (share of queries whose vote, or head, puts the most mass on their label).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if grad_mode not in GRAD_MODES:
        raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
    n_train = data.x_train.shape[0]
    if batch_size < 1 or support_size < 2 or batch_size + support_size > n_train:
        raise ValueError(f"need batch_size >= 1, support_size >= 2 and batch_size + support_size <= {n_train} "
                         f"(the training points), got {batch_size} and {support_size}")
    if not 0 < k < support_size:
        raise ValueError(f"k must satisfy 0 < k < support_size = {support_size}, got {k}")
    if any(not 0 < kk <= n_train for kk in eval_ks):
        raise ValueError(f"eval_ks must lie in 1..{n_train}, got {list(eval_ks)}")
    if not epsilon > 0 or not vote_floor > 0:
        raise ValueError(f"epsilon and vote_floor must be > 0, got {epsilon} and {vote_floor}")
    n_classes = int(data.n_classes)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x_train, y_train = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, jnp.int32)
    x_test, y_test = jnp.asarray(data.x_test, dtype), jnp.asarray(data.y_test, jnp.int32)
    ce = method == "cross_entropy"

    def make(key):
        ke, kh = jax.random.split(key)
        embed = model(in_features=data.dim, rngs=nnx.Rngs(ke))
        return _Network(embed, n_classes if ce else None, rngs=nnx.Rngs(kh))

    graphdef, _, _ = nnx.split(nnx.eval_shape(lambda: make(jax.random.PRNGKey(0))), nnx.Param, ...)

    def network(params, rest) -> _Network:
        return nnx.merge(graphdef, params, rest)

    @jax.jit  # one program instead of one per initialiser
    def init(key) -> KnnState:
        _, params, rest = nnx.split(make(key), nnx.Param, ...)
        return KnnState(params, rest, optimizer.init(params))

    def loss_fn(params, rest, key):
        net = network(params, rest)
        perm = jax.random.permutation(key, n_train)
        q = perm[:batch_size]
        yq = y_train[q]
        eq = net.embed(x_train[q])
        if ce:
            logits = net.head(eq)
            loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yq))
            return loss, jnp.mean(jnp.argmax(logits, 1) == yq)
        s = perm[batch_size:batch_size + support_size]
        scores = -sq_distances(eq, net.embed(x_train[s]))
        vote = soft_vote(scores, y_train[s], k, n_classes, epsilon=epsilon, grad_mode=grad_mode,
                         normalize=normalize, unroll_iters=unroll_iters)
        return vote_loss(vote, yq, floor=vote_floor), jnp.mean(jnp.argmax(vote, 1) == yq)

    def step(state: KnnState, key):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.rest, key)
        updates, opt = optimizer.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        return KnnState(params, state.rest, opt), {"loss": loss, "batch_accuracy": acc.astype(loss.dtype)}

    ks = sorted({int(k), *(int(kk) for kk in eval_ks)})

    @jax.jit
    def _evaluate(params, rest):
        net = network(params, rest)
        e_train, e_test = net.embed(x_train), net.embed(x_test)
        out = {f"k{kk}": jnp.mean(knn_predict(e_train, y_train, e_test, kk, n_classes) == y_test) for kk in ks}
        if ce:
            out["head"] = jnp.mean(jnp.argmax(net.head(e_test), 1) == y_test)
        return out

    def evaluate(state: KnnState, key) -> dict:
        acc = {name: float(v) for name, v in _evaluate(state.params, state.rest).items()}
        metrics = {"test_accuracy": acc[f"k{k}"], **{f"test_accuracy_k{kk}": acc[f"k{kk}"] for kk in eval_ks}}
        if ce:
            metrics["head_accuracy"] = acc["head"]
        return metrics

    title = ("cross-entropy embedding" if ce else f"soft kNN ({grad_mode})") + f", k = {k}"

    def report(state: KnnState, history: list[dict]) -> dict:
        final = evaluate(state, None)
        pixel = knn_accuracy(x_train, y_train, x_test, y_test, k, n_classes)
        summary = {"method": method, "grad_mode": grad_mode if not ce else None, "k": int(k),
                   "epsilon": float(epsilon) if not ce else None, **final, "pixel_accuracy": pixel,
                   "final_loss": history[-1].get("loss") if history else None}
        rows = [[f"hard kNN, {title}", final["test_accuracy"]], [f"hard kNN, raw pixels, k = {k}", pixel]]
        if ce:
            rows.append(["linear head (discarded for kNN)", final["head_accuracy"]])
        rows = [[name, f"{100 * acc:.2f} %"] for name, acc in rows]
        print(format_table(["classifier", "test accuracy"], rows, title=f"{data.name}: {title}"), flush=True)
        return summary

    def figures(state: KnnState, history: list[dict], output_dir: str) -> list[str]:
        from train.figures.soft_knn import training_curves

        return [training_curves(history, os.path.join(output_dir, "soft_knn.png"), title=title)]

    return Trainer(init=init, step=step, evaluate=evaluate, report=report, figures=figures)
