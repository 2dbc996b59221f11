"""The detoxify backend on a tiny random checkpoint in Detoxify's own format (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from imagen_audit.filters.base import FilterError, make_filter  # noqa: E402
from imagen_audit.filters.detoxify_backend import DetoxifyFilter  # noqa: E402

CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@pytest.fixture(scope="module")
def tiny_detoxify(tmp_path_factory) -> tuple[Path, Path, object]:
    """A Detoxify-format checkpoint of a random 2-layer BERT, plus its local HF config folder."""
    root = tmp_path_factory.mktemp("detoxify")
    cfg_dir = root / "bert-tiny"
    cfg_dir.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "you", "are",
             "nice", "bad", "the", "on", "mat", "##s"]
    (cfg_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizer(str(cfg_dir / "vocab.txt"))
    tok.save_pretrained(cfg_dir)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=64, num_labels=len(CLASSES))
    config.save_pretrained(cfg_dir)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    ckpt = root / "toxic_tiny.ckpt"
    torch.save({"config": {"arch": {"args": {"model_type": "bert-base-uncased",
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer",
                                             "num_classes": len(CLASSES)}},
                           "dataset": {"args": {"classes": CLASSES}}},
                "state_dict": model.state_dict()}, ckpt)
    return ckpt, cfg_dir, (model, tok)


def test_loads_detoxify_format_and_matches_the_model(tiny_detoxify) -> None:
    ckpt, cfg_dir, (model, tok) = tiny_detoxify
    f = make_filter("detoxify", checkpoint=str(ckpt), huggingface_config_path=str(cfg_dir))
    assert isinstance(f, DetoxifyFilter)
    # Detoxify's renames apply.
    assert f.class_names == ["toxicity", "severe_toxicity", "obscene", "threat", "insult",
                             "identity_attack"]
    prompts = ["you are bad", "a cat on the mat", "dogs"]
    probs = f.predict(prompts)
    with torch.no_grad():
        enc = tok(prompts, return_tensors="pt", padding=True, truncation=True)
        expected = torch.sigmoid(model(**enc).logits).numpy()
    for row, exp in zip(probs, expected, strict=True):
        assert [row[c] for c in f.class_names] == pytest.approx(exp.tolist(), abs=1e-6)
    results = f.score(prompts)
    for r, exp in zip(results, expected, strict=True):
        assert r.score == pytest.approx(float(exp.max()), abs=1e-6)
        assert r.category in {"harassment", "sexual", "violence", "hate"}
    only = DetoxifyFilter(ckpt, cfg_dir, classes=["threat"]).score(prompts)
    assert [r.score for r in only] == pytest.approx(expected[:, 3].tolist(), abs=1e-6)
    assert all(r.category == "violence" for r in only)


def test_bad_checkpoints_fail_clearly(tiny_detoxify, tmp_path) -> None:
    ckpt, cfg_dir, _ = tiny_detoxify
    with pytest.raises(FilterError, match="needs options 'checkpoint'"):
        make_filter("detoxify")
    with pytest.raises(FilterError, match="not found"):
        DetoxifyFilter(tmp_path / "none.ckpt", cfg_dir)
    with pytest.raises(FilterError, match=r"no config\.json"):
        DetoxifyFilter(ckpt, tmp_path)
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(FilterError, match="holds 'config' and 'state_dict'"):
        DetoxifyFilter(bad, cfg_dir)
    with pytest.raises(FilterError, match="not in the checkpoint"):
        DetoxifyFilter(ckpt, cfg_dir, classes=["spam"])
