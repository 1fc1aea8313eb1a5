"""ot-jax: optimal transport in JAX, exact when you need it, fast, differentiable.

Examples:
    >>> import jax, ot_jax
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (128, 2))
    >>> out = ot_jax.ipot(ot_jax.PointCloud(x, x + 1.0))
    >>> round(float(out.cost), 3)
    2.0
"""

from ot_jax import geometry, losses, nn, solvers, tools
from ot_jax.geometry import (
    Cosine,
    CostFn,
    Euclidean,
    FunctionCost,
    Geometry,
    Grid,
    PNorm,
    PointCloud,
    SobelCost,
    SqEuclidean,
)
from ot_jax.losses import chamfer_distance, exact_loss
from ot_jax.solvers import (
    AssignmentResult,
    BarycenterResult,
    DivergenceResult,
    EntropicResult,
    Exact1DResult,
    ExactResult,
    FreeBarycenterResult,
    GromovBarycenterResult,
    LowRankResult,
    SolverError,
    Status,
    assignment,
    check_status,
    barycenter,
    emd,
    emd_1d,
    free_support_barycenter,
    gromov_barycenter,
    gromov_wasserstein,
    ipot,
    low_rank_sinkhorn,
    partial_emd,
    partial_sinkhorn,
    sinkhorn,
    sinkhorn_divergence,
    sliced_wasserstein,
    wasserstein_1d,
)
from ot_jax.tools import (
    ColorTransferResult,
    color_transfer,
    gaussian_entropic_plan,
    gaussian_w2,
    soft_quantile,
    soft_rank,
    soft_sort,
    soft_topk,
)
from ot_jax.tools.wmd import wmd

__version__ = "0.1.0"

__all__ = [
    "emd",
    "sinkhorn",
    "sinkhorn_divergence",
    "DivergenceResult",
    "partial_emd",
    "partial_sinkhorn",
    "gromov_wasserstein",
    "gromov_barycenter",
    "GromovBarycenterResult",
    "free_support_barycenter",
    "FreeBarycenterResult",
    "low_rank_sinkhorn",
    "LowRankResult",
    "ipot",
    "Geometry",
    "PointCloud",
    "Grid",
    "CostFn",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "FunctionCost",
    "SobelCost",
    "EntropicResult",
    "ExactResult",
    "Status",
    "SolverError",
    "check_status",
    "wasserstein_1d",
    "emd_1d",
    "Exact1DResult",
    "sliced_wasserstein",
    "gaussian_w2",
    "gaussian_entropic_plan",
    "chamfer_distance",
    "exact_loss",
    "color_transfer",
    "ColorTransferResult",
    "assignment",
    "AssignmentResult",
    "barycenter",
    "BarycenterResult",
    "soft_topk",
    "soft_sort",
    "soft_rank",
    "soft_quantile",
    "wmd",
]
