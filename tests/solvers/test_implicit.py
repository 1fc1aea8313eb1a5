"""Implicit differentiation of Sinkhorn (the default grad_mode) against float64 finite differences.

Also IPOT's unrolled derivatives (the plan gradient it offers), against finite
differences of the same fixed number of iterations.

Every output a result offers (cost, reg_cost, plan, apply, marginals, centred f and g)
is differentiated in every input (points, cost matrix, a, b, epsilon), in forward
mode (jvp) and reverse mode (vjp), and compared with central differences of the
same function along a random direction: relative error <= 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ot_jax

N, M, D = 9, 7, 2
TIGHT = dict(tol=1e-13, max_iters=20000)
RNG = np.random.default_rng(3)
X = RNG.normal(size=(N, D))
Y = RNG.normal(size=(M, D)) + 0.5
A = RNG.dirichlet(np.ones(N))
B = RNG.dirichlet(np.ones(M))
W = RNG.normal(size=(N, M))
U, V = RNG.normal(size=M), RNG.normal(size=N)
OUTPUTS = ("cost", "reg_cost", "plan_w", "col_sums", "apply", "rows", "f_centred", "g_centred")


def centred(h: jax.Array) -> jax.Array:
    """Potentials minus their mean over the points of positive weight (0 on the others, which are -inf)."""
    live = jnp.isfinite(h)
    h = jnp.where(live, h, 0.0)
    return jnp.where(live, h - jnp.sum(h) / jnp.sum(live), 0.0)


def outputs(out) -> jax.Array:
    """Every differentiable output of a result, as one vector ``[8]`` (order of OUTPUTS)."""
    rows, _ = out.marginals
    f, g = centred(out.f), centred(out.g)
    return jnp.stack([
        out.cost,
        out.reg_cost,
        jnp.sum(out.plan * W),
        jnp.sum(jnp.sum(out.plan, axis=0) * U),  # = <b, U>: its derivative in the points is 0
        jnp.sum(out.apply(jnp.asarray(U)) ** 2),
        jnp.sum(rows * V),
        jnp.sum(f * V),
        jnp.sum(g * U),
    ])


def check_derivatives(fn, p, directions: dict, h=1e-6, rtol=1e-5, forward=False):
    """vjp (and jvp if ``forward``) of ``fn: p [k] -> [8]`` against central differences.

    One reverse-mode Jacobian, then for each named direction ``d`` (one input moved
    at a time) every output's derivative along ``d`` is compared with
    ``(fn(p + h d) - fn(p - h d)) / 2h``. Returns the finite differences ``{name: [8]}``.
    """
    p = jnp.asarray(p)
    jac_rev = np.asarray(jax.jacrev(fn)(p))  # [8, k]: one vjp per output
    fds = {}
    for which, d in directions.items():
        d = np.asarray(d, p.dtype)
        fd = (np.asarray(fn(p + h * d)) - np.asarray(fn(p - h * d))) / (2 * h)
        modes = {"vjp": jac_rev @ d}
        if forward:
            modes["jvp"] = np.asarray(jax.jvp(fn, (p,), (jnp.asarray(d),))[1])
        scale = np.maximum(np.abs(fd), 1e-3 * np.abs(fd).max())
        for mode, derivative in modes.items():
            for name, f_, v_, s_ in zip(OUTPUTS, fd, derivative, scale):
                assert abs(v_ - f_) <= rtol * s_, (which, name, mode, v_, f_)
        fds[which] = fd
    return fds


def _solve(geom, a=A, b=B, epsilon=0.1, **kw):
    return ot_jax.sinkhorn(geom, a, b, epsilon=epsilon, **TIGHT, **kw)


def _pack(*parts):
    return np.concatenate([np.ravel(p) for p in parts])


def _directions(sizes: dict, balanced=("a", "b")) -> dict:
    """One random direction per input of a packed parameter vector (zero-sum for the weights)."""
    total, out, start = sum(sizes.values()), {}, 0
    for name, size in sizes.items():
        d = np.zeros(total)
        step = RNG.normal(size=size)
        if name in balanced:
            step -= step.mean()  # keep the total mass: a and b must stay balanced
        d[start:start + size] = step
        out[name], start = d, start + size
    return out


def test_every_output_wrt_points_weights_and_epsilon():
    sizes = {"x": N * D, "y": M * D, "a": N, "b": M, "epsilon": 1}

    def fn(p):
        x, y = p[:N * D].reshape(N, D), p[N * D:(N + M) * D].reshape(M, D)
        a, b, eps = p[(N + M) * D:(N + M) * D + N], p[-M - 1:-1], p[-1]
        return outputs(_solve(ot_jax.PointCloud(x, y), a, b, epsilon=eps))

    fds = check_derivatives(jax.jit(fn), _pack(X, Y, A, B, 0.1), _directions(sizes), forward=True)
    for which in ("x", "y", "a", "b", "epsilon"):
        fd = fds[which]
        assert abs(fd[3]) < 1e-7 and abs(fd[5]) < 1e-7 or which in ("a", "b"), (which, fd)  # marginals fixed
        assert np.all(np.abs(fd[[0, 1, 2, 4, 6, 7]]) > 1e-4), (which, fd)  # non-trivial directions


def test_every_output_wrt_the_cost_matrix_both_orientations():
    """A dense cost, and the transposed problem (more columns than rows: the other Schur complement)."""
    cost = np.asarray(ot_jax.PointCloud(X, Y).cost_matrix)
    directions = {"cost": RNG.normal(size=cost.size)}
    check_derivatives(jax.jit(lambda c: outputs(_solve(c.reshape(N, M)))), cost.ravel(), directions)
    check_derivatives(jax.jit(lambda c: _t_outputs(_solve(c.reshape(N, M).T, B, A))), cost.ravel(), directions)


def _t_outputs(out):
    """The outputs of the transposed problem, read in the original orientation."""
    rows, cols = out.marginals
    f, g = centred(out.f), centred(out.g)
    return jnp.stack([
        out.cost, out.reg_cost, jnp.sum(out.plan.T * W), jnp.sum(jnp.sum(out.plan, axis=1) * U),
        jnp.sum(out.apply(jnp.asarray(U), axis=0) ** 2), jnp.sum(cols * V),
        jnp.sum(g * V), jnp.sum(f * U),
    ])


def test_zero_weights_keep_finite_exact_derivatives():
    a = A.copy()
    a[[1, 4]] = 0.0
    a /= a.sum()
    cost = np.asarray(ot_jax.PointCloud(X, Y).cost_matrix)
    fn = jax.jit(lambda p: outputs(_solve(p[:-1].reshape(N, M), a, B, epsilon=p[-1])))
    fds = check_derivatives(fn, _pack(cost, 0.1), _directions({"cost": N * M, "epsilon": 1}))
    assert all(np.all(np.isfinite(fd)) for fd in fds.values())
    # Unrolled, the epsilon derivative is finite too (no 0 * inf at the -inf potentials) and agrees.
    loss = lambda eps, mode: ot_jax.sinkhorn(cost, a, B, epsilon=eps, tol=1e-10, max_iters=400, grad_mode=mode).cost
    unrolled = float(jax.jit(jax.grad(lambda e: loss(e, "unroll")))(0.1))
    np.testing.assert_allclose(unrolled, float(jax.jit(jax.grad(lambda e: loss(e, "implicit")))(0.1)), rtol=1e-6)


def test_batched_under_vmap():
    xs = jnp.stack([X, 1.2 * X, X - 0.4])
    loss = jax.jit(lambda x: _solve(ot_jax.PointCloud(x, Y)).cost)
    batched = jax.jit(jax.vmap(jax.grad(loss)))(xs)
    for k in range(3):
        d = RNG.normal(size=X.shape)
        fd = (loss(xs[k] + 1e-6 * d) - loss(xs[k] - 1e-6 * d)) / 2e-6
        np.testing.assert_allclose(np.vdot(batched[k], d), fd, rtol=1e-5)


def test_hessian_vector_product_of_cost():
    """Second order: jvp of the gradient (the rule differentiates itself)."""
    grad = jax.jit(jax.grad(lambda x: _solve(ot_jax.PointCloud(x, Y)).cost))
    v = jnp.asarray(RNG.normal(size=X.shape))
    hvp = jax.jit(lambda x: jax.jvp(grad, (x,), (v,))[1])(jnp.asarray(X))
    fd = (grad(X + 1e-5 * v) - grad(X - 1e-5 * v)) / 2e-5
    np.testing.assert_allclose(hvp, fd, rtol=1e-5, atol=1e-6 * float(jnp.abs(fd).max()))


def test_cost_gradient_is_not_the_plan_fixed_one():
    """The measured defect: differentiating .cost must not return the plan-fixed (envelope) gradient."""
    loss = lambda x, mode: ot_jax.sinkhorn(ot_jax.PointCloud(x, Y), A, B, epsilon=0.5, tol=1e-13,
                                           max_iters=1000, grad_mode=mode).cost
    d = np.random.default_rng(11).normal(size=X.shape)  # own generator: independent of test order
    value = jax.jit(lambda x: loss(x, "implicit"))
    fd = (value(X + 1e-6 * d) - value(X - 1e-6 * d)) / 2e-6
    grads = {mode: np.asarray(jax.jit(jax.grad(lambda x: loss(x, mode)))(X))
             for mode in ("implicit", "unroll", "envelope")}
    for mode in ("implicit", "unroll"):
        assert abs(np.vdot(grads[mode], d) - fd) < 1e-5 * abs(fd), mode
    np.testing.assert_allclose(grads["unroll"], grads["implicit"], rtol=1e-6, atol=1e-9)
    # The plan-fixed gradient is off by far more than the solver's accuracy.
    assert np.linalg.norm(grads["envelope"] - grads["implicit"]) > 1e-2 * np.linalg.norm(grads["implicit"])


@pytest.mark.parametrize("field", ["plan", "marginals"])
def test_envelope_mode_refuses_to_differentiate_the_plan(field):
    cost = jnp.asarray(ot_jax.PointCloud(X, Y).cost_matrix)
    fn = lambda c: jax.tree_util.tree_reduce(
        lambda s, v: s + jnp.sum(v), getattr(_solve(c, grad_mode="envelope"), field), 0.0)
    with pytest.raises(ValueError, match="not differentiable with grad_mode='envelope'"):
        jax.grad(fn)(cost)
    assert np.isfinite(float(fn(cost)))  # the values themselves are fine


def test_lazy_backward_pass_never_builds_the_cost_matrix():
    n = m = 48
    x, y = RNG.normal(size=(n, D)), RNG.normal(size=(m, D))

    def loss(x):
        out = ot_jax.sinkhorn(ot_jax.PointCloud(x, y, batch_size=8), epsilon=0.5, tol=1e-6)
        return out.cost + jnp.sum(out.apply(jnp.ones(m)) ** 2)

    jaxpr = jax.make_jaxpr(jax.grad(loss))(x)
    shapes = set()

    def visit(jp):
        for eqn in jp.eqns:
            for var in list(eqn.outvars) + [v for v in eqn.invars if hasattr(v, "aval")]:
                shapes.add(tuple(getattr(var.aval, "shape", ())))
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else [param]:
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        visit(getattr(inner, "jaxpr", inner))

    visit(jaxpr.jaxpr)
    assert (8, m) in shapes  # the blocks are there
    assert not any(len(s) >= 2 and s[-2:] == (n, m) for s in shapes), sorted(s for s in shapes if len(s) >= 2)


def test_float32_gradient_agrees_with_float64(float32):
    x32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32)
    loss = lambda x, y: (lambda o: o.cost + jnp.sum(o.plan * W))(
        ot_jax.sinkhorn(ot_jax.PointCloud(x, y), epsilon=0.1, tol=1e-5, max_iters=2000))
    g32 = np.asarray(jax.jit(jax.grad(loss))(x32, y32))
    jax.config.update("jax_enable_x64", True)
    g64 = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(X), jnp.asarray(Y)))
    np.testing.assert_allclose(g32, g64, atol=2e-3 * np.abs(g64).max())


@pytest.mark.parametrize("zero_weights", [False, True])
def test_ipot_unrolled_outputs_match_finite_differences_of_the_same_iterations(zero_weights):
    """IPOT's plan gradient is the derivative of its iterations (grad_mode="unroll").

    The exact plan is piecewise constant in its inputs, so what IPOT offers for ``plan``,
    ``apply``, ``marginals``, ``f`` and ``g`` is the derivative of the function its
    iterations compute: with ``tol=0`` the solver runs exactly ``max_iters`` (12) proximal
    steps, a smooth function of (points, weights, beta), and finite differences of that
    same function must agree. ``cost`` is clipped into the certified interval, and its
    derivative is that of the clipped value. With zero weights (``-inf`` potentials) the
    derivatives stay finite, in beta too.
    """
    a = A.copy()
    if zero_weights:
        a[[1, 4]] = 0.0
        a /= a.sum()
    sizes = {"x": N * D, "y": M * D, "a": N, "b": M, "beta": 1}

    def fn(p):
        x, y = p[:N * D].reshape(N, D), p[N * D:(N + M) * D].reshape(M, D)
        a, b, beta = p[(N + M) * D:(N + M) * D + N], p[-M - 1:-1], p[-1]
        out = ot_jax.ipot(ot_jax.PointCloud(x, y), a, b, beta=beta, tol=0.0, max_iters=12, grad_mode="unroll")
        return outputs(out)

    directions = _directions(sizes)
    if zero_weights:  # moving a zero weight changes the support: not a smooth direction
        directions.pop("a")
    fds = check_derivatives(jax.jit(fn), _pack(X, Y, a, B, 0.5), directions)
    assert all(np.all(np.isfinite(fd)) for fd in fds.values())


def test_conjugate_gradients_survive_float32_at_large_size(float32):
    """The adjoint solve in float32 at m = 10,000 with eigenvalues in [0.001, 0.1] (lineax's CG
    declares breakdown there and returns NaN, which made Sinkhorn's float32 gradient NaN at
    n = 10,000): the solution is finite and accurate."""
    from ot_jax.solvers._implicit import conjugate_gradients

    m = 10_000
    diag = jnp.asarray(np.random.default_rng(0).uniform(0.001, 0.1, size=m), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).normal(size=m), jnp.float32)
    y = jax.jit(lambda b: conjugate_gradients(lambda v: diag * v, b, tol=1e-4, max_steps=4 * m))(b)
    assert bool(jnp.all(jnp.isfinite(y)))
    np.testing.assert_allclose(np.asarray(diag * y), np.asarray(b), atol=2e-4 * float(jnp.linalg.norm(b)))
