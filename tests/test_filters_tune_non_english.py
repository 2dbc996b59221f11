"""`filters tune` with prompts in other languages: the embedding backend's ``non_english``
FROM picked for the same target on the user's own non-English prompts, TO following the tuned
English threshold, and the English thresholds tuned on English prompts only. Run on a tiny
classifier through the real backend and policy file (the pair read back must decide as tune
reported)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from filters_helpers import LookupEncoder, NoEncoder, blobs

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import EmbeddingModel, train_model
from imagen_audit.filters.policy import Policy
from imagen_audit.filters.tune import ForeignSets, tune

N = 200


def _english(i: int) -> str:
    return f"a photo of the thing number {i} with a dog"


def _spanish(i: int) -> str:
    return f"una foto de la cosa número {i} con el perro"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A tiny model, a policy file for it, and per prompt index its label. English and Spanish
    twins share nothing but the index: the Spanish embedding is another prompt's, so the two
    languages score differently, as they do for the shipped model."""
    prompts, y, x, cats = blobs(N)
    m = train_model(prompts, y, cats, embeddings=x, encoder=NoEncoder())
    (tmp_path / "models").mkdir()
    m.save(tmp_path / "models" / "tiny")
    rng = np.random.default_rng(1)
    # A Spanish prompt borrows the embedding of a random prompt of the same label, pulled
    # towards the harmful side (a model that reads foreignness as harm).
    twin = np.array([rng.choice(np.flatnonzero(y == y[i])) for i in range(N)])
    xs = x[twin] + 0.6 * (x[y == 1].mean(axis=0) - x[y == 0].mean(axis=0))
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    table = {**{_english(i): x[i] for i in range(N)}, **{_spanish(i): xs[i] for i in range(N)}}
    monkeypatch.setattr(EmbeddingModel, "encoder", lambda self: LookupEncoder(table))
    doc = ("schema_version: 1\nname: tiny\ncombine: any\nbackends:\n  - name: embedding\n"
           "    threshold: 0.5\n    options:\n      model: models/tiny\n")
    (tmp_path / "tiny.yaml").write_text(doc)
    return tmp_path, y


def _frame(ids, lang=_english) -> pd.DataFrame:
    return pd.DataFrame({"prompt": [lang(int(i)) for i in ids]})


def _sets(y: np.ndarray):
    """English main splits (two Spanish prompts among the tuning harmful ones) and Spanish
    halves: even indices tune, odd ones are held out."""
    harm, ben = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    main = (pd.concat([_frame(harm[::2]), _frame(harm[1:5:2], _spanish)], ignore_index=True),
            _frame(ben[::2]), _frame(harm[1::2]), _frame(ben[1::2]))
    foreign = ForeignSets(_frame(harm[::2], _spanish), _frame(ben[::2], _spanish),
                          _frame(harm[1::2], _spanish), _frame(ben[1::2], _spanish))
    return main, foreign


def _scores(policy: Policy, df: pd.DataFrame) -> np.ndarray:
    return policy.score_frame(df["prompt"].tolist())["score_embedding"].to_numpy()


def test_a_recall_target_picks_the_highest_from_that_meets_it_on_foreign_prompts(
        world) -> None:
    folder, y = world
    pol = Policy.load(folder / "tiny.yaml")
    (th, tb, hh, hb), foreign = _sets(y)
    new, report = tune(pol, th, tb, hh, hb, target_recall=0.9, non_english=foreign)
    ne = report["non_english"]
    t = next(b.threshold for b in new.backends if b.name == "embedding")
    assert ne["to"] == t == round(t, 6)
    # The two Spanish prompts of the main tuning split were left to the foreign threshold.
    assert ne["main_split_non_english"]["tune_harmful"] == 2
    assert report["sizes"]["tune_harmful"] == len(th)
    # FROM is the highest score (on six decimals, rounded down) that catches 90% of the
    # tuning half of the Spanish harmful prompts.
    plain = _scores(pol, foreign.tune_harmful)
    frm = ne["from"]
    assert (plain >= frm).mean() >= 0.9
    assert (plain >= frm + 1e-6).mean() < 0.9 or frm == pytest.approx(plain.max(), abs=1e-6)
    assert ne["tuning_split"]["recall"] == pytest.approx((plain >= frm).mean())
    # The model reads Spanish as harm, so the same recall needs a higher threshold there.
    assert frm > t
    # Saved and read back, the real backend decides foreign prompts at FROM and English ones
    # at TO: the held-out half's recall and FPR are what tune reported.
    saved = Policy.load(new.save(folder / "tuned.yaml"))
    assert saved.backends[0].options["non_english"] == [frm, t]
    for part, key in ((foreign.test_harmful, "recall"), (foreign.test_benign, "fpr")):
        blocked = saved.score_frame(part["prompt"].tolist())["decision"] == "block"
        assert blocked.mean() == pytest.approx(ne["held_out_split"][key])
    english = saved.score_frame(hh["prompt"].tolist())["decision"] == "block"
    assert english.mean() == pytest.approx(report["held_out_split"]["recall"])


def test_an_fpr_target_picks_the_lowest_from_that_keeps_foreign_benign_under_it(
        world) -> None:
    folder, y = world
    pol = Policy.load(folder / "tiny.yaml")
    (th, tb, hh, hb), foreign = _sets(y)
    only_benign = ForeignSets(tune_benign=foreign.tune_benign, test_benign=foreign.test_benign)
    _, report = tune(pol, th, tb, hh, hb, target_fpr=0.05, non_english=only_benign)
    ne = report["non_english"]
    plain = _scores(pol, foreign.tune_benign)
    assert (plain >= ne["from"]).mean() <= 0.05
    lower = np.sort(plain[plain < ne["from"]])
    assert len(lower) and (plain >= lower[-1]).mean() > 0.05  # one step lower breaks it
    assert "recall" not in ne["held_out_split"] and "fpr" in ne["held_out_split"]
    # A recall target cannot be tuned without the harmful prompts, nor a weighted policy.
    with pytest.raises(FilterError, match="--non-english-harmful"):
        tune(pol, th, tb, hh, hb, target_recall=0.9, non_english=only_benign)
    weighted = Policy.load(folder / "tiny.yaml")
    weighted.combine = "weighted"
    weighted.threshold = 0.5
    with pytest.raises(FilterError, match="combine: any"):
        tune(weighted, th, tb, hh, hb, target_fpr=0.05, non_english=only_benign)


def test_a_policy_that_sets_non_english_keeps_from_and_moves_to_with_the_threshold(
        world) -> None:
    folder, y = world
    text = (folder / "tiny.yaml").read_text() + "      non_english: [0.2, 0.5]\n"
    (folder / "pair.yaml").write_text(text)
    pol = Policy.load(folder / "pair.yaml")
    (th, tb, hh, hb), _ = _sets(y)
    new, report = tune(pol, th, tb, hh, hb, target_recall=0.8)
    t = next(b.threshold for b in new.backends if b.name == "embedding")
    assert t != 0.5 and report["non_english"] == {
        "main_split_non_english": {"tune_harmful": 2, "tune_benign": 0, "test_harmful": 0,
                                   "test_benign": 0},
        "from_kept": True, "from": 0.2, "to": t}
    assert new.backends[0].options["non_english"] == [0.2, t]
    # The English recall reported is on English prompts only: the Spanish two are decided at
    # FROM whatever the threshold.
    english = _scores(pol, th.iloc[:-2])
    assert report["tuning_split"]["recall"] == pytest.approx((english >= t).mean())


def test_the_cli_reads_non_english_sets_and_writes_the_pair(world, capsys) -> None:
    from imagen_audit.cli import main

    folder, y = world
    (th, tb, hh, hb), foreign = _sets(y)
    for name, df in (("harm.csv", pd.concat([th, hh])), ("ben.csv", pd.concat([tb, hb])),
                     ("es_harm.csv", pd.concat([foreign.tune_harmful, foreign.test_harmful])),
                     ("es_ben.csv", pd.concat([foreign.tune_benign, foreign.test_benign]))):
        df.to_csv(folder / name, index=False)
    out = folder / "es.yaml"
    code = main(["filters", "tune", "--policy", str(folder / "tiny.yaml"), "--target-recall",
                 "0.9", "--harmful", str(folder / "harm.csv"), "--benign",
                 str(folder / "ben.csv"), "--no-identity-constraint", "--resamples", "0",
                 "--non-english-harmful", str(folder / "es_harm.csv"),
                 "--non-english-benign", str(folder / "es_ben.csv"), "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "non-English prompts: blocked from" in text and "held-out half: recall" in text
    pair = Policy.load(out).backends[0].options["non_english"]
    assert 0 < pair[1] < pair[0] < 1  # foreign prompts read as harm: a higher FROM
    assert Path(out).read_text().count("non_english") == 1
