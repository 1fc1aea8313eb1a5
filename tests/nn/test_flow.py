"""VectorField and FlowGenerator (ot_jax/nn/flow.py), and the entropic SPOT objective built on them.

Each eager flow solve compiles a diffrax loop (about a second on CPU), so the checks
share a few small solves.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ot_jax.nn.cnf import FlowSettings
from ot_jax.geometry import SqEuclidean
from ot_jax.losses.spot import entropic_spot_objective, spot_objective
from ot_jax.nn import FlowGenerator, VectorField, activation
from tests.nn.shapes import abstract_run


# a lighter XLA pipeline: ~30% faster compilation of the solver loops, the same IEEE arithmetic
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def normal_log_pdf(z):
    z = np.asarray(z)
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * np.log(2 * np.pi)


# ---------------------------------------------------------------- VectorField


def test_vector_field_is_a_time_conditioned_mlp(rng):
    field = VectorField(3, hidden=[8, 5], activation="softplus", zero_init=False, rngs=nnx.Rngs(0))
    assert len(field.layers) == 3
    assert [(layer.in_features, layer.out_features) for layer in field.layers] == [(4, 8), (9, 5), (6, 3)]
    z, t = jnp.asarray(rng.normal(size=(4, 3))), 0.7

    @jax.jit  # one compilation instead of one per eager op
    def run(z, t):
        act, time = activation("softplus"), jnp.full((4, 1), t)
        h = act(field.layers[0](jnp.concatenate([z, time], -1)))
        h = act(field.layers[1](jnp.concatenate([h, time], -1)))
        ref = field.layers[2](jnp.concatenate([h, time], -1))
        return field(z, t), ref, field(z, 0.0), field(z, 1.0), field(z[1:2], t)

    out, ref, at0, at1, row = run(z, t)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert not np.allclose(at0, at1)  # the time is an input
    np.testing.assert_allclose(row, out[1:2], rtol=1e-12)  # rows are independent
    # any leading batch shape; a traced time
    assert abstract_run(lambda: VectorField(3, hidden=[8], rngs=nnx.Rngs(0)), (2, 5, 3), ())[0] == (2, 5, 3)


def test_vector_field_zero_init_and_dtype(rng):
    field = VectorField(3, hidden=[8], rngs=nnx.Rngs(0))  # zero_init=True by default
    z = jnp.asarray(rng.normal(size=(4, 3)))
    np.testing.assert_array_equal(field(z, 0.5), np.zeros((4, 3)))
    assert np.all(field.layers[-1].kernel[...] == 0) and np.all(field.layers[-1].bias[...] == 0)
    assert np.any(field.layers[0].kernel[...] != 0)
    assert field.layers[0].kernel[...].dtype == jnp.float64
    single = VectorField(3, hidden=[8], param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    assert all(layer.kernel[...].dtype == jnp.float32 for layer in single.layers)


@pytest.mark.parametrize("kwargs, match", [
    (dict(features=0), "features"),
    (dict(features=2, hidden=[8, 0]), r"hidden\[1\]"),
    (dict(features=2, activation="gelu"), "unknown activation"),
    (dict(features=2, param_dtype=jnp.int32), "floating"),
])
def test_vector_field_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VectorField(**{"hidden": [4], **kwargs}, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- FlowGenerator: construction


def test_generator_marginals_and_settings():
    g = FlowGenerator([1, 2, 3], hidden=[4], solver="dopri5", rtol=1e-7, adjoint="backsolve", rngs=nnx.Rngs(0))
    assert g.out_features == (1, 2, 3) and g.latent_dim == 6 and g.field.features == 6
    assert g.settings == FlowSettings(solver="dopri5", rtol=1e-7, adjoint="backsolve")
    points = jnp.arange(30.0).reshape(5, 6)
    parts = g.split(points)
    assert [p.shape for p in parts] == [(5, 1), (5, 2), (5, 3)]
    np.testing.assert_array_equal(jnp.concatenate(parts, axis=-1), points)
    np.testing.assert_array_equal(parts[1], points[:, 1:3])
    # the call returns the split marginals (checked abstractly: no compilation)
    shapes, _ = abstract_run(lambda: FlowGenerator([1, 2, 3], hidden=[4], rngs=nnx.Rngs(0)), (5, 6))
    assert shapes == ((5, 1), (5, 2), (5, 3))
    # an int is one marginal; default settings
    one = FlowGenerator(2, hidden=[4], rngs=nnx.Rngs(0))
    assert one.out_features == (2,) and one.latent_dim == 2 and one.settings == FlowSettings()
    (whole,) = one.split(points[:, :2])
    np.testing.assert_array_equal(whole, points[:, :2])


def test_generator_rejects_bad_arguments():
    with pytest.raises(TypeError, match="FlowGenerator: .*'solvr'.*fields of ot_jax.nn.cnf.FlowSettings"):
        FlowGenerator([1, 1], hidden=[4], solvr="tsit5", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="solver must be one of"):
        FlowGenerator([1, 1], hidden=[4], solver="rk4", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="at least one"):
        FlowGenerator([], hidden=[4], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"out_features\[1\]"):
        FlowGenerator([2, 0], hidden=[4], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"hidden\[0\]"):
        FlowGenerator([1, 1], hidden=[0], rngs=nnx.Rngs(0))
    # Hutchinson traces need a key (checked before anything is compiled)
    g = FlowGenerator([1, 1], hidden=[4], trace="hutchinson", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="PRNG key"):
        g.flow(jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="PRNG key"):
        g.log_density(jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"non-empty \[B, d\]"):
        g.flow(jnp.zeros((2,)))


# ---------------------------------------------------------------- FlowGenerator: solves


def test_zero_init_generator_is_the_identity(rng):
    g = FlowGenerator([1, 2], hidden=[8], rngs=nnx.Rngs(0))
    z = jnp.asarray(rng.normal(size=(5, 3)))
    x, y = g(z)
    np.testing.assert_array_equal(x, z[:, :1])
    np.testing.assert_array_equal(y, z[:, 1:])
    out = g.flow(z)
    assert out.converged
    np.testing.assert_array_equal(out.z, z)
    np.testing.assert_allclose(out.log_density, normal_log_pdf(z), rtol=0, atol=1e-12)  # the base law


def test_backward_density_inverts_the_forward_flow_and_matches_the_jacobian(rng):
    g = FlowGenerator([1, 1], hidden=[8], zero_init=False, rtol=1e-9, atol=1e-9, rngs=nnx.Rngs(3))
    z = jnp.asarray(rng.normal(size=(3, 2)))
    # Central-difference stencil in the same batch: the adaptive steps are chosen on the
    # whole batch, so every row goes through the same (smooth) discrete map.
    h = 1e-5
    eye = jnp.eye(2)
    stencil = jnp.concatenate([z] + [z + s * h * eye[i] for i in range(2) for s in (1, -1)])
    fwd = nnx.jit(lambda g, z: g.flow(z))(g, stencil)
    assert fwd.converged
    x, log_p = fwd.z[:3], fwd.log_density[:3]
    assert float(jnp.max(jnp.abs(x - z))) > 0.05  # a real transformation
    cols = [(fwd.z[3 * (2 * i + 1):3 * (2 * i + 2)] - fwd.z[3 * (2 * i + 2):3 * (2 * i + 3)]) / (2 * h)
            for i in range(2)]
    jac = jnp.stack(cols, axis=-1)  # [3, 2, 2]: d x / d z
    sign, log_det = jnp.linalg.slogdet(jac)
    assert np.all(sign > 0)
    # change of variables: log p_1(x) = log N(z) - log det(dx/dz)
    np.testing.assert_allclose(log_p, normal_log_pdf(z) - log_det, rtol=0, atol=1e-7)
    # backwards from x through jax.jit of the functional API: recovers z and the same density
    graphdef, state = nnx.split(g)
    back = jax.jit(lambda state, points: nnx.merge(graphdef, state).log_density(points),
                   compiler_options=FAST_COMPILE)(state, x)
    assert back.converged
    np.testing.assert_allclose(back.z, z, rtol=0, atol=1e-7)
    np.testing.assert_allclose(back.log_density, log_p, rtol=0, atol=1e-7)


def test_hutchinson_generator_is_unbiased_for_the_exact_one():
    # Constant steps: the points move the same whatever the trace, and the accumulated
    # log-density is a fixed linear combination of εᵀ J ε at the same stage points, so
    # its mean over probes is the exact-trace result of the same discretisation.
    kwargs = dict(hidden=[8], zero_init=False, solver="tsit5", step_size="constant", n_steps=4)
    exact = FlowGenerator([1, 1], **kwargs, rngs=nnx.Rngs(3))
    hutch = FlowGenerator([1, 1], **kwargs, trace="hutchinson", probes="gaussian", rngs=nnx.Rngs(3))
    (ge, se), (gh, sh) = nnx.split(exact), nnx.split(hutch)
    copies = 2000
    z = jnp.repeat(jnp.array([[0.3, -1.2], [1.5, 0.4]]), copies, axis=0)  # two points, one probe per copy

    @jax.jit(compiler_options=FAST_COMPILE)
    def run(se, sh, key):
        return nnx.merge(ge, se).flow(z), nnx.merge(gh, sh).flow(z, key)

    ref, est = run(se, sh, jax.random.PRNGKey(0))
    assert ref.converged and est.converged
    np.testing.assert_allclose(est.z, ref.z, rtol=0, atol=1e-14)
    for i in range(2):
        rows = slice(i * copies, (i + 1) * copies)
        np.testing.assert_allclose(ref.log_density[rows], ref.log_density[i * copies], rtol=0, atol=1e-12)
        se_mean = float(jnp.std(est.log_density[rows], ddof=1)) / math.sqrt(copies)
        assert se_mean > 1e-3  # one probe per row: the estimates vary
        assert abs(float(jnp.mean(est.log_density[rows]) - ref.log_density[i * copies])) < 5 * se_mean
    # the same key gives the same probes, another key others
    again, other = run(se, sh, jax.random.PRNGKey(0))[1], run(se, sh, jax.random.PRNGKey(1))[1]
    np.testing.assert_array_equal(again.log_density, est.log_density)
    assert not np.allclose(other.log_density, est.log_density)


# ---------------------------------------------------------------- entropic SPOT


def test_entropic_spot_objective_with_the_identity_flow(rng):
    g = FlowGenerator([1, 1], hidden=[4], rngs=nnx.Rngs(0))  # zero_init: the identity, p_gamma = N(0, I_2)
    n = 1000
    batch = (jnp.asarray(rng.normal(size=(n, 1))), jnp.asarray(rng.normal(1.0, 2.0, size=(n, 1))))
    critics = [lambda x: 0.5 * x[:, 0], lambda x: -jnp.tanh(x[:, 0])]
    key = jax.random.PRNGKey(5)
    eta, lam = 3.0, 0.7
    # the latent draw: the first half of the split key; spot_objective draws from the key it is given
    kz, _ = jax.random.split(key)

    @jax.jit(compiler_options=FAST_COMPILE)
    def run(key, kz):
        return (entropic_spot_objective(g, critics, batch, key, cost_fn=SqEuclidean(), eta=eta, lam=lam),
                spot_objective(g, critics, batch, kz, cost_fn=SqEuclidean(), eta=eta))

    (value, terms), (spot_value, spot_terms) = run(key, kz)
    assert terms.flow_converged
    z = np.asarray(jax.random.normal(kz, (n, 2), jnp.float64))
    np.testing.assert_allclose(terms.neg_entropy, normal_log_pdf(z).mean(), rtol=0, atol=1e-12)
    # minus the entropy of N(0, I_2), within MC error (Var log N(z) = Var |z|^2 / 4 = 1)
    assert abs(terms.neg_entropy + 1 + math.log(2 * math.pi)) < 5 / math.sqrt(n)
    # the SPOT part, by hand and from spot_objective with the same latent draw
    np.testing.assert_allclose(terms.transport, np.mean((z[:, 0] - z[:, 1]) ** 2), rtol=1e-12)
    gaps = [np.mean(0.5 * z[:, 0]) - np.mean(0.5 * batch[0][:, 0]),
            np.mean(-np.tanh(z[:, 1])) - np.mean(-np.tanh(batch[1][:, 0]))]
    np.testing.assert_allclose(terms.gaps, gaps, rtol=1e-12)
    np.testing.assert_allclose(spot_terms.transport, terms.transport, rtol=1e-14)
    np.testing.assert_allclose(spot_terms.gaps, terms.gaps, rtol=1e-14)
    np.testing.assert_allclose(value, spot_value + lam * terms.neg_entropy, rtol=1e-14)
    np.testing.assert_allclose(value, terms.transport + eta * sum(gaps) + lam * normal_log_pdf(z).mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        entropic_spot_objective(g, critics, batch, key, cost_fn=SqEuclidean(), eta=eta, lam=-0.1)
    with pytest.raises(ValueError, match="eta must be > 0"):
        entropic_spot_objective(g, critics, batch, key, cost_fn=SqEuclidean(), eta=0.0, lam=lam)
