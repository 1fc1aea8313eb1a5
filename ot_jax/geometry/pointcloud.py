"""Two point clouds and a ground cost: a lazy geometry that never stores ``[n, m]``.

Every kernel operation runs in blocks of rows (or columns); through
``jax.checkpoint`` the backward pass does not store the cost matrix either.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ot_jax._checks import all_finite
from ot_jax.geometry.base import AbstractGeometry
from ot_jax.geometry.costs import CostFn, SqEuclidean, as_cost_fn

__all__ = ["PointCloud"]

_BLOCK_ELEMENTS = 2**22  # default block of a lazy geometry: ~4M cost entries (16 MiB in f32)


@dataclasses.dataclass(frozen=True)
class PointCloud(AbstractGeometry):
    """Two point clouds and a ground cost, evaluated lazily in blocks.

    Args:
      x: ``[n, d]`` source points (or ``[B, n, d]`` for a batch of clouds that
        ``jax.vmap`` maps over).
      y: ``[m, d]`` target points (``[B, m, d]`` in a batch).
      cost_fn: a :class:`~ot_jax.geometry.costs.CostFn` or any function of two
        points ``(x: [d], y: [d]) -> scalar``. Default squared Euclidean.
      batch_size: rows (or columns) per block; default keeps a block near 4M
        entries. Peak memory of a kernel operation is ``batch_size * max(n, m)``.

    >>> import jax, ot_jax
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    >>> ot_jax.PointCloud(x, x + 1.0).shape
    (5, 5)
    """

    x: jax.Array
    y: jax.Array
    cost_fn: CostFn = SqEuclidean()
    batch_size: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "cost_fn", as_cost_fn(self.cost_fn))
        shapes = {}
        for name in ("x", "y"):
            shape = tuple(getattr(getattr(self, name), "shape", jnp.shape(getattr(self, name))))
            if len(shape) < 2:
                raise ValueError(f"PointCloud: {name} must be [n, d] points, got shape {shape}; "
                                 "a 1-D cloud of n points is x[:, None]")
            shapes[name] = shape
        if shapes["x"][-1] != shapes["y"][-1]:
            raise ValueError(f"PointCloud: x and y must have the same dimension d, got x of shape {shapes['x']} "
                             f"and y of shape {shapes['y']}")
        if shapes["x"][:-2] != shapes["y"][:-2]:
            raise ValueError(f"PointCloud: a batch of clouds ([B, n, d], mapped over with jax.vmap) needs the same "
                             f"leading batch shape in x and y, got x of shape {shapes['x']} and y of shape "
                             f"{shapes['y']}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"PointCloud: batch_size must be >= 1 or None, got {self.batch_size}")

    @property
    def shape(self):
        return (self.x.shape[0], self.y.shape[0])

    @property
    def dtype(self):
        return jnp.result_type(self.x, self.y)

    @property
    def cost_matrix(self):
        return _pairwise(self.cost_fn, self.x, self.y)

    def all_finite(self):
        return all_finite(self.x, self.y)

    def _block(self, other_len: int) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        return max(1, _BLOCK_ELEMENTS // max(other_len, 1))

    def _reduce(self, fn, pts, other_pts, own_args, other_args, checkpoint, transpose):
        """Apply ``fn`` to ``[k, len(other_pts)]`` cost blocks of ``k`` points of ``pts`` at a time."""
        cost_fn = self.cost_fn
        n = pts.shape[0]
        k = min(self._block(other_pts.shape[0]), n)
        n_blocks = -(-n // k)
        pad = n_blocks * k - n

        def blocks(v):  # [n, ...] -> [n_blocks, k, ...], padded by repeating the last row
            v = jnp.concatenate([v, jnp.repeat(v[-1:], pad, axis=0)]) if pad else v
            return v.reshape((n_blocks, k) + v.shape[1:])

        def block(args):
            p, *own = args
            c = cost_fn.pairwise(other_pts, p).T if transpose else cost_fn.pairwise(p, other_pts)
            return fn(c, *own, *other_args)

        body = jax.checkpoint(block) if checkpoint else block
        if n_blocks == 1:
            return body((pts, *own_args))
        out = jax.lax.map(body, tuple(blocks(v) for v in (pts, *own_args)))
        return tuple(o.reshape((n_blocks * k,) + o.shape[2:])[:n] for o in out)

    def _row_reduce(self, fn, row_args, col_args, checkpoint=False):
        return self._reduce(fn, self.x, self.y, row_args, col_args, checkpoint, transpose=False)

    def _col_reduce(self, fn, col_args, row_args, checkpoint=False):
        return self._reduce(fn, self.y, self.x, col_args, row_args, checkpoint, transpose=True)


@functools.partial(jax.jit, static_argnums=0)
def _pairwise(cost_fn: CostFn, x: jax.Array, y: jax.Array) -> jax.Array:
    """``[n, m]`` costs, one compiled program (not one per eager operation); inlined under a trace."""
    return cost_fn.pairwise(x, y)


# A pytree whose unflattening skips __init__: the checks above are for what a user
# builds, while JAX rebuilds clouds from batched or placeholder leaves (vmap outputs).
def _unflatten(meta, leaves):
    cloud = object.__new__(PointCloud)
    for name, value in zip(("x", "y", "cost_fn", "batch_size"), (*leaves, *meta)):
        object.__setattr__(cloud, name, value)
    return cloud


jax.tree_util.register_pytree_with_keys(
    PointCloud,
    lambda c: (((jax.tree_util.GetAttrKey("x"), c.x), (jax.tree_util.GetAttrKey("y"), c.y)), (c.cost_fn, c.batch_size)),
    _unflatten,
    flatten_func=lambda c: ((c.x, c.y), (c.cost_fn, c.batch_size)),
)
