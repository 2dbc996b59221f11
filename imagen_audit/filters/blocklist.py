"""``blocklist``: categorised word lists matched on normalised text, with word boundaries.

Word lists are data (``filters/wordlists/<category>.txt``, shipped in the wheel; a policy
may point at another folder). Each file starts with ``# category: NAME``; each line is a
term, ``term | weight`` (weight in [0, 1], default 1) or ``stem*`` (any word starting with
the stem). ``allow.txt`` lists benign phrases removed before matching ("chicken breast",
"killer whale"); ``minors.txt`` (weight-0 terms) escalates a prompt that names a child and
has any sexual term to 1.0.

A prompt's score is the largest weight among its matches, the category that of that term.
Matching runs on the views of :func:`imagen_audit.filters.normalise.views` (case, accents,
confusables, leetspeak, spaced-out letters undone) and needs whole words on both sides, so
"Scunthorpe", "assassin" and "Sussex" do not match "cunt", "ass" or "sex".

A word in a question is often *mentioned*, not *used*: "What is money laundering?", "Why is
a group of crows called a murder?". Option ``defer`` says when the word list leaves the
decision to the context-aware backends of the policy by capping its score at
:data:`DEFERRED_SCORE`: ``informational`` (definitional and past-tense questions,
:mod:`imagen_audit.filters.informational`), ``requests`` (every chat-style request that does
not ask for a picture, :mod:`imagen_audit.filters.form`) or ``never``. A child named next to
a sexual term scores 1.0 whatever the setting.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagen_audit.filters.base import FilterError, FilterResult, normalise_category, register
from imagen_audit.filters.form import REQUEST, prompt_form
from imagen_audit.filters.informational import is_informational
from imagen_audit.filters.normalise import fold, views

MINORS_FILE = "minors.txt"
ALLOW_FILE = "allow.txt"
# An informational question's score is capped here: below any threshold a policy would use
# for a word list whose strong terms weigh 1.
DEFERRED_SCORE = 0.3
DEFER_MODES = ("informational", "requests", "never")


@dataclass(frozen=True)
class Term:
    text: str          # normalised words, single spaces
    category: str | None
    weight: float
    prefix: bool
    source: str        # file:line


def normalise_term(term: str) -> str:
    t = fold(term)
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9* ]+", " ", t)).strip()


def read_wordlist(path: Path) -> list[Term]:
    """Parse one word-list file; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FilterError(f"{path}: cannot read word list ({exc})") from exc
    category = normalise_category(path.stem.replace("-", " ") if path.stem != "self-harm"
                                  else "self-harm")
    terms = []
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("#"):
            m = re.match(r"#\s*category:\s*(.+)$", line)
            if m:
                category = normalise_category(m.group(1))
            continue
        if not line:
            continue
        text, _, weight_text = line.partition("|")
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise FilterError(f"{path}, line {no}: weight {weight_text.strip()!r} is not a "
                              "number") from None
        if not 0.0 <= weight <= 1.0:
            raise FilterError(f"{path}, line {no}: weight {weight} is not in [0, 1]")
        norm = normalise_term(text)
        prefix = norm.endswith("*")
        norm = norm.rstrip("*").strip()
        if not norm or "*" in norm:
            raise FilterError(f"{path}, line {no}: bad term {text.strip()!r} ('*' only at "
                              "the end)")
        terms.append(Term(norm, category, weight, prefix, f"{path.name}:{no}"))
    return terms


def _inflected(word: str) -> str:
    """A regex matching ``word`` (already escaped) or its English plural, and nothing else:
    ``-es`` only after a sibilant or ``o`` ("witches", "negroes"), ``-ies`` for a consonant +
    ``y`` ("pussies"), ``-s`` otherwise. Allowing ``-es`` after every term made the slur
    "spic" match "spices" (round 29: "a bustling moroccan spice market, colorful pyramids of
    spices" was blocked as hate)."""
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        return word + r"(?:es|s)?"
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + r"(?:y|ys|ies)"
    return word + r"s?"


def _pattern(terms: Sequence[Term]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alts = []
    for t in sorted(terms, key=lambda t: -len(t.text)):
        body = re.escape(t.text).replace(r"\ ", " ")
        alts.append(body + r"[a-z]*" if t.prefix else _inflected(body))
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])")


class Blocklist:
    """Word lists compiled into one pattern per kind (terms, minors, allowed phrases)."""

    name = "blocklist"

    def __init__(self, wordlists: str | Path | None = None,
                 defer: str = "informational",
                 figurative_lexicon: str | Path | None = None) -> None:
        if defer not in DEFER_MODES:
            raise FilterError(f"blocklist option defer must be one of {list(DEFER_MODES)}, "
                              f"not {defer!r}")
        self.defer = defer
        if wordlists is None:
            from imagen_audit.resources import data_dir

            folder = data_dir("filters") / "wordlists"
        else:
            folder = Path(wordlists)
        if not folder.is_dir():
            raise FilterError(f"{folder}: word-list folder not found")
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise FilterError(f"{folder}: no word lists (*.txt)")
        self.folder = folder
        self.terms: list[Term] = []
        self.minors: list[Term] = []
        allow: list[Term] = []
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
            parsed = read_wordlist(f)
            if f.name == MINORS_FILE:
                self.minors = parsed
            elif f.name == ALLOW_FILE:
                allow = parsed
            else:
                self.terms += [t for t in parsed if t.weight > 0]
        self.figurative_lexicon = Path(figurative_lexicon) if figurative_lexicon else None
        if self.figurative_lexicon is not None:
            # Idioms ("i could murder a pizza", "slaughtered the quiz") are removed before
            # matching like allowed phrases (:mod:`imagen_audit.filters.figurative`).
            from imagen_audit.filters.figurative import read_figurative

            idioms = read_figurative(self.figurative_lexicon)
            h.update(b"figurative\0" + self.figurative_lexicon.read_bytes())
            allow += [Term(norm, None, 1.0, False, i.source) for i in idioms
                      if (norm := normalise_term(i.phrase).replace("*", ""))]
        self.digest = h.hexdigest()[:16]
        self._exact = {t.text: t for t in self.terms if not t.prefix}
        self._prefix = sorted((t for t in self.terms if t.prefix), key=lambda t: -len(t.text))
        self._terms_re = _pattern(self.terms)
        self._minors_re = _pattern(self.minors)
        self._allow_re = _pattern(allow)

    def _lookup(self, matched: str) -> Term | None:
        # the term itself, or its plural (-s, -es, -ies: :func:`_inflected`)
        for candidate in (matched, matched[:-1], matched[:-2], matched[:-3] + "y"):
            if candidate in self._exact:
                return self._exact[candidate]
        for t in self._prefix:
            if matched.startswith(t.text):
                return t
        return None

    def matches(self, prompt: str) -> list[dict[str, Any]]:
        """Every distinct term found in the prompt, with its category, weight and view."""
        found: dict[str, dict[str, Any]] = {}
        for view_name, text in views(prompt).items():
            if self._terms_re is None:
                break
            # Removing an allowed phrase leaves a gap of spaces, so it can only take matches
            # away: a view with no term at all is done without the (long) allow pattern.
            if self._terms_re.search(text) is None:
                continue
            if self._allow_re is not None:
                text = self._allow_re.sub(" ", text)
            for m in self._terms_re.finditer(text):
                term = self._lookup(m.group(0))
                if term is not None and term.text not in found:
                    found[term.text] = {"term": term.text, "matched": m.group(0),
                                        "category": term.category, "weight": term.weight,
                                        "view": view_name, "source": term.source}
        return sorted(found.values(), key=lambda d: -d["weight"])

    def names_minor(self, prompt: str) -> bool:
        if self._minors_re is None:
            return False
        return any(self._minors_re.search(v) for v in views(prompt).values())

    def score_one(self, prompt: str) -> FilterResult:
        found = self.matches(prompt)
        if not found:
            return FilterResult(0.0, None, {"matches": []})
        top = found[0]
        score, category = top["weight"], top["category"]
        details: dict[str, Any] = {"matches": found}
        if any(d["category"] == "sexual" for d in found) and self.names_minor(prompt):
            score, category = 1.0, "sexual"
            details["minor"] = True
        elif score > DEFERRED_SCORE and self._defers(prompt):
            score = DEFERRED_SCORE
            details["deferred"] = ("informational question" if self.defer == "informational"
                                   else "request")
        return FilterResult(score, category, details)

    def _defers(self, prompt: str) -> bool:
        if self.defer == "informational":
            return is_informational(prompt)
        return self.defer == "requests" and prompt_form(prompt) == REQUEST

    def score(self, prompts: Sequence[str]) -> list[FilterResult]:
        return [self.score_one(p) for p in prompts]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "wordlists": str(self.folder), "digest": self.digest,
                "terms": len(self.terms), "defer": self.defer,
                "figurative_lexicon": (str(self.figurative_lexicon)
                                       if self.figurative_lexicon else None)}


@register("blocklist")
def _make(wordlists: str | Path | None = None, defer: str = "informational",
          figurative_lexicon: str | Path | None = None) -> Blocklist:
    return Blocklist(wordlists, defer, figurative_lexicon)
