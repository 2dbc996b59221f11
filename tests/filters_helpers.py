"""Shared test helpers for the filter tests: a backend whose scores a test sets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imagen_audit.filters.base import FilterResult, register

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# I2P, COCO and the other shared sets live outside the repository; tests that read them skip
# in a clone without ../shared.
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")


class TableFilter:
    """Scores prompts from a dict (unknown prompts score ``default``)."""

    def __init__(self, name: str, table: dict[str, float], default: float = 0.0,
                 category: str | None = None) -> None:
        self.name, self.table, self.default, self.category = name, table, default, category

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        return [FilterResult(self.table.get(p, self.default),
                             self.category if self.table.get(p, self.default) > 0 else None)
                for p in prompts]

    def seen(self, prompts: Sequence[str]) -> np.ndarray | None:
        """Like a trained model's record of its training prompts (None: no record)."""
        known = SEEN.get(self.name)
        return None if known is None else np.array([p in known for p in prompts], dtype=bool)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}


TABLES: dict[str, dict[str, float]] = {"fake-a": {}, "fake-b": {}}
# Prompts a fake backend "was trained on"; a name absent here records nothing.
SEEN: dict[str, set[str]] = {}


@register("fake-a")
def _fake_a() -> TableFilter:
    return TableFilter("fake-a", TABLES["fake-a"], category="violence")


@register("fake-b")
def _fake_b() -> TableFilter:
    return TableFilter("fake-b", TABLES["fake-b"], category="sexual")


class NoEncoder:
    """An encoder stand-in for training on given embeddings: fails if asked to encode."""

    name = "test-encoder"

    def fingerprint(self) -> str:
        return "none"

    def encode(self, prompts: Sequence[str]) -> Any:  # pragma: no cover - must not be called
        raise AssertionError("embeddings were given")


def tiny_sentence_encoder(folder: Any, words: Sequence[str], seed: int = 0) -> Any:
    """A randomly initialised 3-layer BERT sentence encoder (mean pooling, unit norm) saved as
    a sentence-transformers folder: MiniLM's structure at toy size, built offline."""
    from pathlib import Path

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizer

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers import models

    folder = Path(folder)
    raw = folder / "bert"
    raw.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w.lower() for w in words})]
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(raw / "vocab.txt")).save_pretrained(raw)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=32)
    st = SentenceTransformer(modules=[word, models.Pooling(16, "mean"), models.Normalize()],
                             device="cpu")
    st.save(str(folder / "st"))
    return folder / "st"


def one_feature_model() -> Any:
    """A tiny trained :class:`EmbeddingModel` whose harm signal is feature 0 of an 8-d
    embedding (threshold 0.5): tests pair it with a word encoder that puts the words they
    study on that feature."""
    from imagen_audit.filters.embedding import train_model

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(60, int), np.zeros(60, int)]
    x = np.zeros((120, 8), np.float32)
    x[:, 0] = 2.0 * y + rng.normal(0, 0.2, 120)
    x[:, 1] = 1.0
    model = train_model([f"p{i}" for i in range(120)], y, [None] * 120, embeddings=x,
                        encoder=NoEncoder())
    model.meta["decision_threshold"] = 0.5
    return model


def drop_model_array(stem: Path, key: str | None,
                     put: dict[str, np.ndarray] | None = None) -> None:
    """Remove array ``key`` from the saved embedding model ``stem`` (``.npz`` + ``.json``),
    or replace arrays by those of ``put``, and record the new file's sha256, so that only the
    changed arrays are wrong with it."""
    import hashlib
    import json

    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files if k != key}
    arrays.update(put or {})
    np.savez(npz, **arrays)
    doc = json.loads(js.read_text())
    doc["arrays_sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    js.write_text(json.dumps(doc))


def tiny_image_run(root: Path) -> Path:
    """A run folder of three samples with two stages each (32 and 64 pixels): six random PNG
    images to scan, built through the run store like a real run."""
    from imagen_audit.probes import Prompt
    from imagen_audit.store import RunStore, SampleResult, StageSpec

    prompts = [Prompt(prompt_id=f"x/face/p{i}", prompt=f"a photo {i}", family="x",
                      template_id="face") for i in range(3)]
    rng = np.random.default_rng(0)
    with RunStore.open(root) as store:
        store.add_prompts(prompts)
        store.plan_probe_samples(prompts, 1, base_seed=1)
        store.register_stages([StageSpec(1, "base", 32, 32), StageSpec(2, "sr", 64, 64)])
        for page in store.iter_pending():
            for s in page:
                store.commit_sample(SampleResult(s.sample_id, {
                    1: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                    2: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}))
    return root


def blobs(n: int = 200, dim: int = 16, seed: int = 0
          ) -> tuple[list[str], np.ndarray, np.ndarray, list[str | None]]:
    """Two Gaussian blobs of unit-norm embeddings (harmful shifted), prompts and categories
    for them: a tiny classifier learns them without an encoder."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    x = rng.normal(size=(n, dim)) + y[:, None] * 1.5
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    prompts = [f"prompt {i}" for i in range(n)]
    cats = ["violence" if i % 2 else "sexual" for i in range(n // 2)] + [None] * (n - n // 2)
    return prompts, y, x.astype(np.float32), cats


class LookupEncoder:
    """Each prompt's embedding from a table (a member's own 'adapted' encoder)."""

    name = "lookup"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def fingerprint(self) -> str:
        return "lookup"

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[p] for p in prompts])
