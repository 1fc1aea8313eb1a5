"""Regression data whose correspondence was lost (generated; nothing is downloaded).

A *regression without correspondence* data set (:class:`Unpaired`) has responses ``y``
observed with some features ``x_paired`` (the same rows), and other features
``x_unpaired`` whose rows were shuffled: the partner of ``y[i]`` is
``x_unpaired[match[i]]``, and ``match`` is hidden from the methods (it only scores them).
This is the setting of Xie et al. (ICLR 2021, ROBOT) and of their public code: the
features come from two platforms, one of which lost the order of the samples;
``d_paired = 0`` is shuffled regression proper (Unnikrishnan et al. 2018).

:func:`shuffled_regression` draws such a set from a linear or a small-MLP teacher.
Inexact correspondence: ``outliers`` adds rows with no partner on either side.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Unpaired", "shuffled_regression", "shuffled_source", "partners", "X_LAWS", "TEACHERS"]

X_LAWS = ("normal", "uniform", "mix_normal")
TEACHERS = ("linear", "mlp")


class Unpaired(NamedTuple):
    """A regression data set with lost correspondence (a pytree of arrays).

    Attributes:
      x_paired: ``[n, d1]`` features observed in the rows of ``y`` (``d1`` may be 0).
      x_unpaired: ``[m, d2]`` features whose rows were shuffled.
      y: ``[n, p]`` responses.
      match: ``[n]`` int32, ``x_unpaired[match[i]]`` is the partner of row ``i`` of ``y``
        (``-1``: an outlier row with no partner); for scoring only.
      x_val: ``[n_val, d1 + d2]`` correctly paired validation features (paired block first).
      y_val: ``[n_val, p]`` their responses.
      beta: ``[d1 + d2 (+1), p]`` the linear teacher's coefficients (last row: intercept),
        or ``[0, p]`` for the MLP teacher.
    """

    x_paired: jax.Array
    x_unpaired: jax.Array
    y: jax.Array
    match: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    beta: jax.Array

    def paired_features(self) -> jax.Array:
        """``[n, d1 + d2]`` the features of every matched row in the true order (outlier rows of
        ``y`` get the features of row 0: mask them with ``match >= 0``)."""
        return jnp.concatenate([self.x_paired, self.x_unpaired[jnp.maximum(self.match, 0)]], axis=1)


def _draw_x(key, n, d, law):
    if law == "normal":
        return jax.random.normal(key, (n, d))
    if law == "uniform":
        return jax.random.uniform(key, (n, d))
    k1, k2 = jax.random.split(key)  # "mix_normal": half N(-1, 1), half N(2, 4^2) (the authors' code)
    half = n // 2
    return jnp.concatenate([-1.0 + jax.random.normal(k1, (half, d)), 2.0 + 4.0 * jax.random.normal(k2, (n - half, d))])


def _mlp_teacher(key, d, p, width=16):
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (d, width)) / jnp.sqrt(d)
    w2 = jax.random.normal(k2, (width, p)) / jnp.sqrt(width)
    return lambda x: jnp.tanh(x @ w1) @ w2


def shuffled_source(key_choose: jax.Array, key_permute: jax.Array, n: int, *, shuffled: float = 1.0,
                    block_size: int = 0) -> jax.Array:
    """``[n]`` int32 row order that loses the correspondence of a share of the rows: row ``j`` of
    the shuffled block holds sample ``source[j]``. A share ``shuffled`` of the rows (chosen with
    ``key_choose``) is permuted among themselves (with ``key_permute``), the others stay in place;
    with ``block_size > 0`` (a divisor of ``n``) this happens within each block of that many
    consecutive rows, so ``source[j] // block_size == j // block_size``."""
    size = block_size or n
    n_shuffled = int(round(shuffled * size))

    def shuffle_block(k1, k2):
        chosen = jax.random.permutation(k1, size)[:n_shuffled]
        return jnp.arange(size).at[chosen].set(chosen[jax.random.permutation(k2, n_shuffled)])

    if not block_size:
        return shuffle_block(key_choose, key_permute)
    blocks = n // size
    source = jax.vmap(shuffle_block)(jax.random.split(key_choose, blocks), jax.random.split(key_permute, blocks))
    return (source + size * jnp.arange(blocks)[:, None]).reshape(n)


def partners(source: jax.Array) -> jax.Array:
    """``[n]`` int32 ``match`` of a row order ``source`` (:func:`shuffled_source`): sample ``i``
    sits in row ``match[i]`` of the shuffled block, ``match[source[j]] == j``."""
    n = source.shape[0]
    return jnp.zeros(n, jnp.int32).at[source].set(jnp.arange(n, dtype=jnp.int32))


def shuffled_regression(key: jax.Array, n: int, *, d_paired: int = 0, d_unpaired: int = 5, n_outputs: int = 1,
                        shuffled: float = 1.0, snr: float = 100.0, n_val: int | None = None,
                        x_law: str = "normal", teacher: str = "linear", intercept: bool = False,
                        outliers: float = 0.0, block_size: int = 0) -> Unpaired:
    """A regression data set whose ``x_unpaired`` rows were (partly) shuffled.

    ``y = f(x) + noise``, with ``f(x) = x beta`` (``beta ~ N(0, I)``, plus an intercept row if
    ``intercept``) or a random one-hidden-layer ``tanh`` MLP (``teacher="mlp"``), and Gaussian
    noise of variance ``var(f(x)) / snr``. A share ``shuffled`` of the rows of ``x_unpaired``
    (chosen at random) is permuted among themselves; the others stay in place. With
    ``block_size > 0`` this happens within each block of ``block_size`` consecutive rows (the
    correspondence is lost only inside a batch, e.g. cells measured per tube), so
    ``match[i] // block_size == i // block_size``.

    Inexact correspondence (``outliers > 0``): ``r = round(outliers * n)`` extra rows of ``y``
    (responses drawn from ``N(mean y, 4 var y)``, with their own ``x_paired`` rows) and ``r``
    extra rows of ``x_unpaired`` (drawn from the feature law) that match nothing, appended and
    shuffled in, so ``y`` has ``n + r`` rows and ``x_unpaired`` too.

    Args:
      key: PRNG key (the data set is a function of it).
      n: matched rows (static); n_val: correctly paired validation rows (default ``n``).
      d_paired, d_unpaired: feature dimensions of the two blocks (``d_unpaired >= 1``).
      n_outputs: ``p``, response dimension.
      shuffled: share of ``x_unpaired`` rows shuffled, in ``[0, 1]``.
      snr: signal-to-noise ratio ``var(f(x)) / var(noise)`` (> 0; ``inf``: noiseless).
      x_law: ``"normal"`` (``N(0, I)``), ``"uniform"`` (``U[0, 1]^d``) or ``"mix_normal"``.
      teacher: ``"linear"`` or ``"mlp"``.
      intercept: add a constant term (linear teacher).
      outliers: share of extra unmatched rows on each side, ``>= 0``.
      block_size: 0 (shuffle over the whole set) or a divisor of ``n`` (shuffle within blocks).

    Returns:
      :class:`Unpaired`.

    Examples:
        >>> import jax
        >>> data = shuffled_regression(jax.random.PRNGKey(0), 100, d_paired=2, d_unpaired=3, shuffled=0.5)
        >>> data.y.shape, data.x_unpaired.shape, data.x_val.shape
        ((100, 1), (100, 3), (100, 5))
    """
    if n < 2 or d_unpaired < 1 or d_paired < 0 or n_outputs < 1:
        raise ValueError(f"shuffled_regression: need n >= 2, d_unpaired >= 1, d_paired >= 0, n_outputs >= 1, "
                         f"got n={n}, d_unpaired={d_unpaired}, d_paired={d_paired}, n_outputs={n_outputs}")
    if not 0.0 <= shuffled <= 1.0:
        raise ValueError(f"shuffled_regression: shuffled must be in [0, 1], got {shuffled}")
    if not snr > 0:
        raise ValueError(f"shuffled_regression: snr must be > 0, got {snr}")
    if not outliers >= 0:
        raise ValueError(f"shuffled_regression: outliers must be >= 0, got {outliers}")
    if block_size < 0 or (block_size and n % block_size) or (block_size and outliers):
        raise ValueError(f"shuffled_regression: block_size must be 0 or divide n = {n} (and outliers = 0), "
                         f"got {block_size}")
    if x_law not in X_LAWS:
        raise ValueError(f"shuffled_regression: x_law must be one of {X_LAWS}, got {x_law!r}")
    if teacher not in TEACHERS:
        raise ValueError(f"shuffled_regression: teacher must be one of {TEACHERS}, got {teacher!r}")
    n_val = n if n_val is None else int(n_val)
    d, p = d_paired + d_unpaired, n_outputs
    r = int(round(outliers * n))
    kx, kb, kn, ks, kp, ko, kv = jax.random.split(key, 7)
    x_all = _draw_x(kx, n + n_val + 2 * r, d, x_law)
    x, x_val, x_extra = x_all[:n], x_all[n:n + n_val], x_all[n + n_val:]
    if teacher == "linear":
        beta = jax.random.normal(kb, (d + int(intercept), p))
        f = lambda z: z @ beta[:d] + (beta[d] if intercept else 0.0)
    else:
        beta = jnp.zeros((0, p))
        f = _mlp_teacher(kb, d, p)
    signal = f(x)
    noise_std = jnp.sqrt(jnp.mean(jnp.var(signal, axis=0)) / snr)
    kn1, kn2 = jax.random.split(kn)
    y = signal + noise_std * jax.random.normal(kn1, signal.shape)
    y_val = f(x_val) + noise_std * jax.random.normal(kn2, (n_val, p))

    source = shuffled_source(ks, kp, n, shuffled=shuffled, block_size=block_size)
    x_unpaired = x[source, d_paired:]  # row j holds the features of sample source[j]
    match = partners(source)
    x_paired = x[:, :d_paired]
    if r:
        ky, kxo, kyo = jax.random.split(ko, 3)
        y_out = jnp.mean(y, 0) + 2.0 * jnp.std(y, 0) * jax.random.normal(ky, (r, p))
        order_y = jax.random.permutation(kyo, n + r)  # new row t of y is old row order_y[t]
        y = jnp.concatenate([y, y_out])[order_y]
        x_paired = jnp.concatenate([x_paired, x_extra[:r, :d_paired]])[order_y]
        order_x = jax.random.permutation(kxo, n + r)  # new row t of x_unpaired is old row order_x[t]
        x_unpaired = jnp.concatenate([x_unpaired, x_extra[r:, d_paired:]])[order_x]
        new_pos = jnp.zeros(n + r, jnp.int32).at[order_x].set(jnp.arange(n + r, dtype=jnp.int32))
        old_match = jnp.concatenate([match, -jnp.ones(r, jnp.int32)])[order_y]
        match = jnp.where(old_match >= 0, new_pos[jnp.maximum(old_match, 0)], -1)
    del kv
    return Unpaired(x_paired, x_unpaired, y, match, x_val, y_val, beta)
