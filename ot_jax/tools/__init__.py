"""Applications built on the solvers: colour transfer (``color``), Gaussian closed forms
(``gaussian``), and differentiable top-k, sort, rank and quantiles from entropic OT
(``sorting``: :func:`soft_topk`, :func:`soft_sort`, :func:`soft_rank`, :func:`soft_quantile`), and the
classical estimators of linear regression without correspondence (``regression``: least squares,
AltMin, stochastic EM), the baselines of ROBOT (:mod:`ot_jax.losses.robot`), and tracking without
identities (``tracking``: ROBOT's and AltMin's fits of the dynamics, the links and their scores), and
domain adaptation (``da``: OT transports of a labelled source onto a target, :class:`~ot_jax.tools.da.OTDA`;
``jdot``: joint distribution OT), and the Word Mover's Distance (``wmd``: exact, IPOT and Sinkhorn
document distances, their WCD/RWMD lower bounds and the pruned kNN; the function is
:func:`ot_jax.wmd`, so that ``ot_jax.tools.wmd`` stays the module)."""

from ot_jax.tools import color, da, gaussian, jdot, regression, sorting, tracking, wmd
from ot_jax.tools.color import ColorTransferResult, color_transfer
from ot_jax.tools.gaussian import (GaussianBarycenter, gaussian_barycenter, gaussian_entropic_cost,
                                   gaussian_entropic_plan, gaussian_monge_map, gaussian_w2)
from ot_jax.tools.sorting import soft_quantile, soft_rank, soft_sort, soft_topk

__all__ = ["color", "da", "jdot", "wmd", "gaussian", "regression", "sorting", "tracking", "ColorTransferResult", "color_transfer", "gaussian_entropic_plan", "gaussian_w2", "gaussian_entropic_cost",
           "gaussian_monge_map", "gaussian_barycenter", "GaussianBarycenter",
           "soft_topk", "soft_sort", "soft_rank", "soft_quantile"]
