"""DASPOT (thesis §3.5, eqs. 3.13–3.14): domain adaptation with SPOT.

A SPOT generator ``G = (G_X, G_Y)`` couples the source law (labelled images ``x_i`` with
labels ``v_i``) and the target law (unlabelled images); two classifiers
``D_X = D_c,X ∘ D_e,X`` and ``D_Y = D_c,Y ∘ D_e,Y`` (:class:`ot_jax.nn.Classifier`) are
trained with it. The ground cost is the squared distance of the embeddings,
``c(x, y) = ‖D_e,X(x) − D_e,Y(y)‖²`` (eq. 3.13), and the objective

``L = L_c(G, λ_X, λ_Y) + λ_s (1/n) Σ_i CE(D_X(x_i), v_i)
      + λ_da E_Z CE(D_Y(G_Y(Z)), argmax_k D_X(G_X(Z))_k)``

is minimised by the generator and both classifiers and maximised by the critics
``λ_X, λ_Y`` (through SPOT's marginal terms of ``L_c``, :func:`ot_jax.losses.spot.spot_objective`).
The pseudo-label ``argmax_k D_X(G_X(Z))_k`` is a constant of the gradient (an argmax),
so the last term teaches ``D_Y`` to give each generated target the label that ``D_X``
gives its generated source partner (eq. 3.14).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ot_jax.losses.spot import _check_spot_inputs, _spot_value

__all__ = ["DaspotTerms", "daspot_objective", "embedding_cost"]


class DaspotTerms(NamedTuple):
    """The parts of the DASPOT objective on one batch.

    transport: scalar, ``E_Z ‖D_e,X(G_X(Z)) − D_e,Y(G_Y(Z))‖²``.
    gaps: ``[2]``, SPOT's marginal terms (:class:`ot_jax.losses.spot.SpotTerms`).
    source_risk: scalar, the mean cross-entropy of ``D_X`` on the labelled source batch.
    pseudo_risk: scalar, ``E_Z CE(D_Y(G_Y(Z)), argmax D_X(G_X(Z)))``.
    agreement: scalar in ``[0, 1]``, the share of generated pairs whose two predicted labels agree.
    """

    transport: jax.Array
    gaps: jax.Array
    source_risk: jax.Array
    pseudo_risk: jax.Array
    agreement: jax.Array


def embedding_cost(classifier_x, classifier_y):
    """The DASPOT ground cost of two points, ``c(x, y) = ‖D_e,X(x) − D_e,Y(y)‖²`` (eq. 3.13).

    Args:
      classifier_x, classifier_y: modules with ``embed(x: [..., d]) -> [..., e]`` (:class:`ot_jax.nn.Classifier`).

    Returns:
      ``fn(x: [d_X], y: [d_Y]) -> scalar``, differentiable in the points and the embeddings' parameters.
    """

    def cost(x, y):
        return jnp.sum((classifier_x.embed(x) - classifier_y.embed(y)) ** 2)

    return cost


def daspot_objective(generator, critics: Sequence, classifiers: Sequence, batch: tuple, key: jax.Array, *,
                     eta: float, lam_s: float, lam_da: float,
                     pseudo_label_moves_generator: bool = True) -> tuple[jax.Array, DaspotTerms]:
    """DASPOT's objective ``L`` on one batch (see the module docstring).

    Args:
      generator: callable ``z: [B, latent] -> (G_X(z) [B, d_X], G_Y(z) [B, d_Y])`` with an
        integer attribute ``latent_dim`` (:class:`ot_jax.nn.ImageGenerator`).
      critics: the two critics ``λ_X, λ_Y``: ``x: [B, d] -> [B]``.
      classifiers: ``(D_X, D_Y)``, each with ``embed`` and ``__call__`` (logits ``[B, K]``).
      batch: ``(x [B, d_X] source images, v [B] int labels in 0..K-1, y [B_Y, d_Y] target images)``.
      key: PRNG key of the latent batch (``B`` draws).
      eta: SPOT's penalty weight η > 0 of the marginal terms.
      lam_s: weight λ_s >= 0 of the source risk.
      lam_da: weight λ_da >= 0 of the pseudo-label risk.
      pseudo_label_moves_generator: True (the thesis: G is among the minimisers of every term)
        differentiates the pseudo-label risk w.r.t. the generated images too; False stops its
        gradient at ``G(Z)``, so that term trains ``D_Y`` only and the generator follows ``L_c``
        alone (a generator that descends the pseudo-label risk can lower it by drawing only the
        pairs both classifiers find easy: fewer classes).

    Returns:
      ``(L, DaspotTerms)``.
    """
    x, v, y = batch
    if len(classifiers) != 2:
        raise ValueError(f"DASPOT has two classifiers (D_X, D_Y), got {len(classifiers)}")
    if v.shape != x.shape[:1]:
        raise ValueError(f"labels v must be [B] for source images [B, d], got {v.shape} and {x.shape}")
    n = _check_spot_inputs(critics, (x, y), eta)
    d_x, d_y = classifiers
    z = jax.random.normal(key, (n, generator.latent_dim), dtype=x.dtype)
    generated = generator(z)
    _, terms = _spot_value(generated, critics, (x, y), embedding_cost(d_x, d_y), eta, "pairs")
    source_risk = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(d_x(x), v))
    gx, gy = generated if pseudo_label_moves_generator else jax.lax.stop_gradient(generated)
    pseudo = jnp.argmax(d_x(gx), axis=-1)
    logits_y = d_y(gy)
    pseudo_risk = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_y, pseudo))
    agreement = jnp.mean(jnp.argmax(logits_y, axis=-1) == pseudo)
    value = terms.transport + eta * jnp.sum(terms.gaps) + lam_s * source_risk + lam_da * pseudo_risk
    return value, DaspotTerms(terms.transport, terms.gaps, source_risk, pseudo_risk, agreement.astype(x.dtype))
