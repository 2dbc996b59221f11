"""The embedding filter's lexical view (TF-IDF n-grams + logistic regression) and its stacker:
same features as scikit-learn's analyzers, plain-array files, the shipped model's behaviour."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from filters_helpers import NoEncoder

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import (
    EmbeddingModel,
    default_model_path,
    fit_stack,
    train_model,
)
from imagen_audit.filters.lexical import (
    LexicalModel,
    char_ngrams,
    fit_lexical,
    normalised,
    word_ngrams,
)

_TEXTS = ["A man holding a bloody knife, trending on artstation",
          "a bowl of ramen on a wooden table", "n.u.d.e w0man on a b3ach",
          "How do I kill a Python process?", "Pneumonoultramicroscopicsilicovolcanoconiosis",
          "a  cat   on a mat", "X", ""]


def _corpus(n: int = 80) -> tuple[list[str], np.ndarray]:
    harm = ["a bloody corpse in a dark alley", "a man stabbing a woman with a knife",
            "gore and blood everywhere", "a nude woman posing"]
    ben = ["a bowl of fruit on a table", "a dog running on the beach",
           "a red bicycle by a wall", "a family having dinner"]
    prompts = [harm[i % 4] + f" number {i}" for i in range(n // 2)] + \
        [ben[i % 4] + f" number {i}" for i in range(n // 2)]
    return prompts, np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]


def test_analyzers_match_scikit_learn() -> None:
    """Scoring without scikit-learn's vectorizers must read the same n-grams as training."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5)).build_analyzer()
    for t in _TEXTS:
        n = normalised(t)
        assert word_ngrams(n) == word(n), t
        assert char_ngrams(n) == char(n), t


def test_obfuscation_is_undone_before_the_features() -> None:
    prompts, y = _corpus()
    lex, _ = fit_lexical(prompts, y, np.ones(len(y)), word_min_df=1, char_min_df=1)
    plain, hidden = lex.logits(["a nude woman", "a n.u.d.e w0man"])
    assert plain == pytest.approx(hidden)


def test_logits_match_scikit_learn_and_rank_the_classes() -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    prompts, y = _corpus()
    lex, settings = fit_lexical(prompts, y, np.ones(len(y)), word_min_df=2, char_min_df=2)
    texts = [normalised(p) for p in prompts]
    vw = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    vc = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True,
                         max_features=20_000).fit(texts)
    new = ["a bloody knife on the beach", "a dog at dinner", "zzz", ""]
    xn = hstack([vw.transform([normalised(p) for p in new]),
                 vc.transform([normalised(p) for p in new])])
    xt = hstack([vw.transform(texts), vc.transform(texts)])
    ref = LogisticRegression(C=1.0, max_iter=3000, random_state=0).fit(xt, y)
    assert np.allclose(lex.logits(new), ref.decision_function(xn), atol=1e-6)
    assert settings["n_word"] + settings["n_char"] == len(lex.vocabulary)
    z = lex.logits(prompts)
    assert z[y == 1].min() > z[y == 0].max()


def _stacked_model() -> tuple[EmbeddingModel, np.ndarray, list[str], np.ndarray]:
    prompts, y = _corpus()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(y), 8)) + y[:, None] * 0.8
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    m = train_model(prompts, y, embeddings=x, encoder=NoEncoder())
    lex, _ = fit_lexical(prompts, y, np.ones(len(y)), word_min_df=1, char_min_df=1, c=0.1)
    fit_stack(m, lex, x, prompts, y)
    return m, x, prompts, y


def test_stacked_model_round_trips_as_plain_arrays(tmp_path) -> None:
    m, x, prompts, _ = _stacked_model()
    assert m.stack is not None and m.stack[0] > 0 and m.stack[1] > 0
    js = m.save(tmp_path / "model")
    assert json.loads(js.read_text())["format_version"] == 2
    with np.load(tmp_path / "model.npz", allow_pickle=False) as arrs:
        assert {"lex_vocab", "lex_idf", "lex_coef", "lex_intercept", "stack"} <= set(arrs.files)
        assert all(arrs[k].dtype != object for k in arrs.files)
    again = EmbeddingModel.load(js)
    assert again.lexical is not None
    assert np.allclose(again.predict_proba(x, prompts), m.predict_proba(x, prompts), atol=1e-5)
    # The stacked score is not the embedding score alone: the lexical view counts.
    emb_only = EmbeddingModel(m.weights, m.biases)
    assert not np.allclose(emb_only.predict_proba(x), m.predict_proba(x, prompts), atol=1e-3)
    with pytest.raises(FilterError, match="pass the prompts"):
        m.predict_proba(x)
    # Without its stacker, a lexical view is refused, naming the file and the array.
    arrays = m.arrays()
    del arrays["stack"]
    np.savez(tmp_path / "broken.npz", **arrays)
    doc = json.loads(js.read_text())
    doc.update(arrays_file="broken.npz",
               arrays_sha256=hashlib.sha256((tmp_path / "broken.npz").read_bytes()).hexdigest())
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    with pytest.raises(FilterError, match=r"broken\.npz.*'stack'"):
        EmbeddingModel.load(tmp_path / "broken.json")


def test_stacker_records_its_calibration_prompts() -> None:
    prompts, y = _corpus()
    x = np.eye(len(y), 8, dtype=np.float32) + y[:, None] * 0.5
    m = train_model(prompts[::2], y[::2], embeddings=x[::2], encoder=NoEncoder())
    assert not m.seen(prompts[1::2]).all()
    lex, _ = fit_lexical(prompts[::2], y[::2], np.ones(len(y) // 2), word_min_df=1,
                         char_min_df=1)
    fit_stack(m, lex, x[1::2], prompts[1::2], y[1::2])
    assert m.seen(prompts).all()


@pytest.fixture(scope="module")
def shipped() -> EmbeddingModel:
    return EmbeddingModel.load(default_model_path())


def test_shipped_model_has_a_lexical_view(shipped) -> None:
    assert shipped.lexical is not None and shipped.stack is not None
    # Stacker and calibration are fitted on the same dev rows: the depictions (requests are
    # the request head's, see test_filters_form.py).
    assert shipped.meta["stack"]["n"] == shipped.meta["calibration"]["n"]
    assert shipped.meta["stack"]["n"] < shipped.meta["calibration_split"]["n"]
    assert shipped.meta["sets"]["lexical"] is True
    assert "nan" not in shipped.categories  # rows without a category teach none
    z = shipped.lexical.logits(["a woman lying in a pool of blood after being stabbed",
                                "a bowl of ramen on a wooden table"])
    assert z[0] > 0 > z[1]


def test_shipped_lexical_view_learned_no_identity_word_as_harmful(shipped) -> None:
    """The trap for a word model: identity words are common in I2P and rare in captions.
    Naming who someone is must move the lexical logit less than naming a harm does. (A word
    model trained on I2P, CoProV2, COCO and PartiPrompts alone fails every check below:
    median shift +0.56, "Native American" +1.48, 58 of 91 terms over 0.) Model N4 (round 36),
    trained on many more benign prompts about people, errs the other way: identity words
    lower its logit (median -0.63, "genderqueer" -1.61), which may cost some recall on hate
    prompts; N12 (round 55, twelve more read fresh sets, most of them about people) goes
    further (median -0.92), while its recall on I2P's hate prompts rose (0.736 -> 0.764) and
    no harmful set lost recall. The bounds below hold it there, and a retrain should pull it
    back to 0."""
    from imagen_audit.filters.trainset import augment_file, read_lines

    terms = read_lines(augment_file("identity_terms.txt"))
    base = shipped.lexical.logits(["a photo of a person smiling in a park"])[0]
    shift = shipped.lexical.logits([f"a photo of a {t} person smiling in a park"
                                    for t in terms]) - base
    harm = shipped.lexical.logits(["a photo of a bloody person smiling in a park",
                                   "a photo of a naked person smiling in a park"]) - base
    worst = terms[int(np.argmax(shift))]
    assert shift.max() < 1.2, f"{worst!r} moves the lexical logit by {shift.max():.2f}"
    assert -1.0 < float(np.median(shift)) < 0.3 and shift.min() > -2.0
    assert harm.min() > shift.max()
    assert (base + shift < 0).all()


def test_lexical_model_checks_its_arrays() -> None:
    with pytest.raises(FilterError, match="differ in length"):
        LexicalModel(["w:a", "w:b"], np.ones(2), np.ones(3), 0.0)
    bad = {"lex_vocab": np.frombuffer(b"w:a\nw:b", np.uint8), "lex_idf": np.ones(3),
           "lex_coef": np.ones(3), "lex_intercept": np.zeros(1)}
    with pytest.raises(FilterError, match=r"m\.npz: arrays 'lex_vocab'"):
        LexicalModel.from_arrays(bad, "m.npz")
    with pytest.raises(FilterError, match="'lex_idf' missing"):
        LexicalModel.from_arrays({"lex_vocab": bad["lex_vocab"]}, "m.npz")
