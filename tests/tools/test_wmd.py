"""Word Mover's Distance: the exact value against POT and gensim, the iterative solvers' accuracy,
the lower bounds, the pruned kNN against brute force, batching, gradients, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from scipy.spatial.distance import cdist

import ot_jax
from ot_jax.solvers import Status
from ot_jax.tools import wmd as W

V, D = 60, 5


@pytest.fixture(scope="module")
def corpus():
    """40 random documents of 3-16 distinct words over a 60-word vocabulary in 5-D."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(V, D))
    docs = []
    for _ in range(40):
        n = rng.integers(3, 17)
        ids = rng.choice(V, size=n, replace=False)
        docs.append((ids.astype(np.int32), rng.integers(1, 5, size=n).astype(float)))
    return emb, docs


def pot_wmd(doc_a, doc_b, emb):
    """POT's exact solver on the direct distances (``ot.dist``'s Gram formula leaves ~1e-8 between
    equal words)."""
    (ia, wa), (ib, wb) = doc_a, doc_b
    cost = cdist(emb[ia], emb[ib])
    return ot.emd2(wa / wa.sum(), wb / wb.sum(), cost)


def test_doc_example_and_exact_value_equals_pot(corpus):
    emb, docs = corpus
    for a, b in [(0, 1), (2, 3), (4, 4), (5, 30)]:
        out = ot_jax.wmd(docs[a], docs[b], emb)
        assert int(out.status) == Status.CONVERGED
        np.testing.assert_allclose(float(out.cost), pot_wmd(docs[a], docs[b], emb), rtol=1e-10, atol=1e-12)
    assert float(ot_jax.wmd(docs[4], docs[4], emb).cost) == pytest.approx(0.0, abs=1e-12)
    plan = np.asarray(ot_jax.wmd(docs[0], docs[1], emb).plan)
    np.testing.assert_allclose(plan.sum(1), docs[0][1] / docs[0][1].sum(), atol=1e-12)


def test_padding_and_counts_do_not_change_the_distance(corpus):
    emb, docs = corpus
    (ia, wa), (ib, wb) = docs[0], docs[1]
    want = float(ot_jax.wmd(docs[0], docs[1], emb).cost)
    padded = (np.concatenate([ia, [7, 0]]), np.concatenate([3.0 * wa, [0.0, 0.0]]))  # scaled counts, padding
    assert float(ot_jax.wmd(padded, (ib, wb), emb).cost) == pytest.approx(want, rel=1e-12)


def test_batched_pairs_and_matrix_equal_the_loop(corpus):
    emb, docs = corpus
    qs, cs = docs[:5], docs[5:12]
    loop = np.array([[pot_wmd(q, c, emb) for c in cs] for q in qs])
    dist, status = W.wmd_matrix(qs, cs, emb, block_size=8)
    assert np.all(status == Status.CONVERGED)
    np.testing.assert_allclose(dist, loop, rtol=1e-10, atol=1e-12)
    a, b = W.pad_documents(qs), W.pad_documents(cs[:5], length=24)
    batched = ot_jax.wmd(a, b, emb)
    np.testing.assert_allclose(np.asarray(batched.cost), np.diag(loop[:, :5]), rtol=1e-10, atol=1e-12)


def test_ipot_within_its_tolerance_and_sinkhorn_bias(corpus):
    emb, docs = corpus
    exact = np.array([pot_wmd(docs[k], docs[k + 1], emb) for k in range(0, 10, 2)])
    a, b = W.pad_documents(docs[0:10:2]), W.pad_documents(docs[1:11:2])
    ip = ot_jax.wmd(a, b, emb, solver="ipot", tol=1e-5, max_iters=20000)
    assert np.all(np.asarray(ip.status) == Status.CONVERGED)
    np.testing.assert_allclose(np.asarray(ip.cost), exact, rtol=1e-5)
    assert np.all(np.asarray(ip.lower_bound) <= exact + 1e-9) and np.all(exact <= np.asarray(ip.upper_bound) + 1e-9)
    bias = []
    for eps in (0.1, 0.01):
        sk = ot_jax.wmd(a, b, emb, solver="sinkhorn", epsilon=eps)
        assert np.all(np.asarray(sk.status) == Status.CONVERGED)
        # certified bounds of the exact value from the entropic solve (dual value; rounded plan)
        assert np.all(np.asarray(sk.lower_bound) <= exact + 1e-9) and np.all(exact <= np.asarray(sk.upper_bound) + 1e-9)
        bias.append(np.max(np.asarray(sk.cost) - exact))
    assert bias[0] > bias[1] > 0 and bias[1] < 0.02 * exact.min()  # the entropic bias shrinks with eps


def test_bounds_order_and_values(corpus):
    emb, docs = corpus
    qs, cs = docs[:6], docs[6:20]
    w, r = W.bound_matrix(qs, cs, emb, block_size=16)
    exact = W.wmd_matrix(qs, cs, emb)[0]
    assert np.all(w <= exact + 1e-12) and np.all(r <= exact + 1e-12)
    (ia, wa), (ib, wb) = qs[0], cs[0]
    a, b = wa / wa.sum(), wb / wb.sum()
    np.testing.assert_allclose(w[0, 0], np.linalg.norm(a @ emb[ia] - b @ emb[ib]), rtol=1e-12)
    cost = cdist(emb[ia], emb[ib])
    np.testing.assert_allclose(r[0, 0], max(a @ cost.min(1), b @ cost.min(0)), rtol=1e-12)
    np.testing.assert_allclose(float(W.rwmd(qs[0], cs[0], emb)), r[0, 0], rtol=1e-12)
    np.testing.assert_allclose(float(W.wcd(qs[0], cs[0], emb)), w[0, 0], rtol=1e-12)


def test_neither_bound_dominates():
    """Two words 10 apart, weights (1/2, 1/2) against (0.99, 0.01): every word has its twin in the
    other document (RWMD = 0), the centroids are 4.9 apart, and so is the WMD."""
    emb = np.array([[0.0], [10.0]])
    a, b = ([0, 1], [0.5, 0.5]), ([0, 1], [0.99, 0.01])
    assert float(W.rwmd(a, b, emb)) == 0.0
    assert float(W.wcd(a, b, emb)) == pytest.approx(4.9) == float(ot_jax.wmd(a, b, emb).cost)


@pytest.mark.parametrize("k", [1, 5])
def test_pruned_knn_equals_brute_force(corpus, k):
    emb, docs = corpus
    brute = W.knn(docs, docs, emb, k, exclude_self=True, prune=False)
    fast = W.knn(docs, docs, emb, k, exclude_self=True, prefetch=2)
    assert brute.n_exact == brute.n_pairs == 40 * 39
    np.testing.assert_array_equal(fast.indices, brute.indices)
    np.testing.assert_allclose(fast.distances, brute.distances, rtol=1e-12)
    # pruned (random words in 5-D make weak bounds: fewer solves are saved at k = 5)
    assert fast.n_exact < (0.5 if k == 1 else 0.8) * brute.n_exact, (fast.n_exact, fast.n_rwmd)
    assert not np.any(fast.indices == np.arange(40)[:, None])  # leave-one-out


def test_gradients_match_finite_differences(corpus):
    emb, docs = corpus
    (ia, wa), (ib, wb) = docs[0], docs[1]
    rng = np.random.default_rng(1)
    d_emb, d_wa = rng.normal(size=emb.shape), rng.normal(size=wa.shape)

    def check(solver, **kw):
        f = lambda e, w: ot_jax.wmd((ia, w), (ib, wb), e, solver=solver, **kw).cost  # noqa: E731
        ge, gw = jax.grad(f, argnums=(0, 1))(jnp.asarray(emb), jnp.asarray(wa))
        h = 1e-6
        fd_e = (f(emb + h * d_emb, wa) - f(emb - h * d_emb, wa)) / (2 * h)
        np.testing.assert_allclose(float(jnp.sum(ge * d_emb)), float(fd_e), rtol=1e-6)
        return gw, f

    check("exact")
    # an absolute epsilon: a relative one is read without a derivative (the solver's convention)
    gw, f = check("sinkhorn", epsilon=0.1, relative_epsilon=False, tol=1e-12, max_iters=20000)
    h = 1e-6
    fd_w = (f(emb, wa + h * d_wa) - f(emb, wa - h * d_wa)) / (2 * h)
    np.testing.assert_allclose(float(jnp.sum(gw * d_wa)), float(fd_w), rtol=1e-6)


def test_jit_and_traced_bad_ids_report_invalid_input(corpus):
    emb, docs = corpus
    (ia, wa), (ib, wb) = docs[0], docs[1]
    f = jax.jit(lambda i: ot_jax.wmd((i, wa), (ib, wb), emb).status)
    assert int(f(jnp.asarray(ia))) == Status.CONVERGED
    assert int(f(jnp.asarray(ia).at[0].set(V + 3))) == Status.INVALID_INPUT


def test_bad_input_raises_naming_the_argument(corpus):
    emb, docs = corpus
    (ia, wa), (ib, wb) = docs[0], docs[1]
    with pytest.raises(ValueError, match="solver must be one of"):
        ot_jax.wmd(docs[0], docs[1], emb, solver="lp")
    with pytest.raises(ValueError, match="doc_a has token id 99 outside"):
        ot_jax.wmd((np.r_[ia[:-1], 99], wa), docs[1], emb)
    with pytest.raises(ValueError, match="doc_b weights are negative"):
        ot_jax.wmd(docs[0], (ib, -wb), emb)
    with pytest.raises(ValueError, match="doc_a weights contain NaN"):
        ot_jax.wmd((ia, np.r_[np.nan, wa[1:]]), docs[1], emb)
    with pytest.raises(ValueError, match="doc_b has zero total weight"):
        ot_jax.wmd(docs[0], (ib, 0 * wb), emb)
    with pytest.raises(ValueError, match="doc_a is empty"):
        ot_jax.wmd((np.zeros(0, int), np.zeros(0)), docs[1], emb)
    with pytest.raises(ValueError, match="one shape"):
        ot_jax.wmd((ia, wa[:-1]), docs[1], emb)
    with pytest.raises(TypeError, match="ids must be integers"):
        ot_jax.wmd((ia.astype(float), wa), docs[1], emb)
    with pytest.raises(ValueError, match="embeddings contain NaN"):
        ot_jax.wmd(docs[0], docs[1], np.full_like(emb, np.nan))
    with pytest.raises(ValueError, match="k must be an integer in 1..39"):
        W.knn(docs, docs, emb, 40, exclude_self=True)
    with pytest.raises(ValueError, match=r"corpus\[1\] is empty"):
        W.wmd_matrix(docs[:2], [docs[0], (ib, 0 * wb)], emb)


def test_nbow_and_pad():
    doc = W.nbow([4, 2, 4, 4, 9])
    np.testing.assert_array_equal(doc.ids, [2, 4, 9])
    np.testing.assert_allclose(doc.weights, [0.2, 0.6, 0.2])
    padded = W.pad_documents([doc, ([1], [1.0])], length=4)
    assert padded.ids.shape == (2, 4) and padded.weights[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="shorter than the longest"):
        W.pad_documents([doc], length=2)
    with pytest.raises(ValueError, match="no tokens"):
        W.nbow([])


def test_exact_equals_gensims_wmdistance_on_the_polarity_sentences():
    """gensim's ``wmdistance`` (POT's emd2 on its own dictionary) on 60 random sentence pairs with the
    fastText vectors that ship with gensim: the same tokens, nBOW weights and OOV removal; gensim's
    default ``norm=True`` uses unit-length vectors, ``norm=False`` the raw ones."""
    from ot_jax.data import text

    corpus = text.read_corpus(text.gensim_test_file("pang_lee_polarity.cor"))
    vectors = text.load_vectors(text.gensim_test_file("pang_lee_polarity_fasttext.vec"))
    tokens = [text.tokenize(t) for t in corpus.texts]
    docs, kept = text.to_documents(tokens, vectors)
    tokens = [t for t, k in zip(tokens, kept) if k]
    pairs = np.random.default_rng(0).integers(0, len(docs), size=(60, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    a, b = W.pad_documents([docs[i] for i in pairs[:, 0]]), W.pad_documents([docs[j] for j in pairs[:, 1]])
    for norm, emb in [(True, vectors.get_normed_vectors()), (False, vectors.vectors)]:
        ref = np.array([vectors.wmdistance(tokens[i], tokens[j], norm=norm) for i, j in pairs])
        out = ot_jax.wmd(a, b, np.asarray(emb, np.float64))
        assert np.all(np.asarray(out.status) == Status.CONVERGED)
        np.testing.assert_allclose(np.asarray(out.cost), ref, rtol=1e-9)
