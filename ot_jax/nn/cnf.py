"""Continuous normalising flows on diffrax (Chen et al. 2018, "Neural ordinary differential equations").

A flow moves points by ``dz/dt = ξ(t, z)`` and their log-density by the instantaneous
change of variables ``d log p(z(t))/dt = −tr(∂ξ/∂z)``. Integrating ``(z, a)`` with
``da/dt = −tr(∂ξ/∂z)``, ``a(t0) = 0``, from ``t0`` to ``t1`` gives

    log p_{t1}(z(t1)) = log p_{t0}(z(t0)) + a(t1),

which serves both directions:

* :func:`push_forward` (``0 → 1``): samples ``x = z(1)`` of a base draw ``z(0)`` with
  their log-density ``log p_1(x) = log p_0(z(0)) + a(1)``;
* :func:`log_density` (``1 → 0``): the log-density of *any* given point ``x`` by
  integrating backwards to ``z(0)``: ``log p_1(x) = log p_0(z(0)) − a(0)``.

The trace is computed exactly (``trace="exact"``: one JVP per dimension, for small
``d``) or by Hutchinson's estimator ``E_ε[εᵀ (∂ξ/∂z) ε]`` with one probe ε per point,
held fixed over the solve (``trace="hutchinson"``, FFJORD; unbiased, one JVP).

Vector fields act on a batch: ``field(t, z: [B, d], args) -> [B, d]`` with rows that
do not interact (an MLP applied row-wise); that is what lets one JVP per dimension
compute all B traces at once. Solver, step-size control, tolerances and the adjoint
are :class:`FlowSettings` fields (names, so Hydra configs can set them). Everything
is a pure function: ``jit``, ``vmap`` and ``grad`` (through the chosen adjoint) apply.
Differentiable parameters of the field must travel in ``args`` (the backsolve
adjoint only differentiates ``args``, not closed-over arrays).

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from ot_jax.nn.cnf import FlowSettings, push_forward
    >>> field = lambda t, z, a: a * z  # dz/dt = a z: z(1) = e^a z(0), log-density drops by a d
    >>> out = push_forward(field, jnp.zeros((3, 2)), args=jnp.asarray(0.5))
    >>> round(float(out.log_density[0] - (-jnp.log(2 * jnp.pi) - 1.0)), 5)
    0.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ot_jax._checks import is_concrete
from ot_jax.solvers import Status, raise_on_status, result_repr

__all__ = [
    "FlowSettings",
    "FlowResult",
    "flow_status",
    "SOLVERS",
    "ADJOINTS",
    "TRACES",
    "integrate",
    "push_forward",
    "log_density",
    "exact_divergence",
    "hutchinson_divergence",
    "standard_normal_log_prob",
]

Field = Callable[[jax.Array, jax.Array, Any], jax.Array]

#: solver name -> diffrax explicit Runge-Kutta class (order in brackets):
#: euler (1), heun (2), midpoint (2), ralston (2), bosh3 (3), tsit5 (5), dopri5 (5), dopri8 (8).
SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
#: adjoint name -> how reverse mode goes through the solve: ``recursive``
#: (diffrax's RecursiveCheckpointAdjoint: discretise-then-optimise, exact gradients of
#: the computed solution, O(log steps) memory), ``backsolve`` (the continuous adjoint
#: of Chen et al., integrated backwards: O(1) memory, gradients only as accurate as
#: the solve), ``direct`` (DirectAdjoint: also supports forward mode).
ADJOINTS = ("recursive", "backsolve", "direct")
TRACES = ("exact", "hutchinson")
STEP_SIZES = ("adaptive", "constant")
PROBES = ("rademacher", "gaussian")


@dataclasses.dataclass(frozen=True)
class FlowSettings:
    """How a flow is integrated (hashable: a static argument under ``jit``).

    Attributes:
      solver: a name of :data:`SOLVERS` (default ``tsit5``).
      step_size: ``"adaptive"`` (PID controller with ``rtol``/``atol``, first step
        ``1/n_steps``) or ``"constant"`` (``n_steps`` equal steps; ``rtol``/``atol``
        unused; the only choice for ``euler``, which has no error estimate).
      n_steps: steps over the unit time interval (constant), or its inverse first step.
      rtol, atol: tolerances of the adaptive controller (on ``z`` and the log-density).
      max_steps: bound on solver steps; a solve that needs more ends with
        ``FlowResult.status == Status.MAX_ITERS`` instead of raising (unless ``throw``).
      adjoint: a name of :data:`ADJOINTS`.
      trace: ``"exact"`` or ``"hutchinson"`` (needs a ``key``).
      probes: Hutchinson probe law, ``"rademacher"`` (lower variance) or ``"gaussian"``.
      throw: raise a readable error (inside ``jit``, through ``equinox.error_if``)
        when a solve fails, instead of reporting it in ``FlowResult.status``.
    """

    solver: str = "tsit5"
    step_size: str = "adaptive"
    n_steps: int = 8
    rtol: float = 1e-5
    atol: float = 1e-5
    max_steps: int = 4096
    adjoint: str = "recursive"
    trace: str = "exact"
    probes: str = "rademacher"
    throw: bool = False

    def __post_init__(self):
        _choice("solver", self.solver, SOLVERS)
        _choice("step_size", self.step_size, STEP_SIZES)
        _choice("adjoint", self.adjoint, ADJOINTS)
        _choice("trace", self.trace, TRACES)
        _choice("probes", self.probes, PROBES)
        if isinstance(self.n_steps, bool) or int(self.n_steps) != self.n_steps or self.n_steps < 1:
            raise ValueError(f"FlowSettings: n_steps must be a positive int, got {self.n_steps!r}")
        if isinstance(self.max_steps, bool) or int(self.max_steps) != self.max_steps or self.max_steps < 1:
            raise ValueError(f"FlowSettings: max_steps must be a positive int, got {self.max_steps!r}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"FlowSettings: rtol and atol must be > 0, got {self.rtol}, {self.atol}")
        if self.step_size == "adaptive" and self.solver == "euler":
            raise ValueError("FlowSettings: solver 'euler' has no error estimate; use step_size='constant' "
                             "or another solver")


def _choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"FlowSettings: {name} must be one of {', '.join(options)}; got {value!r}")


class FlowResult(NamedTuple):
    """End point of a flow solve.

    z: ``[B, d]`` the points at the final time.
    log_density: ``[B]`` the log-density of the final law at ``z`` (:func:`push_forward`)
      or at the given points (:func:`log_density`); from :func:`integrate`, the
      accumulated change ``a(t1)``.
    num_steps: scalar int, solver steps taken (accepted plus rejected).
    status: scalar int32, a :class:`~ot_jax.Status` read off diffrax's result code:
      ``CONVERGED`` (diffrax ``successful`` and every output finite),
      ``MAX_ITERS`` (``max_steps_reached``), ``NON_FINITE`` (NaN/inf in the
      outputs, or any other diffrax failure: a collapsed step size, a singular
      or broken-down solve).
    converged: scalar bool, ``status == Status.CONVERGED``.
    """

    z: jax.Array
    log_density: jax.Array
    num_steps: jax.Array
    status: jax.Array
    converged: jax.Array

    def __repr__(self) -> str:
        return result_repr(self, ("z", "log_density", "status", "num_steps"))


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """``log N(z; 0, I)`` of each row: ``z: [B, d] -> [B]``."""
    d = z.shape[-1]
    return -0.5 * jnp.sum(z**2, axis=-1) - 0.5 * d * math.log(2.0 * math.pi)


def exact_divergence(f: Callable[[jax.Array], jax.Array], z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(f(z), tr ∂f/∂z)`` per row, with d forward-mode JVPs.

    Args:
      f: ``[B, d] -> [B, d]`` acting row-wise (row i of the output depends on row i of
        the input only).
      z: ``[B, d]``.

    Returns:
      ``(f(z) [B, d], divergence [B])``.
    """
    d = z.shape[-1]
    eye = jnp.eye(d, dtype=z.dtype)
    value, col0 = jax.jvp(f, (z,), (jnp.broadcast_to(eye[0], z.shape),))
    div = col0[:, 0]
    for i in range(1, d):
        div = div + jax.jvp(f, (z,), (jnp.broadcast_to(eye[i], z.shape),))[1][:, i]
    return value, div


def hutchinson_divergence(f: Callable[[jax.Array], jax.Array], z: jax.Array,
                          probe: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(f(z), εᵀ (∂f/∂z) ε)`` per row: an unbiased estimate of the divergence when
    ``E[ε εᵀ] = I`` (Hutchinson 1989), with one JVP.

    Args:
      f: ``[B, d] -> [B, d]`` acting row-wise.
      z: ``[B, d]``.
      probe: ``[B, d]``, one probe per row.
    """
    value, jvp = jax.jvp(f, (z,), (probe,))
    return value, jnp.sum(jvp * probe, axis=-1)


def _probe(key: jax.Array, shape, dtype, kind: str) -> jax.Array:
    if kind == "gaussian":
        return jax.random.normal(key, shape, dtype)
    return jax.random.rademacher(key, shape, dtype)


def _adjoint(name: str):
    if name == "backsolve":
        return diffrax.BacksolveAdjoint()
    if name == "direct":
        return diffrax.DirectAdjoint()
    return diffrax.RecursiveCheckpointAdjoint()


def _check_points(z: jax.Array, fn: str) -> jax.Array:
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"{fn}: points must be a non-empty [B, d] array, got shape {z.shape}")
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.result_type(float))
    if is_concrete(z) and not np.all(np.isfinite(np.asarray(z))):  # traced inputs: FlowResult.status reports it
        raise ValueError(f"{fn}: points contain NaN or inf")
    return z


def integrate(field: Field, z: jax.Array, *, t0: float, t1: float, settings: FlowSettings = FlowSettings(),
              args: Any = None, key: jax.Array | None = None, with_log_density: bool = True) -> FlowResult:
    """Integrate ``dz/dt = field(t, z, args)`` and ``da/dt = −tr ∂field/∂z`` from ``t0`` to ``t1``.

    Args:
      field: the vector field ``(t, z: [B, d], args) -> [B, d]``, row-wise.
      z: ``[B, d]`` the points at ``t0``.
      t0, t1: start and end times (``t1 < t0`` integrates backwards).
      settings: solver, steps, tolerances, adjoint, trace (:class:`FlowSettings`).
      args: the field's parameters (differentiated by every adjoint).
      key: PRNG key of the Hutchinson probes (required when ``settings.trace`` is
        ``"hutchinson"`` and ``with_log_density``).
      with_log_density: False integrates ``z`` alone (``log_density`` is zeros).

    Returns:
      :class:`FlowResult` with ``log_density = a(t1)``, the change of log-density.
    """
    z = _check_points(z, "integrate")
    if float(t0) == float(t1):
        raise ValueError(f"integrate: t0 and t1 must differ, got {t0}")
    dtype = z.dtype
    if with_log_density:
        if settings.trace == "hutchinson":
            if key is None:
                raise ValueError("integrate: trace='hutchinson' needs a PRNG key")
            probe = _probe(key, z.shape, dtype, settings.probes)
        else:
            probe = None

        def vector_field(t, state, fargs):
            params, eps = fargs
            y, _ = state

            def f(y_):
                return field(t, y_, params)

            value, div = exact_divergence(f, y) if eps is None else hutchinson_divergence(f, y, eps)
            return value, -div

        y0 = (z, jnp.zeros(z.shape[:1], dtype))
        solve_args = (args, probe)
    else:
        def vector_field(t, y, fargs):
            return field(t, y, fargs[0])

        y0 = z
        solve_args = (args, None)

    dt0 = (float(t1) - float(t0)) / settings.n_steps
    controller = (diffrax.PIDController(rtol=settings.rtol, atol=settings.atol) if settings.step_size == "adaptive"
                  else diffrax.ConstantStepSize())
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field), SOLVERS[settings.solver](), float(t0), float(t1), dt0, y0, solve_args,
        stepsize_controller=controller, adjoint=_adjoint(settings.adjoint), max_steps=int(settings.max_steps),
        throw=False)
    final = jax.tree.map(lambda leaf: leaf[-1], solution.ys)
    z1, change = final if with_log_density else (final, jnp.zeros(z.shape[:1], dtype))
    status = flow_status(solution.result, z1, change)
    out = FlowResult(z1, change, solution.stats["num_steps"], status, status == Status.CONVERGED)
    return raise_on_status(out, "nn.cnf.integrate", messages=_MESSAGES, field="z") if settings.throw else out


_MESSAGES = {
    Status.MAX_ITERS: "ot_jax.nn.cnf: MAX_ITERS: the ODE solve reached FlowSettings.max_steps before t1 "
    "(raise max_steps, loosen rtol/atol, or use step_size='constant')",
    Status.NON_FINITE: "ot_jax.nn.cnf: NON_FINITE: the ODE solve failed or produced NaN/inf (the field blew up, "
    "or the step size collapsed: check the field and its parameters, or tighten rtol/atol)",
}


def flow_status(result, z: jax.Array, log_density: jax.Array) -> jax.Array:
    """Map diffrax's ``solution.result`` and the outputs to a :class:`~ot_jax.Status` (scalar int32).

    ``successful`` with finite ``z`` and ``log_density`` is ``CONVERGED``;
    ``max_steps_reached`` is ``MAX_ITERS``; anything else (non-finite outputs,
    a collapsed step, a singular or broken-down solve) is ``NON_FINITE``.
    """
    finite = jnp.all(jnp.isfinite(z)) & jnp.all(jnp.isfinite(log_density))
    ok = (result == diffrax.RESULTS.successful) & finite
    steps = (result == diffrax.RESULTS.max_steps_reached) & finite
    return jnp.where(ok, Status.CONVERGED, jnp.where(steps, Status.MAX_ITERS, Status.NON_FINITE)).astype(jnp.int32)


def push_forward(field: Field, z0: jax.Array, *, settings: FlowSettings = FlowSettings(), args: Any = None,
                 key: jax.Array | None = None,
                 base_log_prob: Callable[[jax.Array], jax.Array] = standard_normal_log_prob,
                 with_log_density: bool = True) -> FlowResult:
    """Samples of the flow's law at time 1 and their log-density.

    Args:
      field: ``(t, z: [B, d], args) -> [B, d]``, row-wise.
      z0: ``[B, d]`` draws from the base law.
      settings, args, key: see :func:`integrate`.
      base_log_prob: ``[B, d] -> [B]`` log-density of the base law (standard normal).
      with_log_density: False only moves the points (cheaper; ``log_density`` zeros).

    Returns:
      :class:`FlowResult` with ``z = x = z(1)`` and ``log_density = log p_1(x)``.
    """
    z0 = _check_points(z0, "push_forward")
    out = integrate(field, z0, t0=0.0, t1=1.0, settings=settings, args=args, key=key,
                    with_log_density=with_log_density)
    if not with_log_density:
        return out
    return out._replace(log_density=base_log_prob(z0) + out.log_density)


def log_density(field: Field, x: jax.Array, *, settings: FlowSettings = FlowSettings(), args: Any = None,
                key: jax.Array | None = None,
                base_log_prob: Callable[[jax.Array], jax.Array] = standard_normal_log_prob) -> FlowResult:
    """Log-density of the flow's time-1 law at given points, by integrating backwards to time 0.

    Args:
      field: ``(t, z: [B, d], args) -> [B, d]``, row-wise.
      x: ``[B, d]`` any points (e.g. a grid of pairs ``(x, y)`` of a transport plan).
      settings, args, key: see :func:`integrate`.
      base_log_prob: ``[B, d] -> [B]`` log-density of the base law (standard normal).

    Returns:
      :class:`FlowResult` with ``z = z(0)`` (the base points that map to ``x``) and
      ``log_density = log p_1(x)``.
    """
    x = _check_points(x, "log_density")
    out = integrate(field, x, t0=1.0, t1=0.0, settings=settings, args=args, key=key)
    return out._replace(log_density=base_log_prob(out.z) - out.log_density)
