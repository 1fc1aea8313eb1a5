"""Slides (Arjovsky et al. 2017, Figure 2): the optimal GAN discriminator against the WGAN
critic on two 1-D Gaussians.

With the generator fixed, three networks are trained alone between
``real = N(real_mean, std^2)`` and ``fake = N(fake_mean, std^2)``, whose
``W1 = |fake_mean - real_mean|``:

* a standard GAN discriminator ``D = sigmoid(logit)`` on :func:`ot_jax.losses.adversarial.discriminator_loss`
  (optimum ``D* = p_real / (p_real + p_fake)``), Adam;
* a WGAN critic with weight clipping (:func:`ot_jax.losses.adversarial.clip_weights`, c = 0.01), RMSProp as
  in the paper but at ``clip_learning_rate = 5e-3`` instead of 5e-5 so that it converges in
  a few thousand steps (with clipping the weights end up on the box, so the larger step
  changes the speed, not the optimum);
* a WGAN-GP critic (:func:`ot_jax.losses.adversarial.gradient_penalty`, λ = 10), Adam (0.5, 0.9).

**Figure** ``wgan_critic.png``. Left: the densities, ``D(x)`` and the critics, each drawn as
``(f(x) - f(midpoint)) / (max|f'| W1) + 1/2`` (1 at the real mean, 0 at the fake mean when
``f`` is linear). Right, log scale: the gradient a generator at ``x`` would receive, i.e.
``|d/dx log(1 - D(x))| = D(x) |logit'(x)|`` for the minimax GAN (and ``|D'(x)|``), which
vanishes where the fake data sit because ``D`` saturates at 0 there, against
``|f'(x)| / max|f'|`` for the critics, which stays near 1 everywhere.

**Measurements** (table and returned dict), on 200,000 fresh samples of each law:

* each critic's objective ``E f(real) - E f(fake)`` against ``W1``. Clipping makes ``f``
  K-Lipschitz for an unknown K, so that objective is compared after division by the
  critic's largest slope over the plotted grid (any L-Lipschitz ``f`` gives at most ``L W1``).
  The gradient penalty is soft: the penalised optimum has ``|f'| > 1`` where the interpolates
  are rare, and its objective, computed here by quadrature (:func:`penalised_optimum`), is
  ``W1 (1 + δ)`` with ``δ ≈ W1 / (2 λ)`` for well-separated Gaussians (5 % at the default
  ``W1 = 1``);
* the mean gradient magnitude at the fake samples: the minimax GAN generator's against each
  critic's (normalised by its largest slope), and their ratio.

**Scale.** The defaults put the data in ``[-1, 1]``, the scale of the paper's images.
With weights in ``[-c, c]`` a first-layer unit at full slope ``|w| = c`` has its kink
``-b/w`` in ``[-1, 1]``; a clipped network can be linear at full slope only over about
that window. On wider data it trades linearity for slope and flattens in the tails: for
``real_mean=-2 fake_mean=2 std=0.5`` its objective divided by its largest slope is
about 0.74 W1, while the WGAN-GP objective is 1.2 W1 (``δ ≈ 4 / 20``).
"""

from __future__ import annotations

import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from ot_jax.losses.adversarial import clip_weights, critic_objective, critic_step, discriminator_loss
from ot_jax.nn import Critic
from train.report import format_table

__all__ = ["run", "train_network", "evaluate", "penalised_optimum"]

CRITICS = ("WGAN critic (clipping)", "WGAN-GP critic")


def train_network(kind: str, key: jax.Array, *, real_mean: float, fake_mean: float, std: float, hidden: list[int],
                  steps: int, batch_size: int, learning_rate: float, clip: float, penalty: float):
    """Train one network alone (the generator is fixed); returns the trained :class:`~ot_jax.nn.Critic`
    (``[n, 1] -> [n]``: the discriminator's logit or the critic's value).

    ``kind``: ``"gan"`` (discriminator logits, Adam), ``"clip"`` (WGAN: RMSProp, then clipping
    after every step) or ``"gp"`` (WGAN-GP, Adam). Every step draws fresh batches of both laws.
    """
    model = Critic(1, hidden=hidden, activation="relu", spectral_norm=False, rngs=nnx.Rngs(key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.rmsprop(learning_rate) if kind == "clip" else optax.adam(learning_rate, b1=0.5, b2=0.9)
    if kind == "clip":
        params = clip_weights(params, clip)
    opt = tx.init(params)
    dtype = jax.tree.leaves(params)[0].dtype

    critic_fn = lambda p: nnx.merge(graphdef, p, rest)  # noqa: E731

    def gan_loss(p, real, fake):
        f = critic_fn(p)
        return discriminator_loss(f(real), f(fake))

    def step(carry, k):
        p, o = carry
        k1, k2, k3 = jax.random.split(k, 3)
        real = real_mean + std * jax.random.normal(k1, (batch_size, 1), dtype)
        fake = fake_mean + std * jax.random.normal(k2, (batch_size, 1), dtype)
        if kind == "gan":
            updates, o = tx.update(jax.grad(gan_loss)(p, real, fake), o, p)
            return (optax.apply_updates(p, updates), o), None
        # the WGAN trainer's critic update (train/wgan.py), with this experiment's constraint
        out = critic_step(p, o, real, fake, k3, critic_fn=critic_fn, tx=tx,
                          penalty=penalty if kind == "gp" else 0.0, clip=clip if kind == "clip" else None)
        return (out.params, out.opt_state), None

    train = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys)[0])
    params, _ = train((params, opt), jax.random.split(jax.random.fold_in(key, 1), steps))
    return nnx.merge(graphdef, params, rest)


def penalised_optimum(real_mean: float, fake_mean: float, std: float, penalty: float) -> float:
    """``E f(real) - E f(fake)`` at the maximiser of the WGAN-GP objective (population, 1-D).

    With ``G(x) = |F_real(x) - F_fake(x)|`` and ``ρ`` the density of the interpolates
    ``u x + (1 - u) y`` (``x ~ real``, ``y ~ fake``, ``u ~ U[0, 1]``), maximising
    ``∫ |f'| G - λ ∫ ρ (|f'| - 1)^2`` pointwise gives ``|f'| = 1 + G / (2 λ ρ)``, so the
    objective is ``W1 + ∫ G^2 / (2 λ ρ)``.
    """
    from scipy.stats import norm

    lo, hi = min(real_mean, fake_mean) - 8 * std, max(real_mean, fake_mean) + 8 * std
    x = np.linspace(lo, hi, 3201)
    u = np.linspace(0.0, 1.0, 402)[1:-1]
    gap = np.abs(norm.cdf(x, real_mean, std) - norm.cdf(x, fake_mean, std))
    rho = np.trapezoid(norm.pdf(x[:, None], u * real_mean + (1 - u) * fake_mean,
                                std * np.sqrt(u**2 + (1 - u) ** 2)), u, axis=1)
    return float(np.trapezoid(gap, x) + np.trapezoid(gap**2 / (2 * penalty * np.maximum(rho, 1e-300)), x))


@partial(jax.jit, static_argnums=0)
def _evaluate(graphdef, state, x, real, fake):
    """One network on the grid ``x`` and the samples (one compilation for the three networks)."""
    f = nnx.merge(graphdef, state)
    slope = jax.vmap(jax.grad(lambda t: f(t[None, None])[0]))
    return {"grid": f(x[:, None]), "grid_slope": slope(x), "fake": f(fake[:, None]), "fake_slope": slope(fake),
            "objective": critic_objective(f, real[:, None], fake[:, None])}


def evaluate(model, x, real, fake) -> dict:
    """``{grid, grid_slope, fake, fake_slope}`` (numpy: ``f`` and ``f'`` on ``x [k]`` and ``fake [n]``)
    and ``objective`` (``E f(real) - E f(fake)``, a float) of a trained network."""
    values = _evaluate(*nnx.split(model), x, real, fake)
    return {k: (float(v) if k == "objective" else np.asarray(v)) for k, v in values.items()}


def _plot(path, x, real_mean, fake_mean, std, true_w1, d, gan_grad, d_slope, gan_median_fake, curves, steps):
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    density = lambda m: np.exp(-0.5 * ((x - m) / std) ** 2)  # noqa: E731  (peak 1)
    ax1.fill_between(x, density(real_mean), alpha=0.25, color="tab:blue", label="real density (peak = 1)")
    ax1.fill_between(x, density(fake_mean), alpha=0.25, color="tab:green", label="fake density (peak = 1)")
    ax1.plot(x, d, color="tab:red", lw=2, label="GAN discriminator D(x)")
    for (name, (value, _)), color in zip(curves.items(), ("tab:purple", "tab:orange")):
        ax1.plot(x, value / true_w1 + 0.5, color=color, lw=2, ls="--" if "clip" in name else "-",
                 zorder=3 if "clip" in name else 2, label=f"{name}, rescaled")
    ax1.set_xlabel("x")
    ax1.set_title("the discriminator saturates, the critics stay linear\n"
                  "critics: (f(x) − f(midpoint)) / (max|f'| · W1) + ½", fontsize=10)
    ax1.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ax1.set_ylim(-0.6, 1.6)

    floor, below = 1e-14, 1e-20  # values under `floor` are drawn at `below`: off the axis
    ax2.axvspan(fake_mean - 2 * std, fake_mean + 2 * std, color="tab:green", alpha=0.12, label="fake data (±2σ)")
    ax2.axvspan(real_mean - 2 * std, real_mean + 2 * std, color="tab:blue", alpha=0.12, label="real data (±2σ)")
    ax2.semilogy(x, np.maximum(gan_grad, below), color="tab:red", lw=2,
                 label="GAN generator: |d/dx log(1 − D(x))|")
    ax2.semilogy(x, np.maximum(d_slope, below), color="tab:red", lw=1, ls=":", label="GAN: |D'(x)|")
    for (name, (_, slope)), color in zip(curves.items(), ("tab:purple", "tab:orange")):
        ax2.semilogy(x, np.maximum(slope, below), color=color, lw=2, ls="--" if "clip" in name else "-",
                     zorder=3 if "clip" in name else 2, label=f"{name}: |f'(x)| / max|f'|")
    ax2.set_ylim(floor, 10 * max(1.0, float(np.max(gan_grad))))
    ax2.text(fake_mean, 1e-3, f"GAN, median over\nthe fake samples:\n{gan_median_fake:.1e}", ha="center",
             fontsize=8, color="tab:red")
    ax2.set_xlabel("x")
    ax2.set_title("the gradient a generator at x receives (log scale)", fontsize=10)
    ax2.legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.suptitle(f"Networks trained alone for {steps} steps between N({real_mean:g}, {std:g}²) and "
                 f"N({fake_mean:g}, {std:g}²) (Arjovsky et al. 2017, fig. 2)", fontsize=11)
    fig.savefig(path, dpi=120)


def run(*, seed: int, output_dir: str, real_mean: float = -0.5, fake_mean: float = 0.5, std: float = 0.125,
        hidden: list[int] = (64, 64), steps: int = 3000, batch_size: int = 256, learning_rate: float = 1e-3,
        clip_learning_rate: float = 5e-3, clip: float = 0.01, penalty: float = 10.0,
        eval_samples: int = 200_000) -> dict:
    """Train the three networks, draw ``wgan_critic.png``, print the tables, return the measurements."""
    if not std > 0 or steps < 1 or batch_size < 2 or eval_samples < 2 or real_mean == fake_mean:
        raise ValueError(f"need std > 0, steps >= 1, batch_size >= 2, eval_samples >= 2, real_mean != fake_mean; "
                         f"got {std}, {steps}, {batch_size}, {eval_samples}, {real_mean} == {fake_mean}")
    start = time.perf_counter()
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    common = dict(real_mean=real_mean, fake_mean=fake_mean, std=std, hidden=list(hidden), steps=steps,
                  batch_size=batch_size, clip=clip, penalty=penalty)
    gan = train_network("gan", keys[0], learning_rate=learning_rate, **common)
    nets = {CRITICS[0]: train_network("clip", keys[1], learning_rate=clip_learning_rate, **common),
            CRITICS[1]: train_network("gp", keys[2], learning_rate=learning_rate, **common)}
    train_s = time.perf_counter() - start

    lo, hi = min(real_mean, fake_mean) - 4 * std, max(real_mean, fake_mean) + 4 * std
    x = jnp.linspace(lo, hi, 1601)  # odd length: x[800] is the midpoint
    k_real, k_fake = jax.random.split(keys[3])  # fresh samples, independent of the training batches
    dtype = x.dtype
    real = real_mean + std * jax.random.normal(k_real, (eval_samples,), dtype)
    fake = fake_mean + std * jax.random.normal(k_fake, (eval_samples,), dtype)
    true_w1 = float(abs(fake_mean - real_mean))
    gp_optimum = penalised_optimum(real_mean, fake_mean, std, penalty)

    # GAN: the minimax generator loss log(1 - D(g)) has gradient -D(g) logit'(g), and D' = D (1 - D) logit'.
    ev = evaluate(gan, x, real, fake)
    d = 1.0 / (1.0 + np.exp(-ev["grid"]))
    gan_grad = np.abs(d * ev["grid_slope"])
    d_slope = np.abs(d * (1 - d) * ev["grid_slope"])
    gan_at_fake = np.abs(ev["fake_slope"] / (1.0 + np.exp(-ev["fake"])))
    # The mean is carried by the few fake samples in the ~4σ tail next to the real data, where D is not
    # yet saturated; the median is the typical fake sample's gradient.
    gan_grad_fake, gan_median_fake = float(np.mean(gan_at_fake)), float(np.median(gan_at_fake))
    d_at = lambda m: float(jax.nn.sigmoid(gan(jnp.array([[m]], dtype)))[0])  # noqa: E731
    out = {"experiment": "wgan_critic", "true_w1": true_w1, "gp_penalised_optimum": gp_optimum,
           "d_at_fake_mean": d_at(fake_mean), "d_at_real_mean": d_at(real_mean),
           "gan_mean_grad_at_fake": gan_grad_fake, "gan_median_grad_at_fake": gan_median_fake,
           "gan_max_grad": float(np.max(gan_grad)), "critics": {}}

    curves, w1_rows, grad_rows = {}, [], []
    for name, f in nets.items():
        ev = evaluate(f, x, real, fake)
        slope = np.abs(ev["grid_slope"])
        lip, estimate = float(np.max(slope)), ev["objective"]
        at_fake = np.abs(ev["fake_slope"]) / lip
        grad_fake, median_fake = float(np.mean(at_fake)), float(np.median(at_fake))
        curves[name] = ((ev["grid"] - ev["grid"][len(x) // 2]) / lip, slope / lip)
        # W1 estimate: the clipped critic is K-Lipschitz (K unknown), so its objective over its largest slope;
        # the WGAN-GP critic is meant to be 1-Lipschitz, so its objective itself.
        w1_estimate = estimate / lip if name == CRITICS[0] else estimate
        ratio = grad_fake / gan_grad_fake if gan_grad_fake > 0 else float("inf")  # D can underflow to 0
        median_ratio = median_fake / gan_median_fake if gan_median_fake > 0 else float("inf")
        out["critics"][name] = {"estimate": estimate, "max_slope": lip, "estimate_over_slope": estimate / lip,
                                "w1_estimate": w1_estimate, "relative_error": w1_estimate / true_w1 - 1,
                                "mean_grad_at_fake": grad_fake, "grad_ratio_to_gan": ratio,
                                "median_grad_at_fake": median_fake, "median_grad_ratio_to_gan": median_ratio}
        w1_rows.append([name, estimate, lip, estimate / lip, w1_estimate, true_w1, w1_estimate / true_w1 - 1])
    w1_rows.append(["  WGAN-GP penalised optimum (quadrature)", gp_optimum, None, None, gp_optimum, true_w1,
                    gp_optimum / true_w1 - 1])
    grad_rows.append(["GAN generator, minimax log(1 − D)", gan_grad_fake, gan_median_fake, float(np.max(gan_grad)),
                      None, None])
    for name in CRITICS:
        c = out["critics"][name]
        grad_rows.append([f"{name}, |f'| / max|f'|", c["mean_grad_at_fake"], c["median_grad_at_fake"], 1.0,
                          c["grad_ratio_to_gan"], c["median_grad_ratio_to_gan"]])

    path = os.path.join(output_dir, "wgan_critic.png")
    _plot(path, np.asarray(x), real_mean, fake_mean, std, true_w1, d, gan_grad, d_slope,
          gan_median_fake, curves, steps)
    elapsed = time.perf_counter() - start
    out.update(figure=path, seconds=elapsed, train_seconds=train_s)

    print(format_table(["network", "E f(real) − E f(fake)", "max |f'|", "÷ max |f'|", "W1 estimate", "true W1",
                        "rel. error"],
                       w1_rows, title=f"W1 estimates, {eval_samples} fresh samples per law, after {steps} steps "
                                      f"(real N({real_mean:g}, {std:g}²), fake N({fake_mean:g}, {std:g}²))"))
    print()
    print(format_table(["generator loss", "mean |∇| at fake", "median |∇| at fake", "max |∇| on the grid",
                        "critic ÷ GAN (means)", "(medians)"],
                       grad_rows, title=f"gradient a generator receives (D at the fake mean: "
                                        f"{out['d_at_fake_mean']:.1e}, at the real mean: {out['d_at_real_mean']:.4f})"))
    print(f"figure: {path}  ({elapsed:.1f} s, training {train_s:.1f} s)")
    return out
