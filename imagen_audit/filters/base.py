"""The prompt-filter interface, its result record, errors and the registry of backends.

A prompt filter scores a batch of prompts: ``score(list[str]) -> list[FilterResult]``, one
result per prompt, in order. A score is in [0, 1] (higher = more likely harmful) and comes
with a category (``sexual``, ``violence``, ``hate``, ...) when the backend knows one. The
decision (block / allow) is not the backend's business: a policy (:mod:`.policy`) applies
thresholds and combines backends.

Backends are chosen by name from a registry (``blocklist``, ``profanity``, ``embedding``,
``detoxify``); heavy libraries are imported inside the backends, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from imagen_audit.errors import AuditError
from imagen_audit.registry import Registry

# The harm categories of I2P (Schramowski et al. 2023); backends map their own labels here.
CATEGORIES = ("hate", "harassment", "violence", "self-harm", "sexual", "shocking",
              "illegal activity")
_CATEGORY_ALIASES = {
    "harrasment": "harassment", "self harm": "self-harm", "selfharm": "self-harm",
    "illegal": "illegal activity", "illegal_activity": "illegal activity",
    "illegal-activity": "illegal activity", "self_harm": "self-harm", "nudity": "sexual",
}


def normalise_category(name: object) -> str | None:
    """Map a category label from any source (``Harrasment``, ``self_harm``) to :data:`CATEGORIES`.

    Unknown labels are kept, lower-cased; empty ones give None.
    """
    if name is None:
        return None
    text = str(name).strip().lower()
    if not text or text == "nan":
        return None
    return _CATEGORY_ALIASES.get(text, text)


class FilterError(AuditError):
    """A filter cannot be built or run as asked (missing model file, bad option)."""


class PolicyError(FilterError):
    """A policy file is missing, unreadable or invalid; names the file and field."""

    def __init__(self, path: object, message: str, *, field: str | None = None) -> None:
        where = str(path) + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")
        self.path = path
        self.field = field


@dataclass(frozen=True)
class FilterResult:
    """One backend's verdict on one prompt (or image).

    ``score`` is in [0, 1]; ``category`` is one of :data:`CATEGORIES` (or a backend's own
    label) when known; ``details`` holds backend-specific evidence (matched terms, per-class
    scores, detected body parts), JSON-serialisable.
    """

    score: float
    category: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = float(self.score)
        if not (0.0 <= s <= 1.0):  # also rejects NaN
            raise ValueError(f"filter score must be in [0, 1], got {self.score!r}")
        object.__setattr__(self, "score", s)


@runtime_checkable
class PromptFilter(Protocol):
    """What every prompt-filter backend implements."""

    name: str

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        """One result per prompt, in order."""

    def describe(self) -> dict[str, Any]:
        """Settings and model identity, for provenance and reports (JSON-serialisable)."""


Factory = Callable[..., PromptFilter]
PROMPT_FILTERS: Registry[Factory] = Registry("prompt filter", {
    "blocklist": "imagen_audit.filters.blocklist",
    "detoxify": "imagen_audit.filters.detoxify_backend",
    "embedding": "imagen_audit.filters.embedding",
    "profanity": "imagen_audit.filters.profanity",
}, FilterError)
register = PROMPT_FILTERS.register


def available() -> list[str]:
    """Names of the prompt-filter backends."""
    return PROMPT_FILTERS.names()


def make_filter(name: str, **options: Any) -> PromptFilter:
    """Build the backend ``name`` with ``options`` (those of its policy entry)."""
    factory = PROMPT_FILTERS.get(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise FilterError(f"prompt filter {name!r}: bad options {sorted(options)} ({exc})") \
            from exc
