"""Nearest-neighbour search between point clouds, in blocks (never an ``[n, m]`` array).

One search for the whole library: the Chamfer loss, colour transfer's palette
lookup and the trainers' precision/recall metrics all call :func:`nearest_neighbors`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ot_jax._checks import check_int_at_least, check_points, check_same_dim

__all__ = ["nearest_neighbors"]

_BLOCK_ELEMENTS = 2**21  # distances per block of the search (16 MiB in float64)


def nearest_neighbors(x, y, *, k: int = 1, block_size: int | None = None):
    """The ``k`` nearest neighbours in ``y`` of every point of ``x`` (squared Euclidean), in blocks.

    The search runs over blocks of ``block_size`` rows of ``x`` (``jax.lax.map``),
    so memory is ``O(block_size * m)``, never ``[n, m]``. Distances in the search
    use ``|x|^2 - 2 x.y + |y|^2`` (a matrix product); the returned distances are
    recomputed from the differences ``x_i - y_nn(i)``, so they are exact and
    differentiable in ``x`` and ``y`` with the nearest-neighbour (sub)gradient.

    Args:
      x: ``[n, d]`` query points; y: ``[m, d]`` reference points.
      k: neighbours per point (static, ``1 <= k <= m``).
      block_size: rows of ``x`` per block (static). Default ``~2^21 / m``.

    Returns:
      ``(index, sq_dist)``. ``k = 1``: ``index: [n]`` int32,
      ``index[i] = argmin_j |x_i - y_j|^2`` (the first one on ties), and
      ``sq_dist: [n]``. ``k > 1``: ``index, sq_dist: [n, k]``, the ``k`` nearest
      in increasing distance (``sq_dist[:, k - 1]`` is the k-NN radius squared; a
      point of ``x`` that is also in ``y`` is its own 0-th neighbour).

    Examples:
        >>> import jax.numpy as jnp
        >>> from ot_jax.geometry import nearest_neighbors
        >>> idx, d2 = nearest_neighbors(jnp.array([[0.0], [2.9]]), jnp.array([[1.0], [3.0], [0.2]]))
        >>> idx.tolist(), [round(float(v), 4) for v in d2]
        ([2, 1], [0.04, 0.01])
        >>> nearest_neighbors(jnp.array([[0.0]]), jnp.array([[1.0], [3.0], [0.2]]), k=2)[0].tolist()
        [[2, 0]]
    """
    fn = "nearest_neighbors"
    x = check_points(x, "x", fn)
    y = check_points(y, "y", fn)
    check_same_dim(x, y, fn)
    k = check_int_at_least(k, "k", fn, allow_none=False)
    if k > y.shape[0]:
        raise ValueError(f"{fn}: k = {k} neighbours asked but y has only {y.shape[0]} points")
    dtype = jnp.result_type(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    return _nearest(x, y, check_int_at_least(block_size, "block_size", fn), k)


@functools.partial(jax.jit, static_argnames=("block_size", "k"))
def _nearest(x, y, block_size, k=1):
    n, m = x.shape[0], y.shape[0]
    rows_per_block = block_size if block_size is not None else max(1, _BLOCK_ELEMENTS // max(m, 1))
    ys = jax.lax.stop_gradient(y)
    y_sq = jnp.sum(ys**2, axis=1)

    def rows(xb):  # xb: [d] (lax.map vmaps it over a block of rows)
        scores = y_sq - 2.0 * (ys @ xb)  # |x - y|^2 - |x|^2
        if k == 1:
            return jnp.argmin(scores).astype(jnp.int32)
        return jax.lax.top_k(-scores, k)[1].astype(jnp.int32)

    index = jax.lax.map(rows, jax.lax.stop_gradient(x), batch_size=min(rows_per_block, n))
    if k == 1:
        return index, jnp.sum((x - y[index]) ** 2, axis=-1)
    sq = jnp.sum((x[:, None, :] - y[index]) ** 2, axis=-1)  # [n, k], exact
    order = jnp.argsort(jax.lax.stop_gradient(sq), axis=1, stable=True)  # the expansion's rounding can swap near-ties
    return jnp.take_along_axis(index, order, axis=1), jnp.take_along_axis(sq, order, axis=1)
