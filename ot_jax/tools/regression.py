"""Linear regression without correspondence: the classical estimators ROBOT is compared with.

The data are :class:`ot_jax.data.unpaired.Unpaired`: responses ``y: [n, p]`` observed with
features ``x_paired: [n, d1]`` (same rows), and features ``x_unpaired: [m, d2]`` whose rows were
shuffled. A *matching* ``[n]`` int pairs row ``i`` of ``y`` with row ``matching[i]`` of
``x_unpaired``; the estimators below return a coefficient matrix ``beta: [d1 + d2 + 1, p]``
(last row: the intercept) and the matching they settle on. They run on the host (NumPy, and
:func:`ot_jax.assignment` for the exact assignments): baselines, not training losses.

* :func:`least_squares`: ordinary least squares on the rows as given (``matching = identity``:
  right for the rows that were not shuffled), or on a given matching (the *oracle* with the true one).
* :func:`alt_min`: alternating minimisation (Haghighatshoar & Caire 2018; Abid et al. 2017):
  start from least squares, then repeat exact assignment of the residual cost and refit, until
  the matching stops changing (within blocks when the correspondence is lost only there).
* :func:`stochastic_em`: stochastic EM (Abid & Zou 2018): the E-step samples matchings from
  ``p(sigma | beta) ∝ exp(-||y - X_sigma beta||^2 / (2 s^2))`` by Metropolis swaps of two rows,
  the M-step refits ``beta`` (and the noise scale ``s``) on the sampled matchings.
"""

from __future__ import annotations

import numpy as np

__all__ = ["design", "least_squares", "predict", "residual_cost_matrix", "assign", "assign_residuals", "alt_min",
           "stochastic_em"]


def design(x_paired, x_unpaired, matching=None) -> np.ndarray:
    """``[n, d1 + d2 + 1]`` rows ``[x_paired_i, x_unpaired[matching_i], 1]`` (identity matching if None)."""
    x_paired, x_unpaired = np.asarray(x_paired, np.float64), np.asarray(x_unpaired, np.float64)
    n = x_paired.shape[0]
    rows = x_unpaired[:n] if matching is None else x_unpaired[np.asarray(matching)]
    return np.concatenate([x_paired, rows, np.ones((n, 1))], axis=1)


def least_squares(x_paired, x_unpaired, y, matching=None, *, ridge: float = 0.0) -> np.ndarray:
    """``beta: [d1 + d2 + 1, p]`` minimising ``||y - design(matching) beta||^2 + ridge ||beta||^2``
    (the identity matching, i.e. the rows as given, if None; rows with ``matching < 0`` are left out)."""
    y = np.asarray(y, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    keep = np.ones(y.shape[0], bool) if matching is None else np.asarray(matching) >= 0
    safe = None if matching is None else np.maximum(np.asarray(matching), 0)
    a = design(x_paired, x_unpaired, safe)[keep]
    if ridge > 0:
        return np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y[keep])
    return np.linalg.lstsq(a, y[keep], rcond=None)[0]


def predict(beta, x) -> np.ndarray:
    """``[n, p]`` predictions ``[x, 1] beta`` for features ``x: [n, d1 + d2]`` in paired order."""
    x = np.asarray(x, np.float64)
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1) @ np.asarray(beta)


def residual_cost_matrix(beta, x_paired, x_unpaired, y) -> np.ndarray:
    """``[n, m]`` costs ``||y_i - x_paired_i b1 - x_unpaired_j b2 - c||^2`` of every pairing."""
    beta = np.asarray(beta, np.float64)
    d1 = np.asarray(x_paired).shape[1]
    y = np.asarray(y, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    r = y - np.asarray(x_paired, np.float64) @ beta[:d1] - beta[-1]
    s = np.asarray(x_unpaired, np.float64) @ beta[d1:-1]
    return np.maximum(np.sum(r * r, 1)[:, None] + np.sum(s * s, 1)[None, :] - 2.0 * r @ s.T, 0.0)


def assign(cost) -> np.ndarray:
    """``[n]`` the exact assignment of ``cost: [n, m]`` (``n <= m``; :func:`ot_jax.assignment`)."""
    from ot_jax.solvers.assignment import assignment

    return np.asarray(assignment(cost, method="scipy").permutation)


def assign_residuals(beta, x_paired, x_unpaired, y, *, block_size: int = 0) -> np.ndarray:
    """``[n]`` the exact assignment of :func:`residual_cost_matrix` under ``beta``; with
    ``block_size > 0`` (a divisor of ``n = m``) within each block of that many consecutive rows."""
    if not block_size:
        return assign(residual_cost_matrix(beta, x_paired, x_unpaired, y))
    n = np.asarray(y).shape[0]
    if n % block_size or np.asarray(x_unpaired).shape[0] != n:
        raise ValueError(f"assign_residuals: block_size {block_size} must divide n = m, got n = {n}, "
                         f"m = {np.asarray(x_unpaired).shape[0]}")
    x_paired, x_unpaired, y = np.asarray(x_paired), np.asarray(x_unpaired), np.asarray(y)
    out = []
    for start in range(0, n, block_size):
        rows = slice(start, start + block_size)
        out.append(start + assign(residual_cost_matrix(beta, x_paired[rows], x_unpaired[rows], y[rows])))
    return np.concatenate(out)


def alt_min(x_paired, x_unpaired, y, *, max_iters: int = 50, beta0=None,
            block_size: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Alternating minimisation: ``matching = argmin_sigma ||y - X_sigma beta||^2`` (exact
    assignment, within blocks of ``block_size`` rows if > 0: :func:`assign_residuals`),
    ``beta = least squares on that matching``, from ``beta0`` (default :func:`least_squares` on
    the rows as given) until the matching repeats.

    Returns:
      ``(beta [d1 + d2 + 1, p], matching [n], iterations)``. Needs ``n <= m``.
    """
    beta = least_squares(x_paired, x_unpaired, y) if beta0 is None else np.asarray(beta0, np.float64)
    matching, it = None, 0
    for it in range(1, max_iters + 1):
        new = assign_residuals(beta, x_paired, x_unpaired, y, block_size=block_size)
        if matching is not None and np.array_equal(new, matching):
            break
        matching = new
        beta = least_squares(x_paired, x_unpaired, y, matching)
    return beta, matching, it


def stochastic_em(x_paired, x_unpaired, y, *, steps: int = 15, sweeps: int = 5, burn_in: int = 2,
                  seed: int = 0, beta0=None) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic EM over matchings (Abid & Zou 2018), for ``n == m``.

    Each of ``steps`` iterations runs ``sweeps * n`` Metropolis proposals (swap the partners of
    two random rows; accept with probability ``min(1, exp(-delta / (2 s^2)))``, ``delta`` the
    change of the residual sum of squares), keeps the matchings of the sweeps after
    ``burn_in``, and refits ``beta`` by least squares on all of them stacked, and ``s^2`` as
    their mean squared residual.

    Returns:
      ``(beta [d1 + d2 + 1, p], matching [n])``: the last coefficients and sampled matching.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    n = y.shape[0]
    if np.asarray(x_unpaired).shape[0] != n:
        raise ValueError(f"stochastic_em: needs as many x_unpaired rows as responses, got {np.asarray(x_unpaired).shape[0]} and {n}")
    beta = least_squares(x_paired, x_unpaired, y) if beta0 is None else np.asarray(beta0, np.float64)
    matching = np.arange(n)
    d1 = np.asarray(x_paired).shape[1]
    for _ in range(steps):
        r = y - np.asarray(x_paired, np.float64) @ beta[:d1] - beta[-1]  # [n, p]
        s = np.asarray(x_unpaired, np.float64) @ beta[d1:-1]  # [m, p]
        var = max(float(np.mean(np.sum((r - s[matching]) ** 2, 1))), 1e-12)
        kept = []
        for sweep in range(sweeps):
            i, j = rng.integers(0, n, size=(2, n))
            u = rng.random(n)
            for t in range(n):
                a, b = i[t], j[t]
                ma, mb = matching[a], matching[b]
                delta = (np.sum((r[a] - s[mb]) ** 2) + np.sum((r[b] - s[ma]) ** 2)
                         - np.sum((r[a] - s[ma]) ** 2) - np.sum((r[b] - s[mb]) ** 2))
                if delta <= 0 or u[t] < np.exp(-delta / (2.0 * var)):
                    matching[a], matching[b] = mb, ma
            if sweep >= burn_in or sweep == sweeps - 1:
                kept.append(matching.copy())
        xs = np.concatenate([design(x_paired, x_unpaired, mt) for mt in kept])
        beta = np.linalg.lstsq(xs, np.tile(y, (len(kept), 1)), rcond=None)[0]
    return beta, matching
