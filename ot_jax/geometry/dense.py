"""A dense cost matrix ``[n, m]`` as a geometry, and the conversion of arrays to geometries."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ot_jax._checks import all_finite
from ot_jax.geometry.base import AbstractGeometry, log_kernel_block, logsumexp

__all__ = ["Geometry", "as_geometry"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Geometry(AbstractGeometry):
    """A dense cost matrix.

    Args:
      cost: ``[n, m]`` cost matrix.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> geom = ot_jax.Geometry(jnp.array([[0.0, 1.0], [1.0, 0.0]]))
        >>> geom.shape
        (2, 2)
    """

    cost: jax.Array

    @property
    def shape(self):
        return tuple(self.cost.shape)

    @property
    def dtype(self):
        return self.cost.dtype

    @property
    def cost_matrix(self):
        return self.cost

    def all_finite(self):
        return all_finite(self.cost)

    def _row_reduce(self, fn, row_args, col_args, checkpoint=False, combine=None):
        return fn(self.cost, *row_args, *col_args)

    def _col_reduce(self, fn, col_args, row_args, checkpoint=False, combine=None):
        return fn(self.cost.T, *col_args, *row_args)

    # Hot paths reduce along the stored layout instead of through a transpose.
    def lse(self, h, eps, axis):
        return logsumexp(log_kernel_block(self.cost, h, eps, axis), axis=axis)

    def kernel_apply(self, v, eps, axis):
        kernel = jnp.exp(-self.cost / eps)
        return kernel @ v if axis == 1 else v @ kernel



def as_geometry(geom) -> AbstractGeometry:
    """A geometry object, or a ``[n, m]`` cost array wrapped as :class:`Geometry`."""
    if isinstance(geom, AbstractGeometry):
        return geom
    cost = jnp.asarray(geom)
    if cost.ndim != 2:
        raise ValueError(
            f"cost matrix must be 2-D [n, m], got shape {tuple(cost.shape)}; "
            "pass a Geometry/PointCloud or a 2-D array"
        )
    if not jnp.issubdtype(cost.dtype, jnp.floating):
        cost = cost.astype(jnp.result_type(float))
    return Geometry(cost)
