"""Encoder adaptation (fine-tuned top layers saved as a float16 delta), on a tiny BERT."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# One module object for the helpers (as every other test imports them): importing them as
# tests.filters_helpers too registered the fake backends a second time with their own tables,
# and whichever file pytest collected last decided which tables the fakes read.
from filters_helpers import tiny_sentence_encoder

from imagen_audit.filters.adapt import AdaptSettings, adapt_encoder
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import EmbeddingFilter, EmbeddingModel
from imagen_audit.filters.encoder import Encoder

HARM = ["stab", "shoot", "strangle", "poison"]
BENIGN = ["paint", "hug", "feed", "photograph"]
THINGS = ["the", "a", "man", "woman", "dog", "child", "neighbour", "friend", "cat", "crowd"]


def _corpus(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """Prompts that differ only in their verb: frozen random embeddings mix the classes up,
    the objective can only be met by attending to the verb."""
    rng = np.random.default_rng(seed)
    prompts, labels = [], []
    for i in range(n):
        harmful = i % 2
        verb = rng.choice(HARM if harmful else BENIGN)
        a, b = rng.choice(THINGS[2:], 2)
        prompts.append(f"the {a} will {verb} a {b}")
        labels.append(harmful)
    return prompts, labels


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory):
    words = HARM + BENIGN + THINGS + ["will"]
    return tiny_sentence_encoder(tmp_path_factory.mktemp("st"), words)


def _separation(x: np.ndarray, y: np.ndarray) -> float:
    """Distance between class means over the mean within-class spread."""
    m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
    spread = np.sqrt(((x[y == 0] - m0) ** 2).sum(1).mean() + ((x[y == 1] - m1) ** 2).sum(1).mean())
    return float(np.linalg.norm(m1 - m0) / spread)


def test_adaptation_trains_only_the_top_layers_and_separates_the_classes(tiny_st) -> None:
    prompts, labels = _corpus(192)
    cfg = AdaptSettings(layers=1, epochs=8, lr=1e-2, batch_size=16, max_length=16)
    delta = adapt_encoder(prompts, labels, settings=cfg, model_path=tiny_st, progress=False)
    assert delta and all(v.dtype == np.float16 for v in delta.values())
    assert {k.split(".")[2] for k in delta} == {"2"}  # layer 2 of 0-2, nothing else
    y = np.asarray(labels)
    test_prompts, test_labels = _corpus(96, seed=1)
    yt = np.asarray(test_labels)
    frozen, adapted = Encoder(tiny_st), Encoder(tiny_st, delta=delta)
    assert frozen.fingerprint() != adapted.fingerprint()
    before = _separation(frozen.encode(test_prompts), yt)
    after = _separation(adapted.encode(test_prompts), yt)
    assert after > 2 * before and after > 0.5, (before, after)
    # The same rows, settings and seed give the same delta.
    again = adapt_encoder(prompts, labels, settings=cfg, model_path=tiny_st, progress=False)
    assert all(np.array_equal(again[k], delta[k]) for k in delta)
    assert not np.allclose(frozen.encode(prompts[:4]), adapted.encode(prompts[:4]))
    assert y.sum() == len(y) // 2


def test_adaptation_refuses_bad_input(tiny_st) -> None:
    with pytest.raises(FilterError, match="both 0 and 1"):
        adapt_encoder(["a", "b"], [1, 1], model_path=tiny_st, progress=False)
    with pytest.raises(FilterError, match="layers"):
        adapt_encoder(["a", "b"], [0, 1], settings=AdaptSettings(layers=9),
                      model_path=tiny_st, progress=False)
    with pytest.raises(FilterError, match="at least 1"):
        AdaptSettings(layers=0)


def test_a_delta_for_another_encoder_fails_loudly(tiny_st) -> None:
    enc = Encoder(tiny_st, delta={"encoder.layer.7.output.dense.weight":
                                  np.zeros((16, 32), np.float16)})
    with pytest.raises(FilterError, match=r"no weight 'encoder\.layer\.7"):
        enc.encode(["a dog"])
    enc = Encoder(tiny_st, delta={"encoder.layer.2.output.dense.weight":
                                  np.zeros((3, 3), np.float16)})
    with pytest.raises(FilterError, match=r"is \(16, 32\)"):
        enc.encode(["a dog"])


def test_model_keeps_its_delta_through_save_and_load(tmp_path, tiny_st) -> None:
    delta = {"encoder.layer.2.output.dense.bias": np.arange(16, dtype=np.float16)}
    m = EmbeddingModel([np.ones((16, 1), np.float32)], [np.zeros(1, np.float32)],
                       encoder_delta=delta)
    js = m.save(tmp_path / "m")
    assert json.loads(js.read_text())["format_version"] == 4
    back = EmbeddingModel.load(tmp_path / "m")
    assert np.array_equal(back.encoder_delta["encoder.layer.2.output.dense.bias"],
                          delta["encoder.layer.2.output.dense.bias"])
    assert back.encoder().delta is not None  # the filter embeds with the adapted weights
    assert EmbeddingFilter(back).describe()["encoder_adapted"] is True
    # A delta stored at another precision is refused, naming the file.
    arrays = dict(np.load(tmp_path / "m.npz"))
    arrays["enc.encoder.layer.2.output.dense.bias"] = np.zeros(16, np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    doc = json.loads(js.read_text())
    doc["arrays_file"] = "bad.npz"
    doc["arrays_sha256"] = hashlib.sha256((tmp_path / "bad.npz").read_bytes()).hexdigest()
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(FilterError, match=r"bad\.npz: encoder delta"):
        EmbeddingModel.load(tmp_path / "bad")


def _train_with_twins(tmp_path: Path, *extra: str) -> tuple[pd.DataFrame, Path]:
    """Run ``filters train --adapt-encoder-layers 1`` (plus ``extra``) on a toy corpus whose
    prompts have near-identical twins ("the man will stab the dog" next to "... a dog": another
    near-duplicate key, yet cosine ~0.99 in MiniLM, so the guard must catch such twins across
    splits) and chat-style requests (they train the encoder but not the main network)."""
    from imagen_audit.cli import main

    prompts, labels = _corpus(300)
    twins = [p.replace(" a ", " the ") for p in prompts]
    asks = [f"how do i {v} my {t}?" for v in HARM + BENIGN for t in THINGS[2:]]
    df = pd.DataFrame({"prompt": prompts + twins + asks,
                       "label": labels + labels + [int(a.split()[3] in HARM) for a in asks]})
    df[df.label == 1][["prompt"]].to_csv(tmp_path / "h.csv", index=False)
    df[df.label == 0][["prompt"]].to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "m" / "model"
    assert main(["filters", "train", "--harmful", str(tmp_path / "h.csv"), "--benign",
                 str(tmp_path / "b.csv"), "--no-augment", "--ensemble", "2",
                 "--adapt-encoder-layers", "1", *extra, "--out", str(out)]) == 0
    return df, out


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_with_an_adapted_encoder(tmp_path, monkeypatch) -> None:
    """``filters train --adapt-encoder-layers 1`` (on the shipped MiniLM: a random toy encoder
    maps every prompt near every other, and the near-duplicate guard then drops them all):
    the delta ships in the model, the recorded fingerprint is the adapted encoder's, and the
    reloaded filter scores the held-out split exactly as training evaluated it (what is
    shipped is what was calibrated)."""
    import imagen_audit.filters.adapt as adapt_mod
    import imagen_audit.filters.encoder as enc_mod
    from imagen_audit.filters.datasets import CANONICAL_SPLIT, split_by_prompt
    from imagen_audit.filters.evaluate import ranking

    monkeypatch.setattr(enc_mod, "_SHARED", {})
    monkeypatch.setenv("IMAGEN_AUDIT_DATA", str(tmp_path / "no-shared-data"))
    seen_by_adaptation: list[str] = []
    real_adapt = adapt_mod.adapt_encoder

    def spy(prompts, *a, **k):
        seen_by_adaptation.extend(prompts)
        return real_adapt(prompts, *a, **k)

    monkeypatch.setattr(adapt_mod, "adapt_encoder", spy)
    df, out = _train_with_twins(tmp_path, "--adapt-epochs", "2",
                                "--embedding-cache", str(tmp_path / "cache.npz"))
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["format_version"] == 4 and doc["encoder_adaptation"]["layers"] == 1
    model = EmbeddingModel.load(out)
    assert set(model.encoder_delta) and all(k.startswith("encoder.layer.5.")
                                            for k in model.encoder_delta)
    assert doc["encoder_fingerprint"] == Encoder(delta=model.encoder_delta).fingerprint()
    assert doc["encoder_fingerprint"] != Encoder().fingerprint()
    # The encoder learnt from no prompt that plain MiniLM places at cosine >= 0.95 to a dev or
    # held-out prompt: the guard the networks get applies to the adaptation too.
    from imagen_audit.filters.embedding import near_duplicate_mask

    record = doc["encoder_adaptation"]
    assert record["dropped_near_duplicates"] > 0
    assert record["training_rows"] == len(seen_by_adaptation)
    dev_test = pd.concat(split_by_prompt(df, **CANONICAL_SPLIT)[1:])["prompt"].tolist()
    plain = Encoder()
    assert not near_duplicate_mask(plain.encode(seen_by_adaptation),
                                   plain.encode(dev_test)).any()
    # The adapted encoder's embeddings go to a file of their own, named by its fingerprint;
    # the given file keeps plain MiniLM's (the guard above needed those).
    with np.load(tmp_path / "cache.npz") as z:
        assert str(z["fingerprint"]) == Encoder().fingerprint()
    [sibling] = tmp_path.glob("cache.*.npz")
    with np.load(sibling) as z:
        assert str(z["fingerprint"]) == doc["encoder_fingerprint"] in sibling.name
    monkeypatch.setattr(enc_mod, "_SHARED", {})  # a fresh process: nothing cached in memory
    test = split_by_prompt(df, **CANONICAL_SPLIT)[-1]
    scores = [r.score for r in EmbeddingFilter(out).score(test["prompt"].tolist())]
    ev = json.loads(out.with_suffix(".eval.json").read_text())
    held = ev[f"held_out_at_{doc['decision_threshold']:g}"]
    assert ranking(test["label"].to_numpy(), np.asarray(scores))["roc_auc"] == pytest.approx(
        held["roc_auc"], abs=1e-9)
    assert held["roc_auc"] > 0.9


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")
def test_cli_train_near_guard_plain_guards_every_part_in_plain_minilm(tmp_path,
                                                                      monkeypatch) -> None:
    """``--near-guard plain`` (round 42): the networks, the request head and the lexical view
    learn from exactly the rows the encoder adaptation learnt from, none of which plain MiniLM
    places at cosine >= 0.95 to a dev or held-out prompt; the adapted encoder's own cosine
    (which pulls a class together) drops nothing more. The model records the guard."""
    import imagen_audit.filters.adapt as adapt_mod
    import imagen_audit.filters.embedding as emb_mod
    import imagen_audit.filters.encoder as enc_mod
    from imagen_audit.filters.datasets import CANONICAL_SPLIT, split_by_prompt
    from imagen_audit.filters.embedding import near_duplicate_mask

    monkeypatch.setattr(enc_mod, "_SHARED", {})
    monkeypatch.setenv("IMAGEN_AUDIT_DATA", str(tmp_path / "no-shared-data"))
    adapted: list[str] = []
    networks: list[str] = []
    real_adapt, real_train = adapt_mod.adapt_encoder, emb_mod.train_model

    def spy_adapt(prompts, *a, **k):
        adapted.extend(prompts)
        return real_adapt(prompts, *a, **k)

    def spy_train(prompts, *a, **k):
        networks.extend(prompts)
        assert k.get("exclude_embeddings") is None and not k.get("exclude_near")
        return real_train(prompts, *a, **k)

    monkeypatch.setattr(adapt_mod, "adapt_encoder", spy_adapt)
    monkeypatch.setattr(emb_mod, "train_model", spy_train)
    df, out = _train_with_twins(tmp_path, "--near-guard", "plain")
    doc = json.loads(out.with_suffix(".json").read_text())
    dropped = doc["encoder_adaptation"]["dropped_near_duplicates"]
    assert dropped > 0  # the twins of dev and test prompts
    assert doc["near_guard"] == {"space": "plain", "dropped_near_duplicates": dropped}
    assert doc["training_size"]["dropped_near_duplicates"] == dropped
    # Main network + request head: every row the encoder adaptation saw, and no other.
    assert sorted(networks) == sorted(adapted)
    dev_test = pd.concat(split_by_prompt(df, **CANONICAL_SPLIT)[1:])["prompt"].tolist()
    plain = Encoder()
    assert not near_duplicate_mask(plain.encode(networks), plain.encode(dev_test)).any()
    assert doc["lexical"]["n_word"] > 0


def test_shipped_model_embeds_with_its_own_adapted_encoder() -> None:
    """The shipped classifier was trained on adapted embeddings: the default filter must
    apply the same delta (its fingerprint is the one recorded at training)."""
    from imagen_audit.filters.embedding import default_model_path

    model = EmbeddingModel.load(default_model_path())
    record = model.meta["encoder_adaptation"]
    assert model.encoder_delta and len(model.encoder_delta) == record["weights"]
    assert record["dropped_near_duplicates"] > 0  # the near-duplicate guard ran first
    f = EmbeddingFilter()
    assert f.encoder.delta is not None
    assert f.encoder.fingerprint() == model.meta["encoder_fingerprint"] != Encoder().fingerprint()


def test_a_large_batch_is_encoded_in_chunks_behind_a_progress_bar(tiny_st, monkeypatch) -> None:
    """Thousands of prompts (filters train encodes ~90,000) go PROGRESS_CHUNK at a time so a
    bar can move; the rows must be exactly those of one call, in the caller's order, with
    repeats answered from the cache."""
    import imagen_audit.filters.encoder as E

    prompts, _ = _corpus(40, seed=3)
    prompts = prompts + prompts[:5]  # repeats: encoded once
    whole = Encoder(tiny_st).encode(prompts)
    calls: list[int] = []
    chunked = Encoder(tiny_st)
    real = chunked._load()

    class Counting:
        def encode(self, texts, **kw):
            calls.append(len(texts))
            return real.encode(texts, **kw)

    chunked._model = Counting()
    monkeypatch.setattr(E, "PROGRESS_MIN", 10)
    monkeypatch.setattr(E, "PROGRESS_CHUNK", 7)
    got = chunked.encode(prompts)
    assert np.allclose(got, whole, atol=1e-6)
    assert max(calls) == 7 and sum(calls) == len(set(prompts))
