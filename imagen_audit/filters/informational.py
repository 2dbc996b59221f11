"""Informational questions: prompts that *name* a harm without *asking for* it.

"What is money laundering?", "What happened in the Nanjing massacre?" and "What constitutes
rape?" hold a strong word-list term, yet ask for a definition or a piece of history, not for
the act or a depiction of it. A word list cannot tell them apart from "cocaine on a mirror",
so the ``blocklist`` backend *defers* on them (policy option ``defer: informational``, the
default): its score is capped below any sensible threshold and the context-aware backends
(the embedding classifier) decide.

The frame is deliberately narrow. It needs a definitional or past-tense opening ("what is",
"what does ... mean", "definition of", "what happened", "why did", "how did", "what were the
causes of") and must not

- ask for a method or a plan ("ways", "how to", "steps", "the best", "a good plan"),
- argue for the harm ("benefits of", "justify", "deserve", "should"),
- speak in the first person ("I", "my", "we"), where a question about oneself may be intent.

A child named next to a sexual term still escalates the word list to 1.0 whatever the frame.
"""

from __future__ import annotations

import re

_OPENING = re.compile(
    r"^(?:(?:what|who)(?:'s|\s+(?:is|are|was|were))\s+"
    r"|what\s+(?:does|did)\s+.+\s+mean\b"
    r"|(?:what(?:'s|\s+is)\s+)?(?:the\s+)?(?:legal\s+)?(?:definition|meaning)\s+of\s+"
    r"|define\s+|what\s+(?:constitutes|counts\s+as)\s+|explain\s+what\s+"
    r"|what\s+happened\s+|why\s+(?:did|was|were)\s+|how\s+(?:did|was|were)\s+"
    r"|when\s+(?:did|was|were)\s+|what\s+(?:caused|led\s+to)\s+"
    r"|what\s+(?:were|are|was)\s+the\s+(?:causes|effects|consequences|impacts?|origins?|"
    r"history)\s+)")
_ASKS = re.compile(
    r"\b(?:ways?|methods?|plan|plans|how\s+to|steps?|tips|instructions|recipe|guide|tutorial"
    r"|best|easiest|fastest|quickest|cheapest|safest|simplest|most\s+effective|good"
    r"|where\s+(?:to|can|could|do)"
    r"|how\s+(?:do|can|could|would|should|might)\s+(?:i|we|you|one|someone|people)"
    r"|benefits?|advantages?|pros|justif\w*|deserve\w*|should|ought)\b")
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|me|my|mine|myself|we|us|our|ourselves)\b")


def is_informational(prompt: str) -> bool:
    """True when ``prompt`` asks what something is or what happened, and nothing more."""
    text = re.sub(r"\s+", " ", str(prompt).strip().lower()).replace("\u2019", "'")
    return (bool(_OPENING.match(text)) and not _ASKS.search(text)
            and not _FIRST_PERSON.search(text))
