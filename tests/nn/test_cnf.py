"""Continuous normalising flows (ot_jax/flows.py) against exact references.

Linear fields ``dz/dt = A z`` have closed forms: ``z(1) = expm(A) z(0)`` and a
log-density drop of ``tr A``; a Hutchinson estimate with a probe held fixed over the
solve is exactly ``εᵀ A ε`` per point, whose law is known. Gradients through the
solver are checked against central differences of a high-order constant-step solve.

Every distinct (field, settings, shape) costs an XLA compilation of a diffrax loop
(seconds on CPU, and eager calls recompile since the solver's closure is new each
call), so the solves below go through a few module-level ``jax.jit`` wrappers and
share shapes where they can.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from flax import nnx
from jax.flatten_util import ravel_pytree
from scipy.integrate import solve_ivp

from ot_jax.nn.cnf import (
    ADJOINTS,
    SOLVERS,
    FlowSettings,
    exact_divergence,
    hutchinson_divergence,
    integrate,
    log_density,
    push_forward,
    standard_normal_log_prob,
)
from ot_jax.nn import VectorField

A = np.array([[0.3, -0.7, 0.2],
              [0.5, -0.1, 0.4],
              [-0.2, 0.6, 0.2]])  # non-symmetric, tr A = 0.4
A1 = np.array([[-0.4, 0.3, 0.0],
               [0.1, 0.9, -0.5],
               [0.6, 0.2, 0.1]])  # does not commute with A: no closed form for A + t A1
TIGHT = FlowSettings(rtol=1e-10, atol=1e-10)
# XLA's CPU backend spends most of these tests' time optimising the solver loops; a
# lighter pipeline compiles ~30% faster and computes the same IEEE arithmetic.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

jit_push = jax.jit(push_forward, static_argnames=("field", "settings", "base_log_prob", "with_log_density"),
                   compiler_options=FAST_COMPILE)
jit_log_density = jax.jit(log_density, static_argnames=("field", "settings", "base_log_prob"),
                          compiler_options=FAST_COMPILE)
jit_integrate = jax.jit(integrate, static_argnames=("field", "t0", "t1", "settings", "with_log_density"),
                        compiler_options=FAST_COMPILE)


def linear(t, z, a):
    return z @ a.T


def affine_in_time(t, z, a):  # A(t) = a[0] + t a[1]
    return z @ (a[0] + t * a[1]).T


def normal_log_pdf(z):
    z = np.asarray(z)
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * np.log(2 * np.pi)


@pytest.fixture
def z0(rng):
    return jnp.asarray(rng.normal(size=(16, 3)))


def test_standard_normal_log_prob(rng):
    z = rng.normal(size=(5, 4))
    np.testing.assert_allclose(standard_normal_log_prob(jnp.asarray(z)), normal_log_pdf(z), rtol=1e-14)


def test_linear_flow_is_the_matrix_exponential(z0, rng):
    out = jit_push(field=linear, z0=z0, settings=TIGHT, args=jnp.asarray(A))
    assert out.converged and 0 < int(out.num_steps) < TIGHT.max_steps
    np.testing.assert_allclose(out.z, z0 @ jax.scipy.linalg.expm(jnp.asarray(A)).T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(out.log_density, normal_log_pdf(z0) - np.trace(A), rtol=0, atol=1e-8)
    # backwards, at arbitrary points x: z(0) = expm(-A) x and log p_1(x) = log N(z(0)) - tr A
    x = jnp.asarray(rng.normal(size=(16, 3)))
    back = jit_log_density(field=linear, x=x, settings=TIGHT, args=jnp.asarray(A))
    z_back = x @ jax.scipy.linalg.expm(-jnp.asarray(A)).T
    assert back.converged
    np.testing.assert_allclose(back.z, z_back, rtol=0, atol=1e-8)
    np.testing.assert_allclose(back.log_density, normal_log_pdf(z_back) - np.trace(A), rtol=0, atol=1e-8)


def test_without_log_density_only_moves_the_points(z0):
    hutch = dataclasses.replace(TIGHT, trace="hutchinson")  # needs no key: no trace is taken
    out = jit_push(field=linear, z0=z0, settings=hutch, args=jnp.asarray(A), with_log_density=False)
    assert out.converged
    np.testing.assert_allclose(out.z, z0 @ jax.scipy.linalg.expm(jnp.asarray(A)).T, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(out.log_density, np.zeros(16))


def test_time_dependent_linear_field(z0):
    # d log p/dt = -tr A(t): the change over [0, 1] is -(tr A0 + tr A1 / 2)
    args = jnp.stack([jnp.asarray(A), jnp.asarray(A1)])
    out = jit_integrate(field=affine_in_time, z=z0, t0=0.0, t1=1.0, settings=TIGHT, args=args)
    assert out.converged
    np.testing.assert_allclose(out.log_density, -(np.trace(A) + np.trace(A1) / 2) * np.ones(16), rtol=0, atol=1e-9)
    # the points: fundamental matrix of Phi' = A(t) Phi by scipy's DOP853
    ref = solve_ivp(lambda t, p: ((A + t * A1) @ p.reshape(3, 3)).ravel(), (0.0, 1.0), np.eye(3).ravel(),
                    method="DOP853", rtol=1e-13, atol=1e-13)
    phi = ref.y[:, -1].reshape(3, 3)
    np.testing.assert_allclose(out.z, np.asarray(z0) @ phi.T, rtol=0, atol=1e-8)
    # A(1) would give a different answer: time runs from 0 to 1 and is passed to the field
    assert not np.allclose(out.log_density, -np.trace(A + A1), atol=1e-3)


def rademacher_values(a):
    """All values of εᵀ a ε over ε ∈ {±1}^d."""
    d = a.shape[0]
    eps = np.array(np.meshgrid(*[[-1.0, 1.0]] * d)).reshape(d, -1).T
    return np.unique(np.round(np.einsum("ki,ij,kj->k", eps, a, eps), 12))


@pytest.mark.parametrize("probes", ["rademacher", "gaussian"])
def test_hutchinson_trace_of_a_linear_field(probes):
    # The probe ε is fixed over the solve and ∂(Az)/∂z = A, so each point's change of
    # log-density is exactly -εᵀAε: mean tr A, variance Σ_{i<j} (A_ij + A_ji)² for
    # Rademacher probes, 2 tr(S²) (S = (A + Aᵀ)/2) for Gaussian ones.
    n = 2000
    settings = dataclasses.replace(TIGHT, rtol=1e-9, atol=1e-9, trace="hutchinson", probes=probes)
    z = jnp.asarray(np.random.default_rng(1).normal(size=(n, 3)))

    def estimates(a, key):
        out = jit_integrate(field=linear, z=z, t0=0.0, t1=1.0, settings=settings, args=jnp.asarray(a), key=key)
        assert out.converged
        return -np.asarray(out.log_density)

    est = estimates(A, jax.random.PRNGKey(3))
    sym = (A + A.T) / 2
    if probes == "rademacher":
        var = sum((A[i, j] + A[j, i]) ** 2 for i in range(3) for j in range(i + 1, 3))
        values = rademacher_values(A)  # 4 values (ε and -ε agree)
        assert len(values) == 4
        dist = np.abs(est[:, None] - values[None, :]).min(axis=1)
        assert dist.max() < 1e-7
        # every value occurs, with probability 1/4 each
        counts = np.bincount(np.abs(est[:, None] - values[None, :]).argmin(axis=1), minlength=4)
        assert np.all(np.abs(counts - n / 4) < 5 * math.sqrt(n * 3 / 16))
    else:
        var = 2 * np.trace(sym @ sym)
        assert len(np.unique(np.round(est, 6))) > n // 2  # continuous law
    assert np.std(est) > 0.1  # the estimate is random, not the exact trace
    assert abs(est.mean() - np.trace(A)) < 5 * math.sqrt(var / n)
    assert 0.8 < est.var(ddof=1) / var < 1.25
    # the probes come from the key: same key, same estimates; another key, others
    np.testing.assert_array_equal(estimates(A, jax.random.PRNGKey(3)), est)
    assert not np.allclose(estimates(A, jax.random.PRNGKey(4)), est)
    if probes == "rademacher":
        # ε_i² = 1: for a diagonal matrix every Rademacher estimate is the exact trace
        diag = np.diag([0.3, -1.1, 0.5])
        np.testing.assert_allclose(estimates(diag, jax.random.PRNGKey(5)), np.trace(diag) * np.ones(n),
                                   rtol=0, atol=1e-9)


def test_exact_divergence_of_an_analytic_field(rng):
    z = jnp.asarray(rng.normal(size=(6, 3)))

    def f(z):
        return jnp.stack([z[:, 0] * z[:, 1], jnp.sin(z[:, 1]), z[:, 0] * z[:, 2] ** 2], axis=-1)

    value, div = exact_divergence(f, z)
    np.testing.assert_array_equal(value, f(z))
    np.testing.assert_allclose(div, z[:, 1] + jnp.cos(z[:, 1]) + 2 * z[:, 0] * z[:, 2], rtol=1e-14)
    # d = 1: the derivative
    x = z[:, :1]
    np.testing.assert_allclose(exact_divergence(lambda u: u**3, x)[1], 3 * x[:, 0] ** 2, rtol=1e-14)


def test_exact_divergence_is_the_jacobian_trace_and_the_hutchinson_mean(rng):
    field = VectorField(3, hidden=[8], zero_init=False, rngs=nnx.Rngs(0))
    z = jnp.asarray(rng.normal(size=(4, 3)))
    m = 20000

    def f(u):
        return field(u, 0.3)

    @jax.jit
    def run(key):
        value, div = exact_divergence(f, z)
        jac = jax.vmap(jax.jacfwd(lambda r: f(r[None])[0]))(z)
        out = {"value": value, "div": div, "f": f(z), "jac": jac}
        for kind, draw in [("rademacher", jax.random.rademacher), ("gaussian", jax.random.normal)]:
            probes = draw(key, (m, *z.shape), z.dtype)
            values, est = jax.vmap(lambda p: hutchinson_divergence(f, z, p))(probes)
            out[kind] = (probes[0], values[0], est)
        return out

    out = run(jax.random.PRNGKey(7))
    div = out["div"]
    np.testing.assert_array_equal(out["value"], out["f"])
    np.testing.assert_allclose(div, jnp.trace(out["jac"], axis1=1, axis2=2), rtol=0, atol=1e-10)
    assert np.all(np.abs(div) > 1e-3)  # a nontrivial check
    for kind in ("rademacher", "gaussian"):
        probe, value, est = out[kind]
        np.testing.assert_allclose(value, out["value"], rtol=1e-14)
        # one probe: εᵀ J ε
        np.testing.assert_allclose(est[0], jnp.einsum("bi,bij,bj->b", probe, out["jac"], probe), rtol=1e-12)
        se = est.std(axis=0, ddof=1) / math.sqrt(m)
        assert np.all(se > 0), kind
        assert np.all(np.abs(est.mean(axis=0) - div) < 5 * se), kind


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, match", [
    (dict(solver="rk4"), "solver must be one of euler, heun, midpoint, ralston, bosh3, tsit5, dopri5, dopri8; got 'rk4'"),
    (dict(adjoint="seminorm"), "adjoint must be one of recursive, backsolve, direct; got 'seminorm'"),
    (dict(trace="skilling"), "trace must be one of exact, hutchinson; got 'skilling'"),
    (dict(probes="uniform"), "probes must be one of rademacher, gaussian; got 'uniform'"),
    (dict(step_size="pid"), "step_size must be one of adaptive, constant"),
    (dict(solver="euler"), "no error estimate"),
    (dict(solver="euler", step_size="adaptive"), "use step_size='constant'"),
    (dict(n_steps=0), "n_steps"),
    (dict(n_steps=2.5), "n_steps"),
    (dict(n_steps=True), "n_steps"),
    (dict(max_steps=0), "max_steps"),
    (dict(max_steps=True), "max_steps"),
    (dict(rtol=0.0), "rtol and atol"),
    (dict(atol=-1e-6), "rtol and atol"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        FlowSettings(**kwargs)


def test_settings_are_hashable_and_complete():
    assert FlowSettings() == FlowSettings() and hash(FlowSettings()) == hash(FlowSettings())
    with pytest.raises(dataclasses.FrozenInstanceError):
        FlowSettings().solver = "dopri5"
    for solver in SOLVERS:
        FlowSettings(solver=solver, step_size="constant")
    for adjoint in ADJOINTS:
        FlowSettings(adjoint=adjoint)
    FlowSettings(solver="euler", step_size="constant")


@pytest.mark.parametrize("shape", [(0, 2), (3, 0), (3,), (2, 3, 2), ()])
def test_bad_points_raise(shape):
    z = jnp.zeros(shape)
    with pytest.raises(ValueError, match=r"push_forward: points must be a non-empty \[B, d\] array"):
        push_forward(linear, z, args=jnp.eye(2))
    with pytest.raises(ValueError, match=r"log_density: points must be a non-empty \[B, d\] array"):
        log_density(linear, z, args=jnp.eye(2))
    with pytest.raises(ValueError, match="push_forward: points contain NaN or inf"):
        push_forward(linear, jnp.array([[0.0, jnp.nan]]), args=jnp.eye(2))
    with pytest.raises(ValueError, match=r"integrate: points must be a non-empty \[B, d\] array"):
        integrate(linear, z, t0=0.0, t1=1.0, args=jnp.eye(2))


def test_hutchinson_needs_a_key_and_times_must_differ():
    z = jnp.ones((2, 3))
    hutch = FlowSettings(trace="hutchinson")
    for call in (lambda: push_forward(linear, z, settings=hutch, args=jnp.asarray(A)),
                 lambda: log_density(linear, z, settings=hutch, args=jnp.asarray(A)),
                 lambda: integrate(linear, z, t0=0.0, t1=1.0, settings=hutch, args=jnp.asarray(A))):
        with pytest.raises(ValueError, match="hutchinson.*needs a PRNG key"):
            call()
    with pytest.raises(ValueError, match="t0 and t1 must differ"):
        integrate(linear, z, t0=0.5, t1=0.5, args=jnp.asarray(A))


def test_failed_solves_report_or_raise(z0):
    # max_steps below the steps needed: ok is False and num_steps stops there, unless throw
    few = FlowSettings(solver="heun", rtol=1e-10, atol=1e-10, max_steps=3)
    out = jit_push(field=linear, z0=z0, settings=few, args=jnp.asarray(A), with_log_density=False)  # no exception
    assert not out.converged and int(out.num_steps) == 3 and int(out.status) == ot_jax.Status.MAX_ITERS
    assert "MAX_ITERS" in repr(out) and len(repr(out)) < 300
    with pytest.raises(Exception, match=r"(?i)max(imum)?[ _](number of solver )?steps"):
        jax.block_until_ready(jit_push(field=linear, z0=z0, settings=dataclasses.replace(few, throw=True),
                                       args=jnp.asarray(A), with_log_density=False))
    # a field that turns non-finite: constant steps run to the end, but ok is False
    constant = FlowSettings(solver="heun", step_size="constant", n_steps=4)
    out = jit_push(field=linear, z0=z0, settings=constant, args=jnp.full((3, 3), jnp.nan))
    assert int(out.num_steps) == 4 and not out.converged and int(out.status) == ot_jax.Status.NON_FINITE
    assert jit_push(field=linear, z0=z0, settings=constant, args=jnp.asarray(A)).converged


# ---------------------------------------------------------------- transformations


def test_vmap_and_eager_match_jit(z0):
    # eager vmap over three fields (diffrax's own filter_jit), with a shifted normal as base law
    mats = jnp.stack([jnp.asarray(A), jnp.asarray(A1), -0.5 * jnp.asarray(A).T])
    shift = jnp.array([1.0, -2.0, 0.5])

    def shifted_normal(z):
        return standard_normal_log_prob(z - shift)

    batched = jax.vmap(lambda a: push_forward(linear, z0, settings=TIGHT, args=a, base_log_prob=shifted_normal))(mats)
    assert batched.z.shape == (3, 16, 3) and batched.log_density.shape == (3, 16) and bool(jnp.all(batched.converged))
    for k, a in enumerate(mats):
        np.testing.assert_allclose(batched.z[k], z0 @ jax.scipy.linalg.expm(a).T, rtol=0, atol=1e-8)
        np.testing.assert_allclose(batched.log_density[k], normal_log_pdf(z0 - shift) - float(jnp.trace(a)),
                                   rtol=0, atol=1e-8)
    # jax.jit(push_forward, static_argnames=...) gives the same numbers as the eager solve
    jitted = jit_push(field=linear, z0=z0, settings=TIGHT, args=mats[0])
    np.testing.assert_allclose(jitted.z, batched.z[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(jitted.log_density - normal_log_pdf(z0),
                               batched.log_density[0] - normal_log_pdf(z0 - shift), rtol=0, atol=1e-12)
    assert int(jitted.num_steps) == int(batched.num_steps[0])


# ---------------------------------------------------------------- gradients


class TinyFlow:
    """Loss mean log p_1(z(1)) + mean z(1)² of a VectorField(2, hidden=[4]) flow, as a function of its flat parameters."""

    def __init__(self):
        model = VectorField(2, hidden=[4], zero_init=False, rngs=nnx.Rngs(1))
        self.graphdef, params = nnx.split(model, nnx.Param)
        self.flat, self.unravel = ravel_pytree(params)
        self.z0 = jax.random.normal(jax.random.PRNGKey(2), (6, 2), jnp.float64)

    def field(self, t, z, params):
        return nnx.merge(self.graphdef, params)(z, t)

    def loss(self, settings):
        def fn(flat):
            out = push_forward(self.field, self.z0, settings=settings, args=self.unravel(flat))
            return jnp.mean(out.log_density) + jnp.mean(out.z**2)

        return fn


@pytest.fixture(scope="module")
def tiny_flow_fd():
    """The tiny flow, 3 random directions and central differences along them of a dopri8 solve
    with 32 constant steps (a smooth function of the parameters, ~1e-12 from the exact flow)."""
    tiny = TinyFlow()
    reference = jax.jit(tiny.loss(FlowSettings(solver="dopri8", step_size="constant", n_steps=32)),
                        compiler_options=FAST_COMPILE)
    directions = jax.random.normal(jax.random.PRNGKey(3), (3, tiny.flat.size), jnp.float64)
    h = 1e-5
    fd = np.array([(reference(tiny.flat + h * v) - reference(tiny.flat - h * v)) / (2 * h) for v in directions])
    return tiny, directions, fd, float(reference(tiny.flat))


@pytest.mark.parametrize("adjoint", [a if a != "direct" else pytest.param(a, marks=pytest.mark.slow)
                                     for a in ADJOINTS])
def test_gradients_through_the_solver_match_finite_differences(tiny_flow_fd, adjoint):
    tiny, directions, fd, reference_value = tiny_flow_fd
    # every adjoint, the continuous one too, is accurate to the solve's tolerance here
    settings = FlowSettings(rtol=1e-10, atol=1e-10, max_steps=64, adjoint=adjoint)
    value, grad = jax.jit(jax.value_and_grad(tiny.loss(settings)), compiler_options=FAST_COMPILE)(tiny.flat)
    assert abs(value - reference_value) < 1e-8
    assert np.all(np.abs(fd) > 1e-3)
    np.testing.assert_allclose(directions @ grad, fd, rtol=0, atol=1e-7)
