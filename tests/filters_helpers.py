"""Shared test helpers for the filter tests: a backend whose scores a test sets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_audit.filters.base import FilterResult, register


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
