"""The picture-format head: a network of its own for depictions that name a picture format.

Memes, stickers, posters, cards and diagrams put the words of harm into jokes, warnings and
teaching ("cute ghost sticker with text I'm dead", "rat poison warning label redesign",
"burns unit teaching diagram: rule of nines"). On the seven read fresh sets the default
blocked 16.4% of such harmless prompts against 3.7% of the rest, and the classifier, not the
word list, made nearly every one of those blocks (session 17). One threshold for everything
pays for them with harmful depictions, and a main network trained on 25,000 captions spends
little of itself on them. As with chat-style requests (:mod:`imagen_audit.filters.form`), a
head trained on the format rows alone scores them, at a threshold of their own.

The head is fitted *after* the model, on the format rows of the train part (canonical split)
of every set the model records in ``meta.sets`` plus any extra sets, embedded by the model's
own (adapted) encoder: the main network, its calibration and its threshold stay exactly as
they were, so only format depictions can change decision. Its threshold is given, not picked
here: the round that adds a head states the rule that picks it (filters/README.md, round 50).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from imagen_audit.filters import datasets as D
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import (
    HEAD_NETWORK,
    EmbeddingModel,
    near_duplicate_mask,
    train_model,
)
from imagen_audit.filters.form import PICTURE_FORMATS, is_format_depiction

log = logging.getLogger(__name__)

MIXES = ("alone", "mean")


@dataclass(frozen=True)
class FormatRows:
    """The training rows of a format head, and what was kept out of them."""

    rows: pd.DataFrame  # prompt, label, source
    dropped_near_duplicates: int
    guarded: int  # prompts the rows were kept apart from


def default_guard(named: Sequence[str]) -> list[str]:
    """The sets no format-head training row may be near, besides the dev and test parts of
    the sets it trains on: the evaluation-only sets and every fresh set, except those
    ``named`` for training (a round decided to train on them; their dev and test parts stay
    guarded by the split)."""
    sets = dict.fromkeys((*D.EVALUATION_ONLY_SETS, *D.FRESH_SETS))
    return [s for s in sets if s not in set(named)]


def format_rows(harmful: Sequence[str], benign: Sequence[str], extra: Sequence[str] = (),
                *, seed: int = 0, guard_sets: Sequence[str] = (),
                embedding_cache: str | None = None) -> FormatRows:
    """The format depictions of the train part of each set (``extra`` sets carry their own
    labels), never near a prompt of any set's dev or test part or of ``guard_sets``
    (:func:`default_guard` for a shipped head): exact and near-duplicate keys, and
    plain-MiniLM cosine >= 0.95 (the guard of ``filters train --near-guard plain``)."""
    from imagen_audit.filters.encoder import shared_encoder

    parts, guard = [], []
    specs = [(s, 1) for s in harmful] + [(s, 0) for s in benign] + [(s, -1) for s in extra]
    for spec, label in specs:
        tr, dev, held_out = D.split_training_spec(spec, max(label, 0), seed)
        guard += [held_out["prompt"], dev["prompt"]]
        keep = np.asarray(is_format_depiction(tr["prompt"].astype(str).tolist()), dtype=bool)
        parts.append(tr.loc[keep, ["prompt", "label", "source"]])
    for spec in guard_sets:
        with contextlib.suppress(FilterError):  # a missing shared set guards nothing
            guard.append(D.load_named(spec)["prompt"])
    rows = pd.concat(parts, ignore_index=True)
    exclude = pd.concat(guard, ignore_index=True).astype(str).drop_duplicates().tolist()
    rows = D.drop_overlap(rows, pd.DataFrame({"prompt": exclude}))
    plain = shared_encoder()
    if embedding_cache:
        plain.load_cache(embedding_cache)
    near = near_duplicate_mask(plain.encode(rows["prompt"].astype(str).tolist()),
                               plain.encode(exclude))
    if embedding_cache:
        plain.save_cache(embedding_cache)
    rows = rows[~near].reset_index(drop=True)
    if rows["label"].nunique() < 2:
        raise FilterError("format head: the training sets hold format depictions of one "
                          f"class only ({len(rows)} rows); name sets with both")
    return FormatRows(rows, int(near.sum()), len(exclude))


def add_format_head(model: EmbeddingModel, data: FormatRows, *, threshold: float,
                    mix: str = "alone", source_weights: dict[str, float] | None = None,
                    seed: int = 0, ensemble: int = 5) -> None:
    """Fit the head on ``data`` in ``model``'s own embedding space and attach it (in place)
    with its ``threshold`` and training record; its prompts join the model's seen hashes."""
    if mix not in MIXES:
        raise FilterError(f"format head: mix {mix!r} is not one of {list(MIXES)}")
    if not 0.0 < threshold < 1.0:
        raise FilterError(f"format head: threshold must be in (0, 1), not {threshold}")
    if model.meta.get("decision_threshold") is None:
        raise FilterError("format head: the model has no decision_threshold to align to")
    rows = data.rows
    prompts = rows["prompt"].astype(str).tolist()
    weights = [(source_weights or {}).get(s, 1.0) for s in rows["source"]]
    enc = model.encoder()
    head = train_model(prompts, rows["label"].tolist(), sources=rows["source"].tolist(),
                       classifier="mlp", hidden=HEAD_NETWORK["hidden"],
                       alpha=HEAD_NETWORK["alpha"], seed=seed, ensemble=ensemble,
                       embeddings=enc.encode(prompts), prompt_weights=weights, encoder=enc)
    model.format_head = (head.weights, head.biases)
    model.meta["format_threshold"] = float(threshold)
    model.meta["format_head"] = {**HEAD_NETWORK, "ensemble": ensemble, "mix": mix,
                                 "formats": list(PICTURE_FORMATS),
                                 "training_size": {**head.meta["training_size"],
                                                   "dropped_near_duplicates":
                                                   data.dropped_near_duplicates},
                                 "training_sources": head.meta["training_sources"],
                                 "training_data_sha256": head.meta["training_data_sha256"]}
    model.add_seen(prompts)
    log.info("format head: %d rows (%d harmful), threshold %.2f, mix %s", len(rows),
             int(rows["label"].sum()), threshold, mix)
