"""``profanity``: alt-profanity-check (a linear SVM on word n-grams, weights in its wheel).

Fast (thousands of prompts per second) and offline, but trained on comment toxicity, not on
image prompts: it knows swear words, not "a decapitated body". It gives no category.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_audit.filters.base import FilterError, FilterResult, register


class ProfanityFilter:
    name = "profanity"

    def __init__(self) -> None:
        self._predict = None

    def _load(self):
        if self._predict is None:
            try:
                import warnings

                with warnings.catch_warnings():  # sklearn version notes about its pickle
                    warnings.simplefilter("ignore")
                    from profanity_check import predict_prob
            except ImportError as exc:  # pragma: no cover - a dependency
                raise FilterError("the profanity filter needs alt-profanity-check") from exc
            self._predict = predict_prob
        return self._predict

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        if not prompts:
            return []
        probs = np.clip(np.asarray(self._load()([str(p) for p in prompts]), float), 0.0, 1.0)
        return [FilterResult(float(p), None, {}) for p in probs]

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        try:
            version = metadata.version("alt-profanity-check")
        except metadata.PackageNotFoundError:  # pragma: no cover
            version = None
        return {"backend": self.name, "package": "alt-profanity-check", "version": version}


@register("profanity")
def _make() -> ProfanityFilter:
    return ProfanityFilter()
