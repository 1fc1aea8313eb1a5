"""Domain adaptation transports (ot_jax.tools.da) against POT's ot.da on the same data and parameters."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from ot_jax.data import rotated_moons, shifted_gaussians
from ot_jax.tools import da


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(40, 2))
    ys = (xs[:, 0] > 0).astype(int) + (xs[:, 1] > 0)
    xt = rng.normal(size=(33, 2)) @ np.array([[1.0, 0.3], [0.0, 1.0]]) + 1.0
    new_xs, new_xt = rng.normal(size=(7, 2)), rng.normal(size=(5, 2)) + 1.0
    return xs, ys, xt, new_xs, new_xt


def _compare(fitted, pot, problem, atol):
    xs, ys, xt, new_xs, new_xt = problem
    yt = np.arange(xt.shape[0]) % 3
    np.testing.assert_allclose(np.asarray(fitted.plan), pot.coupling_, atol=atol)
    np.testing.assert_allclose(da.transform(fitted), pot.transform(Xs=xs), atol=atol * 1e2)
    np.testing.assert_allclose(da.inverse_transform(fitted), pot.inverse_transform(Xt=xt), atol=atol * 1e2)
    np.testing.assert_allclose(da.transform_labels(fitted), pot.transform_labels(ys), atol=atol * 1e2)
    np.testing.assert_allclose(da.inverse_transform_labels(fitted, yt), pot.inverse_transform_labels(yt),
                               atol=atol * 1e2)
    np.testing.assert_allclose(da.transform(fitted, new_xs), pot.transform(Xs=new_xs), atol=atol * 1e2)
    np.testing.assert_allclose(da.inverse_transform(fitted, new_xt), pot.inverse_transform(Xt=new_xt),
                               atol=atol * 1e2)


def test_exact_transport_equals_pot(problem):
    xs, ys, xt, *_ = problem
    fitted = da.fit_transport(xs, xt, ys, method="emd")
    assert bool(fitted.converged)
    _compare(fitted, ot.da.EMDTransport().fit(Xs=xs, ys=ys, Xt=xt), problem, 1e-12)


@pytest.mark.parametrize("norm", [None, "max", "median"])
def test_sinkhorn_transport_equals_pot(problem, norm):
    xs, ys, xt, *_ = problem
    epsilon = 1.0 if norm is None else 0.05
    fitted = da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=epsilon, norm=norm, tol=1e-12)
    assert bool(fitted.converged)
    pot = ot.da.SinkhornTransport(reg_e=epsilon, norm=norm, tol=1e-14, max_iter=100000).fit(Xs=xs, ys=ys, Xt=xt)
    _compare(fitted, pot, problem, 1e-9)  # out of sample: the entropic map, POT's "continuous"


def test_sinkhorn_nearest_out_of_sample_equals_pot_ferradans(problem):
    xs, ys, xt, new_xs, _ = problem
    fitted = da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=0.05, norm="max", tol=1e-12)
    pot = ot.da.SinkhornTransport(reg_e=0.05, norm="max", tol=1e-14, max_iter=100000,
                                  out_of_sample_map="ferradans").fit(Xs=xs, ys=ys, Xt=xt)
    np.testing.assert_allclose(da.transform(fitted, new_xs, out_of_sample="nearest"), pot.transform(Xs=new_xs),
                               atol=1e-7)
    with pytest.raises(ValueError, match="out_of_sample"):
        da.transform(fitted, new_xs, out_of_sample="kernel")
    with pytest.raises(ValueError, match="extends a Sinkhorn plan"):
        da.transform(da.fit_transport(xs, xt, ys), new_xs, out_of_sample="entropic")


def test_lpl1_transport_equals_pot_and_lowers_the_lpl1_penalty(problem):
    xs, ys, xt, *_ = problem
    fitted = da.fit_transport(xs, xt, ys, method="lpl1", epsilon=0.05, eta=0.5, norm="max", tol=1e-10)
    assert bool(fitted.converged)
    pot = ot.da.SinkhornLpl1Transport(reg_e=0.05, reg_cl=0.5, norm="max", max_inner_iter=100000,
                                      tol=1e-13).fit(Xs=xs, ys=ys, Xt=xt)
    _compare(fitted, pot, problem, 1e-7)
    plain = da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=0.05, norm="max", tol=1e-10)
    # the class-regularised plan sends each target point mass from fewer classes
    assert float(da.lpl1_penalty(fitted.plan, fitted.ys, 3)) < 0.9 * float(da.lpl1_penalty(plain.plan, plain.ys, 3))


def test_semi_supervised_cost_equals_pot(problem):
    xs, ys, xt, *_ = problem
    yt = -np.ones(xt.shape[0], int)
    yt[:10] = np.arange(10) % 3
    fitted = da.fit_transport(xs, xt, ys, yt, method="emd", limit_max=10.0)
    pot = ot.da.EMDTransport(limit_max=10).fit(Xs=xs, ys=ys, Xt=xt, yt=yt)
    np.testing.assert_allclose(np.asarray(fitted.plan), pot.coupling_, atol=1e-12)
    plan = np.asarray(fitted.plan)
    mismatched = (ys[:, None] != yt[None, :]) & (yt[None, :] >= 0)
    assert plan[mismatched].sum() == 0.0  # no mass between labelled points of different classes


def test_ipot_transport_reaches_the_exact_plan(problem):
    xs, ys, xt, *_ = problem
    exact = da.fit_transport(xs, xt, ys)
    prox = da.fit_transport(xs, xt, ys, method="ipot", tol=1e-6, max_iters=20000)
    np.testing.assert_allclose(da.transform(prox), da.transform(exact), atol=1e-3)
    np.testing.assert_allclose(da.transform_labels(prox), da.transform_labels(exact), atol=1e-3)


@pytest.mark.parametrize("method, options", [("emd", {}), ("ipot", {"tol": 1e-6})])
def test_barycentric_mapping_recovers_a_translation(method, options):
    x = jax.random.normal(jax.random.PRNGKey(3), (30, 3))
    shift = jnp.array([2.0, -1.0, 0.5])
    fitted = da.fit_transport(x, x + shift, method=method, **options)
    np.testing.assert_allclose(da.transform(fitted), x + shift, atol=1e-3)
    np.testing.assert_allclose(da.inverse_transform(fitted), x, atol=1e-3)
    # a new point moves with its nearest training point: by the same translation
    np.testing.assert_allclose(da.transform(fitted, x[:4] + 0.01), x[:4] + 0.01 + shift, atol=1e-3)


def test_jit_and_the_estimator_class_agree_with_the_function(problem):
    xs, ys, xt, new_xs, _ = problem
    fit = jax.jit(functools.partial(da.fit_transport, method="sinkhorn", epsilon=0.05, norm="max", n_classes=3))
    jitted = fit(xs, xt, ys)
    eager = da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=0.05, norm="max")
    np.testing.assert_allclose(jitted.plan, eager.plan, atol=1e-10)
    model = da.OTDA(method="sinkhorn", epsilon=0.05, norm="max").fit(xs, ys, xt)
    np.testing.assert_allclose(model.coupling_, eager.plan, atol=1e-12)
    np.testing.assert_allclose(model.transform(new_xs), da.transform(eager, new_xs), atol=1e-12)
    np.testing.assert_allclose(model.transform_labels(), da.transform_labels(eager), atol=1e-12)
    with pytest.raises(ValueError, match="unknown option.*reg_e"):
        da.OTDA(method="sinkhorn", reg_e=0.1)
    with pytest.raises(ValueError, match="call fit first"):
        da.OTDA().transform()


def test_bad_input_names_the_argument(problem):
    xs, ys, xt, *_ = problem
    with pytest.raises(ValueError, match="ys must be a vector of 40 labels"):
        da.fit_transport(xs, xt, ys[:-1])
    with pytest.raises(ValueError, match=r"ys holds label 3, outside \[0, n_classes = 3\)"):
        da.fit_transport(xs, xt, np.where(ys == 2, 3, ys), n_classes=3)
    with pytest.raises(ValueError, match="ys must hold classes"):
        da.fit_transport(xs, xt, ys - 1)
    with pytest.raises(ValueError, match="integer class labels"):
        da.fit_transport(xs, xt, ys + 0.5)
    with pytest.raises(ValueError, match="xs contains NaN"):
        da.fit_transport(np.where(np.arange(40)[:, None] == 3, np.nan, xs), xt, ys)
    with pytest.raises(ValueError, match="xt has dimension|x has dimension"):
        da.fit_transport(xs, xt[:, :1], ys)
    with pytest.raises(ValueError, match="method must be one of"):
        da.fit_transport(xs, xt, ys, method="gl")
    with pytest.raises(ValueError, match="'lpl1' regularises by class"):
        da.fit_transport(xs, xt, method="lpl1")
    with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
        da.fit_transport(xs, xt, ys, method="sinkhorn", epsilon=0.0)
    with pytest.raises(ValueError, match="norm must be one of"):
        da.fit_transport(xs, xt, ys, norm="log")
    with pytest.raises(ValueError, match="pass n_classes"):
        jax.jit(functools.partial(da.fit_transport, method="emd"))(xs, xt, ys)
    with pytest.raises(ValueError, match="fitted without labels"):
        da.transform_labels(da.fit_transport(xs, xt))


def test_rotated_moons_rotate_about_the_centre():
    d0 = rotated_moons(jax.random.PRNGKey(0), 50, 60, angle=0.0, noise=0.0)
    d = rotated_moons(jax.random.PRNGKey(0), 50, 60, angle=90.0, noise=0.0)
    np.testing.assert_array_equal(d.xs, d0.xs)
    np.testing.assert_array_equal(d.yt, d0.yt)
    centre = jnp.array([0.5, 0.25])
    rel0, rel = d0.xt - centre, d.xt - centre
    np.testing.assert_allclose(rel, jnp.stack([-rel0[:, 1], rel0[:, 0]], axis=1), atol=1e-12)  # +90 degrees
    assert d.xs.shape == (50, 2) and d.xt.shape == (60, 2) and set(np.unique(d.ys)) == {0, 1}


def test_transport_labels_beat_the_source_classifier_on_shifted_blobs():
    d = shifted_gaussians(jax.random.PRNGKey(1), 90, 90, shift=3.0)
    from ot_jax.geometry import nearest_neighbors
    source_only = np.mean(np.asarray(d.ys)[np.asarray(nearest_neighbors(d.xt, d.xs)[0])] == np.asarray(d.yt))
    fitted = da.fit_transport(d.xs, d.xt, d.ys, method="emd")
    propagated = np.mean(np.argmax(np.asarray(da.transform_labels(fitted)), 1) == np.asarray(d.yt))
    assert source_only < 0.7 and propagated > 0.95


def _group_lasso_objective(plan, cost, ys, epsilon, eta):
    return np.sum(cost * plan) + epsilon * np.sum(plan * np.log(plan)) + eta * float(da.group_lasso(plan, ys, 3))


def test_group_lasso_transport_reaches_at_least_pots_objective(problem):
    xs, ys, xt, *_ = problem
    fitted = da.fit_transport(xs, xt, ys, method="l1l2", epsilon=0.05, eta=0.5, norm="max", tol=1e-12,
                              outer_iters=100)
    assert bool(fitted.converged)
    ours = np.asarray(fitted.plan)
    np.testing.assert_allclose(ours.sum(1), 1 / 40, rtol=1e-9)
    for max_iter in (10, 100):  # POT at its stopping point (its Armijo search leaves the entropy out)
        pot = ot.da.SinkhornL1l2Transport(reg_e=0.05, reg_cl=0.5, norm="max", max_iter=max_iter,
                                          max_inner_iter=100000, tol=1e-14).fit(Xs=xs, ys=ys, Xt=xt)
        value = _group_lasso_objective(ours, pot.cost_, ys, 0.05, 0.5)
        reference = _group_lasso_objective(pot.coupling_, pot.cost_, ys, 0.05, 0.5)
        assert value <= reference + 1e-12
        assert abs(value - reference) <= 1e-4 * abs(reference)
    # more conditional-gradient steps never raise the objective
    values = [_group_lasso_objective(np.asarray(da.fit_transport(xs, xt, ys, method="l1l2", epsilon=0.05, eta=0.5,
                                                                  norm="max", tol=1e-12, outer_iters=k).plan),
                                     pot.cost_, ys, 0.05, 0.5) for k in (2, 5, 20)]
    assert values[0] >= values[1] >= values[2] >= value - 1e-12


@pytest.mark.parametrize("method", ["emd"])  # vmap of the host solver's callback; Sinkhorn's vmap is tested with it
def test_vmap_over_targets_equals_a_loop(method):
    xs = jax.random.normal(jax.random.PRNGKey(0), (20, 2))
    ys = (xs[:, 0] > 0).astype(int)
    shifts = jnp.array([[0.0, 0.0], [1.0, 2.0], [-3.0, 1.0]])

    def mapped(shift, **kw):
        return da.transform(da.fit_transport(xs, xs + shift, ys, method=method, epsilon=0.01, **kw))

    batched = jax.vmap(functools.partial(mapped, n_classes=2))(shifts)
    np.testing.assert_allclose(batched, jnp.stack([mapped(s) for s in shifts]), atol=1e-10)


def test_mappings_are_differentiable_where_the_docs_say():
    xs = jax.random.normal(jax.random.PRNGKey(0), (12, 2))
    xt = jax.random.normal(jax.random.PRNGKey(1), (10, 2)) + 1.0
    ys = (xs[:, 0] > 0).astype(int)
    direction = jax.random.normal(jax.random.PRNGKey(2), xt.shape)

    def loss(xt, method):
        fitted = da.fit_transport(xs, xt, ys, method=method, epsilon=0.1, tol=1e-11, n_classes=2)
        return jnp.sum(da.transform(fitted) ** 2) + jnp.sum(da.transform_labels(fitted)[:, 0] * xt[:, 0])

    h = 1e-5
    value = jax.jit(loss, static_argnums=1)  # one compiled program per method, not one per eager op
    for method in ("sinkhorn", "emd"):
        grad = jax.jit(jax.grad(loss), static_argnums=1)(xt, method)
        fd = (value(xt + h * direction, method) - value(xt - h * direction, method)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(grad, direction), fd, rtol=1e-6)
    with pytest.raises(ValueError, match="not differentiable"):
        jax.grad(loss)(xt, "lpl1")
