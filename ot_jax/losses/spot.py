"""Training objectives built on OT: SPOT and its entropy-regularised form (thesis ch. 3).

Each objective is a pure function of ``(models, batch, key)`` plus keyword-only
settings, returning ``(value, terms)`` where ``terms`` is a small pytree of the parts
(for logging). Models are Flax NNX modules; under the functional API the trainers
``nnx.merge`` them inside the jit-compiled step and differentiate w.r.t. their
``nnx.Param`` state.

Sign conventions (thesis Algorithm 3, with its sign slip fixed): the critics **ascend**
the SPOT objective, the generator **descends** it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ot_jax._checks import is_concrete
from ot_jax.geometry.costs import CostFn, as_cost_fn

__all__ = ["SpotTerms", "EntropicSpotTerms", "multi_marginal_cost", "spot_objective", "entropic_spot_objective",
           "COUPLINGS"]

COUPLINGS = ("pairs", "chain")


def multi_marginal_cost(points: Sequence[jax.Array], cost_fn: CostFn | Callable, *, coupling: str = "pairs") -> jax.Array:
    """Per-sample cost of a K-tuple of coupled samples.

    Args:
      points: K >= 2 arrays ``[B, d_k]``: the k-th coordinate of B coupled samples.
      cost_fn: a two-point ground cost (``ot_jax.geometry`` cost or ``fn(x: [d], y: [d])``).
      coupling: for K >= 3, ``"pairs"`` sums ``c(x_i, x_j)`` over all i < j (the
        multi-marginal cost of Gangbo & Święch), ``"chain"`` sums ``c(x_k, x_{k+1})``.
        For K = 2 both are ``c(x_1, x_2)``.

    Returns:
      ``[B]`` costs.
    """
    if len(points) < 2:
        raise ValueError(f"a coupling needs at least 2 marginals, got {len(points)}")
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    sizes = {int(p.shape[0]) for p in points}
    if len(sizes) != 1 or any(p.ndim != 2 for p in points):
        raise ValueError("coupled samples must be K arrays [B, d_k] with the same B, got shapes "
                         f"{[tuple(p.shape) for p in points]}")
    cost = as_cost_fn(cost_fn)
    k = len(points)
    pairs = itertools.combinations(range(k), 2) if coupling == "pairs" else zip(range(k - 1), range(1, k))
    return sum(jax.vmap(cost)(points[i], points[j]) for i, j in pairs)


class SpotTerms(NamedTuple):
    """The parts of the SPOT objective on one batch.

    transport: scalar, ``E_Z c(G(Z))`` — SPOT's estimate of the OT cost.
    gaps: ``[K]``, ``E_Z λ_k(G_k(Z)) − E λ_k(X_k)`` — each critic's W1 estimate
      between the generated and the data marginal (≥ 0 at the critics' optimum).
    """

    transport: jax.Array
    gaps: jax.Array


def spot_objective(generator, critics: Sequence, batch: Sequence[jax.Array], key: jax.Array, *,
                   cost_fn: CostFn | Callable, eta: float, coupling: str = "pairs") -> tuple[jax.Array, SpotTerms]:
    """SPOT's minimax objective (thesis eq. 3.7), for K >= 2 marginals.

    ``L = E_Z c(G_1(Z), …, G_K(Z)) + η Σ_k (E_Z λ_k(G_k(Z)) − E_{X_k} λ_k(X_k))``,
    Z standard normal. The critics λ_k are 1-Lipschitz (spectral normalisation), so
    the bracket is a lower bound of ``W1(G_k#ρ, μ_k)`` and η acts as an exact
    penalty on the marginal constraints. Critics ascend ``L``; the generator
    descends it (Yang, Chen, Zhao et al., "Statistical Optimal Transport via
    Factorization"; thesis Algorithm 3 with the sign of the generator step fixed).

    Args:
      generator: callable ``z: [B, latent] -> tuple`` of K arrays ``[B, d_k]``, with
        an integer attribute ``latent_dim``.
      critics: K callables ``x: [B, d_k] -> [B]``.
      batch: K data arrays ``[B_k, d_k]`` (sample sizes may differ).
      key: PRNG key for the latent batch; ``B`` is ``batch[0].shape[0]``.
      cost_fn: ground cost of two points (see :func:`multi_marginal_cost`).
      eta: penalty weight η > 0 (thesis: 1e4).
      coupling: how K >= 3 marginals are coupled (:func:`multi_marginal_cost`).

    Returns:
      ``(L, SpotTerms(transport, gaps))``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from ot_jax.geometry import Euclidean
        >>> class Shift:  # G(Z) = (Z, Z + 5 e_1)
        ...     latent_dim = 2
        ...     def __call__(self, z):
        ...         return z, z + jnp.array([5.0, 0.0])
        >>> critic = lambda x: x[:, 0]  # 1-Lipschitz
        >>> batch = (jnp.zeros((4, 2)), jnp.zeros((4, 2)))
        >>> value, terms = spot_objective(Shift(), [critic, critic], batch, jax.random.PRNGKey(0),
        ...                               cost_fn=Euclidean(), eta=10.0)
        >>> round(float(terms.transport), 4)
        5.0
    """
    n = _check_spot_inputs(critics, batch, eta)
    z = jax.random.normal(key, (n, generator.latent_dim), dtype=batch[0].dtype)
    return _spot_value(generator(z), critics, batch, cost_fn, eta, coupling)


def _check_spot_inputs(critics, batch, eta) -> int:
    if len(critics) != len(batch):
        raise ValueError(f"one critic per marginal: got {len(critics)} critics for {len(batch)} marginals")
    if is_concrete(eta) and not eta > 0:  # a traced eta (e.g. swept under vmap) is not checked
        raise ValueError(f"eta must be > 0, got {eta}")
    return batch[0].shape[0]


def _spot_value(generated, critics, batch, cost_fn, eta, coupling) -> tuple[jax.Array, SpotTerms]:
    if len(generated) != len(batch):
        raise ValueError(f"the generator returns {len(generated)} marginals, the data has {len(batch)}")
    for k, (g, x) in enumerate(zip(generated, batch)):
        if g.shape[1:] != x.shape[1:]:
            raise ValueError(f"marginal {k}: the generator returns points of shape {g.shape[1:]}, "
                             f"the data has {x.shape[1:]}")
    transport = jnp.mean(multi_marginal_cost(generated, cost_fn, coupling=coupling))
    gaps = jnp.stack([jnp.mean(c(g)) - jnp.mean(c(x)) for c, g, x in zip(critics, generated, batch)])
    return transport + eta * jnp.sum(gaps), SpotTerms(transport, gaps)


class EntropicSpotTerms(NamedTuple):
    """The parts of the entropy-regularised SPOT objective on one batch.

    transport, gaps: as in :class:`SpotTerms`.
    neg_entropy: scalar, ``H = E_Z log p_γ(G(Z))`` — the thesis' entropy term (minus
      the differential entropy of the generated joint law).
    flow_converged: scalar bool, False when the ODE solve failed (``FlowResult.converged``).
    """

    transport: jax.Array
    gaps: jax.Array
    neg_entropy: jax.Array
    flow_converged: jax.Array


def entropic_spot_objective(generator, critics: Sequence, batch: Sequence[jax.Array], key: jax.Array, *,
                            cost_fn: CostFn | Callable, eta: float, lam: float,
                            coupling: str = "pairs") -> tuple[jax.Array, EntropicSpotTerms]:
    """Entropy-regularised SPOT (thesis §3.4): ``L_c + λ H``, ``H = E_Z log p_γ(G(Z))``.

    ``L_c`` is :func:`spot_objective`; ``p_γ`` is the joint density of the generated
    tuple, known at every sample when ``G`` is a neural ODE
    (:class:`ot_jax.nn.FlowGenerator`). With the marginals held at μ, ν, minimising
    ``E c + λ E log p_γ`` is the entropic OT problem ``min E c + λ KL(γ | μ ⊗ ν)``
    (the two differ by the constant ``λ (h(μ) + h(ν))``), whose solution for Gaussians
    is :func:`ot_jax.gaussian_entropic_plan` with the same ``lam``. The critics'
    gradients equal those of :func:`spot_objective` (``H`` does not depend on them).

    Args:
      generator: a flow generator: ``generator.flow(z, key) -> FlowResult`` of the joint
        points ``[B, latent_dim]`` and their log-density, ``generator.split(points)``
        into K marginals, and ``generator.latent_dim``.
      critics, batch, cost_fn, eta, coupling: as in :func:`spot_objective`.
      key: PRNG key of the latent batch and of Hutchinson probes.
      lam: entropy weight λ >= 0.

    Returns:
      ``(L_c + λ H, EntropicSpotTerms)``.
    """
    n = _check_spot_inputs(critics, batch, eta)
    if is_concrete(lam) and not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    kz, kp = jax.random.split(key)
    z = jax.random.normal(kz, (n, generator.latent_dim), dtype=batch[0].dtype)
    flow = generator.flow(z, kp)
    value, terms = _spot_value(generator.split(flow.z), critics, batch, cost_fn, eta, coupling)
    neg_entropy = jnp.mean(flow.log_density)
    return value + lam * neg_entropy, EntropicSpotTerms(terms.transport, terms.gaps, neg_entropy, flow.converged)
