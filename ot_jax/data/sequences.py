"""Generated sequence-to-sequence tasks (nothing is downloaded).

:func:`digit_addition`: add two ``n_digits``-digit numbers and write the sum *most
significant digit first*. Why this task for beam search: a left-to-right decoder must
emit the leading digits first, and each of them depends on a carry that comes from
every digit to its right, which a small model decides only approximately; greedy
decoding commits to its first guess. The later digits are easy (the last one is
``(a_0 + b_0) mod 10``) and *check* the early guesses: once a prefix states a carry,
the next digit must agree with it, so a model that has learned the task gives a wrong
prefix a low-probability continuation. Beam search keeps the other carry hypothesis
alive and lets those later digits decide, so its mistakes are recoverable where
greedy's are not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["digit_addition", "addition_target", "ADDITION_VOCAB"]

ADDITION_VOCAB = 10  # the tokens are the digits 0 … 9 (source and target)


def addition_target(src: jax.Array) -> jax.Array:
    """The sum of the two numbers in ``src``, most significant digit first.

    Args:
      src: ``[..., 2 L]`` int digits: the first number's ``L`` digits, then the second's,
        each most significant digit first.

    Returns:
      ``[..., L + 1]`` int32 digits of the sum (the first is the carry out, 0 or 1).
    """
    src = jnp.asarray(src, jnp.int32)
    n = src.shape[-1] // 2
    a, b = src[..., :n], src[..., n:]
    digits, carry = [], jnp.zeros(src.shape[:-1], jnp.int32)
    for i in range(n - 1, -1, -1):  # least significant first
        total = a[..., i] + b[..., i] + carry
        digits.append(total % 10)
        carry = total // 10
    digits.append(carry)
    return jnp.stack(digits[::-1], axis=-1)


def digit_addition(key: jax.Array, n: int, *, n_digits: int = 4) -> tuple[jax.Array, jax.Array]:
    """``n`` addition problems with uniform digits (leading zeros allowed).

    Args:
      key: PRNG key (the problems are a function of it).
      n: number of problems (static).
      n_digits: ``L``, digits per operand (>= 1).

    Returns:
      ``(src [n, 2 L], tgt [n, L + 1])`` int32: the two operands' digits and the digits
      of their sum, most significant first (:func:`addition_target`).

    Examples:
        >>> import jax, ot_jax.data.sequences as s
        >>> src, tgt = s.digit_addition(jax.random.PRNGKey(0), 3, n_digits=2)
        >>> src.shape, tgt.shape
        ((3, 4), (3, 3))
    """
    if isinstance(n_digits, bool) or not isinstance(n_digits, int) or n_digits < 1:
        raise ValueError(f"digit_addition: n_digits must be an integer >= 1, got {n_digits!r}")
    src = jax.random.randint(key, (n, 2 * n_digits), 0, ADDITION_VOCAB, dtype=jnp.int32)
    return src, addition_target(src)
