"""Write notebooks/05_wmd.ipynb (the Word Mover's Distance on gensim's polarity sentences), executed, with its outputs.

Regenerate with:

    .venv/bin/python notebooks/_build_05_wmd.py

Edit the cells here, not in the .ipynb: the notebook is stored with the outputs of a
full-size run (plots visible on GitHub); tests/test_notebooks.py checks that its cells
are the ones built here and executes it again (with OT_JAX_NB_SMALL=1 for smaller sizes).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from _notebook import build as _build, code, md, write  # noqa: E402

OUT = pathlib.Path(__file__).with_name("05_wmd.ipynb")


CELLS = [
    md(
        """
        # The Word Mover's Distance

        The WMD (Kusner et al. 2015) is the exact OT cost between two documents' normalised bags
        of words, with the Euclidean distance between word vectors as the ground cost. This
        notebook:

        1. reads the 200 labelled movie-review sentences and their fastText vectors that ship with
           gensim, and checks one distance against gensim's `wmdistance`;
        2. shows the flow between the words of two sentences;
        3. compares the two lower bounds of the WMD (WCD and RWMD) and runs the pruned nearest-neighbour search.

        `OT_JAX_NB_SMALL=1` (the test suite) uses fewer sentences.
        """
    ),
    code(
        """
        import os

        import jax
        import matplotlib.pyplot as plt
        import numpy as np

        jax.config.update("jax_enable_x64", True)

        import ot_jax
        from ot_jax.data import text
        from ot_jax.tools import wmd as W

        SMALL = os.environ.get("OT_JAX_NB_SMALL") == "1"
        corpus = text.read_corpus(text.gensim_test_file("pang_lee_polarity.cor"))
        vectors = text.load_vectors(text.gensim_test_file("pang_lee_polarity_fasttext.vec"))
        tokens = [text.tokenize(t) for t in corpus.texts]
        docs, kept = text.to_documents(tokens, vectors)
        tokens = [t for t, k in zip(tokens, kept) if k]
        labels = corpus.labels[kept]
        emb = np.asarray(vectors.get_normed_vectors(), np.float64)  # gensim's default: unit-length vectors
        if SMALL:
            docs, tokens, labels = docs[::8], tokens[::8], labels[::8]
        print(len(docs), "sentences,", emb.shape[0], "words in", emb.shape[1], "dimensions")
        """
    ),
    code(
        """
        i, j = 0, 3
        out = ot_jax.wmd(docs[i], docs[j], emb)
        print(" ".join(tokens[i]), "|", " ".join(tokens[j]))
        print(f"ot-jax {float(out.cost):.12f}  gensim {vectors.wmdistance(tokens[i], tokens[j]):.12f}",
              ot_jax.Status(int(out.status)).name)
        """
    ),
    code(
        """
        words = lambda doc: [vectors.index_to_key[k] for k in doc[0]]
        plan = np.asarray(out.plan)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.imshow(plan, cmap="Blues")
        ax.set_yticks(range(plan.shape[0]), words(docs[i]))
        ax.set_xticks(range(plan.shape[1]), words(docs[j]), rotation=60, ha="right")
        ax.set_title("flow between the words (exact plan)")
        fig.tight_layout()
        plt.show()
        """
    ),
    code(
        """
        wcd, rwmd = W.bound_matrix(docs, docs, emb)
        dist, status = W.wmd_matrix(docs, docs, emb)
        off = ~np.eye(len(docs), dtype=bool)
        print("WCD <= WMD and RWMD <= WMD on every pair:", bool(np.all(wcd <= dist + 1e-12) and np.all(rwmd <= dist + 1e-12)))
        print(f"RWMD >= WCD on {np.mean(rwmd[off] >= wcd[off]):.1%} of the pairs")
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(dist[off], rwmd[off], s=2, label="RWMD")
        ax.scatter(dist[off], wcd[off], s=2, label="WCD")
        ax.plot([dist[off].min(), dist.max()], [dist[off].min(), dist.max()], "k", lw=0.8)
        ax.set(xlabel="WMD", ylabel="lower bound")
        ax.legend()
        plt.show()
        """
    ),
    code(
        """
        k = 5
        brute = W.knn(docs, docs, emb, k, exclude_self=True, prune=False)
        fast = W.knn(docs, docs, emb, k, exclude_self=True)
        print("same neighbours as brute force:", bool(np.array_equal(fast.indices, brute.indices)))
        print(f"exact solves: {fast.n_exact} of {fast.n_pairs} ({fast.pruned:.0%} pruned)")
        votes = labels[fast.indices].mean(1)
        print(f"leave-one-out {k}-NN error: {np.mean((votes > 0.5) != labels):.3f}")
        """
    ),
    md(
        """
        On these 200 short sentences, with vectors trained on them alone, no distance separates the
        two sentiments much better than chance (`python scripts/wmd_knn.py --parts knn` gives the
        table over k, with WCD, RWMD, TF-IDF and mean-vector cosine beside WMD). The bounds are
        what makes the search cheap: the pruned search solves a fraction of the pairs and returns
        the brute-force neighbours.
        """
    ),
]


def build():
    return _build(CELLS)


if __name__ == "__main__":
    write(build(), OUT)
