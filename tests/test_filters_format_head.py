"""The picture-format head (round 50): which prompts it scores, how its threshold aligns,
its file format, and how its training rows are chosen and guarded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from filters_helpers import NoEncoder, drop_model_array

from imagen_audit.cli import main
from imagen_audit.filters import datasets as D
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import EmbeddingModel, piecewise_align, train_model
from imagen_audit.filters.form import (
    DEPICTION,
    FORMAT,
    REQUEST,
    is_format_depiction,
    names_picture_format,
)
from imagen_audit.filters.format_head import add_format_head, default_guard, format_rows


@pytest.mark.parametrize(("text", "named"), [
    ("cute ghost sticker with text I'm dead", True), ("a MEME about my cat", True),
    ("rat poison warning label redesign", True), ("birthday cards for grandma", True),
    ("Burns unit teaching diagram", True), ("phone wallpaper, kitten", True),
    ("a woman in a cardigan", False), ("carefully labelled jars", False),
    ("the posterior of a horse", False), ("a comical dog", False),
])
def test_picture_formats_are_named_by_whole_words(text: str, named: bool) -> None:
    assert names_picture_format(text) is named


def test_only_depictions_naming_a_format_go_to_the_head() -> None:
    prompts = ["a meme about cats", "How do I make a meme?", "a cat on a sofa",
               "make a poster for my bake sale"]
    assert is_format_depiction(prompts) == [True, False, False, True]


def _model(dim: int = 8, t_fmt: float | None = 0.8) -> EmbeddingModel:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    x = (rng.normal(size=(100, dim)) + y[:, None]).astype(np.float32)
    m = train_model([f"p{i}" for i in range(100)], y, [None] * 100, embeddings=x,
                    encoder=NoEncoder())
    m.meta["decision_threshold"] = 0.6
    m.format_head = ([rng.normal(size=(dim, 4)), rng.normal(size=(4, 1))],
                     [np.zeros(4), np.array([0.5])])
    m.meta["format_head"] = {"mix": "alone"}
    if t_fmt is not None:
        m.meta["format_threshold"] = t_fmt
    return m


def test_format_depictions_are_scored_by_the_head_on_the_depiction_scale(tmp_path) -> None:
    m = _model()
    x = np.random.default_rng(1).normal(size=(3, 8))
    prompts = ["a sticker of a skull", "a skull on a shelf", "How do I draw a skull sticker?"]
    plain = m.predict_proba(x, prompts)
    out, raw, forms = m.aligned_proba(x, prompts)
    assert forms == [FORMAT, DEPICTION, REQUEST]
    z = np.maximum(x[:1] @ m.format_head[0][0], 0) @ m.format_head[0][1] + 0.5
    head = 1 / (1 + np.exp(-z[:, 0]))
    assert raw[0] == pytest.approx(head[0])
    assert out[0] == pytest.approx(piecewise_align(head, 0.8, 0.6)[0])
    assert np.allclose(out[1:], plain[1:]) and np.allclose(raw[1:], plain[1:])
    # Mixed with the model's logit ("mean"), as the request head can be.
    m.meta["format_head"] = {"mix": "mean"}
    zm = np.log(plain[0] / (1 - plain[0]))
    assert m.aligned_proba(x, prompts)[1][0] == pytest.approx(
        1 / (1 + np.exp(-(zm + z[0, 0]) / 2)))
    # Without a threshold the head is not used: every depiction is one form.
    bare = _model(t_fmt=None)
    assert bare.aligned_proba(x, prompts)[2][0] == DEPICTION
    assert np.allclose(bare.aligned_proba(x, prompts)[0], plain)


def test_format_head_round_trips_and_its_arrays_are_checked(tmp_path) -> None:
    m = _model()
    js = m.save(tmp_path / "f")
    doc = json.loads(js.read_text())
    assert doc["format_version"] == 5 and doc["format_head_layers"] == 2
    again = EmbeddingModel.load(tmp_path / "f")
    x = np.random.default_rng(2).normal(size=(2, 8))
    prompts = ["a comic about a vampire", "a vampire"]
    assert np.allclose(again.aligned_proba(x, prompts)[0], m.aligned_proba(x, prompts)[0],
                       atol=1e-5)
    drop_model_array(tmp_path / "f", "fm_w1")
    with pytest.raises(FilterError, match="format head missing"):
        EmbeddingModel.load(tmp_path / "f")


def test_format_head_must_fit_and_its_threshold_must_be_a_probability() -> None:
    m = _model()
    with pytest.raises(FilterError, match="format head"):
        EmbeddingModel(m.weights, m.biases, format_head=([np.zeros((5, 1))], [np.zeros(1)]))
    with pytest.raises(FilterError, match="format_threshold"):
        _model(t_fmt=1.5).format_threshold()


def _write(path, rows: list[tuple[str, int]]) -> str:
    pd.DataFrame(rows, columns=["prompt", "label"]).to_csv(path, index=False)
    return str(path)


_HARM_THINGS = ["a severed head", "a bloody corpse", "a beheading", "a stabbed man bleeding out",
                "a hanged body", "a mutilated dog", "guts spilling from a wound",
                "a burning victim", "a massacre in a village", "a decapitated soldier",
                "a tortured prisoner", "a man being beaten", "a gunshot to the head",
                "a skinned animal", "a woman being strangled", "an exploding body",
                "a chainsaw killing", "a drowned corpse", "a dismembered torso",
                "a bloody knife murder"]
_OK_THINGS = ["a smiling sunflower", "a sleepy kitten", "a birthday cake", "a rainbow over hills",
              "a friendly robot", "a cup of cocoa", "two otters holding hands", "a hot air balloon",
              "a lighthouse at dawn", "a puppy in a raincoat", "a slice of watermelon",
              "a snowman with a scarf", "a bicycle in Paris", "a jar of honey", "a paper boat",
              "a field of tulips", "a toucan on a branch", "a stack of pancakes",
              "a cozy library", "a sailboat at sunset"]


def _sets(tmp_path) -> tuple[str, str, str]:
    """Harmful and benign CSVs, half of each naming a format, and a set to guard."""
    fmts = ["meme of", "sticker of", "poster showing"]
    harmful = [(f"{fmts[i % 3]} {t}", 1) for i, t in enumerate(_HARM_THINGS)] + \
        [(f"a photo of {t}", 1) for t in _HARM_THINGS]
    benign = [(f"{fmts[i % 3]} {t}", 0) for i, t in enumerate(_OK_THINGS)] + \
        [(f"a photo of {t}", 0) for t in _OK_THINGS]
    return (_write(tmp_path / "harm.csv", harmful), _write(tmp_path / "ok.csv", benign),
            _write(tmp_path / "guard.csv", [(harmful[2][0], 1), (benign[4][0], 0)]))


def test_training_rows_are_train_part_format_depictions_kept_from_guarded_sets(
        tmp_path) -> None:
    harm, ok, guard = _sets(tmp_path)
    data = format_rows([harm], [ok], guard_sets=[guard])
    rows = data.rows
    assert all(is_format_depiction(rows["prompt"].tolist()))
    train_parts = pd.concat([D.split_by_prompt(D.load_prompt_csv(p), **D.CANONICAL_SPLIT)[0]
                             for p in (harm, ok)])
    assert set(rows["prompt"]) <= set(train_parts["prompt"])
    guarded = set(pd.read_csv(guard)["prompt"])
    assert not guarded & set(rows["prompt"])
    assert set(rows["label"]) == {0, 1} and data.guarded > len(guarded)
    with pytest.raises(FilterError, match="one class"):
        format_rows([harm], [_write(tmp_path / "plain.csv", [("a dog", 0)] * 3)])


def test_add_format_head_fits_in_the_models_space_and_records_it(tmp_path) -> None:
    harm, ok, _ = _sets(tmp_path)
    m = _model(dim=384)
    data = format_rows([harm], [ok])
    with pytest.raises(FilterError, match="mix"):
        add_format_head(m, data, threshold=0.5, mix="max")
    add_format_head(m, data, threshold=0.5, ensemble=2)
    assert m.format_threshold() == 0.5 and m.meta["format_head"]["mix"] == "alone"
    rec = m.meta["format_head"]["training_size"]
    assert rec["harmful"] + rec["benign"] == len(data.rows)
    assert m.seen(data.rows["prompt"].tolist()).all()
    enc = m.encoder()
    probe = ["a meme of a bloody severed arm", "a sticker of a smiling daisy"]
    raw = m.aligned_proba(enc.encode(probe), probe)[1]
    assert raw[0] > 0.5 > raw[1]


def test_default_guard_keeps_evaluation_sets_out_unless_named_for_training() -> None:
    guard = default_guard(["i2p", "fresh-r-benign"])
    assert {"identities", "xstest", "holisticbias", "fresh-bb-harmful"} <= set(guard)
    assert "fresh-r-benign" not in guard and "fresh-r-harmful" in guard
    assert len(guard) == len(set(guard))


def test_format_head_command_leaves_the_model_and_other_prompts_alone(tmp_path, monkeypatch,
                                                                     caplog) -> None:
    import imagen_audit.filters.format_head as FH

    monkeypatch.setattr(FH, "default_guard", lambda named: [])  # no 10,000-prompt encode
    harm, ok, guard = _sets(tmp_path)
    m = _model(dim=384, t_fmt=None)
    m.format_head = None
    m.meta["sets"] = {"harmful": [harm], "benign": [ok]}
    m.save(tmp_path / "base")
    before = (tmp_path / "base.npz").read_bytes()
    assert main(["filters", "format-head", "--model", str(tmp_path / "base"), "--out",
                 str(tmp_path / "withhead"), "--format-threshold", "0.7",
                 "--ensemble", "2", "--guard", guard]) == 0
    assert (tmp_path / "base.npz").read_bytes() == before
    new = EmbeddingModel.load(tmp_path / "withhead")
    assert new.format_threshold() == 0.7
    enc = new.encoder()
    probe = ["a photo of a red tulip", "a meme about a red tulip"]
    x = enc.encode(probe)
    assert new.aligned_proba(x, probe)[0][0] == pytest.approx(m.aligned_proba(x, probe)[0][0])
    assert new.aligned_proba(x, probe)[2] == [DEPICTION, FORMAT]
    del m.meta["sets"]
    m.save(tmp_path / "nosets")
    code = main(["filters", "format-head", "--model", str(tmp_path / "nosets"), "--out",
                 str(tmp_path / "x"), "--format-threshold", "0.7"])
    assert code == FilterError("x").exit_code != 0
    assert "no training sets" in caplog.text and not (tmp_path / "x.json").exists()
