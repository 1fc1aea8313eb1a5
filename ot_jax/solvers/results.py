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
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.geometry import AbstractGeometry

__all__ = ["Status", "SolverError", "ExactResult", "EntropicResult", "raise_on_status", "check_status",
           "status_message", "result_repr"]


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

    Examples:
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


class SolverError(RuntimeError):
    """A solve ended with a bad status and ``throw=True``; the message names the solver and the remedy."""


def raise_on_status(result, solver: str, parameter: str | None = None, *, messages: dict | None = None,
                    field: str = "cost"):
    """Raise on a bad status: at once for a concrete result, at run time inside ``jit``.

    Concrete (eager) calls raise :class:`SolverError`, whose message is the solver's
    own sentence. Inside ``jit`` the status is only known when the compiled program
    runs: the check is attached to ``result.<field>`` with :func:`equinox.error_if`
    and the solver's sentence arrives inside JAX's runtime error (call the solver
    outside ``jit``, or pass the jitted result to :func:`check_status`, for a plain
    :class:`SolverError`). The returned result must be used, or the check is dead
    code and vanishes. Works on frozen dataclasses and NamedTuples.

    Args:
      result: a result with ``status`` and ``field`` attributes.
      solver: the function's name, for the message.
      parameter: the solver's own parameter named in the messages (:func:`status_message`).
      messages: ``{Status: message}`` overrides for this solver.
      field: the attribute the checks are attached to.
    """
    status = result.status
    texts = {code: (messages or {}).get(code) or status_message(code, solver, parameter)
             for code in (Status.MAX_ITERS, Status.NON_FINITE, Status.STALLED, Status.INVALID_INPUT)}
    if is_concrete(status):
        for code in np.unique(np.asarray(status)):
            if int(code) != Status.CONVERGED:
                raise SolverError(texts[Status(int(code))] + _certificate(result))
        return result
    value = getattr(result, field)
    for code, message in texts.items():
        value = eqx.error_if(value, status == code, message)
    if hasattr(result, "_replace"):
        return result._replace(**{field: value})
    return dataclasses.replace(result, **{field: value})


def check_status(result, solver: str = "solver") -> None:
    """Raise :class:`SolverError` if a concrete result (e.g. returned by a jitted call) did not converge.

    Args:
      result: any result with a ``status`` field (batched results: every problem is checked).
      solver: name used in the message.
    """
    codes = np.unique(np.asarray(result.status))
    for code in codes:
        if int(code) != Status.CONVERGED:
            raise SolverError(status_message(Status(int(code)), solver) + _certificate(result))


def _certificate(result) -> str:
    """`` (certified: lower <= W <= upper, gap ...)`` for a concrete unbatched result with both bounds, else ``""``."""
    lower, upper = getattr(result, "lower_bound", None), getattr(result, "upper_bound", None)
    if lower is None or upper is None or not (is_concrete(lower) and is_concrete(upper)) or np.ndim(lower) != 0:
        return ""
    lower, upper = float(lower), float(upper)
    return f" (certified: {lower:.6g} <= W <= {upper:.6g}, gap {upper - lower:.3g})"


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
      n_iters: scalar int, network simplex pivots.
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
        """``cost`` when converged (the LP value is exact: its own lower bound), else ``-inf``."""
        return jnp.where(self.converged, self.cost, -jnp.inf)

    def __repr__(self) -> str:
        return result_repr(self, ("plan", "cost", "status", "n_iters"))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Exact1DResult:
    """Solution of 1-D exact OT (:func:`ot_jax.emd_1d`): the monotone plan, stored sparse.

    The plan has at most ``n + m - 1`` nonzero entries, on a staircase through the
    sorted samples; entry ``k`` moves mass ``values[k]`` from ``x[rows[k]]`` to
    ``y[cols[k]]`` (``n + m`` entries, some of them zero).

    Attributes:
      rows: ``[n + m]`` int32 source indices (into the unsorted ``x``).
      cols: ``[n + m]`` int32 target indices (into the unsorted ``y``).
      values: ``[n + m]`` transported masses (``>= 0``; they sum to the mass).
      f: ``[n]`` dual potential of ``x``; g: ``[m]`` of ``y``: ``f_i + g_j <= |x_i - y_j|^p``
        on all pairs, with equality on the plan's support, centred so that
        ``a . f = b . g``.
      cost: scalar ``W_p^p = sum_k values[k] |x[rows[k]] - y[cols[k]]|^p``; differentiable
        in the points and the weights.
      converged: scalar bool (the solution is closed-form: True unless the input is invalid).
      status: scalar int, a :class:`Status` (``CONVERGED`` or ``INVALID_INPUT``).
    """

    rows: jax.Array
    cols: jax.Array
    values: jax.Array
    f: jax.Array
    g: jax.Array
    cost: jax.Array
    converged: jax.Array
    status: jax.Array

    @property
    def lower_bound(self) -> jax.Array:
        """``cost`` when converged (exact), else ``-inf``."""
        return jnp.where(self.converged, self.cost, -jnp.inf)

    def plan(self) -> jax.Array:
        """The dense ``[n, m]`` plan (``O(n m)`` memory; the sparse triplets are the plan itself)."""
        return jnp.zeros((self.f.shape[-1], self.g.shape[-1]), self.values.dtype).at[self.rows, self.cols].add(
            self.values)

    def __repr__(self) -> str:
        return result_repr(self, ("f", "g", "cost", "status"))


def _refuse_derivative(value: jax.Array, what: str, solver_hint: str) -> jax.Array:
    """``value`` unchanged; raises a ``ValueError`` at trace time if it is differentiated."""

    @jax.custom_jvp
    def guard(v):
        return v

    @guard.defjvp
    def _(primals, tangents):
        raise ValueError(f"{what} is not differentiable with grad_mode='envelope' (only reg_cost and cost "
                         f"are); {solver_hint}, or wrap it in jax.lax.stop_gradient")

    return guard(value)


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["geom", "a", "b", "f", "g", "plan_epsilon", "plan_correction", "cost", "reg_cost",
                                "lower_bound", "upper_bound", "converged", "n_iters", "errors", "status", "reg_m"],
                   meta_fields=["grad_mode"])
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
      cost: scalar transport cost ``<C, P>`` (IPOT: moved into ``[lower_bound,
        upper_bound]``). Differentiated as ``grad_mode`` says: Sinkhorn's default
        ``"implicit"`` and ``"unroll"`` give its exact derivative; IPOT's default
        ``"envelope"`` gives ``d/dC = P``, the gradient of the exact value at convergence.
      reg_cost: scalar regularised objective ``<C, P> + eps KL(P | a b^T)``
        (Sinkhorn; for IPOT equal to ``cost``).
      lower_bound: scalar certified lower bound on the exact OT value, the dual
        objective of the c-transformed potentials (``<a, g^c> + <b, g>``).
      upper_bound: scalar certified upper bound on the exact OT value, the cost of
        the feasible plan obtained by rounding the plan onto the marginals
        (Altschuler, Weed & Rigollet 2017; four lazy passes). ``lower_bound <= W <=
        upper_bound``; ``gap`` is their difference. Both bounds are certificates
        and carry no derivative (constants under ``jax.grad``).
      plan_correction: ``([n], [m])`` rank-one term of the plan, which is
        ``exp((f + g - C) / plan_epsilon) + outer(*plan_correction)``: zeros, except in
        the feasible plan of :meth:`rounded`.
      converged: scalar bool, ``status == Status.CONVERGED``; n_iters: scalar int.
      errors: ``[max_iters // check_every]`` stopping-rule values, one per check,
        ``-1`` after the loop stopped.
      status: scalar int, a :class:`Status`.
      reg_m: ``(rho_a, rho_b)`` marginal penalties of unbalanced transport
        (:func:`ot_jax.sinkhorn` with ``reg_m``), ``None`` for a hard marginal (always
        ``(None, None)`` for balanced problems). With a penalised side, ``reg_cost`` adds
        ``rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b)``, and ``lower_bound``/``upper_bound``
        bracket the unregularised unbalanced value ``min_P <C, P> + rho_a KL(P 1 | a) +
        rho_b KL(P^T 1 | b)`` instead of the exact OT value.
      grad_mode: (static) how the outputs are differentiated
        (:data:`ot_jax.solvers._entropic.GRAD_MODES`); with ``"envelope"`` the plan
        operations (``plan``, ``apply``, ``marginals``) raise when differentiated.
    """

    geom: AbstractGeometry
    a: jax.Array
    b: jax.Array
    f: jax.Array
    g: jax.Array
    plan_epsilon: jax.Array
    plan_correction: tuple[jax.Array, jax.Array]
    cost: jax.Array
    reg_cost: jax.Array
    lower_bound: jax.Array
    upper_bound: jax.Array
    converged: jax.Array
    n_iters: jax.Array
    errors: jax.Array
    status: jax.Array
    reg_m: tuple = (None, None)
    grad_mode: str = "implicit"

    def __repr__(self) -> str:
        return result_repr(self, ("geom", "cost", "lower_bound", "upper_bound", "plan_epsilon", "status",
                                  "n_iters"))

    @property
    def gap(self) -> jax.Array:
        """Scalar ``upper_bound - lower_bound >= 0``: the certified width around the exact OT value."""
        return self.upper_bound - self.lower_bound

    def rounded(self) -> "EntropicResult":
        """This result with its plan rounded onto the marginals ``a``, ``b`` (a feasible plan).

        Altschuler, Weed & Rigollet (2017): rows scaled down to at most ``a``, columns
        to at most ``b``, plus the rank-one term that restores both exactly; four lazy
        passes. ``plan``, ``apply`` and ``marginals`` of the returned result are those
        of the feasible plan (marginals exact to the dtype's rounding), ``cost`` is its
        cost (``= upper_bound``); the other fields are unchanged. Differentiable like
        the plan itself (``grad_mode`` ``"implicit"`` or ``"unroll"``).
        """
        self._unbatched("rounded()")
        if self.reg_m[0] is not None or self.reg_m[1] is not None:
            raise ValueError("EntropicResult.rounded(): an unbalanced plan (reg_m given) has no marginals to "
                             "round onto; its upper_bound is already the value of a feasible plan")
        from ot_jax.solvers._entropic import round_plan  # _entropic builds results: import at call time

        rounding = round_plan(self.geom, self.a, self.b, self.f, self.g, self.plan_epsilon)
        return dataclasses.replace(self, f=rounding.f, g=rounding.g, plan_correction=(rounding.rows, rounding.cols),
                                   cost=self._checked(rounding.upper, "rounded().cost"))

    def _unbatched(self, what: str) -> None:
        if jnp.ndim(self.f) != 1:
            raise ValueError(f"EntropicResult.{what}: this result holds a batch of problems (f has shape "
                             f"{tuple(jnp.shape(self.f))}); compute {what} inside jax.vmap, or pick one problem "
                             "first: jax.tree_util.tree_map(lambda v: v[i], result)")

    def _checked(self, value, what: str):
        if self.grad_mode != "envelope":
            return value
        hint = "use grad_mode='implicit' (Sinkhorn) or 'unroll'"
        return jax.tree_util.tree_map(lambda v: _refuse_derivative(v, what, hint), value)

    @property
    def plan(self) -> jax.Array:
        """``[n, m]`` materialised plan."""
        self._unbatched("plan")
        rows, cols = self.plan_correction
        plan = self.geom.plan(self.f, self.g, self.plan_epsilon) + rows[:, None] * cols[None, :]
        return self._checked(plan, "the plan")

    def apply(self, vec: jax.Array, axis: int = 1) -> jax.Array:
        """``P vec`` (axis=1, ``vec: [m]``) or ``P^T vec`` (axis=0, ``vec: [n]``), never storing P."""
        self._unbatched("apply")
        rows, cols = self.plan_correction if axis == 1 else self.plan_correction[::-1]
        out = self.geom.apply_plan(self.f, self.g, self.plan_epsilon, vec, axis)
        out = out + rows.reshape(rows.shape + (1,) * (jnp.ndim(vec) - 1)) * jnp.tensordot(cols, vec, axes=1)
        return self._checked(out, "apply(...)")

    @property
    def marginals(self) -> tuple[jax.Array, jax.Array]:
        """Row sums ``[n]`` and column sums ``[m]`` of the plan."""
        self._unbatched("marginals")
        rows, cols = self.plan_correction
        row_sums, col_sums = self.geom.marginals(self.f, self.g, self.plan_epsilon)
        return self._checked((row_sums + rows * jnp.sum(cols), col_sums + cols * jnp.sum(rows)), "the marginals")

    @property
    def marginal_error(self) -> jax.Array:
        """``||P 1 - a||_1 + ||P^T 1 - b||_1``."""
        self._unbatched("marginal_error")
        rows, cols = self.marginals
        return jnp.sum(jnp.abs(rows - self.a)) + jnp.sum(jnp.abs(cols - self.b))
