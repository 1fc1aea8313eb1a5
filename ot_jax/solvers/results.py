"""Result pytrees and status codes shared by every solver.

Results are frozen dataclasses registered as pytrees: every field is an array
(or a geometry pytree), so results pass out of ``jit`` and ``vmap`` unchanged.
Health travels with the result (``status``, ``converged``, ``n_iters``, and
``errors`` for the iterative solvers); ``throw=True`` on a solver turns a bad
status into an exception through :func:`raise_on_status`, whose messages name
the solver's own parameters. ``repr`` of a result is one short line: the class,
shapes, cost, status and iterations, never the arrays themselves
(:func:`result_repr`).
"""

from __future__ import annotations

import dataclasses
import enum

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.geometry import AbstractGeometry

__all__ = ["Status", "ExactResult", "EntropicResult", "raise_on_status", "status_message", "result_repr"]


class Status(enum.IntEnum):
    """Status codes of every solve (``result.status``; ``result.converged`` is ``status == CONVERGED``).

    ``str(Status.MAX_ITERS)`` is ``"MAX_ITERS"``; :func:`status_message` gives the
    sentence a given solver raises with (``throw=True``).
    """

    CONVERGED = 0
    """The stopping rule was met."""
    MAX_ITERS = 1
    """The iteration (or step) cap was reached before the tolerance."""
    NON_FINITE = 2
    """A NaN/inf appeared in the iterates or the solution (e.g. scaling-domain underflow)."""
    INVALID_INPUT = 3
    """Inputs failed validation inside a trace (negative or non-finite weights,
    unequal mass, non-finite costs, a regularisation parameter <= 0)."""
    STALLED = 4
    """The precision limit of the dtype was reached before ``tol`` (IPOT and its
    barycenter); the best iterate seen is returned."""

    def __str__(self) -> str:
        return self.name


def status_message(status: Status, solver: str, parameter: str | None = None) -> str:
    """The error message of ``solver`` for a bad ``status``, naming the solver's own ``parameter``.

    Args:
      status: a :class:`Status` other than ``CONVERGED``.
      solver: the function's name, e.g. ``"sinkhorn"`` (the message starts ``ot_jax.sinkhorn:``).
      parameter: the solver's regularisation or accuracy parameter (``"epsilon"``
        for Sinkhorn, ``"beta"`` for IPOT, ``"eps_final"`` for the auction), or None.

    >>> status_message(Status.MAX_ITERS, "ipot", "beta")
    'ot_jax.ipot: MAX_ITERS: did not converge within max_iters (raise max_iters, loosen tol, or change beta)'
    """
    status = Status(int(status))
    change = f", or change {parameter}" if parameter else ""
    text = {
        Status.CONVERGED: "converged",
        Status.MAX_ITERS: f"did not converge within max_iters (raise max_iters, loosen tol{change})",
        Status.NON_FINITE: "a NaN or inf appeared in the iterates (check the inputs)",
        Status.STALLED: "reached the precision limit of the dtype before tol (use float64"
        + (f", a larger {parameter}" if parameter else "") + ", or a looser tol); the best iterate is returned",
        Status.INVALID_INPUT: "invalid input: weights must be finite, >= 0 and of equal total mass, costs finite"
        + (f", and {parameter} > 0" if parameter else ""),
    }[status]
    return f"ot_jax.{solver}: {status.name}: {text}"


def raise_on_status(result, solver: str, parameter: str | None = None, *, messages: dict | None = None,
                    field: str = "cost"):
    """Attach runtime checks to ``result`` that raise on a bad status (works inside ``jit``).

    Uses :func:`equinox.error_if` on ``result.<field>``; the returned result must
    be used, or the check is dead code and vanishes. Works on frozen dataclasses
    and NamedTuples.

    Args:
      result: a result with ``status`` and ``field`` attributes.
      solver: the function's name, for the message.
      parameter: the solver's own parameter named in the messages (:func:`status_message`).
      messages: ``{Status: message}`` overrides for this solver.
      field: the attribute the checks are attached to.
    """
    status = result.status
    value = getattr(result, field)
    for code in (Status.MAX_ITERS, Status.NON_FINITE, Status.STALLED, Status.INVALID_INPUT):
        message = (messages or {}).get(code) or status_message(code, solver, parameter)
        value = eqx.error_if(value, status == code, message)
    if hasattr(result, "_replace"):
        return result._replace(**{field: value})
    return dataclasses.replace(result, **{field: value})


def _describe(value) -> str:
    """Short text for one field: a number for concrete scalars, else ``shape dtype``."""
    if isinstance(value, AbstractGeometry):
        return f"{type(value).__name__}{tuple(value.shape)}"
    shape = tuple(getattr(value, "shape", ()))
    if shape == () and is_concrete(value):
        v = np.asarray(value)
        return str(v.item()) if v.dtype == bool or np.issubdtype(v.dtype, np.integer) else f"{float(v):.6g}"
    dtype = getattr(value, "dtype", None)
    return f"{list(shape)} {dtype}" if dtype is not None else type(value).__name__


def _describe_status(status) -> str:
    if not is_concrete(status):
        return f"{list(getattr(status, 'shape', ()))} (traced)"
    codes = np.asarray(status).ravel()
    if codes.size == 1:
        return Status(int(codes[0])).name
    names, counts = np.unique(codes, return_counts=True)
    return "{" + ", ".join(f"{Status(int(c)).name}: {k}" for c, k in zip(names, counts)) + "}"


def result_repr(obj, fields: tuple[str, ...]) -> str:
    """``Name(field=..., ..., status=NAME, n_iters=...)``: shapes and scalars only, never arrays.

    Scalars print as numbers when concrete; arrays and geometries as their shapes;
    ``status`` by its :class:`Status` name (a count per name when batched).
    """
    parts = []
    for name in fields:
        value = getattr(obj, name)
        parts.append(f"{name}={_describe_status(value) if name == 'status' else _describe(value)}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExactResult:
    """Solution of the exact OT linear program (:func:`ot_jax.emd`).

    Attributes:
      plan: ``[n, m]`` optimal plan (a vertex of the transport polytope).
      f: ``[n]`` dual potential of the row constraints (defined up to a constant).
      g: ``[m]`` dual potential of the column constraints.
      cost: scalar ``<C, plan>``; differentiable (``d/dC = plan``, ``d/da = f``,
        ``d/db = g``: the envelope theorem).
      converged: scalar bool, ``status == Status.CONVERGED``.
      n_iters: scalar int, simplex iterations reported by the LP solver.
      status: scalar int, a :class:`Status`.
    """

    plan: jax.Array
    f: jax.Array
    g: jax.Array
    cost: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    status: jax.Array

    @property
    def lower_bound(self) -> jax.Array:
        """The LP value is exact: its own lower bound."""
        return self.cost

    def __repr__(self) -> str:
        return result_repr(self, ("plan", "cost", "status", "n_iters"))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EntropicResult:
    """Output of a potential-based solver (:func:`ot_jax.sinkhorn`, :func:`ot_jax.ipot`).

    The plan is kept implicitly as ``P_ij = exp((f_i + g_j - C_ij) / plan_epsilon)``
    and materialised only on request (``.plan``) or applied lazily
    (``.apply(vec, axis)``), so a :class:`~ot_jax.PointCloud` result never stores n x m.

    Attributes:
      geom: the geometry the problem was solved on.
      a: ``[n]`` source weights; b: ``[m]`` target weights.
      f: ``[n]``, g: ``[m]`` potentials of the plan.
      plan_epsilon: scalar temperature of the plan (``epsilon`` for Sinkhorn;
        ``beta / t`` after ``t`` IPOT steps).
      cost: scalar transport cost ``<C, P>``. Differentiable by the envelope
        theorem by default (``d/dC = P``), or by unrolling.
      reg_cost: scalar regularised objective ``<C, P> + eps KL(P | a b^T)``
        (Sinkhorn; for IPOT equal to ``cost``).
      lower_bound: scalar certified lower bound on the exact OT value, the dual
        objective of the c-transformed potentials (``<a, g^c> + <b, g>``).
      converged: scalar bool, ``status == Status.CONVERGED``; n_iters: scalar int.
      errors: ``[max_iters // check_every]`` stopping-rule values, one per check,
        ``-1`` after the loop stopped.
      status: scalar int, a :class:`Status`.
    """

    geom: AbstractGeometry
    a: jax.Array
    b: jax.Array
    f: jax.Array
    g: jax.Array
    plan_epsilon: jax.Array
    cost: jax.Array
    reg_cost: jax.Array
    lower_bound: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("geom", "cost", "lower_bound", "plan_epsilon", "status", "n_iters"))

    @property
    def plan(self) -> jax.Array:
        """``[n, m]`` materialised plan."""
        return self.geom.plan(self.f, self.g, self.plan_epsilon)

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m]``) or ``P^T vec`` (axis=0, ``vec: [n]``), never storing P."""
        return self.geom.apply_plan(self.f, self.g, self.plan_epsilon, vec, axis)

    @property
    def marginals(self) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[n]`` and column sums ``[m]`` of the plan."""
        return self.geom.marginals(self.f, self.g, self.plan_epsilon)

    @property
    def marginal_error(self) -> jax.Array:
        """``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
        rows, cols = self.marginals
        return jnp.sum(jnp.abs(rows - self.a)) + jnp.sum(jnp.abs(cols - self.b))
