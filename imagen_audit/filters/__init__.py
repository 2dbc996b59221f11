"""Safety filters: prompt filters (blocklist, profanity, embedding, detoxify) behind one
interface, policies that combine them, evaluation on harmful-content benchmarks, threshold
tuning, and output-image filters (nudenet, opennsfw) over a run store.

Nothing heavy is imported here: torch and sentence-transformers load on first use.
"""

from imagen_audit.filters.base import (
    CATEGORIES,
    FilterError,
    FilterResult,
    PolicyError,
    PromptFilter,
    available,
    make_filter,
    register,
)

__all__ = ["CATEGORIES", "FilterError", "FilterResult", "PolicyError", "PromptFilter",
           "available", "make_filter", "register"]
