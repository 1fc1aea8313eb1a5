"""OT solvers: exact LP, Sinkhorn (balanced and unbalanced), Sinkhorn divergence, partial OT, Gromov-Wasserstein and its barycenters, low-rank Sinkhorn, IPOT, assignment, barycenters (fixed and free support), sliced and 1-D; the shared
fixed-point loop and result pytrees."""

from ot_jax.solvers.assignment import AssignmentResult, assignment
from ot_jax.solvers.barycenter import BarycenterResult, barycenter
from ot_jax.solvers.divergence import DivergenceResult, sinkhorn_divergence
from ot_jax.solvers.exact import emd
from ot_jax.solvers.free_barycenter import FreeBarycenterResult, free_support_barycenter
from ot_jax.solvers.gromov import gromov_wasserstein
from ot_jax.solvers.gromov_barycenter import GromovBarycenterResult, gromov_barycenter
from ot_jax.solvers.ipot import ipot
from ot_jax.solvers._implicit import implicit_fixed_point
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax.solvers.low_rank import LowRankResult, low_rank_sinkhorn
from ot_jax.solvers.partial import partial_emd, partial_sinkhorn
from ot_jax.solvers.results import (EntropicResult, Exact1DResult, ExactResult, SolverError, Status, check_status, raise_on_status,
                                   result_repr, status_message)
from ot_jax.solvers.sinkhorn import sinkhorn
from ot_jax.solvers.sliced import emd_1d, sliced_wasserstein, wasserstein_1d

__all__ = ["emd", "sinkhorn", "ipot", "sinkhorn_divergence", "DivergenceResult", "partial_emd", "partial_sinkhorn", "gromov_wasserstein", "gromov_barycenter", "GromovBarycenterResult", "free_support_barycenter", "FreeBarycenterResult", "low_rank_sinkhorn", "LowRankResult", "fixed_point_loop", "implicit_fixed_point", "EntropicResult", "ExactResult", "Status",
           "assignment", "AssignmentResult", "barycenter", "BarycenterResult", "sliced_wasserstein",
           "wasserstein_1d", "emd_1d", "Exact1DResult", "raise_on_status", "check_status", "SolverError",
           "status_message", "result_repr"]
