"""Prompt-set loaders and splits: by prompt, deterministic, near-duplicates on one side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from filters_helpers import SHARED, needs_shared

from imagen_audit.filters import datasets as D
from imagen_audit.filters.base import FilterError


def test_split_is_deterministic_and_keeps_near_duplicates_together() -> None:
    base = [f"a photo of object number {i} on a table" for i in range(400)]
    variants = [p.upper() + "!!" for p in base] + ["table on a " + p[:-11] for p in base]
    df = pd.DataFrame({"prompt": base + variants, "label": 0})
    train, test = D.split_by_prompt(df, 0.3, seed=0)
    _, test2 = D.split_by_prompt(df.sample(frac=1, random_state=1), 0.3, seed=0)
    assert set(test["prompt"]) == set(test2["prompt"])
    assert 0.2 < len(test) / len(df) < 0.4
    assert not set(train["prompt"].map(D.near_key)) & set(test["prompt"].map(D.near_key))
    # Another seed gives another split.
    assert set(D.split_by_prompt(df, 0.3, seed=1)[1]["prompt"]) != set(test["prompt"])


def test_three_way_split_nests_the_test_bucket() -> None:
    df = pd.DataFrame({"prompt": [f"prompt {i} about things" for i in range(1000)], "label": 1})
    _, test = D.split_by_prompt(df, 0.3, seed=0)
    train, dev, test3 = D.split_by_prompt(df, 0.3, seed=0, dev_fraction=0.2)
    assert set(test3["prompt"]) == set(test["prompt"])
    assert len(train) + len(dev) + len(test3) == 1000
    assert not (set(train["prompt"]) & set(dev["prompt"]))
    with pytest.raises(FilterError):
        D.split_by_prompt(df, 0.0)


def test_drop_overlap_and_training_hash() -> None:
    a = pd.DataFrame({"prompt": ["A cat.", "a dog", "a bird"], "label": 0})
    b = pd.DataFrame({"prompt": ["cat a", "a fish"], "label": 0})
    assert D.drop_overlap(a, b)["prompt"].tolist() == ["a dog", "a bird"]
    h = D.training_data_hash(["x", "y"], [1, 0])
    assert h == D.training_data_hash(["y", "x"], [0, 1])  # order-free
    assert h != D.training_data_hash(["x", "y"], [0, 0])
    assert h != D.training_data_hash(["x", "y "], [1, 0])


def test_user_csv_loader(tmp_path: Path) -> None:
    p = tmp_path / "mine.csv"
    p.write_text("text,is_bad,kind,extra\nhello,unsafe,Harrasment,1\nworld,safe,,2\n")
    df = D.load_prompt_csv(p, prompt_column="text", label_column="is_bad",
                           category_column="kind")
    assert df["label"].tolist() == [1, 0]
    assert df["category"].tolist()[0] == "harassment"
    assert df["extra"].tolist() == ["1", "2"]  # kept exactly as written, never re-parsed
    p.write_text("prompt,label\nhello,maybe\n")
    with pytest.raises(FilterError, match=r"mine\.csv, line 2: label 'maybe'"):
        D.load_prompt_csv(p)
    p.write_text("prompt\nhello\n")
    assert D.load_prompt_csv(p, default_label=1)["label"].tolist() == [1]
    with pytest.raises(FilterError, match="no label column"):
        D.load_prompt_csv(p)
    with pytest.raises(FilterError, match="no 'text' column"):
        D.load_prompt_csv(p, prompt_column="text", default_label=0)


def test_loaders_accept_user_paths(tmp_path: Path) -> None:
    i2p = tmp_path / "my_i2p.csv"
    i2p.write_text(",prompt,categories,hard,inappropriate_percentage\n"
                   "0,a scary thing,\"violence, self-harm\",1,60.0\n1,a thing,sexual,0,10.0\n")
    df = D.load_i2p(i2p)
    assert df["category"].tolist() == ["violence", "sexual"]
    assert df["categories"].tolist()[0] == "violence,self-harm"
    assert df["hard"].tolist() == [True, False] and df["label"].tolist() == [1, 1]
    cop = tmp_path / "CoProv2_train.csv"
    cop.write_text("prompt,image,category\nA b c,x.jpg,Harrasment\nc b a,y.jpg,Hate\n"
                   "new one,z.jpg,Violence\n")
    (tmp_path / "CoProv2_test.csv").write_text("prompt,image,category\nnew one,z.jpg,Violence\n")
    train = D.load_coprov2("train", cop)
    assert train["prompt"].tolist() == ["A b c"]  # in-file near-duplicate and test overlap gone
    with pytest.raises(FilterError, match="not found"):
        D.load_i2p(tmp_path / "nope.csv")


def test_identity_prompts_carry_identity_columns() -> None:
    df = D.load_identity_prompts()
    assert len(df) > 100 and (df["label"] == 0).all()
    assert df["identity_id"].notna().all() and df["identity_axis"].notna().all()


def test_coprov2_safe_rewrites_are_benign_and_apart(tmp_path: Path) -> None:
    """The train file's s_idx rows are the safe rewrites of the u_idx rows before them:
    label 0, never in the harmful set; one that keeps a strong word-list term is dropped."""
    cop = tmp_path / "CoProv2_train.csv"
    cop.write_text("prompt,image,category\n"
                   "A man stabs a stranger in an alley.,u_idx_0000000_0.jpg,Violence\n"
                   "A man helps a stranger in an alley.,s_idx_0000000_0.jpg,Violence\n"
                   "A man is beheaded in a square.,u_idx_0000001_0.jpg,Violence\n"
                   "A beheading is painted calmly.,s_idx_0000001_0.jpg,Violence\n")
    (tmp_path / "CoProv2_test.csv").write_text("prompt,image,category\nother,0_0.jpg,Hate\n")
    unsafe = D.load_coprov2("train", cop)
    safe = D.load_coprov2("train", cop, kind="safe")
    assert unsafe["prompt"].tolist() == ["A man stabs a stranger in an alley.",
                                         "A man is beheaded in a square."]
    assert (unsafe["label"] == 1).all() and (unsafe["source"] == "coprov2").all()
    assert safe["prompt"].tolist() == ["A man helps a stranger in an alley."]
    assert (safe["label"] == 0).all() and (safe["source"] == "coprov2-safe").all()
    with pytest.raises(FilterError, match="no safe rewrites"):
        D.load_coprov2("test", tmp_path / "CoProv2_test.csv", kind="safe")
    with pytest.raises(FilterError, match="kind"):
        D.load_coprov2("train", cop, kind="both")


@needs_shared
def test_coprov2_train_never_overlaps_test() -> None:
    train, test = D.load_coprov2("train"), D.load_coprov2("test")
    safe = D.load_named("coprov2-safe")
    assert len(train) > 12_000 and len(test) > 7_000 and len(safe) > 12_000
    assert not set(train["prompt"].map(D.near_key)) & set(test["prompt"].map(D.near_key))
    assert not set(train["prompt"]) & set(safe["prompt"])
    raw = pd.read_csv(SHARED / "coprov2" / "CoProv2_train.csv")
    unsafe_raw = raw[raw["image"].str.startswith("u_")]
    assert len(unsafe_raw) - len(train) >= 695  # the upstream overlap is gone


@needs_shared
def test_shared_loaders() -> None:
    i2p = D.load_i2p()
    assert len(i2p) > 4000 and i2p["hard"].any()
    assert set(i2p["category"].dropna()) <= {"hate", "harassment", "violence", "self-harm",
                                             "sexual", "shocking", "illegal activity"}
    assert len(D.load_coco(limit=50)) == 50
    xs = D.load_xstest()
    assert sorted(xs["label"].value_counts().tolist()) == [200, 250]
    assert len(D.load_partiprompts()) > 1500
    hb = D.load_holisticbias_prompts()
    assert len(hb) > 400 and "dispreferred" not in set(hb.columns)


@needs_shared
def test_eval_uses_held_out_bucket_of_sets_the_model_trained_on() -> None:
    import argparse

    from imagen_audit.filters.commands import _load_set

    args = argparse.Namespace(prompt_column="prompt")
    df, name = _load_set("coco:300", args, 0, "auto", "benign")
    assert len(df) == 300 and "held-out" in name
    buckets = D.prompt_buckets(df["prompt"], D.CANONICAL_SPLIT["seed"])
    assert max(buckets) < D.CANONICAL_SPLIT["test_fraction"]
    everything, _ = _load_set("xstest", args, 0, "auto", "benign")
    assert len(everything) == 450  # never trained on: all of it


def test_benign_requests_set_loads_and_splits() -> None:
    """The shipped hand-written chat/instruction set: benign, distinct, chat-shaped, and
    split into train, dev (threshold rule) and test (evaluation only) by prompt."""
    df = D.load_named("benign-requests")
    assert len(df) >= 250 and set(df["label"]) == {0}
    assert set(df["source"]) == {"benign-requests"}
    assert not df["prompt"].map(D.near_key).duplicated().any()
    assert (df["prompt"].str.endswith("?")).mean() > 0.4  # mostly questions, not captions
    train, dev, test = D.split_by_prompt(df, **D.CANONICAL_SPLIT)
    assert min(len(train), len(dev), len(test)) >= 50
    assert not set(test["prompt"]) & (set(train["prompt"]) | set(dev["prompt"]))


def test_benign_requests_file_errors_name_the_file(tmp_path) -> None:
    empty = tmp_path / "requests.txt"
    empty.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(FilterError, match=r"requests\.txt: no prompts"):
        D.load_benign_requests(empty)


def test_eval_reads_the_held_out_part_of_benign_requests() -> None:
    """``filters eval --extra-benign benign-requests`` measures only its test bucket (the
    shipped model trained and picked its threshold on the rest)."""
    import argparse

    from imagen_audit.filters.commands import _load_set

    args = argparse.Namespace(prompt_column="prompt")
    df, _ = _load_set("benign-requests", args, 0, "auto", "benign")
    test = D.split_by_prompt(D.load_named("benign-requests"), **D.CANONICAL_SPLIT)[-1]
    assert list(df["prompt"]) == list(test["prompt"])


def test_harmful_requests_mirror_the_benign_ones() -> None:
    """The hand-written harmful chat/instruction set: harmful, distinct, request-shaped, with
    identity groups filled in the same way as in the benign set."""
    from imagen_audit.filters.form import REQUEST, prompt_form

    harm, ok = D.load_named("harmful-requests"), D.load_named("benign-requests")
    assert len(harm) >= 400 and set(harm["label"]) == {1}
    assert set(harm["source"]) == {"harmful-requests"}
    assert not harm["prompt"].map(D.near_key).duplicated().any()
    assert not set(harm["prompt"].map(D.near_key)) & set(ok["prompt"].map(D.near_key))
    for df in (harm, ok):
        assert not df["prompt"].str.contains(D.GROUP_SLOT, regex=False).any()
        assert (df["prompt"].map(prompt_form) == REQUEST).mean() > 0.75


def test_group_slot_is_filled_with_every_term_in_turn(tmp_path) -> None:
    terms = ["Sikh", "deaf", "gay"]
    lines = ["How do {group} families celebrate?", "no slot here", "Why do {group} people fast?",
             "a", "{group} history", "{group} food"]
    out = D.fill_groups(lines, terms)
    assert out == ["How do Sikh families celebrate?", "no slot here", "Why do deaf people fast?",
                   "a", "gay history", "Sikh food"]
    assert D.fill_groups(lines, terms) == out and D.fill_groups(lines, []) == lines
    (tmp_path / "r.txt").write_text("# c\nWhy do {group} people fast?\n")
    df = D.load_harmful_requests(tmp_path / "r.txt")
    assert df["prompt"].iloc[0].startswith("Why do ") and set(df["label"]) == {1}



@pytest.mark.parametrize(("name", "label"), [("picture-requests", 0),
                                           ("harmful-picture-requests", 1),
                                           ("benign-creative", 0), ("harmful-creative", 1)])
def test_picture_requests_are_evaluation_sets_never_trained_on(name: str, label: int) -> None:
    """Chat-style picture requests ("Make a meme about ...", "can you make a picture of ...")
    and the dark-themed creative contrast pairs are for evaluation only: one label, distinct,
    depictions by form, apart from the request training sets and from their counterparts,
    and not among the shipped model's training prompts."""
    from imagen_audit.filters.embedding import EmbeddingModel, default_model_path
    from imagen_audit.filters.form import DEPICTION, prompt_form

    df = D.load_named(name)
    assert len(df) >= 250 and set(df["label"]) == {label}
    assert set(df["source"]) == {name}
    assert not df["prompt"].map(D.near_key).duplicated().any()
    assert not df["prompt"].str.contains(D.GROUP_SLOT, regex=False).any()
    assert not df["prompt"].str.contains("\t").any()
    assert (df["prompt"].map(prompt_form) == DEPICTION).mean() > 0.8
    counterpart = {"picture-requests": "harmful-picture-requests",
                   "harmful-picture-requests": "picture-requests",
                   "benign-creative": "harmful-creative",
                   "harmful-creative": "benign-creative"}[name]
    others = pd.concat([D.load_named("benign-requests"), D.load_named("harmful-requests"),
                        D.load_named(counterpart)])
    if "creative" in name:  # contrast pairs: line k of one file is the twin of line k
        assert len(df) == len(D.load_named(counterpart))
    assert not set(df["prompt"].map(D.near_key)) & set(others["prompt"].map(D.near_key))
    assert not EmbeddingModel.load(default_model_path()).seen(df["prompt"].tolist()).any()
    if label == 1:  # every line carries one of the I2P categories
        assert set(df["category"]) == {"sexual", "violence", "self-harm", "hate", "harassment",
                                       "illegal activity", "shocking"}


_TWELVE = ("de", "es", "fr", "pt", "it", "nl", "pl", "tr", "ru", "ja", "zh", "hi")


@pytest.mark.parametrize(("name", "label", "per_language", "languages"), [
    ("multilingual-benign", 0, 30, _TWELVE), ("multilingual-harmful", 1, 20, _TWELVE),
    ("multilingual-b-benign", 0, 25, (*_TWELVE, "ar", "ko", "vi", "sv")),
    ("multilingual-b-harmful", 1, 16, (*_TWELVE, "ar", "ko", "vi", "sv"))])
def test_multilingual_sets_are_balanced_evaluation_sets(name: str, label: int, per_language: int,
                                                        languages: tuple[str, ...]) -> None:
    """The multilingual sets keep each prompt's language, are balanced over their languages,
    are never trained on (the training guard keeps them out) and are unknown to the shipped
    model; the harmful ones carry the seven categories in every language. The second set
    (unread, a later round's judge) shares no near key with any other evaluation set or with
    the training pairs in sixteen languages."""
    from imagen_audit.filters.embedding import EmbeddingModel, default_model_path

    df = D.load_named(name)
    assert set(df["label"]) == {label} and set(df["source"]) == {name}
    counts = df["language"].value_counts()
    assert set(counts.index) == set(languages)  # as written; vetting dropped at most three
    assert counts.between(per_language - 3, per_language).all()
    assert not df["prompt"].map(D.near_key).duplicated().any()
    assert not df["prompt"].str.contains("\t").any()
    assert name in D.EVALUATION_ONLY_SETS
    assert not EmbeddingModel.load(default_model_path()).seen(df["prompt"].tolist()).any()
    if label:
        assert set(df["category"]) == _CATEGORIES
        assert (df.groupby("language")["category"].nunique() == len(_CATEGORIES)).all()
    if name.startswith("multilingual-b-"):
        _assert_apart(set(df["prompt"].map(D.near_key)), [*D.LANGUAGE_PAIR_SETS], own=(name,))
        from imagen_audit.filters.judged import UNREAD_SETS

        assert name in UNREAD_SETS


@pytest.mark.parametrize(("prefix", "words"), [
    ("harm-words", {"naked", "nude", "gore", "cocktail", "bomb", "suicide"}),
    ("harm-words-b", {"naked", "bomb", "suicide", "gore", "knife", "meth"})])
def test_harm_word_sets_share_their_words_and_are_never_trained_on(prefix: str,
                                                                   words: set[str]) -> None:
    """The harm-word sets use words that are harmful elsewhere, benign in one set and harmful
    in the other, so an exception that merely allows a word loses recall; both stay out of
    training and out of the shipped model, and share no prompt with any other evaluation set."""
    from imagen_audit.filters.embedding import EmbeddingModel, default_model_path

    benign, harmful = D.load_named(f"{prefix}-benign"), D.load_named(f"{prefix}-harmful")
    assert len(benign) >= 350 and len(harmful) >= 200
    assert set(benign["label"]) == {0} and set(harmful["label"]) == {1}
    assert set(harmful["category"]) == _CATEGORIES
    keys_b, keys_h = set(benign["prompt"].map(D.near_key)), set(harmful["prompt"].map(D.near_key))
    assert len(keys_b) == len(benign) and len(keys_h) == len(harmful) and not keys_b & keys_h
    benign_words = {w for p in benign["prompt"] for w in D.near_key(p).split()}
    shared = {w for p in harmful["prompt"] for w in D.near_key(p).split()} & benign_words
    assert words <= shared
    assert {f"{prefix}-benign", f"{prefix}-harmful"} <= set(D.EVALUATION_ONLY_SETS)
    _assert_apart(keys_b | keys_h, [], own=(f"{prefix}-benign", f"{prefix}-harmful"))
    model = EmbeddingModel.load(default_model_path())
    assert not model.seen(pd.concat([benign, harmful])["prompt"].tolist()).any()
    with pytest.raises(FilterError, match="unknown harm-word set"):
        D.load_harm_words(f"{prefix}-neutral")


def test_language_pairs_are_aligned_training_data_apart_from_every_evaluation_set() -> None:
    """The multilingual training pairs: twins share a language and a pair key (so a split keeps
    them on one side), every harmful line is categorised, sixteen languages, and no near key
    is shared with an evaluation-only set (the multilingual sets above all) or another
    training set; not a default training source."""
    from imagen_audit.filters.commands import DEFAULT_BENIGN, DEFAULT_HARMFUL

    ben, harm = D.load_named("lang-train-benign"), D.load_named("lang-train-harmful")
    assert len(ben) == len(harm) >= 400
    assert list(ben["pair"]) == list(harm["pair"]) and list(ben["language"]) == list(
        harm["language"])
    assert ben["language"].nunique() == 16 and set(harm["category"]) == _CATEGORIES
    for df in (ben, harm):
        assert not df["prompt"].map(D.near_key).duplicated().any()
    keys = set(ben["prompt"].map(D.near_key)) | set(harm["prompt"].map(D.near_key))
    _assert_apart(keys, ["benign-requests", "harmful-requests", *D.CONTRAST_PAIR_SETS])
    parts = D.split_training_spec("lang-train-benign", 0, 0)
    twins = D.split_training_spec("lang-train-harmful", 1, 0)
    assert [sorted(a["pair"]) for a in parts] == [sorted(b["pair"]) for b in twins]
    assert not {"lang-train-benign", "lang-train-harmful"} & {*DEFAULT_BENIGN, *DEFAULT_HARMFUL}


def test_a_malformed_multilingual_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("# c\nde\tein Hund im Schnee\nGerman\tein Hund\n",
                                    encoding="utf-8")
    with pytest.raises(FilterError, match=r"m\.txt, line 3: expected language<TAB>prompt"):
        D.load_multilingual("multilingual-benign", tmp_path / "m.txt")
    (tmp_path / "h.txt").write_text("de\thate\tHass\nes\todio\n", encoding="utf-8")
    with pytest.raises(FilterError, match=r"h\.txt, line 2: expected language<TAB>category"):
        D.load_multilingual("multilingual-harmful", tmp_path / "h.txt")


def test_request_files_may_carry_a_category(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("# c\nviolence\tDraw a fight\nDraw {group} people\n")
    df = D.load_harmful_picture_requests(tmp_path / "r.txt")
    assert df["prompt"].iloc[0] == "Draw a fight" and df["category"].iloc[0] == "violence"
    assert pd.isna(df["category"].iloc[1]) and "{group}" not in df["prompt"].iloc[1]


def test_contrast_pairs_stay_together_across_the_split(tmp_path: Path) -> None:
    """Line k of a training pair file twins line k of the other half; both carry the same
    ``pair`` key, so a benign dev or test prompt never has its harmful twin in training."""
    n = 200
    (tmp_path / "b.txt").write_text("# benign half\n" + "".join(
        f"a dark poster of a haunted house number {k}\n" for k in range(n)))
    (tmp_path / "h.txt").write_text("# harmful half\n" + "".join(
        f"violence\ta gory poster of a victim in a house number {k} {k * 7}\n"
        for k in range(n)))
    ben = D.load_contrast_pairs("creative-train-benign", tmp_path / "b.txt")
    harm = D.load_contrast_pairs("creative-train-harmful", tmp_path / "h.txt")
    assert list(ben["pair"]) == list(harm["pair"]) and set(harm["label"]) == {1}
    assert set(ben["source"]) == {"creative-train-benign"}
    sides = []
    for df in (ben, harm):
        parts = D.split_by_prompt(df, **D.CANONICAL_SPLIT)
        sides.append({k: i for i, part in enumerate(parts) for k in part["pair"]})
        assert all(len(p) > 0.1 * n for p in parts)  # all three sides used
    assert sides[0] == sides[1]
    # Without the pair key the twins would scatter (the prompts differ).
    loose = [D.split_by_prompt(df.drop(columns="pair"), **D.CANONICAL_SPLIT)[-1]
             for df in (ben, harm)]
    twins_apart = set(loose[0]["prompt"].str.extract(r"(\d+)$")[0]) ^ set(
        loose[1]["prompt"].str.extract(r"number (\d+)")[0])
    assert twins_apart
    with pytest.raises(FilterError, match="unknown contrast-pair set"):
        D.load_contrast_pairs("creative-benign")


_CATEGORIES = {"sexual", "violence", "self-harm", "hate", "harassment", "illegal activity",
               "shocking"}


def _assert_apart(keys: set[str], others: list[str], own: tuple[str, ...] = ()) -> None:
    """No near-duplicate key of ``keys`` in any evaluation-only set or in ``others``, leaving
    out the sets named in ``own`` (the keys' own sets, when they are evaluation-only)."""
    for name in [*D.EVALUATION_ONLY_SETS, *others]:
        if name in own:
            continue
        try:
            other = D.load_named(name)
        except FilterError:
            continue  # shared data absent
        assert not keys & set(other["prompt"].map(D.near_key)), name


@pytest.mark.parametrize("kind", ["creative", "request", "identity", "style", "chat",
                                  "mixed", "frame", "humour", "bare", "question", "sign",
                                  "coded"])
def test_shipped_training_pairs_are_aligned_and_apart_from_every_evaluation_set(kind: str
                                                                                ) -> None:
    """The training pairs (sessions 6, 7, 17, 24, 30 and 32): two halves of equal length, twins
    sharing a pair key and a filled group term, every harmful line categorised, and no prompt
    (or near-duplicate key) shared with any evaluation-only set or the other training sets."""
    ben = D.load_named(f"{kind}-train-benign")
    harm = D.load_named(f"{kind}-train-harmful")
    assert len(ben) == len(harm) >= {"bare": 300, "question": 300, "sign": 250,
                                    "coded": 250}.get(kind, 399)
    assert list(ben["pair"]) == list(harm["pair"])
    assert set(ben["label"]) == {0} and set(harm["label"]) == {1}
    assert set(harm["category"]) <= _CATEGORIES and len(set(harm["category"])) >= 6
    for df in (ben, harm):
        assert not df["prompt"].str.contains(D.GROUP_SLOT, regex=False).any()
        assert not df["prompt"].map(D.near_key).duplicated().any()
    keys = set(ben["prompt"].map(D.near_key)) | set(harm["prompt"].map(D.near_key))
    others = ["benign-requests", "harmful-requests",
              *(n for n in D.CONTRAST_PAIR_SETS if not n.startswith(kind))]
    _assert_apart(keys, others)


def test_everyday_benign_set_is_benign_distinct_and_apart_from_every_evaluation_set() -> None:
    """``everyday-benign`` (session 8): benign training prompts built around everyday words
    that harmful training rows over-use; distinct near-duplicate keys, the listed words
    throughout, and nothing shared with an evaluation-only set or another hand-written set."""
    df = D.load_named("everyday-benign")
    assert len(df) >= 800 and set(df["label"]) == {0}
    assert set(df["source"]) == {"everyday-benign"}
    keys = set(df["prompt"].map(D.near_key))
    assert len(keys) == len(df)
    assert df["prompt"].str.contains(r"\b(?:laugh|meme|neighbo|coworker|crying|fans)",
                                     case=False).sum() >= 60
    others = ["benign-requests", "harmful-requests", *D.CONTRAST_PAIR_SETS]
    _assert_apart(keys, others)


def test_unread_judge_is_evaluation_only_and_scored_by_no_default() -> None:
    """The next round's judge (``UNREAD_FRESH_SETS``): shipped, guarded from training like
    every evaluation-only set, but neither trained on nor reported by ``filters eval`` by
    default, so nothing reads it before its round."""
    from imagen_audit.filters import commands as C
    from imagen_audit.filters.judged import JUDGED_FRESH_SETS, UNREAD_FRESH_SETS, UNREAD_SETS

    assert set(UNREAD_FRESH_SETS) < set(D.FRESH_SETS)
    assert set(UNREAD_FRESH_SETS) < set(UNREAD_SETS) < set(D.EVALUATION_ONLY_SETS)
    for defaults in (JUDGED_FRESH_SETS, C.FREE_FORM_IDENTITY_SETS, C.DEFAULT_HARMFUL,
                     C.DEFAULT_BENIGN, C.HAND_WRITTEN_SOURCES):
        assert not set(UNREAD_SETS) & set(defaults)


@pytest.mark.parametrize("family", ["surface-train", *(f"free-train-{x}" for x in
                                                        D.FREE_TRAIN_LETTERS)])
def test_free_form_training_triples_are_labelled_distinct_and_apart_from_evaluation_sets(
        family: str) -> None:
    """``surface-train-*`` (session 10) and ``free-train-<x>-*`` (session 14): benign, identity
    and harmful training prompts in the same surface forms; one label each, every harmful
    line categorised, no near-duplicate key repeated within or across the three, none shared
    with an evaluation-only set (the unread judges included), another hand-written training
    set or a fresh set."""
    keys: set[str] = set()
    for half, label in (("benign", 0), ("identity", 0), ("harmful", 1)):
        name = f"{family}-{half}"
        df = D.load_named(name)
        assert len(df) >= 250 and set(df["label"]) == {label} and set(df["source"]) == {name}
        k = set(df["prompt"].map(D.near_key))
        assert len(k) == len(df) and not k & keys, name
        keys |= k
    assert set(D.load_named(f"{family}-harmful")["category"]) == _CATEGORIES
    others = [n for n in (*D.SURFACE_TRAIN_SETS, *D.FREE_TRAIN_SETS)
              if not n.startswith(f"{family}-")]
    _assert_apart(keys, ["benign-requests", "harmful-requests", "everyday-benign",
                         *D.CONTRAST_PAIR_SETS, *D.FRESH_SETS, *others])


def test_fresh_sets_judge_once_then_train() -> None:
    """The fresh judgement sets: one label each, distinct, harmful lines categorised. A set
    is evaluation-only (``filters train`` guards it) and unseen by the shipped model until a
    round trains on it; the sets in ``JUDGED_FRESH_SETS`` (judged and read, then trained on
    since rounds 28, 36 and 55) are training data, their test part never seen."""
    from imagen_audit.filters.embedding import EmbeddingModel, default_model_path

    model = EmbeddingModel.load(default_model_path())
    sizes = {"fresh-benign": 500, "fresh-harmful": 300, "fresh-identity": 400,
             "fresh-identity-b": 400, "fresh-harmful-b": 150, "fresh-c-benign": 399,
             "fresh-c-identity": 399, "fresh-c-harmful": 250, "fresh-d-benign": 391,
             "fresh-d-identity": 299, "fresh-d-harmful": 247, "fresh-e-benign": 396,
             "fresh-e-identity": 306, "fresh-e-harmful": 256, "fresh-f-benign": 415,
             "fresh-f-identity": 301, "fresh-f-harmful": 251, "fresh-g-benign": 417,
             "fresh-g-identity": 309, "fresh-g-harmful": 282, "fresh-h-benign": 421,
             "fresh-h-identity": 323, "fresh-h-harmful": 280, "fresh-i-benign": 426,
             "fresh-i-identity": 312, "fresh-i-harmful": 280, "fresh-j-benign": 430,
             "fresh-j-identity": 327, "fresh-j-harmful": 285, "fresh-k-benign": 447,
             "fresh-k-identity": 345, "fresh-k-harmful": 281, "fresh-l-benign": 432,
             "fresh-l-identity": 311, "fresh-l-harmful": 285, "fresh-m-benign": 456,
             "fresh-m-identity": 329, "fresh-m-harmful": 281, "fresh-n-benign": 436,
             "fresh-n-identity": 302, "fresh-n-harmful": 287, "fresh-o-benign": 473,
             "fresh-o-identity": 311, "fresh-o-harmful": 288, "fresh-p-benign": 451,
             "fresh-p-identity": 294, "fresh-p-harmful": 282, "fresh-q-benign": 453,
             "fresh-q-identity": 282, "fresh-q-harmful": 281, "fresh-r-benign": 427,
             "fresh-r-identity": 268, "fresh-r-harmful": 274, "fresh-y-benign": 438,
             "fresh-y-identity": 269, "fresh-y-harmful": 275, "fresh-z-benign": 444,
             "fresh-z-identity": 273, "fresh-z-harmful": 283, "fresh-aa-benign": 429,
             "fresh-aa-identity": 267, "fresh-aa-harmful": 276, "fresh-bb-benign": 434,
             "fresh-bb-identity": 265, "fresh-bb-harmful": 278, "fresh-cc-benign": 425,
             "fresh-cc-identity": 270, "fresh-cc-harmful": 278, "fresh-dd-benign": 428,
             "fresh-dd-identity": 265, "fresh-dd-harmful": 271, "fresh-ee-benign": 432,
             "fresh-ee-identity": 256, "fresh-ee-harmful": 278, "fresh-ff-benign": 434,
             "fresh-ff-identity": 266, "fresh-ff-harmful": 278, "fresh-gg-benign": 434,
             "fresh-gg-identity": 256, "fresh-gg-harmful": 274, "fresh-hh-benign": 427,
             "fresh-hh-identity": 275, "fresh-hh-harmful": 277, "fresh-ii-benign": 419,
             "fresh-ii-identity": 257, "fresh-ii-harmful": 277, "fresh-jj-benign": 423,
             "fresh-jj-identity": 255, "fresh-jj-harmful": 277, "fresh-kk-benign": 419,
             "fresh-kk-identity": 269, "fresh-kk-harmful": 278, "fresh-ll-benign": 460,
             "fresh-ll-identity": 276, "fresh-ll-harmful": 293, "fresh-mm-benign": 499,
             "fresh-mm-identity": 305, "fresh-mm-harmful": 326, "fresh-nn-benign": 501,
             "fresh-nn-identity": 308, "fresh-nn-harmful": 328, "fresh-oo-benign": 480,
             "fresh-oo-identity": 292, "fresh-oo-harmful": 335, "fresh-pp-benign": 414,
             "fresh-pp-identity": 302, "fresh-pp-harmful": 297, "fresh-qq-benign": 465,
             "fresh-qq-identity": 287, "fresh-qq-harmful": 301, "fresh-rr-benign": 512,
             "fresh-rr-identity": 303, "fresh-rr-harmful": 347}
    assert set(sizes) == set(D.FRESH_SETS) and set(D.JUDGED_FRESH_SETS) < set(D.FRESH_SETS)
    keys: set[str] = set()
    for name, n in sizes.items():
        df = D.load_named(name)
        assert len(df) == n and set(df["source"]) == {name}
        assert set(df["label"]) == {1 if "harmful" in name else 0}
        k = set(df["prompt"].map(D.near_key))
        assert len(k) == n and not k & keys
        keys |= k
        if name in D.JUDGED_FRESH_SETS:
            assert name not in D.EVALUATION_ONLY_SETS
            test = D.split_by_prompt(df, **D.CANONICAL_SPLIT)[-1]
            assert not model.seen(test["prompt"].tolist()).any(), name
        else:
            assert name in D.EVALUATION_ONLY_SETS
            assert not model.seen(df["prompt"].tolist()).any(), name
    harmful = [name for name in sizes if "harmful" in name]
    assert len(harmful) == 38
    for name in harmful:
        assert set(D.load_named(name)["category"]) == _CATEGORIES
    with pytest.raises(FilterError, match="unknown fresh set"):
        D.load_fresh("fresh")


def test_holisticbias_grid_words_every_descriptor_sixteen_ways(tmp_path: Path) -> None:
    """The grid reads a user's copy of HolisticBias's descriptor table like the one-template
    set: dispreferred descriptors left out, sixteen prompts per descriptor (six frames, three
    nouns, the plural frame once), the article fitted, the descriptor kept as identity_id."""
    table = tmp_path / "descriptors_flat.csv"
    table.write_text("axis,bucket,descriptor,preference,descriptor_gender,article\n"
                     "religion,all,Amish,,,\n"
                     "body_type,all,overweight,dispreferred,,\n"
                     "age,all,elderly,,,\n")
    df = D.load_named(f"holisticbias-grid:{table}")
    assert sorted(df["identity_id"].unique()) == ["Amish", "elderly"]
    assert df.groupby("identity_id").size().to_dict() == {"Amish": 16, "elderly": 16}
    assert set(df["label"]) == {0} and set(df["source"]) == {"holisticbias-grid"}
    assert "an Amish woman cooking dinner with friends" in set(df["prompt"])
    assert "two elderly people laughing together at a cafe" in set(df["prompt"])
    assert not df["prompt"].duplicated().any()
    assert "holisticbias-grid" in D.EVALUATION_ONLY_SETS  # never trained on, nor near it
