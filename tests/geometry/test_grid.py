"""Grid: separable kernel operations equal the dense ones and never form an [n, n] array."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax
from ot_jax.geometry import Geometry, Grid

GRID_SHAPES = [(11,), (7, 5), (4, 3, 5)]


def make_grid(rng, grid_shape):
    """Axis 0 irregular and unsorted, the others evenly spaced with different bounds."""
    axes = [rng.uniform(-1.0, 1.0, grid_shape[0])]
    axes += [np.linspace(0.0, 0.5 + d, k) for d, k in enumerate(grid_shape[1:])]
    return Grid(tuple(axes))


def dense_of(grid):
    """The dense geometry of the same points, costs from exact coordinate differences."""
    pts = np.asarray(grid.points)
    return Geometry(jnp.asarray(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)))


def close(actual, desired, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol)


def all_eqns(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in its parameters (loops, conds, pjit)."""
    for eqn in jaxpr.eqns:
        yield eqn
        stack = list(eqn.params.values())
        while stack:
            p = stack.pop()
            if isinstance(p, (tuple, list)):
                stack.extend(p)
            elif hasattr(p, "eqns"):
                yield from all_eqns(p)
            elif hasattr(p, "jaxpr") and hasattr(p.jaxpr, "eqns"):
                yield from all_eqns(p.jaxpr)


def largest_intermediate(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    sizes = [int(np.prod(v.aval.shape)) for eqn in all_eqns(jaxpr) for v in eqn.outvars if hasattr(v.aval, "shape")]
    return max(sizes)


def kernel_ops(geom, f, g, v, eps):
    """Every kernel operation of a geometry, in one jitted call (one compilation per geometry)."""
    out = {}
    for axis, h in ((1, g), (0, f)):
        out[f"lse{axis}"] = geom.lse(h, eps, axis)
        out[f"kernel_apply{axis}"] = geom.kernel_apply(jnp.abs(v), eps, axis)
        out[f"apply_plan{axis}"] = geom.apply_plan(f, g, eps, v, axis)
    out["marginals"] = geom.marginals(f, g, eps)
    out["transport_cost"] = geom.transport_cost(f, g, eps)
    out["transport_cost_plan_gradient"] = geom.transport_cost(f, g, eps, plan_gradient=True)
    out["primal_dual_stats"] = geom.primal_dual_stats(f, g, eps)
    out["c_transform"] = geom.c_transform(g)
    out["max_cost"], out["mean_cost"] = geom.max_cost(), geom.mean_cost()
    out["plan"], out["all_finite"] = geom.plan(f, g, eps), geom.all_finite()
    return out


@pytest.mark.parametrize("grid_shape", GRID_SHAPES, ids=str)
def test_ops_equal_dense(rng, grid_shape):
    grid = make_grid(rng, grid_shape)
    dense = dense_of(grid)
    n = int(np.prod(grid_shape))
    assert grid.shape == (n, n) and grid.grid_shape == grid_shape
    close(grid.cost_matrix, dense.cost, rtol=0, atol=0)
    f, g, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    f[1], g[::4] = -np.inf, -np.inf  # zero-mass pixels
    ops = jax.jit(kernel_ops)
    ours, ref = ops(grid, f, g, v, 0.2), ops(dense, f, g, v, 0.2)
    plan = ref["plan"]  # the dense references of apply_plan/marginals are the materialised plan
    close(ref["apply_plan1"], plan @ v)
    close(ref["apply_plan0"], v @ plan)
    close(ref["marginals"], (plan.sum(1), plan.sum(0)))
    assert set(ours) == set(ref)
    for name in ours:
        for x, y in zip(jax.tree_util.tree_leaves(ours[name]), jax.tree_util.tree_leaves(ref[name])):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=name)


def test_blocked_fallback_equals_separable(rng):
    """Operations a Grid does not override run lazily in row blocks over its points."""
    from ot_jax.geometry import AbstractGeometry

    grid = Grid(make_grid(rng, (5, 3)).axes, batch_size=4)
    f, g = rng.normal(size=15), rng.normal(size=15)

    @jax.jit
    def both(grid, f, g):
        base = (AbstractGeometry.lse(grid, g, 0.2, 1), AbstractGeometry.transport_cost(grid, f, g, 0.2),
                AbstractGeometry.c_transform(grid, g), AbstractGeometry.mean_cost(grid))
        return base, (grid.lse(g, 0.2, 1), grid.transport_cost(f, g, 0.2), grid.c_transform(g), grid.mean_cost())

    for x, y in zip(*both(grid, f, g)):
        close(x, y)


def test_points_are_c_order_and_regular_constructor():
    grid = Grid.regular((3, 2), bounds=((0, 2), (10, 11)))
    np.testing.assert_array_equal(grid.axes[0], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(grid.axes[1], [10.0, 11.0])
    # C order: the last axis varies fastest, as in image.reshape(-1).
    np.testing.assert_array_equal(grid.points[:3], [[0.0, 10.0], [0.0, 11.0], [1.0, 10.0]])
    img = np.arange(6.0).reshape(3, 2)
    assert grid.points[int(np.argmax(img.reshape(-1)))].tolist() == [2.0, 11.0]
    assert Grid.regular((4, 4), bounds=(0, 1)).grid_shape == (4, 4)
    assert Grid((np.arange(3),)).dtype == jnp.result_type(float)  # integer coordinates are cast
    assert Grid.regular((5,), dtype=jnp.float32).dtype == jnp.float32


def test_all_minus_inf_and_float32():
    grid = Grid.regular((6, 4))
    h = jnp.full(24, -jnp.inf)

    @jax.jit
    def check(t):
        mass = lambda t: jnp.sum(jnp.exp(grid.lse(h.at[0].set(t[0]), 0.1, 1)))
        return grid.lse(h, 0.1, 1), jax.grad(mass)(t)

    out, grad = check(jnp.zeros(24))
    assert np.all(np.asarray(out) == -np.inf)
    assert np.all(np.isfinite(np.asarray(grad))) and np.all(np.asarray(grad)[1:] == 0)
    g32 = Grid.regular((6, 4), dtype=jnp.float32)
    h32 = jnp.linspace(-1, 1, 24, dtype=jnp.float32)
    out = jax.jit(lambda h: g32.lse(h, jnp.float32(0.05), 1))(h32)
    assert out.dtype == jnp.float32
    close(out, dense_of(Grid.regular((6, 4))).lse(np.asarray(h32, np.float64), 0.05, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid_shape, mode", [((7, 5), "log"), ((3, 4, 2), "scaling")], ids=str)
def test_sinkhorn_on_grid_equals_dense(rng, grid_shape, mode):
    grid = make_grid(rng, grid_shape)
    n = grid.shape[0]
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    a[[0, 5]] = 0.0  # zero-mass pixels: -inf potentials flow through the separable lse
    a, b = a / a.sum(), b / b.sum()

    @jax.jit
    def solve(geom, a, b):
        out = ot_jax.sinkhorn(geom, a, b, epsilon=0.05, tol=1e-10, mode=mode)
        return out, out.apply(b, axis=1)

    (ours, ours_pb), (ref, ref_pb) = solve(grid, a, b), solve(dense_of(grid), a, b)
    assert bool(ours.converged) and int(ours.n_iters) == int(ref.n_iters)
    close(ours.cost, ref.cost, rtol=1e-10)
    close(ours.reg_cost, ref.reg_cost, rtol=1e-10)
    close(ours.lower_bound, ref.lower_bound, rtol=1e-10)
    close(ours.f[a > 0], ref.f[a > 0], atol=1e-9)
    close(ours.g, ref.g, atol=1e-9)
    close(ours_pb, ref_pb, atol=1e-12)


def test_ipot_on_grid_equals_dense(rng):
    grid = make_grid(rng, (6, 5))
    dense = dense_of(grid)
    n = grid.shape[0]
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    b[3] = 0.0
    a, b = a / a.sum(), b / b.sum()
    # A fixed number of steps (grid LPs are degenerate, so the certified gap closes slowly).
    solve = jax.jit(lambda geom: ot_jax.ipot(geom, a, b, tol=0.0, max_iters=200, keep_best=False))
    ours, ref = solve(grid), solve(dense)
    assert int(ours.n_iters) == int(ref.n_iters) == 200
    close(ours.cost, ref.cost, rtol=1e-10)
    close(ours.lower_bound, ref.lower_bound, rtol=1e-10)
    close(ours.errors, ref.errors, rtol=1e-6)
    close(ours.f, ref.f, atol=1e-9)
    close(ours.g[b > 0], ref.g[b > 0], atol=1e-9)
    assert float(ours.lower_bound) <= float(ot_jax.emd(dense, a, b).cost) + 1e-12  # certified


def test_gradients_match_dense(rng):
    grid = make_grid(rng, (5, 4))
    n = grid.shape[0]
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    a, b = a / a.sum(), b / b.sum()
    f, g, eps = rng.normal(size=n), rng.normal(size=n), 0.3
    solve = lambda geom, a, b: ot_jax.sinkhorn(geom, a, b, epsilon=0.05, tol=1e-10).reg_cost
    ops = {
        "lse": lambda geom: jnp.sum(jnp.sin(geom.lse(g, eps, 1))),
        "kernel_apply": lambda geom: jnp.sum(jnp.sin(geom.kernel_apply(jnp.abs(g), eps, 0))),
        "transport_cost": lambda geom: geom.transport_cost(f, g, eps),
        "transport_cost_plan_gradient": lambda geom: geom.transport_cost(f, g, eps, plan_gradient=True),
        "apply_plan": lambda geom: jnp.sum(jnp.sin(geom.apply_plan(f, g, eps, g, 1))),
        "c_transform": lambda geom: jnp.sum(geom.c_transform(g)),
        "mean_cost": lambda geom: geom.mean_cost(),
    }

    def grads(x0, a, b, f, g, eps, dense: bool):
        # Coordinates: the dense geometry is built from Grid.cost_matrix, differentiable in the axes.
        make = lambda x0: Grid((x0, grid.axes[1]))
        if dense:
            make = lambda x0, make=make: Geometry(make(x0).cost_matrix)
        out = {name: jax.grad(lambda x: op(make(x)))(x0) for name, op in ops.items()}
        out["sinkhorn: coordinates, weights"] = jax.grad(lambda x0, a, b: solve(make(x0), a, b), (0, 1, 2))(x0, a, b)
        cost = lambda f, g, eps: make(x0).transport_cost(f, g, eps, plan_gradient=True)
        out["potentials_eps"] = jax.grad(cost, (0, 1, 2))(f, g, eps)
        return out

    grads = jax.jit(grads, static_argnames="dense")
    ours = grads(grid.axes[0], a, b, f, g, eps, dense=False)
    ref = grads(grid.axes[0], a, b, f, g, eps, dense=True)
    for name in ours:
        for x, y in zip(jax.tree_util.tree_leaves(ours[name]), jax.tree_util.tree_leaves(ref[name])):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9, err_msg=name)


def test_jit_vmap_and_pytree(rng):
    grid = make_grid(rng, (6, 4))
    dense = dense_of(grid)
    hs = rng.normal(size=(3, 24))
    lse = jax.jit(jax.vmap(lambda geom, h: geom.lse(h, 0.2, 1), in_axes=(None, 0)))
    close(lse(grid, hs), lse(dense, hs))
    leaves, treedef = jax.tree_util.tree_flatten(Grid(grid.axes, batch_size=7))
    assert len(leaves) == 2 and jax.tree_util.tree_unflatten(treedef, leaves).batch_size == 7
    # A batch of grids (stacked leaves: the constructor's checks do not run on unflatten),
    # and a grid built inside a traced function from traced coordinates.
    other = Grid((rng.uniform(-1, 1, 6), grid.axes[1] * 2.0))
    batch = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), grid, other)
    cost = lambda geom: ot_jax.sinkhorn(geom, epsilon=0.1).cost
    costs = jax.jit(jax.vmap(cost))(batch)
    single = jax.jit(lambda x0: cost(Grid((x0, grid.axes[1]))))(grid.axes[0])
    close(costs, [single, jax.jit(cost)(dense_of(other))], rtol=1e-10)


def test_never_forms_n_by_n():
    grid = Grid.regular((40, 40))
    n = grid.shape[0]
    h = jnp.linspace(-1.0, 1.0, n)
    limit = n * n  # 2,560,000
    assert largest_intermediate(lambda h: grid.lse(h, 0.01, 1), h) < limit
    assert largest_intermediate(lambda h: grid.lse(h, 0.01, 1), h) <= n * 40
    assert largest_intermediate(lambda v: grid.kernel_apply(v, 0.01, 0), h) < limit
    # Whole solves: iterations, stopping rules, costs and dual bounds are all separable.
    a = jax.nn.softmax(h)
    assert largest_intermediate(lambda a: ot_jax.sinkhorn(grid, a, epsilon=0.01).reg_cost, a) < limit
    assert largest_intermediate(lambda a: ot_jax.sinkhorn(grid, a, epsilon=0.5, mode="scaling").cost, a) < limit
    assert largest_intermediate(lambda a: ot_jax.ipot(grid, a).cost, a) < limit
    # The check itself sees dense geometries' n x n arrays.
    assert largest_intermediate(lambda h: Geometry(grid.cost_matrix).lse(h, 0.01, 1), h) >= limit


@pytest.mark.parametrize(
    "axes, match",
    [
        ((np.zeros((3, 2)),), "axis 0 must be a 1-D"),
        ((np.linspace(0, 1, 3), np.float64(1.0)), "axis 1 must be a 1-D"),
        ((np.linspace(0, 1, 3), np.zeros(0)), "axis 1 is empty"),
        ((np.array([0.0, np.nan, 1.0]),), "non-finite coordinate nan at index 1"),
        ((np.linspace(0, 1, 3), np.array([0.0, np.inf])), "axis 1 has a non-finite"),
        ((), "1 to 3 axes"),
        ((np.zeros(2),) * 4, "1 to 3 axes"),
        (np.linspace(0, 1, 3), "tuple of 1-D coordinate arrays"),
        ((np.zeros(2, dtype=complex),), "complex"),
    ],
)
def test_bad_input_raises(axes, match):
    with pytest.raises(ValueError, match=match):
        Grid(axes)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="batch_size"):
        Grid((np.zeros(2),), batch_size=0)
    with pytest.raises(ValueError, match="shape must be positive"):
        Grid.regular((3, 0))
    with pytest.raises(ValueError, match="bounds"):
        Grid.regular((3, 4), bounds=((0, 1),) * 3)
    with pytest.raises(ValueError, match=r"h must have shape \(12,\)"):
        Grid.regular((3, 4)).lse(jnp.zeros((3, 4)), 0.1, 1)
    with pytest.raises(ValueError, match="points contain NaN"):
        ot_jax.sinkhorn(jax.tree_util.tree_map(lambda x: x * np.nan, Grid.regular((3,))), epsilon=0.1)
