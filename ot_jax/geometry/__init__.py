"""Geometries: ground costs, a dense cost matrix, lazy point clouds, grids, nearest neighbours."""

from ot_jax.geometry.base import AbstractGeometry
from ot_jax.geometry.costs import Cosine, CostFn, Euclidean, FunctionCost, PNorm, SobelCost, SqEuclidean
from ot_jax.geometry.dense import Geometry, as_geometry
from ot_jax.geometry.grid import Grid
from ot_jax.geometry.neighbors import nearest_neighbors
from ot_jax.geometry.pointcloud import PointCloud

__all__ = [
    "AbstractGeometry",
    "Geometry",
    "PointCloud",
    "Grid",
    "as_geometry",
    "nearest_neighbors",
    "CostFn",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "FunctionCost",
    "SobelCost",
]
