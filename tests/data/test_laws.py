"""Samplers of 2-D laws (ot_jax/data/laws.py): shapes, determinism, jit, exact moments, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ot_jax.data import laws
from ot_jax.data.laws import (
    eight_gaussians,
    eight_gaussians_modes,
    gaussian,
    gaussian_mixture,
    grid_gaussians,
    grid_gaussians_modes,
    rings,
    sine_law,
    two_moons,
    uniform,
)

N = 20_000
K0, K1 = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
MIX_MEANS = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
MIX_WEIGHTS = np.array([1.0, 2.0, 0.0, 5.0])
MIX_STDS = [0.1, 0.2, 0.3, 0.4]
GAUSS_MEAN, GAUSS_STD = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, 2.0])

# The samples (jit, n = N static) are drawn once and shared by the tests.
SAMPLERS = {
    "gaussian": (functools.partial(gaussian, mean=GAUSS_MEAN.tolist(), std=GAUSS_STD.tolist()), 3),
    "sine_law": (sine_law, 2),
    "gaussian_mixture": (functools.partial(gaussian_mixture, means=MIX_MEANS.tolist(), stds=MIX_STDS,
                                           weights=MIX_WEIGHTS.tolist()), 2),
    "eight_gaussians": (eight_gaussians, 2),
    "grid_gaussians": (grid_gaussians, 2),
    "rings": (functools.partial(rings, radii=[1.0, 3.0], std=0.0), 2),
    "uniform": (functools.partial(uniform, low=[-1.0, 2.0, 0.0], high=[1.0, 6.0, 0.5]), 3),
    "two_moons": (functools.partial(two_moons, noise=0.0), 2),
}


@jax.jit
def _all_samples(key):
    # One program for all samplers: one XLA compilation instead of eight (compiling dominates on CPU).
    return {name: f(key, N) for name, (f, _) in SAMPLERS.items()}


@functools.cache
def _samples_np(key_seed):
    out = _all_samples(jax.random.PRNGKey(key_seed))
    for x in out.values():
        assert x.dtype == _default_float()
    return {name: np.asarray(x) for name, x in out.items()}


def sample(name, key_seed=0):
    """[N, d] NumPy sample of SAMPLERS[name] (drawn under jit, n = N static)."""
    return _samples_np(key_seed)[name]


def _default_float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)


@pytest.mark.parametrize("name", SAMPLERS)
def test_shape_dtype_determinism(name):
    x = sample(name)
    assert x.shape == (N, SAMPLERS[name][1]) and np.all(np.isfinite(x))
    np.testing.assert_array_equal(np.asarray(_all_samples(K0)[name]), x)  # same key, same sample
    assert not np.allclose(sample(name, 1), x)  # another key, another sample


def test_eager_equals_jit():
    name = "gaussian"
    f, _ = SAMPLERS[name]
    np.testing.assert_allclose(np.asarray(f(K0, N)), sample(name), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SAMPLERS)
def test_shapes_for_any_n_by_tracing(name):
    f, d = SAMPLERS[name]
    out = jax.eval_shape(lambda k: f(k, 5), K0)  # traces without compiling
    assert out.shape == (5, d) and out.dtype == _default_float()


def test_float32_without_x64():
    with jax.enable_x64(False):
        x = jax.jit(sine_law, static_argnums=1)(K0, 4)
    assert x.shape == (4, 2) and x.dtype == jnp.float32


def test_partial_inside_jit_like_the_trainer_with_typed_key():
    sampler = functools.partial(eight_gaussians, radius=3.0, std=0.01)

    @jax.jit
    def step(key):
        return sampler(key, 16)

    x = np.asarray(step(jax.random.key(0)))
    assert x.shape == (16, 2)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 3.0, atol=0.1)


def test_gaussian_moments():
    x = sample("gaussian")
    se = GAUSS_STD / np.sqrt(N)
    assert np.all(np.abs(x.mean(0) - GAUSS_MEAN) < 5 * se)
    cov = np.cov(x, rowvar=False)
    np.testing.assert_allclose(np.diag(cov), GAUSS_STD**2, rtol=0.05)
    off = cov / np.outer(GAUSS_STD, GAUSS_STD) - np.eye(3)
    assert np.abs(off).max() < 0.05


def test_gaussian_isotropic_std():
    out = jax.eval_shape(lambda k: gaussian(k, 4, mean=[0.0, 0.0], std=3.0), K0)
    assert out.shape == (4, 2)


def test_sine_law_moments():
    x = sample("sine_law")
    e_sin = (1 - np.cos(3.0)) / 3
    var_sin = (3 - np.sin(6.0) / 2) / 6 - e_sin**2  # E sin^2 U[0,3] = (3 - sin(6)/2) / 6
    sd = np.sqrt([var_sin + 0.1, 3.0])
    assert np.all(np.abs(x.mean(0) - [e_sin + 2.0, 0.0]) < 5 * sd / np.sqrt(N))
    np.testing.assert_allclose(x[:, 1].var(), 3.0, rtol=0.04)  # 4 Var(Y1) = 4 * 9 / 12
    np.testing.assert_allclose(x[:, 0].var(), var_sin + 0.1, rtol=0.05)  # y2_var is a variance
    y1 = (x[:, 1] + 3) / 2  # exact recovery of Y1 ~ U[0, 3]
    assert y1.min() >= 0 and y1.max() <= 3 + 1e-5


def test_mixture_weights_and_stds():
    x = sample("gaussian_mixture")
    comp = np.argmin(((x[:, None, :] - MIX_MEANS[None]) ** 2).sum(-1), axis=1)
    freq = np.bincount(comp, minlength=4) / N
    p = MIX_WEIGHTS / MIX_WEIGHTS.sum()
    assert freq[2] == 0.0  # zero weight: never drawn
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / N) + 1e-12)
    for k in (0, 1, 3):
        np.testing.assert_allclose(x[comp == k].std(0), [MIX_STDS[k]] * 2, rtol=0.1)


def test_mixture_default_weights_and_per_axis_stds():
    x = np.asarray(gaussian_mixture(K0, 4000, means=[[-5.0, 0.0], [5.0, 0.0]], stds=[[0.1, 1.0], [0.1, 2.0]]))
    left = x[:, 0] < 0
    assert abs(left.mean() - 0.5) < 5 * 0.5 / np.sqrt(4000)
    np.testing.assert_allclose([x[left].std(0)[1], x[~left].std(0)[1]], [1.0, 2.0], rtol=0.1)
    np.testing.assert_allclose([x[left].std(0)[0], x[~left].std(0)[0]], [0.1, 0.1], rtol=0.1)


def test_eight_gaussians_modes_hit():
    modes = eight_gaussians_modes(2.0)
    assert modes.shape == (8, 2) and modes.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 2.0)
    x = sample("eight_gaussians")
    dist = np.linalg.norm(x[:, None, :] - modes[None], axis=-1)
    assert dist.min(1).max() < 5 * 0.02 * np.sqrt(2)  # within 5 std (per axis) of a mode
    freq = np.bincount(dist.argmin(1), minlength=8) / N
    assert np.all(np.abs(freq - 1 / 8) < 0.015)  # all 8 modes hit, equally


def test_grid_gaussians_modes():
    modes = grid_gaussians_modes(5, 2.0)
    assert modes.shape == (25, 2)
    assert sorted(set(modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    x = sample("grid_gaussians")
    dist = np.linalg.norm(x[:, None, :] - modes[None], axis=-1)
    assert dist.min(1).max() < 5 * 0.05 * np.sqrt(2)
    freq = np.bincount(dist.argmin(1), minlength=25) / N
    assert np.all(np.abs(freq - 1 / 25) < 0.01)
    assert grid_gaussians_modes(3, 1.0).shape == (9, 2)


def test_rings_geometry():
    x = sample("rings")
    r = np.linalg.norm(x, axis=1)
    assert np.allclose(np.minimum(np.abs(r - 1), np.abs(r - 3)), 0, atol=1e-5)
    assert abs((r > 2).mean() - 0.5) < 0.02
    ang = np.arctan2(x[:, 1], x[:, 0])
    assert np.all(np.abs(np.histogram(ang, bins=8, range=(-np.pi, np.pi))[0] / N - 1 / 8) < 0.015)


def test_uniform_box():
    u = sample("uniform")
    low, high = np.array([-1.0, 2.0, 0.0]), np.array([1.0, 6.0, 0.5])
    assert np.all(u >= low) and np.all(u <= high)
    np.testing.assert_allclose(u.mean(0), (low + high) / 2, atol=0.03)
    np.testing.assert_allclose(u.var(0), (high - low) ** 2 / 12, rtol=0.04)
    assert jax.eval_shape(lambda k: uniform(k, 3, low=0.0, high=1.0), K0).shape == (3, 1)
    assert jax.eval_shape(lambda k: uniform(k, 3, low=-1.0, high=[1.0, 2.0]), K0).shape == (3, 2)


def test_two_moons_geometry():
    m = sample("two_moons")
    upper = np.isclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    lower = np.isclose(np.linalg.norm(m - [1.0, 0.5], axis=1), 1.0, atol=1e-5)
    assert np.all(upper | lower) and abs(upper.mean() - 0.5) < 0.02
    assert np.all(m[upper, 1] >= -1e-6) and np.all(m[lower, 1] <= 0.5 + 1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda k: gaussian(k, 3, mean=[]), "mean"),
    (lambda k: gaussian(k, 3, mean=[[0.0]]), "mean"),
    (lambda k: gaussian(k, 3, mean=[0.0, 0.0], std=-1.0), "std"),
    (lambda k: gaussian(k, 3, mean=[0.0, 0.0], std=[1.0, 1.0, 1.0]), "std"),
    (lambda k: gaussian(k, 0, mean=[0.0]), "n must be"),
    (lambda k: gaussian(k, 2.5, mean=[0.0]), "n must be"),
    (lambda k: sine_law(k, 3, y1_range=(3.0, 0.0)), "low <= high"),
    (lambda k: sine_law(k, 3, y1_range=(0.0, 1.0, 2.0)), "pair"),
    (lambda k: sine_law(k, 3, y2_var=-0.1), "y2_var"),
    (lambda k: gaussian_mixture(k, 3, means=[[0.0], [1.0]], weights=[1.0, -1.0]), "weights"),
    (lambda k: gaussian_mixture(k, 3, means=[[0.0], [1.0]], weights=[0.0, 0.0]), "positive sum"),
    (lambda k: gaussian_mixture(k, 3, means=[[0.0], [1.0]], weights=[1.0]), "weights"),
    (lambda k: gaussian_mixture(k, 3, means=[0.0, 1.0]), "means"),
    (lambda k: gaussian_mixture(k, 3, means=[[0.0], [1.0]], stds=[1.0, 1.0, 1.0]), "stds"),
    (lambda k: gaussian_mixture(k, 3, means=[[0.0], [1.0]], stds=[1.0, -1.0]), "stds"),
    (lambda k: eight_gaussians(k, 3, std=-0.1), "std"),
    (lambda k: eight_gaussians(k, 3, radius=-1.0), "radius"),
    (lambda k: grid_gaussians(k, 3, size=0), "size"),
    (lambda k: rings(k, 3, radii=[]), "radii"),
    (lambda k: rings(k, 3, radii=[1.0, -1.0]), "radii"),
    (lambda k: uniform(k, 3, low=[0.0, 1.0], high=[1.0, 0.0]), "low <= high"),
    (lambda k: uniform(k, 3, low=[0.0, 0.0], high=[1.0, 1.0, 1.0]), "broadcast"),
    (lambda k: two_moons(k, 3, noise=-1.0), "noise"),
    (lambda k: gaussian(k, 3, mean=[0.0, float("nan")]), "finite"),
])
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call(jax.random.PRNGKey(0))


def test_traced_n_is_rejected_clearly():
    with pytest.raises(ValueError, match="static"):
        jax.jit(lambda k, n: sine_law(k, n))(jax.random.PRNGKey(0), 3)


def test_traced_parameters_are_accepted():
    f = jax.jit(lambda k, m: gaussian(k, 4, mean=m, std=0.0))
    np.testing.assert_allclose(np.asarray(f(jax.random.PRNGKey(0), jnp.array([1.0, 2.0]))), [[1.0, 2.0]] * 4)


def test_all_exported():
    import ot_jax.data as data

    for name in laws.__all__:
        assert getattr(data, name) is getattr(laws, name)


def test_hydra_partial_with_listconfig_parameters():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"_target_": "ot_jax.data.laws.gaussian_mixture", "_partial_": True,
                            "means": [[0.0, 1.0], [2.0, 3.0]], "stds": [0.1, 0.2], "weights": [1, 2]})
    f = instantiate(cfg)  # parameters arrive as OmegaConf ListConfig
    out = jax.eval_shape(lambda k: f(k, 8), K0)
    assert out.shape == (8, 2) and out.dtype == _default_float()
    bad = OmegaConf.create({"_target_": "ot_jax.data.laws.gaussian", "_partial_": True, "mean": [0.0], "std": -1.0})
    with pytest.raises(ValueError, match="std"):
        instantiate(bad)(K0, 8)
