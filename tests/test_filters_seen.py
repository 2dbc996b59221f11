"""Honesty guard: a model ships hashes of its training prompts, and ``filters eval`` leaves
evaluation prompts it was trained on out of the metrics (or keeps them, when asked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from filters_helpers import SEEN, TABLES

from imagen_audit.filters.commands import SURFACE_SOURCES
from imagen_audit.filters.datasets import near_key, prompt_hashes
from imagen_audit.filters.embedding import (
    EmbeddingFilter,
    EmbeddingModel,
    average_networks,
    calibrate,
    train_model,
)
from imagen_audit.filters.evaluate import evaluate
from imagen_audit.filters.judged import JUDGED_FRESH_SETS
from imagen_audit.filters.policy import Policy


class _HashEncoder:
    """A deterministic stand-in for MiniLM: a unit vector seeded by the text."""

    name = "hash-encoder"

    def fingerprint(self) -> str:
        return "hash"

    def encode(self, prompts):
        rows = []
        for p in prompts:
            seed = int(prompt_hashes([p])[0] % np.uint64(2**32))
            v = np.random.default_rng(seed).normal(size=16)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, np.float32)


def _data(n: int = 120):
    prompts = [f"harmful thing number {i}" for i in range(n // 2)] + \
        [f"benign caption number {i}" for i in range(n // 2)]
    y = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    x = _HashEncoder().encode(prompts) + y[:, None] * 0.3
    return prompts, y, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_prompt_hashes_follow_the_near_duplicate_key() -> None:
    a, b, c = prompt_hashes(["A cat, on a mat!", "a mat on a CAT", "a dog on a mat"])
    assert near_key("A cat, on a mat!") == near_key("a mat on a CAT")
    assert a == b and a != c
    assert prompt_hashes(["x"]).dtype == np.uint64


def test_model_records_and_ships_its_training_prompts(tmp_path) -> None:
    prompts, y, x = _data()
    tr = np.r_[0:50, 60:110]
    cal = np.r_[50:60, 110:120]
    m = train_model([prompts[i] for i in tr], y[tr], embeddings=x[tr], encoder=_HashEncoder())
    seen = m.seen(["Harmful thing number 3.", prompts[99], prompts[110], "never seen"])
    assert seen.tolist() == [True, True, False, False]
    m.save(tmp_path / "m")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as arrs:
        assert arrs["seen_hashes"].dtype == np.uint64 and len(arrs["seen_hashes"]) == 100
    again = EmbeddingModel.load(tmp_path / "m")
    assert again.seen(prompts).tolist() == m.seen(prompts).tolist()
    # Calibration prompts count as seen too.
    calibrate(again, x[cal], y[cal], [prompts[i] for i in cal])
    assert again.seen(prompts).all()
    # A model without the array (older file) records nothing.
    assert EmbeddingModel(m.weights, m.biases).seen(prompts) is None


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_ensemble_is_the_mean_of_its_members() -> None:
    rng = np.random.default_rng(0)
    members = [([rng.normal(size=(16, 4)), rng.normal(size=(4, 1))],
                [rng.normal(size=4), rng.normal(size=1)]) for _ in range(3)]
    x = rng.normal(size=(20, 16))
    mean = np.mean([EmbeddingModel(w, b).logits(x) for w, b in members], axis=0)
    w, b = average_networks(members)
    assert np.allclose(EmbeddingModel(w, b).logits(x), mean)
    prompts, y, xx = _data()
    m = train_model(prompts, y, embeddings=xx, encoder=_HashEncoder(), classifier="mlp",
                    hidden=4, ensemble=3)
    assert m.weights[0].shape == (16, 12) and m.meta["ensemble"] == 3


def test_calibration_is_folded_into_the_last_layer() -> None:
    prompts, y, x = _data()
    m = train_model(prompts, y, embeddings=x, encoder=_HashEncoder())
    z = m.logits(x)
    a, b = calibrate(m, x, y)
    assert a > 0
    assert np.allclose(m.logits(x), a * z + b, atol=1e-6)
    assert m.meta["calibration"]["method"] == "platt"


def _policy(tmp_path: Path, backend: str = "fake-a", options: dict | None = None) -> Policy:
    doc = {"schema_version": 1, "name": "t", "combine": "any",
           "backends": [{"name": backend, "threshold": 0.5, **({"options": options}
                                                               if options else {})}]}
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(doc))
    return Policy.load(p)


def test_eval_leaves_out_seen_prompts_unless_kept(tmp_path, caplog) -> None:
    harmful = pd.DataFrame({"prompt": ["h0", "h1", "h2", "h3"]})
    benign = pd.DataFrame({"prompt": ["b0", "b1", "b2", "b3", "b4"]})
    TABLES["fake-a"].clear()
    TABLES["fake-a"].update({"h0": 0.9, "h1": 0.9, "h2": 0.1, "h3": 0.1, "b0": 0.9})
    SEEN["fake-a"] = {"h2", "h3", "b1"}
    try:
        with caplog.at_level(logging.WARNING, logger="imagen_audit.filters.evaluate"):
            res = evaluate(_policy(tmp_path), harmful, benign)
        o = res.summary["overall"]
        assert (o["tp"], o["fn"], o["fp"], o["tn"]) == (2, 0, 1, 3)
        assert res.summary["training_overlap"]["harmful"] == {"n": 4, "seen": 2, "excluded": 2}
        assert res.summary["training_overlap"]["benign"]["excluded"] == 1
        assert res.summary["data"]["harmful"]["n"] == 2
        assert "h2" not in set(res.scores["prompt"])
        assert any("2 of 4 prompts were training data" in r.message for r in caplog.records)
        kept = evaluate(_policy(tmp_path), harmful, benign, keep_seen=True)
        o = kept.summary["overall"]
        assert (o["tp"], o["fn"], o["fp"], o["tn"]) == (2, 2, 1, 4)
        assert kept.summary["training_overlap"]["harmful"] == {"n": 4, "seen": 2,
                                                               "excluded": 0}
    finally:
        SEEN.clear()
    # A backend that records nothing: no overlap reported, nothing left out.
    res = evaluate(_policy(tmp_path), harmful, benign)
    assert res.summary["training_overlap"] == {} and res.summary["overall"]["tp"] == 2


def test_eval_with_a_trained_embedding_model(tmp_path, monkeypatch) -> None:
    """End to end through the embedding backend: the shipped hashes find the overlap."""
    import imagen_audit.filters.embedding as E

    prompts, y, x = _data()
    m = train_model(prompts[:60] + prompts[60:90], np.r_[y[:60], y[60:90]],
                    embeddings=np.r_[x[:60], x[60:90]], encoder=_HashEncoder())
    m.save(tmp_path / "model")
    monkeypatch.setattr(E, "shared_encoder", lambda *a, **k: _HashEncoder())
    pol = _policy(tmp_path, "embedding", {"model": str(tmp_path / "model")})
    assert isinstance(pol.backend("embedding"), EmbeddingFilter)
    harmful = pd.DataFrame({"prompt": prompts[50:60]})          # all seen
    benign = pd.DataFrame({"prompt": prompts[80:100]})          # 10 seen, 10 not
    res = evaluate(pol, harmful.iloc[:0], benign)
    assert res.summary["training_overlap"]["benign"] == {"n": 20, "seen": 10, "excluded": 10}
    res = evaluate(pol, harmful, benign, keep_seen=True)
    assert res.summary["training_overlap"]["harmful"]["seen"] == 10
    assert res.summary["data"]["harmful"]["n"] == 10


def test_cli_eval_reports_overlap(tmp_path, capsys) -> None:
    from imagen_audit.cli import main

    TABLES["fake-a"].clear()
    TABLES["fake-a"].update({"h0": 0.9, "h1": 0.9})
    SEEN["fake-a"] = {"h1", "b1"}
    try:
        pd.DataFrame({"prompt": ["h0", "h1"]}).to_csv(tmp_path / "h.csv", index=False)
        pd.DataFrame({"prompt": ["b0", "b1", "b2"]}).to_csv(tmp_path / "b.csv", index=False)
        pol = _policy(tmp_path)
        base = ["filters", "eval", "--policy", str(pol.source), "--harmful",
                str(tmp_path / "h.csv"), "--benign", str(tmp_path / "b.csv"),
                "--identity", "none"]
        assert main([*base, "--out", str(tmp_path / "o1")]) == 0
        doc = json.loads((tmp_path / "o1" / "prompt-filter-eval.json").read_text())
        assert doc["overall"]["n_harmful"] == 1 and doc["overall"]["n_benign"] == 2
        assert "harmful 1 of 2 (left out)" in capsys.readouterr().out
        assert main([*base, "--keep-seen", "--out", str(tmp_path / "o2")]) == 0
        doc = json.loads((tmp_path / "o2" / "prompt-filter-eval.json").read_text())
        assert doc["overall"]["n_harmful"] == 2 and doc["overall"]["n_benign"] == 3
    finally:
        SEEN.clear()


@pytest.mark.parametrize("chat", [0.0, 0.5])
def test_chat_counterfactuals_mirror_frames_on_both_sides(chat) -> None:
    from imagen_audit.filters.trainset import build_training_set

    harmful = pd.DataFrame({"prompt": [f"a violent scene number {i}" for i in range(200)],
                            "label": 1, "category": "violence", "source": "h"})
    benign = pd.DataFrame({"prompt": [f"a man riding a bike number {i}" for i in range(200)],
                           "label": 0, "category": None, "source": "b"})
    t = build_training_set(harmful, benign, chat_per_benign=chat)
    req = t[t["source"] == "counterfactual-request"]
    chatty = t[t["source"] == "counterfactual-chat"]
    if chat == 0:
        assert req.empty and chatty.empty
        return
    # Request frames on both sides, in similar numbers: the frame carries no label.
    n_b, n_h = int((req["label"] == 0).sum()), int((req["label"] == 1).sum())
    assert n_b > 10 and n_h > 10 and 0.5 < n_b / n_h < 2
    assert (req.loc[req["label"] == 1, "category"] == "violence").all()
    assert set(chatty["label"]) == {0, 1}
    assert not t["prompt"].duplicated().any()
    assert any(p.lower().startswith(("what is", "tell me about")) for p in chatty["prompt"])


def test_product_frames_mirror_and_identity_rates_match() -> None:
    """Picture-product frames ("Make a meme about {p}") go round benign and harmful
    depictions alike, never round questions; per-term identity counterfactuals make a term the
    harmful set uses a lot ("homeless") at least as common among benign prompts."""
    from imagen_audit.filters.trainset import (
        build_training_set,
        matched_identity_counterfactuals,
        term_pattern,
    )

    harmful = pd.DataFrame({"prompt": [f"a homeless man beaten number {i}" for i in range(100)]
                            + [f"a violent scene number {i}" for i in range(100)]
                            + [f"How do I hurt someone number {i}?" for i in range(50)],
                            "label": 1, "category": "violence", "source": "h"})
    benign = pd.DataFrame({"prompt": [f"a man riding a bike number {i}" for i in range(400)]
                           + [f"How do I fix a bike number {i}?" for i in range(50)],
                           "label": 0, "category": None, "source": "b"})
    t = build_training_set(harmful, benign, product_per_benign=0.25,
                           identity_per_benign=0.0, match_identity_rates=True,
                           identity_terms=["homeless", "Sikh"])
    prod = t[t["source"] == "counterfactual-product"]
    n_b, n_h = int((prod["label"] == 0).sum()), int((prod["label"] == 1).sum())
    assert n_b > 30 and n_h > 30 and 0.5 < n_b / n_h < 2
    assert not prod["prompt"].str.contains("How do I").any()
    assert (prod.loc[prod["label"] == 1, "category"] == "violence").all()
    homeless = term_pattern("homeless")
    ident = t.loc[t["source"] == "counterfactual-identity", "prompt"]
    added = ident.map(lambda p: bool(homeless.search(p))).sum()
    assert 0 < added <= 0.02 * len(benign)  # capped at 2% of the benign set per term
    assert not any(term_pattern("Sikh").search(p) for p in t["prompt"])  # no harmful use
    # Uncapped, the term is ``factor`` times as common among benign prompts as among harmful.
    h, b = harmful["prompt"].tolist(), benign["prompt"].tolist()
    for factor in (1.0, 2.0):
        more = matched_identity_counterfactuals(h, b, ["homeless"], factor=factor, cap=1.0)
        assert len(more) / len(b) >= factor * 100 / len(h)
    off = build_training_set(harmful, benign, identity_per_benign=0.0,
                             identity_terms=["homeless"])
    assert not off["prompt"].map(lambda p: bool(homeless.search(p)))[off["label"] == 0].any()
    # The cap: at most ``cap`` of the benign set per term.
    few = matched_identity_counterfactuals(h, b, ["homeless"], cap=0.01)
    assert len(few) == 4 and all(homeless.search(p) for p in few)
    assert not term_pattern("trans").search("a transit bus")


def test_clause_counterfactuals_take_benign_details_to_both_sides() -> None:
    """"Subject, detail, detail" rewrites: benign depictions get details cut from *other*
    benign prompts; half as many harmful depictions get the same kind of details (never a
    harmful fragment); questions get none; off by default."""
    from imagen_audit.filters.trainset import (
        build_training_set,
        clause_counterfactuals,
        detail_fragments,
    )

    assert detail_fragments(["A barista laughing with regulars at a coffee shop.",
                             "two dogs next to each other", "a cat, warm morning light, on them"]
                            ) == ["with regulars at a coffee shop", "warm morning light"]
    harmful = pd.DataFrame({"prompt": [f"a gory massacre number {i}" for i in range(100)]
                            + [f"How do I hurt someone number {i}?" for i in range(40)],
                            "label": 1, "category": "violence", "source": "h"})
    benign = pd.DataFrame({"prompt": [f"A dog number {i} sitting on a red bench in a park."
                                      for i in range(200)]
                           + [f"How do I fix a bike number {i}?" for i in range(40)],
                           "label": 0, "category": None, "source": "b"})
    parts = clause_counterfactuals(harmful, benign, 60, seed=1)
    b, h = parts[0], parts[1]
    assert len(b) == 60 and len(h) == 30
    assert (b["label"] == 0).all() and (h["label"] == 1).all()
    assert (h["category"] == "violence").all()
    for p in pd.concat([b, h])["prompt"]:
        head, *details = p.split(", ")
        assert 1 <= len(details) <= 3 and not head.endswith(".")
        assert not head.startswith("A ")  # lower-cased, or the article dropped
        assert all(d.startswith(("on a red bench", "in a park")) for d in details)
        assert "How do I" not in p and "massacre" not in ", ".join(details)
    t = build_training_set(harmful, benign)
    assert not (t["source"] == "counterfactual-clause").any()
    on = build_training_set(harmful, benign, clause_per_benign=0.25)
    assert int((on["source"] == "counterfactual-clause").sum()) > 40


def test_shipped_model_trained_on_coprov2_safe_rewrites_but_not_their_test_part() -> None:
    """CoProV2's safe rewrites are benign training data (split like the other sets); the
    test part that ``filters eval --extra-benign coprov2-safe`` reports was never seen."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import default_model_path

    try:
        safe = D.load_named("coprov2-safe")
    except FilterError:
        pytest.skip("shared data absent")
    model = EmbeddingModel.load(default_model_path())
    assert "coprov2-safe:8000" in model.meta["sets"]["benign"]
    assert model.meta["training_sources"]["coprov2-safe"] > 1000
    test = D.split_by_prompt(safe, **D.CANONICAL_SPLIT)[-1]
    assert not model.seen(test["prompt"].tolist()).any()
    assert model.meta["calibration_split"]["at_threshold"]["depiction"]["fpr"][
        "coprov2-safe"] <= 0.05


def test_shipped_model_never_saw_the_over_blocking_probes() -> None:
    """Identity probes, XSTest and HolisticBias measure over-blocking on unseen prompts: the
    shipped model's own record must not contain any of them."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.embedding import default_model_path

    model = EmbeddingModel.load(default_model_path())
    assert model.seen_hashes is not None
    assert not model.seen(D.load_identity_prompts()["prompt"].tolist()).any()
    for name in ("xstest", "holisticbias"):
        try:
            df = D.load_named(name)
        except FilterError:
            continue  # shared data absent
        assert not model.seen(df["prompt"].tolist()).any(), name


def _assert_trained_on(model: EmbeddingModel, train: pd.DataFrame) -> None:
    """The shipped model trained on ``train`` (a set's train part). The near-duplicate guard
    drops training rows at cosine >= 0.95 to an evaluation prompt; measured in plain MiniLM
    (round 55's N12) it drops them from the encoder's fine-tuning too, so a few train rows are
    unseen: at most 2% of a set, and no more than the guard recorded."""
    unseen = int((~model.seen(train["prompt"].tolist())).sum())
    guard = model.meta.get("near_guard", {})
    if guard.get("space") == "plain":
        assert unseen <= min(0.02 * len(train), guard["dropped_near_duplicates"]), unseen
    else:
        assert unseen == 0


@pytest.mark.parametrize("name", ["benign-requests", "harmful-requests"])
def test_shipped_model_trained_on_the_chat_requests_but_not_their_test_part(name: str) -> None:
    """The shipped model was trained on each hand-written request set's train part, picked
    its request threshold with the benign dev part as a source of its own, and never saw
    the test parts that ``filters eval --extra-benign benign-requests`` and
    ``--extra-harmful harmful-requests`` report."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.embedding import default_model_path
    from imagen_audit.filters.form import REQUEST, prompt_form

    model = EmbeddingModel.load(default_model_path())
    train, dev, test = D.split_by_prompt(D.load_named(name), **D.CANONICAL_SPLIT)
    _assert_trained_on(model, train)
    assert model.seen(dev["prompt"].tolist()).all()
    assert not model.seen(test["prompt"].tolist()).any()
    split = model.meta["calibration_split"]
    assert split["sources"][name] == len(dev)
    is_req = train["prompt"].map(prompt_form) == REQUEST
    # Depictions train the main network, requests the request head (scored by it alone). A
    # train-part row is left out only by the near-duplicate guard, and the guard's record
    # accounts for it. (With N6's six adapted layers the guard, measured in that encoder,
    # drops far more than N4's did: filters/README.md, round 41.)
    left_out = int((~is_req).sum()) - model.meta["training_sources"][name]
    assert 0 <= left_out <= model.meta["training_size"]["dropped_near_duplicates"]
    assert model.meta["training_sources"][name] > 0
    assert model.meta["request_head"]["mix"] == "alone"
    assert model.meta["sets"]["source_weights"].get(name, 1.0) == \
        (4.0 if name == "benign-requests" else 1.0)
    at = split["at_threshold"]
    assert at["request"]["fpr"]["benign-requests"] <= 0.05
    assert max(at["depiction"]["fpr"].values()) <= 0.05
    assert 0 < model.meta["request_threshold"] < 1  # on the head's scale, not the main one's
    assert model.request_head is not None
    # Every train-part request trains the head, but for those the cosine guard drops as
    # near-duplicates of a dev, test or evaluation-only prompt (1 of 494 in round 17, with
    # three adapted layers; more with six, and the head's record counts them).
    # With the guard in plain MiniLM (round 55 on) those rows leave before either network is
    # fitted, so the model's guard record counts them, not the head's (N23: 1 of each set).
    head = model.meta["request_head"]
    left_out = int(is_req.sum()) - head["training_sources"][name]
    guard = model.meta.get("near_guard", {})
    upstream = guard["dropped_near_duplicates"] if guard.get("space") == "plain" else 0
    assert 0 <= left_out <= head["training_size"]["dropped_near_duplicates"] + upstream
    assert head["training_sources"][name] >= 0.5 * int(is_req.sum())
    if name == "benign-requests":  # the requests' dev part set the request threshold
        n_req = int((dev["prompt"].map(prompt_form) == REQUEST).sum())
        assert n_req >= 30


def test_default_policy_on_held_out_chat_requests() -> None:
    """Chat-style prompts, held out (round 5 sets, contrast pairs included): the round 4
    model (one network, a request threshold) blocked 16% of the benign test requests at 75%
    recall on round 4's harmful ones; round 5 (a request head of its own) blocks 14% at 73%
    on the harder round 5 sets. Neither may slip."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.policy import Policy

    pol = Policy.load("default")
    ok = D.split_by_prompt(D.load_named("benign-requests"), **D.CANONICAL_SPLIT)[-1]
    harm = D.split_by_prompt(D.load_named("harmful-requests"), **D.CANONICAL_SPLIT)[-1]
    res_ok = pol.score_frame(ok["prompt"].tolist())
    res_harm = pol.score_frame(harm["prompt"].tolist())
    assert (res_ok["decision"] == "block").mean() <= 0.16
    assert (res_harm["decision"] == "block").mean() >= 0.68


def test_threshold_is_picked_on_the_worst_benign_source() -> None:
    """The decision threshold comes from the calibration split: the lowest at which *each*
    benign source stays within the target, so a small unusual set is not averaged away."""
    from imagen_audit.filters.commands import _pick_threshold

    rng = np.random.default_rng(0)
    common = rng.uniform(0.0, 0.3, 1000)             # big, easy benign set
    unusual = np.r_[rng.uniform(0.0, 0.3, 90), np.linspace(0.55, 0.75, 10)]  # 10% high
    harmful = rng.uniform(0.5, 1.0, 200)
    scores = np.r_[common, unusual, harmful]
    labels = np.r_[np.zeros(1100, int), np.ones(200, int)]
    sources = ["coco"] * 1000 + ["parti"] * 100 + ["i2p"] * 200
    t, at = _pick_threshold(scores, labels, sources, 0.05)
    assert at["fpr"]["parti"] <= 0.05 and at["fpr"]["coco"] <= 0.05
    assert 0.64 <= t <= 0.67  # pooled FPR would have allowed ~0.55
    assert at["recall"] == pytest.approx(float((harmful >= t).mean()))


def test_source_weights_and_prompt_weights_are_checked() -> None:
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.commands import _source_weights

    pairs = {f"{k}-train-{h}": 4.0 for k in ("creative", "request", "identity", "style", "frame",
                                             "humour", "bare", "edit", "question")
             for h in ("benign", "harmful")}
    assert _source_weights(None) == {"partiprompts": 4.0, "benign-requests": 4.0, **pairs,
                                     "everyday-benign": 4.0,
                                     **{s: 2.0 for s in JUDGED_FRESH_SETS},
                                     **{s: 2.0 for s in SURFACE_SOURCES}}
    defaults = _source_weights(None)
    # A named weight overrides its own source and keeps every other default (round 69 had to
    # edit the defaults: the flag used to replace the whole table).
    assert _source_weights(["coco=0.5", "i2p=2"]) == {**defaults, "coco": 0.5, "i2p": 2.0}
    assert _source_weights(["partiprompts=1"]) == {**defaults, "partiprompts": 1.0}
    for bad in ("coco", "coco=-1", "=2", "coco=x"):
        with pytest.raises(FilterError, match="SOURCE=WEIGHT"):
            _source_weights([bad])
    prompts, y, x = _data(40)
    with pytest.raises(FilterError, match="positive weight"):
        train_model(prompts, y, embeddings=x, encoder=_HashEncoder(),
                    prompt_weights=[0.0] * 40)


class _SignalEncoder(_HashEncoder):
    """Hash vectors shifted along one axis for prompts that say "harmful": learnable."""

    def encode(self, prompts):
        x = super().encode(prompts)
        x[:, 0] += np.array([1.5 if "harmful" in p else 0.0 for p in prompts], np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def _train_cli(tmp_path, monkeypatch, harm: pd.DataFrame, ben: pd.DataFrame,
               *extra: str) -> Path:
    """Run ``filters train --no-augment --ensemble 2`` on the given harmful and benign tables
    (written as CSVs) with :class:`_SignalEncoder` in place of MiniLM; returns the model
    path."""
    import imagen_audit.filters.embedding as E
    import imagen_audit.filters.encoder as enc_mod
    from imagen_audit.cli import main

    monkeypatch.setattr(enc_mod, "shared_encoder", lambda *a, **k: _SignalEncoder())
    monkeypatch.setattr(E, "shared_encoder", lambda *a, **k: _SignalEncoder())
    harm.to_csv(tmp_path / "h.csv", index=False)
    ben.to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "m" / "model"
    monkeypatch.setenv("IMAGEN_AUDIT_DATA", str(tmp_path / "no-shared-data"))
    assert main(["filters", "train", "--harmful", str(tmp_path / "h.csv"), "--benign",
                 str(tmp_path / "b.csv"), "--no-augment", "--ensemble", "2",
                 "--out", str(out), *extra]) == 0
    return out


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_end_to_end(tmp_path, monkeypatch) -> None:
    """``filters train`` on small CSVs: calibration, threshold and hashes land in the files."""
    harm = [f"harmful thing number {i}" for i in range(150)]
    ben = [f"benign caption number {i}" for i in range(150)]
    out = _train_cli(tmp_path, monkeypatch, pd.DataFrame({"prompt": harm, "category": "violence"}),
                     pd.DataFrame({"prompt": ben}), "--source-weight", "b=2")
    doc = json.loads(out.with_suffix(".json").read_text())
    assert 0.05 <= doc["decision_threshold"] <= 0.99
    # The named weight was added and left the defaults in place.
    weights = doc["sets"]["source_weights"]
    assert weights["b"] == 2.0 and weights["benign-requests"] == 4.0
    assert doc["calibration"]["method"] == "platt" and doc["ensemble"] == 2
    assert doc["calibration_split"]["n"] > 0
    model = EmbeddingModel.load(out)
    # The lexical view and its stacker (fitted on the dev split) ship by default.
    assert doc["format_version"] == 2 and model.lexical is not None
    assert doc["stack"]["n"] == doc["calibration_split"]["n"]
    n_train = doc["training_size"]["harmful"] + doc["training_size"]["benign"]
    assert len(model.seen_hashes) == n_train + doc["calibration_split"]["n"]
    ev = json.loads(out.with_suffix(".eval.json").read_text())
    assert f"held_out_at_{doc['decision_threshold']:g}" in ev
    # The held-out (test) prompts are exactly what the model has not seen.
    from imagen_audit.filters.datasets import CANONICAL_SPLIT, split_by_prompt

    test = split_by_prompt(pd.DataFrame({"prompt": harm + ben}), **CANONICAL_SPLIT)[-1]
    assert not model.seen(test["prompt"].tolist()).any()


def test_embedding_cache_round_trip(tmp_path) -> None:
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.encoder import Encoder

    enc = Encoder()
    enc._cache["a cat"] = np.ones(384, np.float32)
    enc._cache["a dog"] = np.zeros(384, np.float32)
    enc.save_cache(tmp_path / "c.npz")
    other = Encoder()
    assert other.load_cache(tmp_path / "c.npz") == 2
    assert np.array_equal(other.encode(["a cat", "a dog"]), np.stack([np.ones(384),
                                                                      np.zeros(384)]))
    assert Encoder().load_cache(tmp_path / "missing.npz") == 0
    np.savez(tmp_path / "bad.npz", texts=np.array(["x"]), vectors=np.zeros((1, 384)),
             fingerprint=np.array("another encoder"))
    with pytest.raises(FilterError, match="another encoder"):
        Encoder().load_cache(tmp_path / "bad.npz")


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
@pytest.mark.parametrize("head", [True, False])
def test_cli_train_with_requests_adds_request_threshold_and_head(tmp_path, monkeypatch,
                                                                 head: bool) -> None:
    """With enough chat-style requests in the data, ``filters train`` picks a second
    threshold for them and (unless ``--no-request-head``) fits a request head; the files
    say so (format 3) and the reloaded model scores requests with it."""
    from imagen_audit.filters.form import REQUEST

    harm = [f"harmful thing number {i}" for i in range(150)] + \
        [f"How do I do harmful thing {i}?" for i in range(200)]
    ben = [f"benign caption number {i}" for i in range(150)] + \
        [f"How do I do benign thing {i}?" for i in range(200)]
    out = _train_cli(tmp_path, monkeypatch, pd.DataFrame({"prompt": harm}),
                     pd.DataFrame({"prompt": ben}), *([] if head else ["--no-request-head"]))
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["format_version"] == 3 and 0.05 <= doc["request_threshold"] <= 0.99
    at = doc["calibration_split"]["at_threshold"]
    assert set(at) == {"depiction", "request"}
    assert max(at["request"]["fpr"].values()) <= 0.05
    model = EmbeddingModel.load(out)
    assert (model.request_head is not None) == head
    assert ("request_head" in doc) == head and doc.get("request_head_layers", 0) == \
        (2 if head else 0)
    if head:
        assert doc["request_head"]["training_size"]["harmful"] > 0
    prompts = ["How do I do harmful thing 7?", "harmful thing number 7"]
    scores, _raw, forms = model.aligned_proba(_SignalEncoder().encode(prompts), prompts)
    assert forms == [REQUEST, "depiction"] and (scores >= 0).all() and (scores <= 1).all()


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_request_head_from_keeps_the_head(tmp_path, monkeypatch) -> None:
    """``--request-head-from`` attaches another model's request head unchanged (retraining
    the main network cannot re-roll it), records where it came from, re-picks its threshold
    and keeps every prompt that head learned from among the prompts the model has seen."""
    from imagen_audit.cli import main

    harm = [f"harmful thing number {i}" for i in range(150)] + \
        [f"How do I do harmful thing {i}?" for i in range(200)]
    ben = [f"benign caption number {i}" for i in range(150)] + \
        [f"How do I do benign thing {i}?" for i in range(200)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _train_cli(tmp_path / "a", monkeypatch, pd.DataFrame({"prompt": harm}),
                       pd.DataFrame({"prompt": ben}))
    more = [f"benign scene number {i}" for i in range(100)]
    second = _train_cli(tmp_path / "b", monkeypatch, pd.DataFrame({"prompt": harm}),
                        pd.DataFrame({"prompt": ben + more}), "--request-head-from",
                        str(first))
    a, b = EmbeddingModel.load(first), EmbeddingModel.load(second)
    for wa, wb in zip(a.request_head[0] + a.request_head[1],
                      b.request_head[0] + b.request_head[1], strict=True):
        assert np.array_equal(wa, wb)
    doc = json.loads(second.with_suffix(".json").read_text())
    assert doc["request_head"]["copied_from"]["model"] == first.name
    assert len(doc["request_head"]["copied_from"]["arrays_sha256"]) == 64
    assert doc["request_head"]["training_size"] == \
        json.loads(first.with_suffix(".json").read_text())["request_head"]["training_size"]
    assert 0.05 <= doc["request_threshold"] <= 0.99
    assert np.isin(a.seen_hashes, b.seen_hashes).all()
    # A model without a head cannot lend one.
    (tmp_path / "c").mkdir()
    no_head = _train_cli(tmp_path / "c", monkeypatch, pd.DataFrame({"prompt": harm}),
                         pd.DataFrame({"prompt": ben}), "--no-request-head")
    assert main(["filters", "train", "--harmful", str(tmp_path / "a" / "h.csv"), "--benign",
                 str(tmp_path / "a" / "b.csv"), "--no-augment", "--ensemble", "2",
                 "--out", str(tmp_path / "d" / "model"), "--request-head-from",
                 str(no_head)]) != 0


def test_default_policy_on_held_out_coprov2_safe_rewrites() -> None:
    """CoProV2's safe rewrites, held out: the model trained on them as harmful (sessions 1-3)
    blocked 98%; trained on them as benign it blocks 4.3% of the test part (7.2% since round
    63; this sample of 800, 8.3%). A label mix-up coming back would show here first."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.policy import Policy

    try:
        safe = D.load_named("coprov2-safe")
    except FilterError:
        pytest.skip("shared data absent")
    test = D.split_by_prompt(safe, **D.CANONICAL_SPLIT)[-1].sample(n=800, random_state=0)
    res = Policy.load("default").score_frame(test["prompt"].tolist())
    assert (res["decision"] == "block").mean() <= 0.10


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_threshold_exclude_trains_on_a_source_without_letting_it_set_the_threshold(
        tmp_path, monkeypatch) -> None:
    """A benign source the model cannot keep under the target (prompts that look exactly like
    the harmful ones) would push the threshold to its 0.99 fallback; ``--threshold-exclude``
    keeps it in training but out of the rule, and records its rate at the threshold."""
    harm = pd.DataFrame({"prompt": [f"harmful thing number {i}" for i in range(150)],
                         "category": "violence"})
    ben = pd.DataFrame({"prompt": [f"benign caption number {i}" for i in range(150)]})
    hard = pd.DataFrame({"prompt": [f"harmful thing number {i}" for i in range(500, 650)]})
    docs = {}
    for name, extra in (("ruled", ()), ("free", ("--threshold-exclude", "hard"))):
        (tmp_path / name).mkdir()
        hard.to_csv(tmp_path / name / "hard.csv", index=False)
        out = _train_cli(tmp_path / name, monkeypatch, harm, ben,
                         "--benign", str(tmp_path / name / "hard.csv"), *extra)
        docs[name] = json.loads(out.with_suffix(".json").read_text())
    ruled, free = docs["ruled"], docs["free"]
    assert ruled["decision_threshold"] >= 0.9  # the hard source is kept under 5% only there
    assert "excluded_from_rule" not in ruled["calibration_split"]["at_threshold"]
    at = free["calibration_split"]["at_threshold"]
    assert free["decision_threshold"] <= ruled["decision_threshold"] - 0.5
    assert set(at["depiction"]["fpr"]) == {"b"} and at["depiction"]["fpr"]["b"] <= 0.05
    assert at["excluded_from_rule"]["hard"] > 0.5  # recorded, not hidden
    assert free["sets"]["threshold_exclude"] == ["hard"]
    assert free["calibration_split"]["sources"]["hard"] > 0  # still in the dev split


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_never_trains_on_evaluation_only_sets(tmp_path, monkeypatch) -> None:
    """A user's training CSV that happens to hold prompts of the shipped evaluation-only sets
    (fresh judgement sets, picture requests, creative pairs) does not train on them."""
    from imagen_audit.filters import datasets as D

    leaked = [D.load_named(n)["prompt"].iloc[k] for n in ("fresh-nn-benign", "picture-requests",
                                                          "benign-creative")
              for k in range(12)]
    ben = pd.DataFrame({"prompt": [f"benign caption number {i}" for i in range(150)] + leaked})
    harm = pd.DataFrame({"prompt": [f"harmful thing number {i}" for i in range(150)],
                         "category": "violence"})
    out = _train_cli(tmp_path, monkeypatch, harm, ben)
    train_part = D.split_by_prompt(ben, **D.CANONICAL_SPLIT)[0]
    in_train = [p for p in leaked if p in set(train_part["prompt"])]
    assert len(in_train) >= 10  # the split put many of them on the training side ...
    assert not EmbeddingModel.load(out).seen(in_train).any()  # ... and none was trained on
    assert EmbeddingModel.load(out).seen(train_part["prompt"].iloc[:5].tolist()).all()


@pytest.mark.parametrize("name", [*(f"{k}-train-{h}" for k in ("creative", "request",
                                                                  "identity", "style", "frame",
                                                                  "humour", "bare", "edit",
                                                                  "question")
                                    for h in ("benign", "harmful")), "everyday-benign",
                                  *JUDGED_FRESH_SETS, *SURFACE_SOURCES])
def test_shipped_model_trained_on_the_contrast_pairs_but_not_their_test_part(name: str
                                                                           ) -> None:
    """Rounds 17, 22, 26, 28, 36, 55, 63 and 77: the shipped model trained on each contrast-pair
    set's (and everyday-benign's) train part (×4) and each judged fresh and surface set's (×2),
    saw its dev part only for calibration, never its test part, and did not let the dev part
    set the threshold (its rate there is on the record)."""
    from imagen_audit.filters import datasets as D
    from imagen_audit.filters.embedding import default_model_path

    model = EmbeddingModel.load(default_model_path())
    train, dev, test = D.split_by_prompt(D.load_named(name), **D.CANONICAL_SPLIT)
    _assert_trained_on(model, train)
    assert model.seen(dev["prompt"].tolist()).all()
    assert not model.seen(test["prompt"].tolist()).any()
    twice = (*JUDGED_FRESH_SETS, *SURFACE_SOURCES)
    assert model.meta["sets"]["source_weights"][name] == (2.0 if name in twice else 4.0)
    assert name in model.meta["sets"]["threshold_exclude"]
    at = model.meta["calibration_split"]["at_threshold"]
    assert name in at["excluded_from_rule"]
    assert name not in at["depiction"]["fpr"] and name not in at.get("request", {}).get("fpr", {})
