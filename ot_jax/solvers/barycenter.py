"""Fixed-support Wasserstein barycenters: IPOT (exact) and Sinkhorn / IBP (entropic).

Problem. Given ``K`` histograms ``p_k: [n]`` on one support and weights
``lambda: [K]`` (``>= 0``, summing to 1), find a histogram ``q: [m]`` on a
(usually the same) support minimising ``sum_k lambda_k W(q, p_k)``, where ``W`` is
the OT cost for the ``[m, n]`` cost matrix ``C`` of the geometry. Each measure
``k`` has a plan ``Gamma_k: [m, n]`` with rows summing to ``q`` and columns to
``p_k``.

``method="ipot"`` -- the IPOT barycenter (Xie, Wang, Wang, Zha, "A fast proximal
point method for computing exact Wasserstein distance", UAI 2019; thesis
Algorithm 2): proximal point steps ``Gamma_k <- argmin <C, Gamma_k> + beta
KL(Gamma_k | Gamma_k(t))`` solved inexactly by ``L`` iterative-Bregman sweeps on
``H_k = exp(-C / beta) * Gamma_k(t)``. It converges to the exact (LP)
barycenter, sharp, not blurred. As in :mod:`ot_jax.solvers.ipot`, after ``t``
steps ``Gamma_k(t) = exp((F_k + G_k - t C) / beta)``, so the state is
per-measure potentials ``F: [K, m]``, ``G: [K, n]`` and the warm-started scalings
``log a: [K, m]`` -- ``O(K (m + n))`` memory instead of the thesis' ``K`` dense
``[m, n]`` plans -- and every kernel operation is a log-sum-exp at temperature
``beta / (t + 1)``: nothing underflows, and recentring ``(F_k + c, G_k - c)``
keeps float32 digits. One sweep (``L = 1``) for all measures::

    b_k = p_k / (H_k^T a_k)                  # 1 lse per measure: columns exact
    s_k = H_k b_k                            # 1 lse per measure
    q   = prod_k (a_k * s_k) ** lambda_k     # geometric mean of the row marginals
    a_k = q / s_k                            # free: rows exact (= q)

then ``Gamma_k <- diag(a_k) H_k diag(b_k)`` (folded into ``F, G``), starting from
``Gamma_k = 1 1^T`` and ``a_k = 1``. This is the thesis' sweep ``a_k = q / (H_k b_k);
b_k = p_k / (H_k^T a_k); q = prod (a_k H_k b_k)^lambda_k`` with the ``a``-update moved
to the end, where it reuses ``H_k b_k`` (the order of Benamou et al.'s iterative
Bregman projections). Two reasons:

- cost: two log-sum-exps per measure per step, exactly a Sinkhorn barycenter
  iteration (the printed order needs three when ``L = 1``);
- correctness: the update ``a_k <- a_k q / r_k`` keeps ``sum_k lambda_k log a_k``
  unchanged, and the barycenter's optimality condition (``sum_k lambda_k f_k`` constant
  for the row potentials ``f_k``) needs it constant. Starting from ``a_k = 1`` keeps it
  at 0 forever. The printed order resets ``a_k = q / (H_k b_k)`` at every proximal
  step, which breaks the invariant: on a 30-point problem it stalls 24 % above the
  LP objective, while this order converges (``tests/solvers/test_barycenter.py``).
  POT's ``barycenter_sinkhorn`` had the same flaw with non-uniform weights
  (unweighted geometric mean at the start; PythonOT/POT PR #870).

Viewed in the log domain, the IPOT iterate after ``t`` steps is (up to the
inner-loop error) the Sinkhorn barycenter at temperature ``beta / t``: an
epsilon-annealed, warm-started Sinkhorn barycenter, which is why its plans sharpen
and its cost gap closes roughly like ``beta / t`` (the barycenter ``q`` itself
usually settles much sooner).

``method="sinkhorn"`` -- the entropic barycenter by iterative Bregman
projections (Benamou, Carlier, Cuturi, Nenna, Peyre, "Iterative Bregman
projections for regularized transportation problems", SIAM J. Sci. Comput.
2015): the same sweep with the fixed kernel ``exp(-C / eps)``, minimising
``sum_k lambda_k (<C, Gamma_k> - eps H(Gamma_k))``, ``H(P) = -sum P (log P - 1)``.
Same convention as POT's ``ot.barycenter(A, M, reg=eps)``. Log domain by default;
``mode="scaling"`` uses ``geom.kernel_apply`` (on a :class:`~ot_jax.Grid` a
separable Gaussian blur: the convolutional barycenter of Solomon et al.,
"Convolutional Wasserstein distances", ACM TOG 2015, never storing ``[n, n]``).

Stopping rule, checked every ``check_every`` steps through
:func:`~ot_jax.solvers.loop.fixed_point_loop`. The plans
``diag(a_k) H_k diag(b_k)`` after the ``b``-update have exact columns ``p_k`` and
rows ``r_k = a_k * s_k``; a barycenter is their common row marginal, so the
*disagreement* is ``max_{k: lambda_k > 0} ||r_k - q||_1 / mass`` (read off the
sweep, no extra kernel pass; POT uses the spread of the same ``r_k``).

- Sinkhorn: the error is the disagreement.
- IPOT: the error is the larger of the disagreement and the relative *gap*
  ``|sum_k lambda_k <C, Gamma_k> - LB| / LB`` between the plans' cost and a
  certified lower bound ``LB`` on the exact barycenter objective (the LP dual at
  the centred row potentials, see :func:`_barycenter_lower_bound`; one
  ``transport_cost`` and one ``lse`` per measure per check), taken as the larger
  of the last two checks (the plans' columns are inexact, so their cost can cross
  ``LB`` and the gap dip by luck). The checked iterate with the smallest error is
  returned (``keep_best``). The gap is conservative: it closes like ``beta / t``
  relative to the objective, so when the measures are close (objective much
  smaller than ``max C``) ``q`` is often optimal long before ``tol`` is met.
  In float32 the run stops with ``Status.STALLED`` once ``beta / t`` falls below
  ``100 x machine-eps x max C`` (the plans' exponents are then noise; cf.
  :func:`ot_jax.ipot`, which uses 300).

The returned plans have rows exactly ``q`` and columns ``p_k`` up to the
disagreement.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.geometry import AbstractGeometry, Geometry, as_geometry
from ot_jax.solvers import _entropic
from ot_jax.solvers._implicit import ImplicitOptions, implicit_fixed_point
from ot_jax.solvers.ipot import DEFAULT_RELATIVE_BETA
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax._checks import check_positive, concrete_true
from ot_jax.solvers.results import Status, raise_on_status, result_repr

__all__ = ["barycenter", "BarycenterResult"]

_METHODS = ("ipot", "sinkhorn")
_MODES = ("log", "scaling")
_GRAD_MODES = ("implicit", "forward", "unroll")  # meanings: ot_jax.solvers._entropic.GRAD_MODES


def _map_batch(fn, n_batch: int):
    """``fn`` vmapped over ``n_batch`` leading axes of all its (array) arguments."""
    for _ in range(n_batch):
        fn = jax.vmap(fn)
    return fn


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BarycenterResult:
    """Output of :func:`ot_jax.barycenter` (leading batch axes ``[...]`` for batched input).

    The plan of measure ``k`` is kept implicitly as
    ``Gamma_k[i, j] = exp((f[k, i] + g[k, j] - C_ij) / plan_epsilon)`` (rows: the
    barycenter's support, columns: the measures' support) and materialised only
    on request (:attr:`plans`) or applied lazily (:meth:`apply`), so a barycenter
    on a :class:`~ot_jax.Grid` or :class:`~ot_jax.PointCloud` never stores
    ``[m, n]``.

    For batched input the array fields carry the leading axes and the properties
    map over them; the geometry is shared. (A result built under your own
    ``jax.vmap`` has a batched geometry: use its properties inside the ``vmap``.)

    Attributes:
      geom: the ``[m, n]`` geometry (shared by the batch; not batched).
      measures: ``[..., K, n]`` input histograms ``p_k``.
      weights: ``[..., K]`` barycentric weights ``lambda``.
      barycenter: ``[..., m]`` the barycenter ``q`` (the rows of every plan; its
        mass equals the measures' up to ``tol``: not renormalised, like POT).
      f: ``[..., K, m]``, g: ``[..., K, n]`` potentials of the plans.
      plan_epsilon: ``[...]`` temperature of the plans (``epsilon`` for Sinkhorn;
        ``beta / t`` after ``t`` IPOT steps).
      converged: ``[...]`` bool, ``status == Status.CONVERGED``; n_iters: ``[...]`` int.
      errors: ``[..., max_iters // check_every]`` stopping-rule values, one per
        check, ``-1`` after the loop stopped.
      status: ``[...]`` int, a :class:`~ot_jax.Status`.
    """

    geom: AbstractGeometry
    measures: jax.Array
    weights: jax.Array
    barycenter: jax.Array
    f: jax.Array
    g: jax.Array
    plan_epsilon: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("geom", "measures", "barycenter", "status", "n_iters"))

    @property
    def _n_batch(self) -> int:
        return self.barycenter.ndim - 1

    @property
    def plans(self) -> jax.Array:
        """``[..., K, m, n]`` materialised plans (dense: small problems only)."""
        one = lambda f, g, eps: jax.vmap(lambda fk, gk: self.geom.plan(fk, gk, eps))(f, g)
        return _map_batch(one, self._n_batch)(self.f, self.g, self.plan_epsilon)

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``Gamma_k vec_k`` (axis=1, ``vec: [..., K, n]`` -> ``[..., K, m]``) or
        ``Gamma_k^T vec_k`` (axis=0, ``vec: [..., K, m]`` -> ``[..., K, n]``), never storing a plan.

        E.g. for measures on 1-D points ``y: [n]``, ``apply(jnp.broadcast_to(y, (K, n))) / q``
        is each measure's barycentric map ``[K, m]`` from the barycenter's support.
        """
        geom = self.geom
        one = lambda f, g, eps, v: jax.vmap(lambda fk, gk, vk: geom.apply_plan(fk, gk, eps, vk, axis))(f, g, v)
        return _map_batch(one, self._n_batch)(self.f, self.g, self.plan_epsilon, vec)

    @property
    def marginals(self) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[..., K, m]`` (each equal to the barycenter) and column sums ``[..., K, n]`` (~ ``p_k``)."""
        one = lambda f, g, eps: jax.vmap(lambda fk, gk: self.geom.marginals(fk, gk, eps))(f, g)
        return _map_batch(one, self._n_batch)(self.f, self.g, self.plan_epsilon)

    @property
    def costs(self) -> jax.Array:
        """``[..., K]`` transport costs ``<C, Gamma_k>`` of the plans (one kernel pass each)."""
        one = lambda f, g, eps: jax.vmap(lambda fk, gk: self.geom.transport_cost(fk, gk, eps, plan_gradient=True))(
            f, g)
        return _map_batch(one, self._n_batch)(self.f, self.g, self.plan_epsilon)

    @property
    def cost(self) -> jax.Array:
        """``[...]`` barycenter objective ``sum_k lambda_k <C, Gamma_k>`` (IPOT: ~ ``sum_k lambda_k W(q, p_k)``;
        Sinkhorn: the transport part of the entropic objective)."""
        return jnp.sum(self.weights * self.costs, axis=-1)


# ----------------------------------------------------------------------------- checks
def _mass_rtol(dtype) -> float:
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-9


@jax.jit
def _input_flags(measures, weights):
    """``(bad_p, mass, unequal, zero, bad_w)`` of :func:`_check_inputs`, in one compiled program."""
    dtype = measures.dtype
    bad_p = jnp.any(~jnp.isfinite(measures) | (measures < 0), axis=(-2, -1))
    mass = jnp.sum(measures, axis=-1)  # [..., K]
    ref = jnp.max(mass, axis=-1)
    unequal = jnp.any(jnp.abs(mass - ref[..., None]) > _mass_rtol(dtype) * ref[..., None], axis=-1)
    zero = jnp.any(mass <= 0, axis=-1)
    bad_w = jnp.any(~jnp.isfinite(weights) | (weights < 0)) | (
        jnp.abs(jnp.sum(weights) - 1.0) > _mass_rtol(dtype) * 10)
    return bad_p, mass, unequal, zero, bad_w


def _check_inputs(measures, weights, dtype, solver):
    """Validate ``measures: [..., K, n]`` and ``weights: [K]``; return a traced ``invalid`` flag ``[...]``.

    Raises at once (concrete inputs) on negative / non-finite entries, zero or
    unequal masses, weights not summing to 1; inside a trace the same facts set
    the flag (-> ``Status.INVALID_INPUT``).
    """
    bad_p, mass, unequal, zero, bad_w = _input_flags(measures, weights)
    if concrete_true(jnp.any(bad_p)):
        p = np.asarray(measures)
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{solver}: measures contain NaN or inf")
        idx = np.unravel_index(int(np.argmin(p)), p.shape)
        raise ValueError(f"{solver}: measures are negative at index {tuple(int(i) for i in idx)} "
                         f"(value {p.min():.3g}); histograms must be >= 0")
    if concrete_true(jnp.any(zero)):
        raise ValueError(f"{solver}: a measure has zero total mass")
    if concrete_true(jnp.any(unequal)):
        masses = np.asarray(mass).reshape(-1, mass.shape[-1])
        row = int(np.argmax(np.ptp(masses, axis=-1)))
        raise ValueError(f"{solver}: measures have unequal total mass (sums {np.array2string(masses[row], precision=6)}); "
                         "a barycenter needs equal masses (normalise each histogram to 1)")
    if concrete_true(bad_w):
        w = np.asarray(weights)
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{solver}: weights contain NaN or inf")
        if np.any(w < 0):
            raise ValueError(f"{solver}: weights are negative at index {int(np.argmin(w))} (value {w.min():.3g})")
        raise ValueError(f"{solver}: weights must sum to 1, got sum(weights) = {float(w.sum()):.10g}")
    return bad_p | zero | unequal | bad_w


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Probe:
    """Carrier for :func:`raise_on_status`, which attaches its checks to a field named ``cost``."""

    cost: tuple
    status: jax.Array


# ----------------------------------------------------------------------------- solver
def barycenter(
    measures,
    geom,
    *,
    weights=None,
    method: Literal["ipot", "sinkhorn"] = "ipot",
    beta=None,
    epsilon=None,
    inner_iters: int = 1,
    mode: Literal["log", "scaling"] = "log",
    tol: float | None = None,
    max_iters: int = 10000,
    check_every: int = 10,
    keep_best: bool = True,
    grad_mode: Literal["implicit", "forward", "unroll"] | None = None,
    implicit: ImplicitOptions = ImplicitOptions(),
    throw: bool = False,
) -> BarycenterResult:
    """Fixed-support Wasserstein barycenter of histograms: exact (IPOT) or entropic (Sinkhorn / IBP).

    Minimises ``sum_k lambda_k W(q, p_k)`` over histograms ``q`` (see the module
    docstring for the iterations). ``method="ipot"`` (Xie et al., thesis
    Algorithm 2, log domain) converges to the exact LP barycenter;
    ``method="sinkhorn"`` (Benamou et al. 2015) to the entropic one, blurred by
    ``epsilon``, and with ``mode="scaling"`` on a :class:`~ot_jax.Grid` it is the
    convolutional barycenter of Solomon et al. 2015. Both cost two kernel
    operations (log-sum-exps) per measure per iteration. The IPOT state is
    ``O(K (m + n))`` potentials, not the thesis' ``K`` dense ``[m, n]`` plans, and its
    update order fixes a flaw of the printed algorithm (module docstring).

    Args:
      measures: ``[K, n]`` histograms on one shared support (``>= 0``, finite,
        equal total mass, usually 1), or ``[..., K, n]`` for a batch of problems
        (solved with ``jax.vmap`` inside; the geometry and weights are shared --
        for per-problem weights use ``jax.vmap`` yourself).
      geom: ``[m, n]`` cost matrix (rows: the barycenter's support, columns: the
        measures'; usually square), a :class:`~ot_jax.Geometry`,
        :class:`~ot_jax.PointCloud` ``(x, y)``, :class:`~ot_jax.Grid` or any
        :class:`~ot_jax.geometry.AbstractGeometry` (only its kernel operations
        are used: ``lse``, ``transport_cost``, ``max_cost``, ``all_finite``, and
        ``kernel_apply`` for ``mode="scaling"``).
      weights: ``[K]`` barycentric weights ``lambda``, ``>= 0``, summing to 1
        (uniform if None).
      method: ``"ipot"`` (exact; default) or ``"sinkhorn"`` (entropic).
      beta: IPOT proximal step, > 0, in cost units. Default ``0.01 * max C``
        (0.005-0.03 x max C were all comparable on the tests' problems; barycenters
        need more steps than distances: hundreds on smooth histograms, 10^4 or more
        for a 1e-5 gap on rough ones).
      epsilon: Sinkhorn regularisation, > 0, in cost units (POT's ``reg``); required
        for ``method="sinkhorn"``.
      inner_iters: IPOT sweeps per proximal step (``L``; 1 suffices).
      mode: Sinkhorn only: ``"log"`` (default, stable for small eps) or
        ``"scaling"`` (``geom.kernel_apply``; faster, underflows for small eps,
        reported as ``Status.NON_FINITE``).
      tol: tolerance of the stopping rule (module docstring). Sinkhorn: the
        largest L1 disagreement ``max_k ||r_k - q||_1 / mass`` between ``q`` and
        the row marginals of the column-exact plans. IPOT: the larger of that and
        the relative gap between the plans' cost and a certified lower bound on
        the exact objective. Default 1e-4 in float64, 1e-3 in float32 (IPOT in
        float32 may end ``Status.STALLED`` above it, returning its best iterate).
      keep_best: IPOT only: return the checked iterate with the smallest error
        (default), or the last one.
      max_iters: iteration cap (static); check_every: iterations per check (static).
      grad_mode: how derivatives are taken (the vocabulary of
        :data:`ot_jax.solvers._entropic.GRAD_MODES`; None: ``"implicit"`` for
        ``method="sinkhorn"``, ``"forward"`` for ``method="ipot"``).
        ``"implicit"`` (Sinkhorn only): the loop runs without tracking derivatives,
        then the row potentials get the derivative of the fixed point of the
        barycenter sweep (implicit function theorem, one GMRES solve per tangent:
        :func:`~ot_jax.solvers._implicit.implicit_fixed_point`), so ``barycenter``,
        ``f``, ``g``, ``cost``, ``costs``, ``plans``, ``apply`` and ``marginals``
        differentiate exactly in the measures, the weights, the geometry and
        ``epsilon``, by ``jax.grad`` or ``jax.jvp``, for strictly positive measures
        (a zero bin has no derivative in its own mass). ``"forward"``: a while loop
        that stops at ``tol``; forward-mode derivatives (``jax.jvp``/``jax.jacfwd``)
        through the iterations work, ``jax.grad`` does not. ``"unroll"``: a scan over
        ``max_iters`` steps, freezing the state once converged, ``jax.grad``
        backpropagates through the iterations (keep ``max_iters`` small and the
        measures strictly positive). The IPOT barycenter converges to the LP
        barycenter, which is piecewise in its inputs, so it has no ``"implicit"``
        mode; there is no ``"envelope"`` mode (``q`` is not a value function).
      implicit: :class:`~ot_jax.solvers._implicit.ImplicitOptions` of the GMRES
        solve in ``grad_mode="implicit"``.
      throw: raise (also inside ``jit``) when not converged or on bad input.

    Returns:
      :class:`BarycenterResult`: ``barycenter [..., m]``, plan potentials
      ``f [..., K, m]``, ``g [..., K, n]``, ``converged``, ``n_iters``, ``errors``,
      ``status``; ``cost`` and ``costs`` on demand.

    Raises:
      ValueError: bad shapes, empty inputs, bad options; for concrete inputs also
        negative / non-finite / unequal-mass measures, weights that are negative
        or do not sum to 1, non-finite costs, ``beta``/``epsilon <= 0``. Inside
        ``jit`` these give ``Status.INVALID_INPUT``.

    Examples:
        >>> import jax.numpy as jnp, ot_jax
        >>> x = jnp.linspace(0.0, 1.0, 50)
        >>> bump = lambda c: jnp.exp(-((x - c) / 0.05) ** 2 / 2)
        >>> p = jnp.stack([bump(0.25), bump(0.75)])
        >>> p = p / p.sum(axis=1, keepdims=True)
        >>> out = ot_jax.barycenter(p, (x[:, None] - x[None, :]) ** 2)
        >>> bool(out.converged), round(float(out.barycenter @ x), 3)
        (True, 0.5)
    """
    solver = "barycenter"
    if method not in _METHODS:
        raise ValueError(f"{solver}: method must be one of {_METHODS}, got {method!r}")
    if mode not in _MODES:
        raise ValueError(f"{solver}: mode must be one of {_MODES}, got {mode!r}")
    if method == "ipot" and mode != "log":
        raise ValueError(f"{solver}: method='ipot' runs in the log domain only (mode='log')")
    if grad_mode is None:
        grad_mode = "implicit" if method == "sinkhorn" else "forward"
    _entropic.check_grad_mode(grad_mode, solver, _GRAD_MODES)
    if method == "ipot" and grad_mode == "implicit":
        raise ValueError(f"{solver}: grad_mode='implicit' is for method='sinkhorn'; the IPOT barycenter "
                         "converges to the LP barycenter (piecewise in its inputs): use 'forward' or 'unroll'")
    if int(inner_iters) < 1:
        raise ValueError(f"{solver}: inner_iters must be >= 1, got {inner_iters}")
    if method == "sinkhorn" and epsilon is None:
        raise ValueError(f"{solver}: method='sinkhorn' needs epsilon (> 0, in cost units, POT's reg)")
    if method == "ipot" and epsilon is not None:
        raise ValueError(f"{solver}: epsilon is for method='sinkhorn'; IPOT's step is beta")
    if method == "sinkhorn" and beta is not None:
        raise ValueError(f"{solver}: beta is for method='ipot'; Sinkhorn's regularisation is epsilon")

    geom = as_geometry(geom)
    m, n = geom.shape
    dtype = geom.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{solver}: costs/points must be floating point, got {dtype}")
    measures = jnp.asarray(measures)
    if measures.ndim < 2:
        raise ValueError(f"{solver}: measures must have shape [K, n] (or [..., K, n]), got {tuple(measures.shape)}")
    n_k = measures.shape[-2]
    if n_k == 0 or measures.shape[-1] == 0 or m == 0 or n == 0 or measures.size == 0:
        raise ValueError(f"{solver}: empty problem, measures have shape {tuple(measures.shape)} and the "
                         f"geometry ({m}, {n})")
    if measures.shape[-1] != n:
        raise ValueError(f"{solver}: measures have {measures.shape[-1]} bins (shape {tuple(measures.shape)}) but "
                         f"the geometry has {n} columns; expected measures of shape [K, {n}]")
    measures = measures.astype(dtype)
    if weights is None:
        weights = jnp.asarray(np.full((n_k,), 1.0 / n_k, dtype))
    else:
        weights = jnp.asarray(weights)
        if weights.shape != (n_k,):
            raise ValueError(f"{solver}: weights have shape {tuple(weights.shape)} but there are {n_k} measures; "
                             f"expected weights of shape ({n_k},)")
        weights = weights.astype(dtype)
    invalid = _check_inputs(measures, weights, dtype, solver)
    bad_cost = ~geom.all_finite()
    if concrete_true(bad_cost):
        what = "costs" if isinstance(geom, Geometry) else "points"
        raise ValueError(f"{solver}: the {what} contain NaN or inf")
    invalid = invalid | bad_cost
    if method == "ipot":
        max_cost = jax.lax.stop_gradient(geom.max_cost())
        if beta is None:
            temp = DEFAULT_RELATIVE_BETA * max_cost
        else:
            invalid = invalid | check_positive(beta, "beta", solver)
            temp = beta
    else:
        invalid = invalid | check_positive(epsilon, "epsilon", solver)
        temp = epsilon
    temp = jnp.asarray(temp, dtype)
    if tol is None:
        tol = 1e-3 if jnp.finfo(dtype).bits <= 32 else 1e-4
    options = dict(method=method, mode=mode, inner_iters=int(inner_iters), max_iters=int(max_iters),
                   check_every=int(check_every), differentiable=grad_mode == "unroll", dtype=jnp.dtype(dtype),
                   keep_best=bool(keep_best))

    batch = measures.shape[:-2]
    # In implicit mode the loop runs on constants; the derivative is attached to its fixed point.
    attach = grad_mode == "implicit"
    loop_in = jax.lax.stop_gradient((geom, measures, weights, temp)) if attach else (geom, measures, weights, temp)

    def one(p, bad, p_diff):
        out = _solve(loop_in[0], p, loop_in[2], loop_in[3], bad, tol, **options)
        if attach:
            q, f, g = _implicit_barycenter(geom, p_diff, weights, temp, out[1], implicit)
            out = (q, f, g, jnp.asarray(temp, out[3].dtype)) + tuple(out[4:])
        return out

    if batch:
        flat = lambda x: x.reshape((-1, n_k, n))
        out = jax.vmap(one)(flat(loop_in[1]), invalid.reshape(-1), flat(measures))
        out = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)
    else:
        out = one(loop_in[1], invalid, measures)
    q, f, g, eps, loop_n, errors, last, stalled, invalid = out
    converged, status = _health(q, last, tol, stalled, invalid)
    weights_out = jnp.broadcast_to(weights, batch + (n_k,))
    result = BarycenterResult(geom=geom, measures=measures, weights=weights_out, barycenter=q, f=f, g=g,
                              plan_epsilon=eps, converged=converged, n_iters=loop_n, errors=errors, status=status)
    if throw:
        parameter = "beta" if method == "ipot" else "epsilon"
        checked = raise_on_status(_Probe(cost=(result.barycenter, result.f, result.g), status=status), solver,
                                  parameter).cost
        result = dataclasses.replace(result, barycenter=checked[0], f=checked[1], g=checked[2])
    return result


@jax.jit
def _health(q, last, tol, stalled, invalid):
    """``(converged, status)`` of barycenters ``q: [..., n]`` from the loop's last error ``[...]``."""
    finite = jnp.all(jnp.isfinite(q), axis=-1) & ~jnp.isnan(last)
    converged = (last <= tol) & finite & ~invalid
    status = jnp.where(invalid, Status.INVALID_INPUT,
                       jnp.where(~finite, Status.NON_FINITE,
                                 jnp.where(converged, Status.CONVERGED,
                                           jnp.where(stalled, Status.STALLED, Status.MAX_ITERS)))).astype(jnp.int32)
    return converged, status


def _sweep(geom, p, lam, eps, f):
    """One log-domain Sinkhorn-barycenter sweep from row potentials ``f: [K, m]``.

    Returns ``(f_new [K, m], g [K, n], log_q [m])``: ``g`` makes the columns exact
    (``p_k``), ``q`` is the weighted geometric mean of the row marginals, and
    ``f_new`` makes the rows exact (``q``).
    """
    log_p = _entropic.safe_log(p)
    active = lam > 0
    lse = lambda h, axis: jax.vmap(lambda hk: geom.lse(hk, eps, axis))(h)
    g = jnp.where(p > 0, eps * (log_p - lse(f, axis=0)), -jnp.inf)
    log_s = lse(g, axis=1)
    log_r = jnp.where(active[:, None], f / eps + log_s, 0.0)
    log_q = jnp.sum(jnp.where(active[:, None], lam[:, None] * log_r, 0.0), axis=0)
    return eps * (log_q[None, :] - log_s), g, log_q


def _normalise(f, lam):
    """Pick the representative of ``f: [K, m]`` the sweep's fixed point is unique as.

    The sweep leaves ``h = sum_k lambda_k f_k`` unchanged (``f_k <- f_k + eps (log q - log r_k)``
    and ``log q = sum_k lambda_k log r_k``), and the barycenter's optimality condition is that
    ``h`` is constant over the support; so its fixed points form a family, which
    ``f_k - (h - mean(h))`` (measures with ``lambda_k > 0``) collapses onto the optimal one.
    Then each ``f_k`` is centred: ``f_k + c_k`` (with ``g_k - c_k``) leaves every plan unchanged.
    """
    active = (lam > 0)[:, None]
    h = jnp.sum(jnp.where(active, lam[:, None] * f, 0.0), axis=0)
    f = jnp.where(active, f - (h - jnp.mean(h))[None, :], f)
    return f - jnp.mean(f, axis=-1, keepdims=True)


def _implicit_barycenter(geom, p, lam, eps, f, options):
    """``(q [m], f [K, m], g [K, n])`` from converged row potentials ``f``, differentiable in
    ``(geom, p, lam, eps)`` as the fixed point of :func:`_sweep` (normalised by :func:`_normalise`)."""
    step = lambda x, theta: _normalise(_sweep(*theta, x)[0], theta[2])
    f_star = implicit_fixed_point(step, (geom, p, lam, eps), _normalise(f, lam), options)
    f, g, log_q = _sweep(geom, p, lam, eps, f_star)
    return jnp.exp(log_q), f, g


def _barycenter_lower_bound(geom, p, lam, f, temp):
    """Certified lower bound on ``min_q sum_k lambda_k W(q, p_k)`` from row potentials ``f: [K, m]``.

    The barycenter LP's dual is ``max sum_k lambda_k <p_k, g_k>`` over
    ``f_k + g_k <= C`` and ``sum_k lambda_k f_k >= 0``. Centring ``f~_k = f_k - sum_l lambda_l f_l``
    makes the second constraint hold with equality, and any ``g_k <= min_i (C_ij - f~_ki)``
    is feasible; the soft-min ``-temp LSE_i((f~_ki - C_ij) / temp)`` is such a ``g_k`` (it is
    below the min by at most ``temp log m``) and costs one ``geom.lse``, which every geometry has.
    (IPOT keeps ``sum_k lambda_k f_k`` constant, so the centring only shifts it.)
    """
    active = (lam > 0)[:, None]
    f = jnp.where(active & jnp.isfinite(f), f, 0.0)
    centre = jnp.sum(jnp.where(active, lam[:, None] * f, 0.0), axis=0)
    g = -temp * jax.vmap(lambda fk: geom.lse(fk - centre, temp, axis=0))(f)  # [K, n]
    lin = jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, g, 0.0), 0.0), axis=-1)
    return jnp.sum(jnp.where(lam > 0, lam * lin, 0.0))


@functools.partial(jax.jit, static_argnames=("method", "mode", "inner_iters", "max_iters", "check_every",
                                             "differentiable", "dtype", "keep_best"))
def _solve(geom, p, lam, temp, invalid, tol, *, method, mode, inner_iters, max_iters, check_every,
           differentiable, dtype, keep_best):
    """One problem: ``p: [K, n]``, ``lam: [K]``; returns arrays (see :func:`barycenter`).

    Jitted (settings static, ``tol`` dynamic), so repeated eager calls reuse the compiled loop;
    inside an outer ``jit``/``vmap``/``grad`` it is simply inlined.
    """
    m, _ = geom.shape
    n_k = p.shape[0]
    log_p = _entropic.safe_log(p)
    mass = jnp.sum(p, axis=-1).mean()
    active = lam > 0

    def lse(h, eps, axis):  # h: [K, len] -> [K, m] (axis=1) or [K, n] (axis=0)
        return jax.vmap(lambda hk: geom.lse(hk, eps, axis))(h)

    def geomean(log_r):  # [K, m] -> [m]: sum_k lambda_k log r_k, skipping lambda_k = 0
        return jnp.sum(jnp.where(active[:, None], lam[:, None] * jnp.where(active[:, None], log_r, 0.0), 0.0),
                       axis=0)

    def disagreement(log_r, log_q):  # max_k ||r_k - q||_1 / mass over lambda_k > 0
        diff = jnp.sum(jnp.abs(jnp.exp(log_r) - jnp.exp(log_q)[None, :]), axis=-1)
        err = jnp.max(jnp.where(active, diff, 0.0)) / mass
        return jnp.where(jnp.isnan(err), jnp.nan, err)

    def nan_guard(err, *xs):
        bad = jnp.any(jnp.array([jnp.any(jnp.isnan(x) | (x == jnp.inf)) for x in xs]))
        return jnp.where(bad, jnp.nan, err)

    log_q0 = jnp.full((m,), jnp.log(mass / m), dtype)

    if method == "ipot":
        beta = temp
        max_cost = jax.lax.stop_gradient(geom.max_cost())
        # Relative gaps are measured against max(|lower bound|, floor) so that W = 0 stays well posed.
        floor = jnp.finfo(dtype).eps * jnp.maximum(max_cost, jnp.finfo(dtype).tiny) * mass
        # Past this plan temperature beta / t the dtype cannot resolve the plans' exponents
        # (float32: ~4e-5 x max C, as in ipot); in float64 it is never reached in practice.
        precision_floor = 100.0 * jnp.finfo(dtype).eps * max_cost
        # Temperature of the soft c-transform in the lower bound: it is loose by <= lb_temp log m.
        lb_temp = 10.0 * jnp.finfo(dtype).eps * max_cost

        def gap(f, g, eps):  # relative gap between sum_k lambda_k <C, Gamma_k> and a certified lower bound
            f, g, eps = jax.lax.stop_gradient((f, g, eps))
            costs = jax.vmap(lambda fk, gk: geom.transport_cost(fk, gk, eps))(f, g)
            primal = jnp.sum(jnp.where(active, lam * costs, 0.0))
            lower = _barycenter_lower_bound(geom, p, lam, f, lb_temp)
            return jnp.abs(primal - lower) / jnp.maximum(jnp.abs(lower), floor)

        def sweep(_, carry, big_f, big_g, t1, eps):
            log_a = carry[0]
            log_b = log_p - big_g / beta - lse((big_f + beta * log_a) / t1, eps, axis=0)
            log_b = jnp.where(p > 0, log_b, -jnp.inf)
            log_s = big_f / beta + lse((big_g + beta * log_b) / t1, eps, axis=1)  # log H_k b_k
            log_r = log_a + log_s
            log_q = geomean(log_r)
            return log_q[None, :] - log_s, log_b, log_r, log_q

        def step(state, it, check):
            big_f, big_g, log_a, t, best, prev_err = state
            t1 = t + 1.0
            eps = beta / t1  # temperature of H_k = exp(-C / beta) * Gamma_k(t)
            init = (log_a, jnp.zeros_like(big_g), jnp.zeros_like(big_f), log_q0)
            log_a, log_b, log_r, log_q = jax.lax.fori_loop(
                0, inner_iters, lambda i, c: sweep(i, c, big_f, big_g, t1, eps), init)
            # Gamma_k(t + 1) = diag(a_k) H_k diag(b_k): fold the scalings into the potentials,
            # recentred (F + c, G - c leaves the plan unchanged) so float32 keeps its digits.
            big_f = big_f + beta * log_a
            big_g = big_g + beta * log_b
            q = jnp.exp(log_q)
            shift = jnp.sum(jnp.where(q > 0, q * jnp.where(q > 0, big_f, 0.0), 0.0), axis=-1) / jnp.sum(q)
            big_f, big_g = big_f - shift[:, None], big_g + shift[:, None]
            err = jnp.zeros((), dtype)
            if check:
                f, g = big_f / t1, big_g / t1
                raw = nan_guard(jnp.maximum(disagreement(log_r, log_q), gap(f, g, eps)), big_f, big_g)
                # The plans' columns are inexact, so their cost can cross the lower bound and the
                # gap dip to ~0 by luck: report the larger of this check and the previous one.
                err = jnp.where(jnp.isnan(raw), raw, jnp.maximum(raw, prev_err))
                prev_err = raw
                # Keep the checked iterate with the smallest error: in float32 late iterates drift.
                better = (err < best[4]) | (not keep_best)
                pick = lambda new, old: jnp.where(better, new, old)
                best = (pick(f, best[0]), pick(g, best[1]), pick(log_q, best[2]), pick(t1, best[3]),
                        pick(err, best[4]))
            return (big_f, big_g, log_a, t1, best, prev_err), err

        def is_stalled(state):
            return beta / state[3] < precision_floor

        # Gamma_k = 1 1^T and a_k = 1: the sweep keeps sum_k lambda_k log a_k fixed, and the exact
        # barycenter needs it constant over the support (its dual condition sum_k lambda_k f_k = 0).
        # The thesis' a_k = q / (H_k b_k) at the start of each step breaks this invariant and
        # converges to a wrong point when H_k b_k varies over the support (tests/solvers/test_barycenter.py).
        zeros_f, zeros_g = jnp.zeros((n_k, m), dtype), jnp.zeros((n_k, p.shape[1]), dtype)
        one = jnp.ones((), dtype)
        best0 = (zeros_f, zeros_g, log_q0, one, jnp.asarray(jnp.inf, dtype))
        state0 = (zeros_f, zeros_g, zeros_f, jnp.zeros((), dtype), best0, jnp.zeros((), dtype))
        loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                                differentiable=differentiable, dtype=dtype, stalled=is_stalled)
        f, g, log_q, t_best, best_err = loop.state[4]
        stalled = is_stalled(loop.state)
        eps = beta / t_best
        loop = loop._replace(last_error=best_err)
    elif mode == "log":
        eps = temp

        def step(state, it, check):
            f, _, _ = state
            g = eps * (log_p - lse(f, eps, axis=0))  # columns exact
            g = jnp.where(p > 0, g, -jnp.inf)
            log_s = lse(g, eps, axis=1)  # log K b_k in units of the potentials
            log_r = f / eps + log_s
            log_q = geomean(log_r)
            f = eps * (log_q[None, :] - log_s)  # rows exact (= q)
            err = jnp.zeros((), dtype)
            if check:
                err = nan_guard(disagreement(log_r, log_q), f, g)
            return (f, g, log_q), err

        state0 = (jnp.zeros((n_k, m), dtype), jnp.zeros((n_k, p.shape[1]), dtype), log_q0)
        loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                                differentiable=differentiable, dtype=dtype)
        f, g, log_q = loop.state
    else:
        eps = temp
        if isinstance(geom, Geometry):  # one dense kernel, batched matrix products over the K measures
            kernel = jnp.exp(-geom.cost / eps)
            k_rows, k_cols = (lambda v: v @ kernel.T), (lambda u: u @ kernel)
        else:
            k_rows = jax.vmap(lambda v: geom.kernel_apply(v, eps, axis=1))
            k_cols = jax.vmap(lambda u: geom.kernel_apply(u, eps, axis=0))

        def step(state, it, check):
            a, _, _ = state
            b = p / k_cols(a)  # [K, n]
            s = k_rows(b)  # [K, m]
            r = a * s
            log_r = _entropic.safe_log(r)
            log_q = geomean(log_r)
            a = jnp.exp(log_q)[None, :] / s
            err = jnp.zeros((), dtype)
            if check:
                err = nan_guard(disagreement(log_r, log_q), a, b)
            return (a, b, log_q), err

        state0 = (jnp.ones((n_k, m), dtype), jnp.ones((n_k, p.shape[1]), dtype), log_q0)
        loop = fixed_point_loop(step, state0, max_iters=max_iters, check_every=check_every, tol=tol,
                                differentiable=differentiable, dtype=dtype)
        a, b, log_q = loop.state
        f, g = eps * _entropic.safe_log(a), eps * _entropic.safe_log(b)
    if method == "sinkhorn":
        stalled = jnp.asarray(False)
    q = jnp.exp(log_q)
    return q, f, g, jnp.asarray(eps, dtype), loop.n_iters, loop.errors, loop.last_error, stalled, invalid
