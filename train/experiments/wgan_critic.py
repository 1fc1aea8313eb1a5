"""Slides (Arjovsky et al. 2017, Figure 2): the optimal GAN discriminator against the WGAN
critic on two 1-D Gaussians.

With the generator fixed, three networks are trained alone to optimality between
``real = N(real_mean, std^2)`` and ``fake = N(fake_mean, std^2)``:

* a standard GAN discriminator ``D = sigmoid(logit)`` on :func:`ot_jax.gan.discriminator_loss`
  (optimum ``D* = p_real / (p_real + p_fake)``);
* a WGAN critic with weight clipping (:func:`ot_jax.gan.clip_weights`, c = 0.01);
* a WGAN-GP critic (:func:`ot_jax.gan.gradient_penalty`, λ = 10).

The figure draws the densities, ``D(x)`` and the critics (each divided by its largest
slope, so that both are 1-Lipschitz on the drawing), and the gradient a generator
would receive at ``x``: ``|d/dx log(1 - D(x))| = D(x) |logit'(x)|`` for the minimax GAN,
which vanishes where the fake data sit because ``D`` saturates at 0 there, against
``|f'(x)| / max|f'|`` for the critics, which stays near 1 everywhere. The table gives
each critic's estimate of ``W1 = |fake_mean - real_mean|`` and the mean gradient
magnitude at the fake samples.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from ot_jax.gan import clip_weights, critic_objective, discriminator_loss, gradient_penalty
from ot_jax.nn import Critic
from train.experiments.report import format_table

__all__ = ["run", "train_network"]


def train_network(kind: str, key: jax.Array, *, real_mean: float, fake_mean: float, std: float, hidden: list[int],
                  steps: int, batch_size: int, learning_rate: float, clip: float, penalty: float):
    """Train one network alone; returns the scalar function ``x [n] -> [n]`` (logit or critic value).

    ``kind``: ``"gan"`` (discriminator logits), ``"clip"`` (WGAN) or ``"gp"`` (WGAN-GP).
    """
    model = Critic(1, hidden=hidden, activation="relu", spectral_norm=False, rngs=nnx.Rngs(key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.rmsprop(learning_rate) if kind == "clip" else optax.adam(learning_rate, b1=0.5, b2=0.9)
    if kind == "clip":
        params = clip_weights(params, clip)
    opt = tx.init(params)

    def loss(p, real, fake, k):
        f = nnx.merge(graphdef, p, rest)
        if kind == "gan":
            return discriminator_loss(f(real), f(fake))
        value = -critic_objective(f, real, fake)
        return value + penalty * gradient_penalty(f, real, fake, k) if kind == "gp" else value

    @jax.jit
    def step(carry, k):
        p, o = carry
        k1, k2, k3 = jax.random.split(k, 3)
        real = real_mean + std * jax.random.normal(k1, (batch_size, 1))
        fake = fake_mean + std * jax.random.normal(k2, (batch_size, 1))
        updates, o = tx.update(jax.grad(loss)(p, real, fake, k3), o, p)
        p = optax.apply_updates(p, updates)
        return (clip_weights(p, clip) if kind == "clip" else p, o), None

    (params, _), _ = jax.lax.scan(step, (params, opt), jax.random.split(jax.random.fold_in(key, 1), steps))
    f = nnx.merge(graphdef, params, rest)
    return lambda x: f(x[:, None])


def _slope(fn, x):
    return jax.vmap(jax.grad(lambda t: fn(t[None])[0]))(x)


def run(*, seed: int, output_dir: str, real_mean: float = -2.0, fake_mean: float = 2.0, std: float = 0.5,
        hidden: list[int] = (64, 64), steps: int = 3000, batch_size: int = 256, learning_rate: float = 1e-3,
        clip_learning_rate: float = 5e-3, clip: float = 0.01, penalty: float = 10.0) -> dict:
    """Train the three networks, draw ``wgan_critic.png``, print and return the measurements."""
    if not std > 0 or steps < 1 or batch_size < 2:
        raise ValueError(f"need std > 0, steps >= 1, batch_size >= 2; got {std}, {steps}, {batch_size}")
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    common = dict(real_mean=real_mean, fake_mean=fake_mean, std=std, hidden=list(hidden), steps=steps,
                  batch_size=batch_size, clip=clip, penalty=penalty)
    nets = {"GAN discriminator": train_network("gan", keys[0], learning_rate=learning_rate, **common),
            "WGAN critic (clipping)": train_network("clip", keys[1], learning_rate=clip_learning_rate, **common),
            "WGAN-GP critic": train_network("gp", keys[2], learning_rate=learning_rate, **common)}
    lo, hi = min(real_mean, fake_mean) - 4 * std, max(real_mean, fake_mean) + 4 * std
    x = jnp.linspace(lo, hi, 801)
    sample = jax.random.normal(jax.random.PRNGKey(seed + 1), (200_000,)) * std
    real, fake = real_mean + sample, fake_mean + sample[::-1]
    true_w1 = abs(fake_mean - real_mean)

    gan = nets["GAN discriminator"]
    d = jax.nn.sigmoid(gan(x))
    gan_grad = np.asarray(jnp.abs(d * _slope(gan, x)))  # |d/dx log(1 - D)|
    gan_grad_fake = float(jnp.mean(jnp.abs(jax.nn.sigmoid(gan(fake)) * _slope(gan, fake))))
    rows, out = [], {"true_w1": true_w1, "critics": {}}
    curves = {}
    for name in ("WGAN critic (clipping)", "WGAN-GP critic"):
        f = nets[name]
        lip = float(jnp.max(jnp.abs(_slope(f, x))))
        estimate = float(jnp.mean(f(real)) - jnp.mean(f(fake)))
        grad_fake = float(jnp.mean(jnp.abs(_slope(f, fake)))) / lip
        curves[name] = (np.asarray(f(x) - f(jnp.array([0.5 * (real_mean + fake_mean)]))) / lip,
                        np.asarray(jnp.abs(_slope(f, x))) / lip)
        out["critics"][name] = {"estimate": estimate, "max_slope": lip, "estimate_over_slope": estimate / lip,
                                "mean_grad_at_fake": grad_fake}
        rows.append([name, estimate, lip, estimate / lip, true_w1, grad_fake])
    out["gan_mean_grad_at_fake"] = gan_grad_fake
    out["d_at_fake_mean"] = float(jax.nn.sigmoid(gan(jnp.array([fake_mean])))[0])
    rows.append(["GAN discriminator (minimax loss)", None, None, None, None, gan_grad_fake])
    print(format_table(["network", "E f(real) − E f(fake)", "max |f'|", "÷ max |f'|", "true W1",
                        "mean |∇| at fake (÷ max |f'|)"], rows,
                       title="Networks trained alone between two 1-D Gaussians (slides, Arjovsky et al. fig. 2)"))

    x, d = np.asarray(x), np.asarray(d)
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    density = lambda m: np.exp(-0.5 * ((x - m) / std) ** 2) / (std * np.sqrt(2 * np.pi))  # noqa: E731
    ax1.fill_between(x, density(real_mean) / density(real_mean).max(), alpha=0.25, color="tab:blue", label="real")
    ax1.fill_between(x, density(fake_mean) / density(fake_mean).max(), alpha=0.25, color="tab:green", label="fake")
    ax1.plot(x, d, color="tab:red", label="GAN discriminator D(x)")
    for (name, (value, _)), color in zip(curves.items(), ("tab:purple", "tab:orange")):
        ax1.plot(x, value / true_w1 + 0.5, color=color, label=f"{name} (÷ max slope, ÷ W1, + ½)")
    ax1.set_xlabel("x")
    ax1.set_title("optimal discriminator saturates; critics stay linear", fontsize=9)
    ax1.legend(fontsize=7, loc="lower left")
    ax2.semilogy(x, np.maximum(gan_grad, 1e-12), color="tab:red", label="GAN: |d/dx log(1 − D(x))|")
    for (name, (_, slope)), color in zip(curves.items(), ("tab:purple", "tab:orange")):
        ax2.semilogy(x, np.maximum(slope, 1e-12), color=color, label=f"{name}: |f'(x)| ÷ max")
    ax2.axvspan(fake_mean - 2 * std, fake_mean + 2 * std, color="tab:green", alpha=0.1, label="fake data (±2σ)")
    ax2.set_xlabel("x")
    ax2.set_title("the gradient a generator receives", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(output_dir, "wgan_critic.png")
    fig.savefig(path, dpi=120)
    return {"experiment": "wgan_critic", **out, "figure": path}
