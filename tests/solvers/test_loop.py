"""The shared loop: while- and scan-execution give the same iterates; errors trace; stop rules."""

import jax
import jax.numpy as jnp
import numpy as np

from ot_jax.solvers.loop import fixed_point_loop


def _halving(state, it, check):
    new = state * 0.5
    return new, jnp.abs(new) if check else jnp.zeros(())


def test_while_and_scan_agree_and_stop_at_tol():
    for diff in (False, True):
        out = fixed_point_loop(_halving, jnp.asarray(1.0), max_iters=100, check_every=3, tol=1e-3,
                               differentiable=diff, dtype=jnp.float64)
        # 0.5**9 = 2e-3 > tol, 0.5**12 = 2.4e-4 <= tol: stops after 4 rounds of 3.
        assert int(out.n_iters) == 12
        np.testing.assert_allclose(float(out.state), 0.5**12)
        np.testing.assert_allclose(np.asarray(out.errors[:4]), [0.5**3, 0.5**6, 0.5**9, 0.5**12])
        assert np.all(np.asarray(out.errors[4:]) == -1)


def test_scan_mode_is_reverse_differentiable():
    grad = jax.grad(lambda x: fixed_point_loop(_halving, x, max_iters=10, check_every=2, tol=0.0,
                                               differentiable=True, dtype=jnp.float64).state)(2.0)
    np.testing.assert_allclose(float(grad), 0.5**10)
