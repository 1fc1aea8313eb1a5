"""Sinkhorn divergence: entropic OT debiased by its self-transport terms (Genevay et al. 2018; Feydy et al. 2019)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ot_jax._checks import check_positive
from ot_jax.geometry import AbstractGeometry, PointCloud, as_geometry
from ot_jax.solvers import _entropic
from ot_jax.solvers.loop import fixed_point_loop
from ot_jax.solvers.problem import prepare
from ot_jax.solvers.results import EntropicResult, Status, raise_on_status, result_repr
from ot_jax.solvers.sinkhorn import sinkhorn

__all__ = ["sinkhorn_divergence", "DivergenceResult"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DivergenceResult:
    """Output of :func:`sinkhorn_divergence`.

    Attributes:
      divergence: scalar ``S_eps(a, b) = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2``
        (each ``OT_eps`` the ``reg_cost`` of its solve); ``>= 0``, and 0 iff ``a = b`` on
        the same support (for a positive definite kernel such as the squared Euclidean cost).
      xy: the :class:`~ot_jax.EntropicResult` of ``a`` to ``b``; xx: of ``a`` to itself;
        yy: of ``b`` to itself (symmetric: ``f == g``).
      converged: scalar bool, all three converged.
      status: scalar int, the first bad :class:`~ot_jax.Status` among ``xy, xx, yy`` (else CONVERGED).
    """

    divergence: jax.Array
    xy: EntropicResult
    xx: EntropicResult
    yy: EntropicResult
    converged: jax.Array
    status: jax.Array

    @property
    def cost(self) -> jax.Array:
        """Same as ``divergence`` (the value every result calls ``cost``)."""
        return self.divergence

    def __repr__(self) -> str:
        return result_repr(self, ("divergence", "status"))


def _self_geometries(geom):
    """``(geom_xx, geom_yy)`` of a point cloud or of a triple of costs/geometries."""
    if isinstance(geom, PointCloud):
        return dataclasses.replace(geom, y=geom.x), dataclasses.replace(geom, x=geom.y)
    if isinstance(geom, (tuple, list)) and len(geom) == 3:
        return as_geometry(geom[1]), as_geometry(geom[2])
    raise TypeError("sinkhorn_divergence: geom must be a PointCloud(x, y) or a triple (C_xy, C_xx, C_yy) of "
                    f"[n, m], [n, n], [m, m] cost matrices or geometries, got {type(geom).__name__}")


def sinkhorn_divergence(
    geom,
    a=None,
    b=None,
    *,
    epsilon,
    tol: float = 1e-4,
    max_iters: int = 5000,
    check_every: int = 10,
    grad_mode: str = "implicit",
    init=None,
    anderson: int | None = None,
    throw: bool = False,
) -> DivergenceResult:
    """Debiased entropic OT ``S_eps(a, b) = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2``.

    ``OT_eps`` is the regularised objective ``<C, P> + eps KL(P | a b^T)`` at its optimum
    (:func:`ot_jax.sinkhorn`'s ``reg_cost``). The debiased value is nonnegative, vanishes
    iff the measures are equal, and interpolates between OT (``eps -> 0``) and an MMD
    (``eps -> inf``): the loss of GeomLoss and of OTT-JAX's ``sinkhorn_divergence``.
    The cross term is a Sinkhorn solve; each self term is solved by the symmetric
    update ``f <- (f + eps log a - eps LSE_j((f_j - C_ij) / eps)) / 2`` (Feydy et al.
    2019, eq. 25), whose averaging converges in a few iterations.

    Args:
      geom: a :class:`~ot_jax.PointCloud` ``(x [n, d], y [m, d])`` (the self terms use
        ``(x, x)`` and ``(y, y)`` with the same cost and blocks: lazy throughout), or a
        triple ``(C_xy [n, m], C_xx [n, n], C_yy [m, m])`` of cost matrices or geometries.
      a: ``[n]`` weights (uniform if None); b: ``[m]`` weights, of the same mass.
      epsilon: regularisation, > 0, shared by the three terms.
      tol, max_iters, check_every, grad_mode: as :func:`ot_jax.sinkhorn` (``"implicit"``
        by default: every output differentiable; ``"envelope"`` is exact for
        ``divergence`` and the cheapest for training; ``"unroll"``).
      init, anderson: start and acceleration of the cross term ``OT_eps(a, b)``, as
        :func:`ot_jax.sinkhorn` (the self terms' averaged update needs neither).
      throw: raise when a term did not converge or on bad input.

    Returns:
      :class:`DivergenceResult`.

    Examples:
        >>> import jax, ot_jax
        >>> x = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
        >>> same = ot_jax.sinkhorn_divergence(ot_jax.PointCloud(x, x), epsilon=0.1)
        >>> abs(float(same.divergence)) < 1e-6
        True
    """
    solver = "sinkhorn_divergence"
    _entropic.check_grad_mode(grad_mode, solver, ("implicit", "envelope", "unroll"))
    geom_xx, geom_yy = _self_geometries(geom)
    geom_xy = geom if isinstance(geom, PointCloud) else as_geometry(geom[0])
    n, m = geom_xy.shape
    if geom_xx.shape != (n, n) or geom_yy.shape != (m, m):
        raise ValueError(f"{solver}: the self costs must be [n, n] = [{n}, {n}] and [m, m] = [{m}, {m}], got "
                         f"{list(geom_xx.shape)} and {list(geom_yy.shape)}")
    options = dict(epsilon=epsilon, tol=tol, max_iters=max_iters, check_every=check_every, grad_mode=grad_mode)
    xy = sinkhorn(geom_xy, a, b, init=init, anderson=anderson, **options)
    xx = _symmetric_sinkhorn(geom_xx, xy.a, **options)
    yy = _symmetric_sinkhorn(geom_yy, xy.b, **options)
    divergence = xy.reg_cost - 0.5 * (xx.reg_cost + yy.reg_cost)
    status = xy.status
    for term in (xx, yy):
        status = jnp.where(status == Status.CONVERGED, term.status, status)
    result = DivergenceResult(divergence=divergence, xy=xy, xx=xx, yy=yy,
                              converged=status == Status.CONVERGED, status=status.astype(jnp.int32))
    return raise_on_status(result, solver, "epsilon", field="divergence") if throw else result


def _symmetric_sinkhorn(geom: AbstractGeometry, a, *, epsilon, tol, max_iters, check_every, grad_mode):
    """``OT_eps(a, a)`` on a symmetric geometry ``[n, n]``, with the averaged symmetric update."""
    solver = "sinkhorn_divergence"
    geom, a, _, invalid = prepare(geom, a, a, solver)
    invalid = invalid | check_positive(epsilon, "epsilon", solver)
    eps = jnp.asarray(epsilon, geom.dtype)
    return _solve_symmetric(geom, a, eps, invalid, tol, grad_mode=grad_mode, max_iters=int(max_iters),
                            check_every=int(check_every))


@functools.partial(jax.jit, static_argnames=("grad_mode", "max_iters", "check_every"))
def _solve_symmetric(geom, a, eps, invalid, tol, *, grad_mode, max_iters, check_every):
    dtype = geom.dtype
    if grad_mode == "unroll":
        a_s, geom_s, eps_s = a, geom, eps
    else:
        a_s, geom_s, eps_s = jax.lax.stop_gradient((a, geom, eps))
    log_a = _entropic.log_or_zero(a_s)

    def step(f, it, check):
        lse = geom_s.lse(f, eps_s, axis=1)
        f_new = jnp.where(a_s > 0, 0.5 * (f + eps_s * (log_a - lse)), -jnp.inf)
        err = jnp.zeros((), dtype)
        if check:  # rows (= columns) of the plan (f, f) against a
            rows = jnp.where(a_s > 0, jnp.exp(jnp.where(a_s > 0, f / eps_s + lse, 0.0)), 0.0)
            err = jnp.sum(jnp.abs(rows - a_s)) / jnp.sum(a_s)
            err = jnp.where(jnp.any(jnp.isnan(f_new)), jnp.nan, err)
        return f_new, err

    f0 = jnp.where(a_s > 0, 0.0, -jnp.inf).astype(dtype)
    loop = fixed_point_loop(step, f0, max_iters=max_iters, check_every=check_every, tol=tol,
                            differentiable=grad_mode == "unroll", dtype=dtype)
    f = loop.state
    return _entropic.entropic_result(geom, a, a, f, f, eps, loop, invalid, grad_mode=grad_mode, regularised=True,
                                     tol=tol)
