"""A lexical view of a prompt for the embedding filter: TF-IDF n-grams + logistic regression.

MiniLM embeddings blur wording: a prompt that names a harm in plain words can still land
near benign captions, and an odd benign prompt far from every training prompt gets
whatever score the MLP extrapolates to. A linear model over the prompt's *words* fails
differently (it reads "a can of Spam on an elegant plate" word by word, all of them benign),
so the embedding filter stacks the two logits (:mod:`imagen_audit.filters.embedding`).

Features are computed on the ``joined`` view of :func:`~imagen_audit.filters.normalise.views`
(NFKC, confusables, leetspeak and spelled-out words undone), so obfuscation that defeats the
word list defeats this view no more:

- word 1-2-grams (tokens of 2+ word characters; scikit-learn's default word analyzer);
- character 3-5-grams inside word boundaries (scikit-learn's ``char_wb``: each word padded
  with one space), which still match inflections and misspellings.

Each group is TF-IDF weighted (sublinear tf, smoothed idf) and L2-normalised on its own,
then one logistic regression scores the two side by side. The model is saved as plain arrays
(the vocabulary as UTF-8 bytes, one term a line; idf; coefficients) inside the embedding
model's ``.npz`` (never pickled), and scored here without scikit-learn's vectorizers, with the
same analyzers that trained it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.normalise import views

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WS = re.compile(r"\s\s+")
WORD, CHAR = "w:", "c:"  # prefixes of the two feature groups in the shared vocabulary


def normalised(text: str) -> str:
    """The text the features are read from (the word list's most decoded view)."""
    return views(text)["joined"]


def word_ngrams(text: str, n_max: int = 2) -> list[str]:
    """Word 1..n_max-grams of normalised text, as scikit-learn's word analyzer makes them."""
    tokens = _TOKEN.findall(text)
    out = list(tokens)
    for n in range(2, n_max + 1):
        out += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return out


def char_ngrams(text: str, n_min: int = 3, n_max: int = 5) -> list[str]:
    """Character n-grams inside word boundaries, as scikit-learn's ``char_wb`` makes them."""
    out: list[str] = []
    for w in _WS.sub(" ", text).split():
        w = f" {w} "
        for n in range(n_min, n_max + 1):
            offset = 0
            out.append(w[offset:offset + n])
            while offset + n < len(w):
                offset += 1
                out.append(w[offset:offset + n])
            if offset == 0:  # a short word counts once
                break
    return out


def features(text: str) -> list[str]:
    """All prefixed features (``w:``/``c:``) of one raw prompt."""
    t = normalised(text)
    return [WORD + g for g in word_ngrams(t)] + [CHAR + g for g in char_ngrams(t)]


@dataclass
class LexicalModel:
    """TF-IDF over prefixed word and character n-grams, and a linear scorer."""

    vocabulary: list[str]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float

    def __post_init__(self) -> None:
        self.idf = np.asarray(self.idf, dtype=np.float64)
        self.coef = np.asarray(self.coef, dtype=np.float64)
        if not (len(self.vocabulary) == len(self.idf) == len(self.coef)):
            raise FilterError("lexical model: vocabulary, idf and coefficients differ in "
                              "length")
        self._index = {t: i for i, t in enumerate(self.vocabulary)}
        self._group = np.array([t.startswith(CHAR) for t in self.vocabulary], dtype=np.int8)

    def logits(self, prompts: Sequence[str]) -> np.ndarray:
        """Linear logit of each prompt (harmful > 0 before stacking)."""
        out = np.full(len(prompts), float(self.intercept))
        for k, p in enumerate(prompts):
            counts = Counter(i for i in map(self._index.get, features(str(p))) if i is not None)
            if not counts:
                continue
            idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            v = tf * self.idf[idx]
            g = self._group[idx]
            for grp in (0, 1):  # each group is L2-normalised on its own
                m = g == grp
                norm = math.sqrt(float(v[m] @ v[m]))
                if norm > 0:
                    v[m] /= norm
            out[k] += float(v @ self.coef[idx])
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        vocab = "\n".join(self.vocabulary).encode("utf-8")
        return {"lex_vocab": np.frombuffer(vocab, dtype=np.uint8),
                "lex_idf": self.idf.astype(np.float32), "lex_coef": self.coef.astype(np.float32),
                "lex_intercept": np.array([self.intercept], dtype=np.float32)}

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], where: str) -> LexicalModel:
        try:
            vocab = data["lex_vocab"]
            idf, coef, b = data["lex_idf"], data["lex_coef"], data["lex_intercept"]
        except KeyError as exc:
            raise FilterError(f"{where}: array {exc} missing (lexical view)") from None
        if vocab.dtype != np.uint8 or vocab.ndim != 1:
            raise FilterError(f"{where}: array 'lex_vocab' must be 1-d uint8 (UTF-8 bytes)")
        try:
            terms = vocab.tobytes().decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise FilterError(f"{where}: array 'lex_vocab' is not UTF-8 ({exc})") from exc
        if len(terms) != len(idf) or len(terms) != len(coef):
            raise FilterError(f"{where}: arrays 'lex_vocab', 'lex_idf' and 'lex_coef' differ "
                              "in length")
        return cls(terms, idf, coef, float(np.ravel(b)[0]))


def fit_lexical(prompts: Sequence[str], labels: Sequence[int], weights: Sequence[float], *,
                c: float = 1.0, word_min_df: int = 5, char_min_df: int = 3,
                char_max_features: int = 20_000, seed: int = 0
                ) -> tuple[LexicalModel, dict[str, Any]]:
    """Fit TF-IDF vocabularies and a logistic regression on the embedding model's training
    rows (``weights``: the same class balance and source weights). Returns the model and
    its settings for the model file's metadata.

    Rare n-grams are dropped (``word_min_df``, ``char_min_df``, at most
    ``char_max_features`` character n-grams): they would memorise single training prompts
    and make the file large."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [normalised(p) for p in prompts]
    y = np.asarray(labels, dtype=int)
    vw = TfidfVectorizer(analyzer=word_ngrams, min_df=word_min_df, sublinear_tf=True)
    vc = TfidfVectorizer(analyzer=char_ngrams, min_df=char_min_df, sublinear_tf=True,
                         max_features=char_max_features)
    x = hstack([vw.fit_transform(texts), vc.fit_transform(texts)]).tocsr()
    w = np.asarray(weights, dtype=float)
    lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
    lr.fit(x, y, sample_weight=w / w.mean())
    vocab = ([WORD + t for t in vw.get_feature_names_out()]
             + [CHAR + t for t in vc.get_feature_names_out()])
    model = LexicalModel(vocab, np.concatenate([vw.idf_, vc.idf_]), lr.coef_[0],
                         float(lr.intercept_[0]))
    settings = {"features": "tf-idf word 1-2-grams + char_wb 3-5-grams of the 'joined' "
                            "normalised view, each L2-normalised",
                "c": c, "word_min_df": word_min_df, "char_min_df": char_min_df,
                "char_max_features": char_max_features, "n_word": len(vw.idf_),
                "n_char": len(vc.idf_)}
    return model, settings
