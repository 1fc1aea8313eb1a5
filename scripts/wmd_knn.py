"""Word Mover's Distance on gensim's bundled corpora: agreement with gensim's ``wmdistance``,
speed against gensim's loop, and leave-one-out kNN classification as in Kusner et al. (2015).

Data (ship with gensim; nothing downloads): ``pang_lee_polarity.cor`` (200 movie-review
sentences, 100 negative and 100 positive) with its fastText vectors
``pang_lee_polarity_fasttext.vec``; ``lee_background.cor`` (300 news articles) with word2vec
vectors trained here by gensim on it and ``head500.noblanks.cor`` (seed 0, 100 dimensions,
window 5, min_count 2, 20 epochs, one worker: deterministic). Tokens: gensim's
``simple_preprocess``, gensim's English stop words removed, words without a vector dropped
(as ``wmdistance`` does); weights: nBOW frequencies; word vectors scaled to unit length (``wmdistance``'s default ``norm=True``).

Parts:

* ``agreement``: ot-jax exact WMD against ``KeyedVectors.wmdistance`` (POT's ``emd2`` inside) on
  ``--pairs`` random polarity pairs; IPOT at tol 1e-6 and Sinkhorn at eps = 0.01 x mean word
  distance against the exact value.
* ``speed``: pairs per second on the lee_background articles, 20 query articles against the
  other 280: gensim's loop; ot-jax exact (batched, one host call per block), IPOT and Sinkhorn
  (jit + vmap; one query and 16 articles, they are slow); the kNN search with WCD/RWMD pruning
  (the fraction of exact solves avoided). Medians of 3 calls; compilation excluded (a warm-up
  call on the same shapes first).
* ``knn``: leave-one-out kNN test error on the polarity set for k = 1..10 with WMD, RWMD, WCD,
  cosine distance of TF-IDF vectors (scikit-learn, same tokens) and of mean word vectors;
  majority vote with ties broken by the nearest neighbour; the standard error
  sqrt(p (1 - p) / n) beside each error. Figures: error vs k, and the WMD matrix ordered by label.

Usage: ``python scripts/wmd_knn.py [--parts agreement speed knn] [--pairs 1000] [--no-write]``;
writes the ``wmd-agreement``, ``wmd-speed`` and ``wmd-knn`` blocks of ``docs/benchmarks.md`` and
``docs/figures/wmd_knn.png``. Float64.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import REPO, command_line, cpu_model, git_revision, markdown_table, median_time, write_section  # noqa: E402

FIGURE = os.path.join(REPO, "docs", "figures", "wmd_knn.png")
KS = list(range(1, 11))


def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)


def polarity():
    """(docs, labels, tokens, vectors) of the polarity sentences with their fastText vectors."""
    from ot_jax.data import text

    corpus = text.read_corpus(text.gensim_test_file("pang_lee_polarity.cor"))
    vectors = text.load_vectors(text.gensim_test_file("pang_lee_polarity_fasttext.vec"))
    tokens = [text.tokenize(t) for t in corpus.texts]
    docs, kept = text.to_documents(tokens, vectors)
    tokens = [t for t, k in zip(tokens, kept) if k]
    return docs, corpus.labels[kept], tokens, vectors


def lee_vectors():
    """(docs, tokens, vectors): lee_background articles and word2vec vectors trained on them and head500."""
    from gensim.models import Word2Vec

    from ot_jax.data import text

    lee = [text.tokenize(t) for t in text.read_corpus(text.gensim_test_file("lee_background.cor")).texts]
    wiki = [text.tokenize(t) for t in text.read_corpus(text.gensim_test_file("head500.noblanks.cor")).texts]
    model = Word2Vec(lee + wiki, vector_size=100, window=5, min_count=2, epochs=20, seed=0, workers=1)
    docs, kept = text.to_documents(lee, model.wv)
    return docs, [t for t, k in zip(lee, kept) if k], model.wv


def _gensim_wmd(vectors, a, b):
    return vectors.wmdistance(a, b)


def agreement(args):
    import ot_jax
    from ot_jax.tools import wmd as W

    docs, _, tokens, vectors = polarity()
    emb = np.asarray(vectors.get_normed_vectors(), np.float64)  # gensim's default (norm=True)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(docs), size=(args.pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    start = time.perf_counter()
    ref = np.array([_gensim_wmd(vectors, tokens[i], tokens[j]) for i, j in pairs])
    t_gensim = time.perf_counter() - start
    a = W.pad_documents([docs[i] for i in pairs[:, 0]])
    b = W.pad_documents([docs[j] for j in pairs[:, 1]])
    exact = ot_jax.wmd(a, b, emb)
    ip = ot_jax.wmd(a, b, emb, solver="ipot", tol=1e-6, max_iters=50_000)
    sk = ot_jax.wmd(a, b, emb, solver="sinkhorn", epsilon=0.01)
    e = np.asarray(exact.cost)
    rel = lambda x: np.abs(np.asarray(x) - e) / np.maximum(e, 1e-300)  # noqa: E731
    rows = [
        ["exact (network simplex)", f"{np.max(np.abs(e - ref)):.2e}", f"{np.max(np.abs(e - ref) / ref):.2e}",
         f"{np.mean(np.asarray(exact.status) == 0):.3f}"],
        ["IPOT, tol 1e-6", f"{np.max(np.abs(np.asarray(ip.cost) - ref)):.2e}", f"{np.max(rel(ip.cost)):.2e}",
         f"{np.mean(np.asarray(ip.status) == 0):.3f}"],
        ["Sinkhorn, ε = 0.01 × mean cost", f"{np.max(np.abs(np.asarray(sk.cost) - ref)):.2e}",
         f"{np.max(rel(sk.cost)):.2e} (mean {np.mean(rel(sk.cost)):.2e})", f"{np.mean(np.asarray(sk.status) == 0):.3f}"],
    ]
    table = markdown_table(["ot-jax solver", "max abs. difference to gensim", "max rel. difference (to exact)",
                            "share CONVERGED"], rows)
    note = (f"{len(pairs)} random pairs of the polarity sentences (fastText vectors, {emb.shape[1]} dimensions; "
            f"gensim's `wmdistance` took {t_gensim:.1f} s). The relative column compares IPOT and Sinkhorn with "
            f"ot-jax's exact value. `{command_line()}` at {git_revision()} on {cpu_model()}.")
    return table + "\n\n" + note


def _rate(n_pairs, seconds):
    return f"{n_pairs / seconds:,.0f}"


def speed(args):
    import ot_jax
    from ot_jax.tools import wmd as W

    start = time.perf_counter()
    docs, tokens, vectors = lee_vectors()
    print(f"word2vec trained in {time.perf_counter() - start:.1f} s", flush=True)
    emb = np.asarray(vectors.get_normed_vectors(), np.float64)  # gensim's default (norm=True)
    lengths = np.array([len(d[0]) for d in docs])
    queries, rest = docs[:args.queries], docs[args.queries:]  # the queries are not in the searched corpus
    n_pairs = len(queries) * len(rest)

    def gensim_all():
        for i in range(len(queries)):
            for j in range(len(queries), len(docs)):
                _gensim_wmd(vectors, tokens[i], tokens[j])

    t_gensim = median_time(gensim_all, args.repeats)
    gensim_rate = n_pairs / t_gensim
    rows = [["gensim `wmdistance` (POT `emd2`, one pair per call)", f"{len(queries)} × {len(rest)}",
             _rate(n_pairs, t_gensim), "1.00"]]
    print(rows[-1], flush=True)
    for label, solver, options, n_q, n_c, repeats in [
            ("ot-jax exact, batched", "exact", {}, len(queries), len(rest), args.repeats),
            ("ot-jax IPOT (tol 1e-4), jit + vmap", "ipot", dict(tol=1e-4), 1, args.iterative_docs, 1),
            ("ot-jax Sinkhorn (ε = 0.01 × mean), jit + vmap", "sinkhorn", dict(epsilon=0.01), 1, args.iterative_docs, 1)]:
        W.wmd_matrix(queries[:n_q], rest[:n_c], emb, solver=solver, block_size=args.block, **options)  # compile
        status = W.wmd_matrix(queries[:n_q], rest[:n_c], emb, solver=solver, block_size=args.block, **options)[1]
        seconds = median_time(lambda: W.wmd_matrix(queries[:n_q], rest[:n_c], emb, solver=solver,  # noqa: B023
                                                    block_size=args.block, **options)[0], repeats)  # noqa: B023
        rows.append([label, f"{n_q} × {n_c} ({np.mean(status == 0):.0%} CONVERGED)",
                     _rate(n_q * n_c, seconds), f"{(n_q * n_c / seconds) / gensim_rate:.2f}"])
        print(rows[-1], flush=True)
    rest = docs[len(queries):]  # the queries are not in the searched corpus
    n_pairs = len(queries) * len(rest)
    for k in (1, 5):
        start = time.perf_counter()
        pruned = W.knn(queries, rest, emb, k)  # the first call compiles the block shapes it meets
        first = time.perf_counter() - start
        seconds = median_time(lambda: W.knn(queries, rest, emb, k).indices, args.repeats)  # noqa: B023
        rows.append([f"ot-jax kNN, k = {k}, WCD/RWMD pruning (prefetch 2k)", f"{len(queries)} × {len(rest)}: "
                     f"{pruned.n_exact} exact solves ({pruned.pruned:.0%} pruned; first call {first:.1f} s with "
                     f"compilation, then {seconds:.1f} s)", _rate(n_pairs, seconds),
                     f"{(n_pairs / seconds) / gensim_rate:.2f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["method", "pairs", "pairs per second", "ratio to gensim"], rows)
    note = (f"lee_background: {len(docs)} articles of {int(np.median(lengths))} distinct words (median; "
            f"{lengths.min()}–{lengths.max()}), word2vec vectors of {emb.shape[1]} dimensions trained here. "
            f"The first {args.queries} articles are the queries, the other {len(rest)} the corpus; medians of "
            f"{args.repeats} calls (IPOT and Sinkhorn: one call on the first query and {args.iterative_docs} "
            f"articles), compilation excluded. "
            f"Blocks of {args.block} pairs per compiled call, documents padded to powers of two. kNN rows: pairs "
            f"per second counts every pair of the brute-force search, the exact solves and bounds computed included. `{command_line()}` at {git_revision()} on "
            f"{cpu_model()}, one process.")
    return table + "\n\n" + note


def knn_errors(distances: np.ndarray, labels: np.ndarray, ks) -> dict:
    """Leave-one-out kNN error for each k (``distances: [n, n]``, the diagonal ignored)."""
    d = distances.astype(float).copy()
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    n_classes = int(labels.max()) + 1
    out = {}
    for k in ks:
        nearest = labels[order[:, :k]]
        votes = np.stack([(nearest == c).sum(1) for c in range(n_classes)], 1)
        best = votes.max(1, keepdims=True)
        # ties: the class of the nearest neighbour among the tied classes
        tied = votes == best
        pred = np.array([next(c for c in row_labels if tied[i, c]) for i, row_labels in enumerate(nearest)])
        out[k] = float(np.mean(pred != labels))
    return out


def knn(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_distances

    from ot_jax.tools import wmd as W

    docs, labels, tokens, vectors = polarity()
    emb = np.asarray(vectors.get_normed_vectors(), np.float64)  # gensim's default (norm=True)
    start = time.perf_counter()
    wmd_all = W.wmd_matrix(docs, docs, emb)[0]
    t_wmd = time.perf_counter() - start
    wcd_all, rwmd_all = W.bound_matrix(docs, docs, emb)
    tfidf = TfidfVectorizer(analyzer=lambda t: t).fit_transform(tokens)
    means = np.stack([(w / w.sum()) @ emb[i] for i, w in docs])
    distances = {"WMD": wmd_all, "RWMD": rwmd_all, "WCD": wcd_all, "TF-IDF cosine": cosine_distances(tfidf),
                 "mean word vector cosine": cosine_distances(means)}
    n = len(labels)
    errors = {name: knn_errors(d, labels, KS) for name, d in distances.items()}
    se = lambda p: np.sqrt(p * (1 - p) / n)  # noqa: E731
    rows = [[name, *[f"{100 * e[k]:.1f} ± {100 * se(e[k]):.1f}" for k in (1, 3, 5, 7, 10)],
             f"{100 * min(e.values()):.1f} (k = {min(e, key=e.get)})"] for name, e in errors.items()]
    table = markdown_table(["distance", "k = 1", "k = 3", "k = 5", "k = 7", "k = 10", "best over k = 1..10"], rows)
    prune = W.knn(docs, docs, emb, 5, exclude_self=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, e in errors.items():
        ax.plot(KS, [100 * e[k] for k in KS], marker="o", label=name)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="k", ylabel="leave-one-out error (%)", title=f"kNN on {n} polarity sentences")
    ax.legend(fontsize=8)
    order = np.argsort(labels, kind="stable")
    off = wmd_all[~np.eye(n, dtype=bool)]
    im = bx.imshow(wmd_all[np.ix_(order, order)], cmap="viridis", vmin=np.percentile(off, 1), vmax=np.percentile(off, 99))
    bx.set(title="WMD between sentences (negative, then positive)", xticks=[], yticks=[])
    fig.colorbar(im, ax=bx, fraction=0.046)
    fig.tight_layout()
    os.makedirs(os.path.dirname(FIGURE), exist_ok=True)
    fig.savefig(args.figure, dpi=120)
    note = (f"Leave-one-out test error (%) ± its standard error, {n} sentences ({int((labels == 0).sum())} negative, "
            f"{int((labels == 1).sum())} positive), fastText vectors; majority vote, ties to the nearest "
            f"neighbour. All {n * n} exact WMDs in {t_wmd:.1f} s; the pruned 5-NN search solved {prune.n_exact} "
            f"of {prune.n_pairs} pairs ({prune.pruned:.0%} pruned) and returned the brute-force neighbours: "
            f"{bool(np.array_equal(prune.indices, np.argsort(np.where(np.eye(n, dtype=bool), np.inf, wmd_all), 1, kind='stable')[:, :5]))}. "
            f"`{command_line()}` at {git_revision()} on {cpu_model()}.")
    return table + "\n\n" + note


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=["agreement", "speed", "knn"],
                        default=["agreement", "speed", "knn"])
    parser.add_argument("--pairs", type=int, default=1000, help="agreement: random pairs")
    parser.add_argument("--repeats", type=int, default=3, help="speed: timed calls (median)")
    parser.add_argument("--queries", type=int, default=20, help="speed: query articles against the corpus")
    parser.add_argument("--iterative-docs", type=int, default=16, help="speed: articles one query meets with IPOT and Sinkhorn")
    parser.add_argument("--block", type=int, default=256, help="pairs per compiled call")
    parser.add_argument("--figure", default=FIGURE)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = parser.parse_args(argv)
    _x64()
    for part in args.parts:
        markdown = {"agreement": agreement, "speed": speed, "knn": knn}[part](args)
        print(markdown, flush=True)
        if not args.no_write:
            write_section(f"wmd-{part}", markdown)


if __name__ == "__main__":
    main()
