"""ROBOT: regression without correspondence by hypergradients through OT (Xie et al., ICLR 2021).

The data (:class:`ot_jax.data.unpaired.Unpaired`, drawn from the run's seed) are responses
``y: [n, p]`` with features ``x_paired: [n, d1]`` in their rows and features
``x_unpaired: [m, d2]`` whose rows were shuffled. A model ``f: [d1 + d2] -> [p]`` (``model``,
an :class:`ot_jax.nn.MLP`; ``hidden=[]`` is the linear model) predicts the response of every
pairing, and the cost of pairing response ``i`` with unpaired row ``j`` is

    C_ij = ||y_i - f([x_paired_i, x_unpaired_j])||^2      ([n, m]; lazy when f is affine or d1 = 0).

Methods (``method``):

* ``"robot"``: descend on ``<C(theta), S*(theta)>`` with ``S*`` the entropic plan
  (:func:`ot_jax.losses.robot.robot_loss`; ``grad_mode="implicit"`` the hypergradient,
  ``"unroll"`` through the iterations, ``"stop_gradient"`` the plan held fixed), warm-started
  from the previous step's potentials (with blocks, each block from its own last solve); ``mass < 1`` for inexact correspondence (partial transport).
* ``"alt_min"``: alternating minimisation with gradient steps: each step assigns by the exact
  assignment of the current cost (:func:`ot_jax.assignment`, no gradient) and takes one
  optimiser step on the squared error of the assigned pairs.

With ``block_size > 0`` the correspondence is only lost within consecutive blocks of that many
rows (cells measured per tube, detections per frame): each step solves the problems of
``blocks_per_step`` random blocks and averages their losses, so ``n`` may be large.

Evaluation: ``val_error`` = ``1 - R^2`` (RSS / TSS) of the model on the correctly paired
validation set (the authors' metric); ``matching_accuracy`` = share of responses whose exact
assignment under the fitted model is their true partner (blocks: within blocks);
``beta_error`` = ``||beta_hat - beta|| / ||beta||`` for a linear model of a linear teacher
(intercept excluded). The report adds, on the same data, the classical estimators of
:mod:`ot_jax.tools.regression`: least squares on the rows as given, the oracle (least squares
with the true matching), AltMin (exact assignment and refit to a fixed point, within blocks
when there are blocks) and stochastic EM (global correspondence only), each with the same
metrics (linear).

``python -m train experiment=robot_linear`` (``trainer.grad_mode=stop_gradient``,
``trainer.method=alt_min``: the ablations; ``scripts/robot_table.py`` runs them over seeds).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ot_jax.data.unpaired import Unpaired
from ot_jax.geometry import Geometry
from ot_jax.losses.robot import GRAD_MODES, matching_accuracy, recovered_matching, residual_cost, robot_loss
from ot_jax.tools import regression
from train.loop import Trainer
from train.report import format_table

__all__ = ["build", "RobotState", "METHODS", "GRAD_MODES"]

METHODS = ("robot", "alt_min")


class RobotState(NamedTuple):
    """The training state (a pytree of arrays; what Orbax checkpoints)."""

    params: Any  # nnx.State of the model's nnx.Param
    opt: Any  # optax state
    potentials: Any  # warm start: (f [n], g [m]) of the last solve, or with blocks (f, g) [n_blocks, block_size]
    # each block's last solve (one more entry per vector with partial transport's dummy points)
    step: Any  # int32 steps taken (the first pretrain_steps fit the rows as given)


def _is_affine(net) -> bool:
    return len(getattr(net, "layers", ())) == 1 and getattr(net, "output_activation", "identity") == "identity"


def pair_cost(net, x_paired: jax.Array, x_unpaired: jax.Array, y: jax.Array):
    """The cost of every pairing, ``C_ij = ||y_i - f([x_paired_i, x_unpaired_j])||^2``, ``[n, m]``:
    a lazy :class:`~ot_jax.PointCloud` when ``f`` is affine or ``d1 = 0``, else a dense geometry."""
    d1 = x_paired.shape[1]
    if d1 == 0:
        return residual_cost(y, net(x_unpaired))
    if _is_affine(net):  # f([a, b]) = f([a, 0]) + f([0, b]) - f(0)
        u = net(jnp.concatenate([x_paired, jnp.zeros((x_paired.shape[0], x_unpaired.shape[1]), y.dtype)], 1))
        v = net(jnp.concatenate([jnp.zeros((x_unpaired.shape[0], d1), y.dtype), x_unpaired], 1))
        return residual_cost(y - u, v - net(jnp.zeros((1, d1 + x_unpaired.shape[1]), y.dtype)))
    n, m = y.shape[0], x_unpaired.shape[0]
    z = jnp.concatenate([jnp.broadcast_to(x_paired[:, None], (n, m, d1)),
                         jnp.broadcast_to(x_unpaired[None], (n, m, x_unpaired.shape[1]))], -1)
    return Geometry(jnp.sum((y[:, None] - net(z)) ** 2, -1))


def _val_error(pred, y_val) -> float:
    rss = float(np.sum((np.asarray(pred) - np.asarray(y_val)) ** 2))
    return rss / float(np.sum((np.asarray(y_val) - np.asarray(y_val).mean(0)) ** 2))


def build(*, data: Callable[..., Unpaired], model: Callable, optimizer: optax.GradientTransformation, seed: int,
          output_dir: str, method: str = "robot", grad_mode: str = "implicit", epsilon: float = 1e-2,
          relative_epsilon: bool = True, mass: float | None = None, tol: float = 1e-4, max_iters: int = 2000,
          block_size: int = 0, blocks_per_step: int = 1, init: str = "least_squares", pretrain_steps: int = 0,
          baselines: bool = True) -> Trainer:
    """The ROBOT trainer (module docstring).

    Args:
      data: ``key -> Unpaired`` (a partial of :func:`ot_jax.data.unpaired.shuffled_regression`
        or another generator), called once with a key from ``seed``.
      model: partial model constructor, called with ``in_features=d1 + d2``, ``out_features=p``
        and ``rngs=`` (``ot_jax.nn.MLP``).
      optimizer: optax transformation of the model.
      seed, output_dir: the run's seed and directory.
      method: ``"robot"`` or ``"alt_min"``.
      grad_mode: ROBOT's gradient: ``"implicit"`` | ``"unroll"`` | ``"stop_gradient"``.
      epsilon: entropic regularisation of the correspondence (times the mean cost if
        ``relative_epsilon``).
      mass: None (exact correspondence) or the share of the mass matched, in ``(0, 1]``
        (inexact correspondence: the rest of each side may stay unmatched).
      tol, max_iters: Sinkhorn's stopping rule and cap.
      block_size: 0 (the correspondence is lost over the whole set) or the size of the blocks
        within which it is lost; blocks_per_step: blocks solved per step.
      init: ``"least_squares"`` (an affine model starts at least squares on the rows as given)
        or ``"random"`` (the model's initialiser).
      pretrain_steps: first steps that fit the rows as given (squared error, as least squares
        does) before the method starts: the nonlinear models' counterpart of ``init``.
      baselines: compute the classical estimators in the report (linear, global correspondence).

    Returns:
      a :class:`train.loop.Trainer` with state :class:`RobotState`; step metrics ``loss`` (the
      objective of the solved problems) and ``sinkhorn_iters``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if grad_mode not in GRAD_MODES:
        raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
    if init not in ("least_squares", "random"):
        raise ValueError(f"init must be 'least_squares' or 'random', got {init!r}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if pretrain_steps < 0:
        raise ValueError(f"pretrain_steps must be >= 0, got {pretrain_steps}")
    if mass is not None and not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1] or None, got {mass}")
    if method == "alt_min" and mass is not None:
        raise ValueError("method=alt_min assigns every response (exact correspondence): mass must be None")
    ds = data(jax.random.fold_in(jax.random.PRNGKey(seed), 1))
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x1, x2 = jnp.asarray(ds.x_paired, dtype), jnp.asarray(ds.x_unpaired, dtype)
    y, match = jnp.asarray(ds.y, dtype), jnp.asarray(ds.match)
    n, m, d1, d2, p = y.shape[0], x2.shape[0], x1.shape[1], x2.shape[1], y.shape[1]
    if mass is None and n != m:
        raise ValueError(f"the data have {n} responses and {m} unpaired rows: exact correspondence needs n == m; "
                         "set trainer.mass < 1 for inexact correspondence")
    if block_size:
        if block_size < 2 or n % block_size or m != n:
            raise ValueError(f"block_size must be 0 or divide n = m = {n} (>= 2), got {block_size} (m = {m})")
        n_blocks = n // block_size
        if not 1 <= blocks_per_step <= n_blocks:
            raise ValueError(f"blocks_per_step must be in 1..{n_blocks}, got {blocks_per_step}")

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: model(in_features=d1 + d2, out_features=p, rngs=nnx.Rngs(0))),
                            nnx.Param)

    def network(params):
        return nnx.merge(graphdef, params)

    def make_params(key):
        net = model(in_features=d1 + d2, out_features=p, rngs=nnx.Rngs(key))
        if init == "least_squares" and _is_affine(net):
            beta = regression.least_squares(np.asarray(x1), np.asarray(x2[:n]), np.asarray(y))
            net.layers[0].kernel[...] = jnp.asarray(beta[:-1], dtype)
            net.layers[0].bias[...] = jnp.asarray(beta[-1], dtype)
        return nnx.split(net, nnx.Param)[1]

    solve_kw = dict(epsilon=epsilon, relative_epsilon=relative_epsilon, tol=tol, max_iters=max_iters,
                    mass=mass, grad_mode=grad_mode)

    def init_state(key) -> RobotState:
        params = make_params(key)
        extra = int(mass is not None)  # the dummy points of partial transport
        if block_size:
            pots = (jnp.zeros((n // block_size, block_size + extra), dtype),) * 2
        else:
            pots = (jnp.zeros(n + extra, dtype), jnp.zeros(m + extra, dtype))
        return RobotState(params, optimizer.init(params), pots, jnp.zeros((), jnp.int32))

    def block_loss(params, rows, pots):
        net = network(params)
        cost = pair_cost(net, x1[rows], x2[rows], y[rows])
        if method == "alt_min":
            perm = recovered_matching(cost)
            resid = y[rows] - net(jnp.concatenate([x1[rows], x2[rows][perm]], 1))
            return jnp.mean(jnp.sum(resid ** 2, -1)), (pots, jnp.zeros((), jnp.int32))
        value, res = robot_loss(cost, init=pots, **solve_kw)
        return value, ((res.f, res.g), res.n_iters.astype(jnp.int32))

    def loss_fn(params, pots, key):
        if not block_size:
            return block_loss(params, jnp.arange(n), pots)
        chosen = jax.random.choice(key, n // block_size, (blocks_per_step,), replace=False)
        rows = chosen[:, None] * block_size + jnp.arange(block_size)[None]
        f, g = pots
        values, ((f_new, g_new), iters) = jax.vmap(lambda r, fb, gb: block_loss(params, r, (fb, gb)))(
            rows, f[chosen], g[chosen])
        pots = (f.at[chosen].set(f_new), g.at[chosen].set(g_new))
        return jnp.mean(values), (pots, jnp.max(iters).astype(jnp.int32))

    def pretrain_loss(params, pots, key):
        resid = y[: min(n, m)] - network(params)(jnp.concatenate([x1[: min(n, m)], x2[: min(n, m)]], 1))
        return jnp.mean(jnp.sum(resid ** 2, -1)), (pots, jnp.zeros((), jnp.int32))

    def step(state: RobotState, key):
        args = (state.params, state.potentials, key)
        if pretrain_steps:
            (loss, (pots, iters)), grads = jax.lax.cond(
                state.step < pretrain_steps, lambda a: jax.value_and_grad(pretrain_loss, has_aux=True)(*a),
                lambda a: jax.value_and_grad(loss_fn, has_aux=True)(*a), args)
        else:
            (loss, (pots, iters)), grads = jax.value_and_grad(loss_fn, has_aux=True)(*args)
        updates, opt = optimizer.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        return (RobotState(params, opt, pots, state.step + 1),
                {"loss": loss, "sinkhorn_iters": iters.astype(loss.dtype)})

    linear_truth = ds.beta.shape[0] > 0

    def _beta_of(params) -> np.ndarray | None:
        net = network(params)
        if not _is_affine(net):
            return None
        return np.concatenate([np.asarray(net.layers[0].kernel[...]), np.asarray(net.layers[0].bias[...])[None]])

    def metrics_of(beta_hat, pred_val, matching) -> dict:
        out = {"val_error": _val_error(pred_val, ds.y_val),
               "matching_accuracy": float(matching_accuracy(jnp.asarray(matching), match))}
        if beta_hat is not None and linear_truth:
            truth = np.asarray(ds.beta)[: d1 + d2]
            out["beta_error"] = float(np.linalg.norm(beta_hat[: d1 + d2] - truth) / np.linalg.norm(truth))
        return out

    def _matching(params) -> np.ndarray:
        net = network(params)
        if not block_size:
            return np.asarray(recovered_matching(pair_cost(net, x1, x2, y)))
        out = []
        for b in range(n // block_size):
            rows = slice(b * block_size, (b + 1) * block_size)
            out.append(b * block_size + np.asarray(recovered_matching(pair_cost(net, x1[rows], x2[rows], y[rows]))))
        return np.concatenate(out)

    def evaluate(state: RobotState, key) -> dict:
        net = network(state.params)
        pred = net(jnp.asarray(ds.x_val, dtype))
        if n > m:  # inexact: responses outnumber the unpaired rows; score the matched part only
            return {"val_error": _val_error(pred, ds.y_val)}
        return metrics_of(_beta_of(state.params), pred, _matching(state.params))

    title = (f"ROBOT ({grad_mode})" if method == "robot" else "AltMin (gradient steps)") + \
        (f", mass = {mass}" if mass is not None else "")

    def report(state: RobotState, history: list[dict]) -> dict:
        final = evaluate(state, None)
        summary = {"method": method, "grad_mode": grad_mode if method == "robot" else None, "epsilon": epsilon,
                   "mass": mass, "pretrain_steps": pretrain_steps, "n": n, "d_paired": d1, "d_unpaired": d2, **final,
                   "final_loss": history[-1].get("loss") if history else None}
        rows = [[title, final]]
        if baselines and n == m:
            rows += _baselines(ds, metrics_of, summary, block_size)
        keys = [k for k in ("val_error", "beta_error", "matching_accuracy") if k in final]
        table = [[name, *(f"{vals[k]:.4g}" if k in vals else "" for k in keys)] for name, vals in rows]
        print(format_table(["method", *keys], table, title=f"regression without correspondence: n = {n}, "
                                                           f"d = {d1} paired + {d2} shuffled"), flush=True)
        return summary

    def figures(state: RobotState, history: list[dict], output_dir: str) -> list[str]:
        from train.figures.robot import predictions, training_curves

        fits = {title: np.asarray(network(state.params)(jnp.asarray(ds.x_val, dtype)))}
        if linear_truth and n == m:  # the affine references on the same rows
            x1n, x2n, yn = np.asarray(x1), np.asarray(x2), np.asarray(y)
            fits["least squares (rows as given)"] = regression.predict(regression.least_squares(x1n, x2n, yn), ds.x_val)
            fits["oracle (true matching)"] = regression.predict(
                regression.least_squares(x1n, x2n, yn, np.asarray(match)), ds.x_val)
        return [training_curves(history, os.path.join(output_dir, "robot.png"), title=title),
                predictions(fits, ds.y_val, os.path.join(output_dir, "predictions.png"),
                            title="validation rows (true correspondence)")]

    return Trainer(init=jax.jit(init_state) if init == "random" else init_state, step=step, evaluate=evaluate,
                   report=report, figures=figures)


def _baselines(ds: Unpaired, metrics_of: Callable, summary: dict, block_size: int = 0) -> list:
    """The classical estimators on the same data (:mod:`ot_jax.tools.regression`): rows of the
    report's table, and their metrics added to ``summary`` as ``<name>_<metric>``. With blocks,
    assignments are made within blocks and stochastic EM (whose swaps cross blocks) is left out."""
    x1, x2, y = np.asarray(ds.x_paired), np.asarray(ds.x_unpaired), np.asarray(ds.y)
    rows = []

    def add(name, key, beta, seconds):
        matching = regression.assign_residuals(beta, x1, x2, y, block_size=block_size)
        vals = metrics_of(beta, regression.predict(beta, ds.x_val), matching)
        for k, v in vals.items():
            summary[f"{key}_{k}"] = v
        summary[f"{key}_seconds"] = seconds
        rows.append([name, vals])

    t = time.perf_counter()
    beta = regression.least_squares(x1, x2, y)
    add("least squares (rows as given)", "least_squares", beta, time.perf_counter() - t)
    t = time.perf_counter()
    beta = regression.least_squares(x1, x2, y, np.asarray(ds.match))
    add("oracle (true matching)", "oracle", beta, time.perf_counter() - t)
    t = time.perf_counter()
    beta, _, _ = regression.alt_min(x1, x2, y, block_size=block_size)
    add("AltMin (assign, refit)", "alt_min", beta, time.perf_counter() - t)
    if block_size:
        return rows
    t = time.perf_counter()
    beta, _ = regression.stochastic_em(x1, x2, y)
    add("stochastic EM", "stochastic_em", beta, time.perf_counter() - t)
    return rows
