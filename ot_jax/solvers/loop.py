"""The one fixed-point loop behind every iterative solver.

A solver supplies ``step(state, it, check) -> (state, error)``: one iteration
from iteration index ``it``; when the static flag ``check`` is True it also
returns the stopping-rule value (otherwise a dummy). The loop runs
``check_every - 1`` plain steps and one checking step per round, records the
error of each round, and stops when it is ``<= tol`` or NaN.

Two executions, same iterates:
- ``differentiable=False``: ``lax.while_loop`` (stops early; not
  reverse-differentiable; solvers differentiate by the envelope theorem).
- ``differentiable=True``: ``lax.scan`` over all rounds, freezing the state once
  converged, so reverse-mode gradients unroll through the iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["LoopOutput", "fixed_point_loop"]


class LoopOutput(NamedTuple):
    state: Any
    n_iters: jax.Array  # scalar int: iterations run
    errors: jax.Array  # [n_rounds] error per check, -1 after the stop
    last_error: jax.Array  # scalar


def _round(step, state, k, check_every):
    start = k * check_every
    state = jax.lax.fori_loop(0, check_every - 1, lambda i, s: step(s, start + i, False)[0], state)
    return step(state, start + check_every - 1, True)


def fixed_point_loop(
    step: Callable,
    init_state,
    *,
    max_iters: int,
    check_every: int,
    tol,
    differentiable: bool = False,
    dtype=jnp.float32,
    stalled: Callable | None = None,
) -> LoopOutput:
    """Iterate ``step`` from ``init_state`` until ``error <= tol`` or ``max_iters``.

    Args:
      step: ``(state, it: int array, check: bool) -> (state, error scalar)``.
      init_state: pytree of arrays.
      max_iters: static cap (rounded up to a multiple of ``check_every``).
      check_every: static number of iterations per error check.
      tol: scalar tolerance on the error.
      differentiable: unroll with ``scan`` for reverse-mode gradients.
      stalled: optional ``state -> bool``; the loop also stops when it is True
        (e.g. the error stopped improving at the precision limit).
    Returns:
      :class:`LoopOutput`.
    """
    if max_iters < 1 or check_every < 1:
        raise ValueError(f"max_iters and check_every must be >= 1, got {max_iters}, {check_every}")
    n_rounds = -(-max_iters // check_every)
    errors0 = jnp.full((n_rounds,), -1.0, dtype=dtype)
    inf = jnp.asarray(jnp.inf, dtype)

    def done(err, state):
        stop = (err <= tol) | jnp.isnan(err)
        return stop if stalled is None else stop | stalled(state)

    if not differentiable:

        def cond(carry):
            k, state, _, err = carry
            return (k < n_rounds) & ~done(err, state)

        def body(carry):
            k, state, errors, _ = carry
            state, err = _round(step, state, k, check_every)
            err = jnp.asarray(err, dtype)
            return k + 1, state, errors.at[k].set(err), err

        k, state, errors, err = jax.lax.while_loop(cond, body, (jnp.asarray(0), init_state, errors0, inf))
        return LoopOutput(state, k * check_every, errors, err)

    def scan_body(carry, k):
        state, err, n_done = carry
        stop = done(err, state)
        new_state, new_err = _round(step, state, k, check_every)
        new_err = jnp.asarray(new_err, dtype)
        state = jax.tree_util.tree_map(lambda old, new: jnp.where(stop, old, new), state, new_state)
        err = jnp.where(stop, err, new_err)
        n_done = jnp.where(stop, n_done, n_done + 1)
        return (state, err, n_done), jnp.where(stop, -1.0, new_err).astype(dtype)

    (state, err, n_done), errors = jax.lax.scan(scan_body, (init_state, inf, jnp.asarray(0)), jnp.arange(n_rounds))
    return LoopOutput(state, n_done * check_every, errors, err)
