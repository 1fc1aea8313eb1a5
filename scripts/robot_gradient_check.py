"""ROBOT's hypergradient against AltMin's gradient step at the same parameters.

AltMin with gradient steps (``trainer.method=alt_min``) descends on the squared error of the
pairs the exact assignment chose, ``<dC, P*>``; ROBOT descends on ``d/dtheta <C, S_eps*>``. As
eps -> 0 the second tends to the first (envelope theorem of the LP), so at the trainer's
eps = 0.01 x mean cost the two trainers take nearly the same steps. This prints the cosine and
the relative difference of the two gradients on the linear protocol's data (n = 500, d = 5, fully
shuffled, SNR 100) at the least-squares fit, halfway to the truth and near the truth, for eps =
0.01, 0.1 and 1 x mean cost. Usage: ``python scripts/robot_gradient_check.py``. Float64."""
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import ot_jax
from ot_jax.data.unpaired import shuffled_regression
from ot_jax.losses.robot import residual_cost, robot_loss

n = 500
data = shuffled_regression(jax.random.PRNGKey(0), n, d_unpaired=5, snr=100.0)
x, y = data.x_unpaired, data.y
beta_ls = jnp.linalg.lstsq(x, y)[0]  # the rows as given
for label, w in [("least squares", beta_ls), ("halfway to the truth", 0.5 * (beta_ls + data.beta)),
                 ("near the truth", data.beta + 0.05 * jax.random.normal(jax.random.PRNGKey(1), data.beta.shape))]:
    cost = residual_cost(y, x @ w).cost_matrix
    perm = ot_jax.assignment(cost, method="scipy").permutation
    g_alt = jax.grad(lambda w: jnp.mean(jnp.sum((y - (x @ w)[perm]) ** 2, -1)))(w)
    for eps in (0.01, 0.1, 1.0):
        g_rob = jax.grad(lambda w: robot_loss(residual_cost(y, x @ w), epsilon=eps, relative_epsilon=True,
                                              tol=1e-8, max_iters=50000)[0])(w)
        cos = float(jnp.vdot(g_rob, g_alt) / (jnp.linalg.norm(g_rob) * jnp.linalg.norm(g_alt)))
        rel = float(jnp.linalg.norm(g_rob - g_alt) / jnp.linalg.norm(g_alt))
        print(f"{label:22s} eps={eps:5.2f} x mean: cosine {cos:.4f}  ||g_robot - g_altmin|| / ||g_altmin|| = {rel:.3f}")
