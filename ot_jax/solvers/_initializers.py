"""Starting potentials for Sinkhorn (Thornton & Cuturi 2023, "Rethinking initialization of the
Sinkhorn algorithm"): the unregularised dual of a problem whose solution is known in closed
form, used as a warm start instead of zeros.

- ``"gaussian"``: fit a Gaussian to each weighted point cloud; the Kantorovich potential of
  the Gaussian problem for the squared Euclidean cost, ``f(x) = |x|^2 - 2 phi(x)`` with the
  Brenier potential ``phi(x) = x^T A x / 2 + t^T x`` of the Monge map ``T(x) = A x + t``.
- ``"sorting"``: one-dimensional clouds: the exact dual of the unregularised problem, read off
  the monotone (north-west corner) plan of the sorted points. Along the staircase of cells
  ``(i_k, j_k)`` of that plan the dual constraints are tight, ``f_{i_k} + g_{j_k} = C(i_k, j_k)``,
  so ``f`` changes by ``C(i_{k+1}, j_k) - C(i_k, j_k)`` each time the row index advances: a
  cumulative sum, ``O((n + m) log(n + m))``. For a cost convex in ``x - y`` (every ``|x - y|^p``,
  ``p >= 1``) the cost matrix of sorted points has the Monge property and these potentials
  are feasible, hence optimal; for other costs they are only a warm start.

Both return the row potential ``f: [n]`` in the solver's convention (``plan =
exp((f_i + g_j - C_ij) / eps)``, so ``f = phi_K + eps log a``); the solver completes the pair
with one half-iteration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ot_jax.geometry import PointCloud
from ot_jax.geometry.costs import SqEuclidean

__all__ = ["INITIALIZERS", "initial_row_potential"]

INITIALIZERS = {
    "gaussian": "Kantorovich potential between Gaussian fits of the two clouds "
    "(PointCloud with the squared Euclidean cost)",
    "sorting": "exact unregularised dual of a one-dimensional problem, from the sorted points "
    "(PointCloud with d = 1)",
}
"""Names accepted by ``sinkhorn(init=...)`` and what each computes."""


def check_initializer(kind: str, geom, solver: str):
    """Reject an unknown name, or a geometry the initializer cannot read, before tracing."""
    if kind not in INITIALIZERS:
        names = "; ".join(f"{name!r}: {meaning}" for name, meaning in INITIALIZERS.items())
        raise ValueError(f"{solver}: init must be a pair (f, g) of potentials or one of {names}; got {kind!r}")
    if not isinstance(geom, PointCloud):
        raise ValueError(f"{solver}: init={kind!r} needs a PointCloud geometry (it reads the points), "
                         f"got {type(geom).__name__}")
    if kind == "gaussian" and not isinstance(geom.cost_fn, SqEuclidean):
        raise ValueError(f"{solver}: init='gaussian' needs the squared Euclidean cost, "
                         f"got {type(geom.cost_fn).__name__}")
    if kind == "sorting" and geom.x.shape[-1] != 1:
        raise ValueError(f"{solver}: init='sorting' needs one-dimensional points (d = 1), "
                         f"got d = {geom.x.shape[-1]}; init='gaussian' works in any dimension")


def initial_row_potential(kind: str, geom: PointCloud, a: jax.Array, b: jax.Array, eps) -> jax.Array:
    """The row potential ``f: [n]`` of initializer ``kind`` (checked by :func:`check_initializer`).

    ``a: [n]``, ``b: [m]`` weights (any positive masses; normalised here), ``eps`` scalar.
    Entries with zero weight get ``-inf``. No derivative flows through it.
    """
    a, b, geom = jax.lax.stop_gradient((a, b, geom))
    kantorovich = _gaussian(geom.x, geom.y, a, b) if kind == "gaussian" else _sorting(geom, a, b)
    kantorovich = kantorovich - jnp.sum(a * kantorovich) / jnp.sum(a)
    live = a > 0
    return jnp.where(live, kantorovich + eps * jnp.log(jnp.where(live, a, 1.0)), -jnp.inf)


def _moments(x, w):
    """Weighted mean ``[d]`` and covariance ``[d, d]`` of ``x: [n, d]``."""
    w = w / jnp.sum(w)
    mean = w @ x
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred
    return mean, 0.5 * (cov + cov.T)


def _psd_power(cov, power):
    """``cov ** power`` of a symmetric PSD matrix, eigenvalues floored at a relative 1e-12 (or the
    float's resolution) so that the inverse roots of a singular fit stay finite."""
    w, v = jnp.linalg.eigh(cov)
    floor = jnp.maximum(jnp.max(w), jnp.finfo(cov.dtype).tiny) * max(1e-12, float(jnp.finfo(cov.dtype).eps))
    return (v * jnp.maximum(w, floor) ** power) @ v.T


def _gaussian(x, y, a, b):
    """``|x|^2 - 2 phi(x)`` for the Brenier potential ``phi`` of the Gaussian fits' Monge map."""
    mean_a, cov_a = _moments(x, a)
    mean_b, cov_b = _moments(y, b)
    root, inv_root = _psd_power(cov_a, 0.5), _psd_power(cov_a, -0.5)
    linear = inv_root @ _psd_power(root @ cov_b @ root, 0.5) @ inv_root
    linear = 0.5 * (linear + linear.T)
    shift = mean_b - linear @ mean_a
    brenier = 0.5 * jnp.einsum("nd,de,ne->n", x, linear, x) + x @ shift
    return jnp.sum(x**2, axis=1) - 2.0 * brenier


def _sorting(geom: PointCloud, a, b):
    """Exact unregularised row potential of a 1-D problem from the monotone plan."""
    n, m = geom.shape
    order_x, order_y = jnp.argsort(geom.x[:, 0]), jnp.argsort(geom.y[:, 0])
    xs, ys = geom.x[order_x], geom.y[order_y]
    ends_a = jnp.cumsum(a[order_x])[:-1] / jnp.sum(a)  # row i of the staircase ends at ends_a[i]
    ends_b = jnp.cumsum(b[order_y])[:-1] / jnp.sum(b)
    # The n + m - 2 moves of the staircase, in the order the cumulative masses are reached:
    # a row move (i -> i + 1) is flagged True.
    events = jnp.concatenate([ends_a, ends_b])
    is_row = jnp.concatenate([jnp.ones(n - 1, bool), jnp.zeros(m - 1, bool)])
    is_row = is_row[jnp.argsort(events, stable=True)]
    rows = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(is_row, dtype=jnp.int32)])
    cols = jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(~is_row, dtype=jnp.int32)])
    cell_cost = jax.vmap(geom.cost_fn)(xs[rows], ys[cols])  # [n + m - 1] costs along the staircase
    steps = jnp.where(is_row, cell_cost[1:] - cell_cost[:-1], 0.0)
    f_cells = jnp.concatenate([jnp.zeros(1, cell_cost.dtype), jnp.cumsum(steps)])
    # f of sorted row i is its value at the first cell of row i (constant along the row).
    first_cell = jnp.searchsorted(rows, jnp.arange(n), side="left")
    f_sorted = f_cells[first_cell]
    return jnp.zeros(n, f_sorted.dtype).at[order_x].set(f_sorted)
