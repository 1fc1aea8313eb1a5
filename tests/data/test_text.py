"""Text corpora: reading labelled and unlabelled files the tests write, gensim's tokens and stop
words, and bags of words over a vocabulary (out-of-vocabulary words dropped)."""

import numpy as np
import pytest

from ot_jax.data import text


def test_read_labelled_and_plain_corpora(tmp_path):
    path = tmp_path / "reviews.cor"
    path.write_text("__label__pos a fine film\n\n__label__neg dull and slow\n__label__pos great fun\n")
    corpus = text.read_corpus(path)
    assert corpus.texts == ["a fine film", "dull and slow", "great fun"]
    assert corpus.label_names == ("neg", "pos") and corpus.labels.tolist() == [1, 0, 1]
    plain = tmp_path / "news.cor"
    plain.write_text("first article\nsecond one\n")
    corpus = text.read_corpus(plain)
    assert corpus.texts == ["first article", "second one"] and corpus.labels.tolist() == [-1, -1]
    bad = tmp_path / "bad.cor"
    bad.write_text("__label__pos fine\nno label here\n")
    with pytest.raises(ValueError, match="line 2 .* no __label__NAME"):
        text.read_corpus(bad)
    (tmp_path / "empty.cor").write_text("\n\n")
    with pytest.raises(ValueError, match="holds no documents"):
        text.read_corpus(tmp_path / "empty.cor")


def test_tokens_stop_words_and_documents(tmp_path):
    from gensim.models import KeyedVectors

    assert text.tokenize("The film, and THE actors, were great!") == ["film", "actors", "great"]
    assert text.tokenize("The film", stopwords=False) == ["the", "film"]
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["film", "actors", "great"], np.eye(3, 2, dtype=np.float32))
    docs, kept = text.to_documents([["film", "film", "unknown", "great"], ["unknown"], ["actors"]], kv)
    assert kept.tolist() == [True, False, True] and len(docs) == 2
    ids, weights = docs[0]
    assert ids.tolist() == [0, 2] and weights.tolist() == pytest.approx([2 / 3, 1 / 3])
    vec = tmp_path / "v.vec"
    vec.write_text("2 2\nfilm 1.0 0.0\ngreat 0.0 1.0\n")
    assert text.load_vectors(vec).key_to_index == {"film": 0, "great": 1}


def test_gensim_ships_the_corpora():
    corpus = text.read_corpus(text.gensim_test_file("pang_lee_polarity.cor"))
    assert len(corpus.texts) == 200 and np.bincount(corpus.labels).tolist() == [100, 100]
    with pytest.raises(FileNotFoundError, match="not in gensim's test data"):
        text.gensim_test_file("no_such_corpus.cor")
