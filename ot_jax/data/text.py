"""Text corpora as bags of words for the Word Mover's Distance (:mod:`ot_jax.tools.wmd`).

Thin on purpose: gensim tokenises (``gensim.utils.simple_preprocess``), removes stop words
(``gensim.parsing.preprocessing.STOPWORDS``, 337 English words; Kusner et al. used the SMART
list) and holds the word vectors (``KeyedVectors``); this module turns token lists into
documents ``(ids, weights)`` over the rows of ``KeyedVectors.vectors``.

Files: one document per line (``.cor``, as gensim's test corpora), optionally labelled the
fastText way (``__label__pos some text``). Nothing is downloaded: :func:`gensim_test_file`
finds the corpora that ship with gensim (``lee_background.cor``, 300 news articles;
``pang_lee_polarity.cor``, 200 labelled movie-review sentences with their fastText vectors
``pang_lee_polarity_fasttext.vec``; ``head500.noblanks.cor``, 500 Wikipedia articles). The
published WMD benchmarks (BBCSport, Twitter, 20 Newsgroups, ...) are downloads: write them one
document per line with a ``__label__`` prefix and read them with :func:`read_corpus`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Corpus", "read_corpus", "tokenize", "gensim_test_file", "load_vectors", "to_documents"]

LABEL_PREFIX = "__label__"


class Corpus(NamedTuple):
    """``texts``: one string per document; ``labels``: ``[n]`` int class ids (-1 when the file has
    no labels); ``label_names``: the class names in id order."""

    texts: list
    labels: np.ndarray
    label_names: tuple


def read_corpus(path: str | os.PathLike, *, labelled: bool | None = None, encoding: str = "utf-8",
                errors: str = "replace") -> Corpus:
    """Read one document per line (blank lines skipped). ``labelled``: every line starts with a
    ``__label__NAME`` token (None: decided by the first line). Label ids follow the sorted names.
    Bytes that are not ``encoding`` become U+FFFD by default (``pang_lee_polarity.cor`` holds a few
    cp1252 dashes), which the tokeniser drops; ``errors="strict"`` raises instead."""
    with open(path, encoding=encoding, errors=errors) as handle:
        lines = [line.strip() for line in handle]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"read_corpus: {path} holds no documents")
    if labelled is None:
        labelled = lines[0].startswith(LABEL_PREFIX)
    if not labelled:
        return Corpus(lines, np.full(len(lines), -1, np.int64), ())
    names, texts = [], []
    for number, line in enumerate(lines, 1):
        head, _, text = line.partition(" ")
        if not head.startswith(LABEL_PREFIX) or len(head) == len(LABEL_PREFIX):
            raise ValueError(f"read_corpus: line {number} of {path} has no {LABEL_PREFIX}NAME label")
        names.append(head[len(LABEL_PREFIX):])
        texts.append(text.strip())
    label_names = tuple(sorted(set(names)))
    index = {name: k for k, name in enumerate(label_names)}
    return Corpus(texts, np.array([index[n] for n in names], np.int64), label_names)


def tokenize(text: str, *, stopwords: bool = True) -> list[str]:
    """Lower-cased alphabetic tokens of 2-15 characters (gensim's ``simple_preprocess``), without
    gensim's English stop words when ``stopwords``."""
    from gensim.parsing.preprocessing import STOPWORDS
    from gensim.utils import simple_preprocess

    tokens = simple_preprocess(text)
    return [t for t in tokens if t not in STOPWORDS] if stopwords else tokens


def gensim_test_file(name: str) -> str:
    """The path of a file that ships in gensim's test data (``gensim/test/test_data``)."""
    from gensim.test.utils import datapath

    path = datapath(name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"gensim_test_file: {name} is not in gensim's test data ({os.path.dirname(path)})")
    return path


def load_vectors(path: str | os.PathLike, *, binary: bool = False, errors: str = "replace"):
    """Word vectors in word2vec/fastText format (``.vec`` text, or ``binary``) as gensim
    ``KeyedVectors``; words that are not UTF-8 are decoded with ``errors`` (as in :func:`read_corpus`)."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(str(path), binary=binary, unicode_errors=errors)


def to_documents(token_lists: Iterable[Sequence[str]], vectors) -> tuple[list, np.ndarray]:
    """Documents ``(ids [L], weights [L])`` over the rows of ``vectors.vectors`` (unique ids, sorted,
    and their nBOW frequencies, as :func:`ot_jax.tools.wmd.nbow`; words without a vector are dropped, as gensim's ``wmdistance`` does), and a
    ``[n]`` bool mask of the documents left with at least one word (the others are omitted)."""
    index = vectors.key_to_index
    docs, kept = [], []
    for tokens in token_lists:
        ids = [index[t] for t in tokens if t in index]
        kept.append(bool(ids))
        if ids:
            unique, counts = np.unique(np.asarray(ids, np.int64), return_counts=True)
            docs.append((unique.astype(np.int32), counts / counts.sum()))
    return docs, np.asarray(kept, bool)
