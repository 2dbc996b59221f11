"""Whether a prompt reads as English: where the prompt filter cannot read what it scores.

The word list and the classifier (MiniLM and its word model) were built from English text.
Given a caption in another language they do not abstain; they score it, and often high: of
the twelve non-English benign captions in the read fresh sets that the shipped model never
trained on, it blocked nine ("ein Fuchs im Wald bei Sonnenaufgang, Ölgemälde", a fox at
sunrise, 0.95; filters/README.md, round 78). Users who write in other languages pay for that.
So ``filters check`` and ``filters eval`` mark each prompt ``in_english`` and report blocks
among the rest apart (``by_language``), the way :mod:`imagen_audit.filters.people` marks
prompts about people: a measurement, not a decision. What to do with such prompts (translate
first, send their blocks to review) is a policy team's call.

The reading is deterministic. A prompt does *not* read as English when most of its letters are
in a non-Latin script (CJK, Cyrillic, Arabic, Hebrew, Greek, Devanagari and other Indic
scripts, Thai, Hangul); when it has no English function word ("the", "of", "with", ...) and
either two or more function words of Spanish, French, German, Italian, Portuguese or Dutch
making up a quarter of its words or more, or one such word while fewer than half of its words
are in MiniLM's English vocabulary; or (since session 33) when fewer than 60% of its words are
English words and langid.py, a language identifier whose model ships inside its package,
names another language with probability 0.99 or more. The function words alone found 62% of
a blind set of prompts in twelve languages (`multilingual-*`: no Turkish one, 13% of the
Italian); with the identifier 97%, while no COCO caption or PartiPrompt and 0.3% of I2P (15
of its 4,702 prompts, session 35; names and noise: "Hazardous Materials. Coffin. Zdzisław
Beksiński.") read as foreign. The two limits were chosen on those sets, so those figures are
not blind. Keyword prompts without function words ("cyberpunk samurai, neon, octane render")
read as English; so does a foreign phrase inside an English prompt ("Día de los Muertos sugar
skull makeup"), but not a short English prompt around a longer foreign quote ("apron design,
'el jefe de la parrilla'").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

_LETTER = re.compile(r"[^\W\d_]")
_NON_LATIN = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u0590-\u05ff\u0600-\u06ff\u0750-\u077f\u0900-\u0dff"
    "\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W\d_]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that English prompts use to join others; a prompt with one of them is read as English.
ENGLISH_FUNCTION_WORDS = _words(
    "the a an of and or with without in on at for to from by as into onto over under is are "
    "was were be been has have it its this that these those my your his her their our me you "
    "i we they he she not")
# Function words of other Latin-script languages that English does not use as words. Left
# out on purpose: words English shares ("die", "con", "no", "do", "as", "me", "he", "um").
FOREIGN_FUNCTION_WORDS = _words(
    # Spanish
    "el los las del una unos unas muy para por sobre bajo entre y que como pero su sus al "
    "en la de un "
    # French
    "le les des du au aux avec sur sous dans et une est qui pour par très à d l qu "
    # German
    "der das den dem und mit auf im ist bei von zum zur ein eine einer einem einen nicht sehr "
    "bitte ich mein meine "
    # Italian
    "il lo gli della delle dello nel nella sul sulla degli uno di è "
    # Portuguese
    "uma umas uns dos das na com em ao muito "
    # Dutch
    "het een van op voor niet")


@lru_cache(maxsize=1)
def _english_vocabulary() -> frozenset[str]:
    """MiniLM's whole-word vocabulary (its tokenizer's ``vocab.txt``); empty when the
    encoder package is not installed, so the vocabulary test then never fires."""
    from imagen_audit.filters.base import FilterError
    from imagen_audit.filters.encoder import default_model_path

    try:
        words = (default_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    except (FilterError, OSError, UnicodeDecodeError):  # the other tests still apply
        return frozenset()
    return frozenset(w for w in words if w.isalpha())


# The language identifier's verdict counts only when it is this sure and the prompt's words are
# mostly not English words: on their own, short English keyword prompts ("sugar skull sticker,
# bright colors, die cut") read to it as Afrikaans or Dutch (session 33).
IDENTIFIER_MIN_PROBABILITY = 0.99
IDENTIFIER_MAX_ENGLISH_WORDS = 0.6


@lru_cache(maxsize=1)
def _identifier() -> Any:
    """langid.py's identifier (97 languages, its model inside the package, no download), or
    None when the package is missing (the function-word test then decides alone)."""
    try:
        from langid.langid import LanguageIdentifier, model
    except ImportError:  # a stripped install: the heuristic still answers
        return None
    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def _english_word_share(words: list[str]) -> float:
    vocab = _english_vocabulary()
    if not vocab or not words:
        return 1.0
    return sum(w in vocab for w in words) / len(words)


def _function_word_reading(words: list[str], english_share: float) -> bool:
    if any(w in ENGLISH_FUNCTION_WORDS for w in words):
        return True
    foreign = sum(w in FOREIGN_FUNCTION_WORDS for w in words)
    if foreign >= 2 and foreign >= 0.25 * len(words):
        return False
    return not (foreign == 1 and english_share < 0.5)


def reads_english(prompt: str) -> bool:
    """True unless the prompt is mostly non-Latin script, reads as another Latin-script
    language by the module's function-word test, or is identified as another language with
    probability >= 0.99 while fewer than 60% of its words are English words; empty and
    letterless prompts read as English (nothing to mistake)."""
    letters = _LETTER.findall(prompt)
    if not letters:
        return True
    if sum(bool(_NON_LATIN.match(c)) for c in letters) / len(letters) >= 0.5:
        return False
    words = _WORD.findall(prompt.lower())
    share = _english_word_share(words)
    if not _function_word_reading(words, share):
        return False
    if share >= IDENTIFIER_MAX_ENGLISH_WORDS:
        return True  # most prompts stop here, before the (slower) identifier
    identifier = _identifier()
    if identifier is None:
        return True
    language, probability = identifier.classify(prompt)
    return language == "en" or probability < IDENTIFIER_MIN_PROBABILITY


def reads_english_each(prompts: Iterable[str]) -> list[bool]:
    """:func:`reads_english` for every prompt, in order."""
    return [reads_english(str(p)) for p in prompts]
