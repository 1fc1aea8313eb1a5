"""Geometries (dense cost matrix, lazy point cloud) and ground costs."""

from ot_jax.geometry.costs import Cosine, CostFn, Euclidean, FunctionCost, PNorm, SobelCost, SqEuclidean
from ot_jax.geometry.geometry import AbstractGeometry, Geometry, PointCloud, as_geometry
from ot_jax.geometry.grid import Grid

__all__ = [
    "AbstractGeometry",
    "Geometry",
    "PointCloud",
    "Grid",
    "as_geometry",
    "CostFn",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "FunctionCost",
    "SobelCost",
]
