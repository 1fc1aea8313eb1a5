"""Two point clouds and a ground cost: a lazy geometry that never stores ``[n, m]``.

Every kernel operation runs in blocks of rows (or columns); through
``jax.checkpoint`` the backward pass does not store the cost matrix either.

With a ``mesh``, both clouds are sharded along the point axis over one mesh axis of
``P`` devices and every kernel operation runs as a ring (:func:`_ring_reduce`):
device ``k`` holds ``x_k: [n/P, d]`` and ``y_k: [m/P, d]``, reduces its rows against
the column block it currently holds, and passes that block on to device ``k + 1``
(``jax.lax.ppermute``); after ``P`` steps every row has met every column, and the
partial results are merged as they arrive (sum, log-sum-exp, min or max, as the
operation declares). Outputs stay sharded like their points.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jax.sharding import Mesh, PartitionSpec

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
        entries. Peak memory of a kernel operation is ``batch_size * max(n, m)``
        (``batch_size * max(n, m) / P`` per device with a mesh of ``P`` devices).
      mesh: a :class:`jax.sharding.Mesh` to shard both clouds over (static), or None
        (one device). ``x`` and ``y`` (and the potentials and weights the solvers
        pass) are split along the point axis; ``n`` and ``m`` must be multiples of
        the number of devices on ``axis_name`` (pad with points of zero weight).
      axis_name: the mesh axis to shard the points over; default the mesh's only axis.

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
        >>> ot_jax.PointCloud(x, x + 1.0).shape
        (5, 5)
    """

    x: jax.Array
    y: jax.Array
    cost_fn: CostFn = SqEuclidean()
    batch_size: int | None = None
    mesh: Mesh | None = None
    axis_name: str | None = None

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
        if self.mesh is not None:
            object.__setattr__(self, "axis_name", _check_mesh(self.mesh, self.axis_name, shapes))
        elif self.axis_name is not None:
            raise ValueError(f"PointCloud: axis_name={self.axis_name!r} needs a mesh (mesh=None)")

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
        """Apply ``fn`` to ``[k, len(other_pts)]`` cost blocks of ``k`` points of ``pts`` at a time.

        ``pts: [n, d]``, ``other_pts: [m, d]``, ``own_args``: tuple of ``[n, ...]``,
        ``other_args``: tuple of ``[m, ...]``; returns ``fn``'s tuple of ``[n, ...]``.
        """
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

    def _row_reduce(self, fn, row_args, col_args, checkpoint=False, combine=None):
        if self.mesh is not None:
            return self._ring_reduce(fn, self.x, self.y, row_args, col_args, checkpoint, False, combine)
        return self._reduce(fn, self.x, self.y, row_args, col_args, checkpoint, transpose=False)

    def _col_reduce(self, fn, col_args, row_args, checkpoint=False, combine=None):
        if self.mesh is not None:
            return self._ring_reduce(fn, self.y, self.x, col_args, row_args, checkpoint, True, combine)
        return self._reduce(fn, self.y, self.x, col_args, row_args, checkpoint, transpose=True)

    def _ring_reduce(self, fn, pts, other_pts, own_args, other_args, checkpoint, transpose, combine):
        """:meth:`_reduce` over a device ring: ``pts`` and ``other_pts`` sharded along the point axis.

        Shapes as in :meth:`_reduce` (global); every array is split into ``P`` blocks along
        axis 0. Device ``k`` reduces its block of ``pts`` against the visiting block of
        ``other_pts`` (its own first), merges the partial result into a running one with
        ``combine`` (one of :data:`_COMBINE` per output), and sends the visiting block with its
        ``other_args`` to device ``k + 1``. Returns ``fn``'s outputs, sharded like ``pts``.
        """
        if combine is None or any(kind not in _COMBINE for kind in combine):
            raise ValueError(f"PointCloud with a mesh: every kernel operation must declare how its outputs "
                             f"combine across blocks, one of {sorted(_COMBINE)} each, got combine={combine!r}")
        axis = self.axis_name
        size = self.mesh.shape[axis]
        perm = [(k, (k + 1) % size) for k in range(size)]

        def local(pts, other_pts, own_args, other_args):
            reduce_with = lambda q, q_args: self._reduce(fn, pts, q, own_args, q_args, checkpoint, transpose)
            out = reduce_with(other_pts, other_args)
            if len(out) != len(combine):
                raise ValueError(f"PointCloud: combine={combine!r} declares {len(combine)} outputs, "
                                 f"the operation returns {len(out)}")

            def step(_, carry):
                acc, visiting = carry
                visiting = jax.lax.ppermute(visiting, axis, perm)
                new = reduce_with(*visiting)
                return tuple(_COMBINE[kind](a, b) for kind, a, b in zip(combine, acc, new)), visiting

            return jax.lax.fori_loop(1, size, step, (out, (other_pts, other_args)))[0]

        spec = PartitionSpec(axis)
        ring = jax.shard_map(local, mesh=self.mesh, in_specs=spec, out_specs=spec)
        return ring(pts, other_pts, tuple(own_args), tuple(other_args))


def _logaddexp(a: jax.Array, b: jax.Array) -> jax.Array:
    """``log(exp(a) + exp(b))`` elementwise; ``-inf`` (with zero, not NaN, derivatives) where both are."""
    top = jnp.maximum(a, b)
    live = top > -jnp.inf
    shift = jax.lax.stop_gradient(jnp.where(live, top, 0.0))
    total = jnp.exp(a - shift) + jnp.exp(b - shift)
    return jnp.where(live, shift + jnp.log(jnp.where(live, total, 1.0)), -jnp.inf)


_COMBINE = {"sum": jnp.add, "lse": _logaddexp, "min": jnp.minimum, "max": jnp.maximum}
"""How a partial result over one block of the other cloud merges with the running one."""


def _check_mesh(mesh, axis_name, shapes) -> str:
    """Validate ``mesh`` and ``axis_name`` against the cloud shapes; return the axis name."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"PointCloud: mesh must be a jax.sharding.Mesh or None, got {type(mesh).__name__}")
    names = tuple(mesh.axis_names)
    if axis_name is None:
        if len(names) != 1:
            raise ValueError(f"PointCloud: the mesh has axes {names}; pass axis_name= to say which one "
                             "the points are sharded over")
        axis_name = names[0]
    elif axis_name not in names:
        raise ValueError(f"PointCloud: axis_name={axis_name!r} is not an axis of the mesh (axes {names})")
    size = mesh.shape[axis_name]
    for name, shape in shapes.items():
        if len(shape) != 2:
            raise ValueError(f"PointCloud: with a mesh, {name} must be [n, d] points (no batch), got shape {shape}")
        if shape[0] % size:
            raise ValueError(f"PointCloud: {name} has {shape[0]} points, not a multiple of the {size} devices "
                             f"on mesh axis {axis_name!r}; pad {name} with points of zero weight")
    return axis_name


@functools.partial(jax.jit, static_argnums=0)
def _pairwise(cost_fn: CostFn, x: jax.Array, y: jax.Array) -> jax.Array:
    """``[n, m]`` costs, one compiled program (not one per eager operation); inlined under a trace."""
    return cost_fn.pairwise(x, y)


# A pytree whose unflattening skips __init__: the checks above are for what a user
# builds, while JAX rebuilds clouds from batched or placeholder leaves (vmap outputs).
def _unflatten(meta, leaves):
    cloud = object.__new__(PointCloud)
    for name, value in zip(("x", "y", "cost_fn", "batch_size", "mesh", "axis_name"), (*leaves, *meta)):
        object.__setattr__(cloud, name, value)
    return cloud


def _meta(cloud):
    return cloud.cost_fn, cloud.batch_size, cloud.mesh, cloud.axis_name


jax.tree_util.register_pytree_with_keys(
    PointCloud,
    lambda c: (((jax.tree_util.GetAttrKey("x"), c.x), (jax.tree_util.GetAttrKey("y"), c.y)), _meta(c)),
    _unflatten,
    flatten_func=lambda c: ((c.x, c.y), _meta(c)),
)
