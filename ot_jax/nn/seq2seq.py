"""A small GRU encoder-decoder for fixed-length sequence-to-sequence toys.

The encoder reads a source of fixed length ``S`` (token and position embeddings,
flattened, one ``tanh`` layer) into a context ``c: [..., H]``, which is also the
decoder's initial state. The decoder is a GRU cell whose input at each step is the
embedding of the previous target token concatenated with ``c``; a linear head gives
the next-token logits. The decoder is exposed one step at a time, and its input
embedding can be a *mixture* of token embeddings (:meth:`Seq2SeqGRU.embed_soft`),
which is what soft beam search feeds it (Xie et al., 2020, "Differentiable Top-k with
Optimal Transport", NeurIPS).

Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from ot_jax.nn import Seq2SeqGRU
    >>> m = Seq2SeqGRU(10, 10, 8, hidden=16, embed=8, rngs=nnx.Rngs(0))
    >>> c = m.encode(jnp.zeros((2, 8), jnp.int32))
    >>> h, logits = m.step(c, c, m.embed(m.bos * jnp.ones(2, jnp.int32)))
    >>> h.shape, logits.shape
    ((2, 16), (2, 10))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ot_jax.nn._util import check_features, float_dtype

__all__ = ["Seq2SeqGRU"]


class Seq2SeqGRU(nnx.Module):
    """GRU decoder over an MLP encoding of a fixed-length source (module docstring).

    Args:
      src_vocab: source tokens ``0 … src_vocab - 1``.
      tgt_vocab: ``V``, target tokens ``0 … V - 1``; the token ``V`` (:attr:`bos`) starts decoding.
      src_len: ``S``, the source length.
      hidden: ``H``, GRU state and context size.
      embed: ``E``, token embedding size.
      param_dtype: parameter dtype (None: JAX's default float).
      rngs: ``nnx.Rngs``.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, src_len: int, *, hidden: int = 128, embed: int = 32,
                 param_dtype=None, rngs: nnx.Rngs):
        src_vocab, tgt_vocab, src_len, hidden, embed = check_features(
            "Seq2SeqGRU", src_vocab=src_vocab, tgt_vocab=tgt_vocab, src_len=src_len, hidden=hidden, embed=embed)
        dtype = float_dtype(param_dtype)
        self.tgt_vocab, self.src_len, self.hidden = tgt_vocab, src_len, hidden
        self.src_embed = nnx.Embed(src_vocab, embed, param_dtype=dtype, rngs=rngs)
        self.src_pos = nnx.Param(0.1 * jax.random.normal(rngs.params(), (src_len, embed), dtype))
        self.encoder = nnx.Linear(src_len * embed, hidden, param_dtype=dtype, rngs=rngs)
        self.tgt_embed = nnx.Embed(tgt_vocab + 1, embed, param_dtype=dtype, rngs=rngs)
        self.cell = nnx.GRUCell(embed + hidden, hidden, param_dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(hidden, tgt_vocab, param_dtype=dtype, rngs=rngs)

    @property
    def bos(self) -> int:
        """The start token's id (``V``; never predicted)."""
        return self.tgt_vocab

    def encode(self, src: jax.Array) -> jax.Array:
        """``src: [..., S]`` int tokens -> context ``[..., H]`` (also the initial decoder state)."""
        x = self.src_embed(src) + self.src_pos[...]
        return jnp.tanh(self.encoder(x.reshape(*x.shape[:-2], -1)))

    def embed(self, tokens: jax.Array) -> jax.Array:
        """``tokens: [...]`` int (``0 … V``) -> ``[..., E]`` decoder input embeddings."""
        return self.tgt_embed(tokens)

    def embed_soft(self, weights: jax.Array) -> jax.Array:
        """``weights: [..., V]`` (a distribution over the target tokens) -> ``[..., E]``, the
        mixture ``weights @ table[:V]``; a one-hot row gives :meth:`embed` of its token."""
        return weights @ self.tgt_embed.embedding[...][: self.tgt_vocab]

    def step(self, h: jax.Array, context: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One decoder step: state ``h: [..., H]``, context ``[..., H]`` (broadcast against ``h``),
        input embedding ``x: [..., E]`` -> (new state ``[..., H]``, next-token logits ``[..., V]``)."""
        context = jnp.broadcast_to(context, h.shape)
        h, _ = self.cell(h, jnp.concatenate([x, context], axis=-1))
        return h, self.head(h)
