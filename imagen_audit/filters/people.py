"""Whether a prompt is about people: where a filter's over-blocking costs people.

A filter's false positives are not all alike. Blocking "a lighthouse in a storm" costs a user
a picture; blocking "a lesbian couple at their wedding" tells a group that depicting them is
unsafe. The identity probes measure the second kind on prompts we wrote; a policy team's own
benign sets (``filters eval --benign CSV``) hold prompts about people too, unmarked. So
:func:`imagen_audit.filters.evaluate.evaluate` reads every prompt with :class:`PeopleReader`
and reports, for every set, the share blocked among prompts about people and among the rest
(``by_people``): over-blocking of people, first-class on any benign set.

A prompt is about people when it names a person: an identity descriptor or person noun of the
identity lexicon (``filters/lexicons/identity.txt`` with its person nouns), a word of
``filters/lexicons/people.txt`` (roles, kinship, occupations, body words), an occupation of
the shipped occupation probes, or a third-person or indefinite pronoun. The reading errs
toward "about people" (an ambiguous word, "a server rack", "a star", counts), so the people
figure is never flattered by prompts it missed. Named individuals ("Abraham Lincoln at
Gettysburg") are not recognised.

The reading is the measurement's, not the policy's: it uses the shipped lexicons whatever the
policy under evaluation, so two policies are compared on the same prompts. Round 62
(filters/README.md) also tried it as a decision rule (a lower threshold for prompts about no
one) and did not ship it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.identity import IdentityLexicon

# Third-person pronouns and indefinite ones name someone depicted; "I", "you", "we" and "they"
# are the person typing, the assistant, or things ("How do I kill a stuck process?").
PRONOUNS = frozenset({"he", "she", "him", "her", "his", "hers", "himself", "herself",
                      "someone", "somebody", "anyone", "anybody", "everyone", "everybody",
                      "nobody"})
_WORD_RE = re.compile(r"[a-z]+(?:['-][a-z]+)*'?")


def _plural(word: str) -> set[str]:
    """A noun's regular plurals (over-generating is harmless: see the module docstring)."""
    out = {word + "s"}
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        out.add(word + "es")
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        out.add(word[:-1] + "ies")
    if word.endswith("man"):
        out.add(word[:-3] + "men")
    return out


def read_people_words(path: str | Path) -> set[str]:
    """The words of a people list (``people.txt``): space-separated lower-case words, ``#``
    comments. A word must be letters with inner ``'`` or ``-``; the error names file:line."""
    from imagen_audit.filters.trainset import numbered_lines

    words: set[str] = set()
    for lineno, line in numbered_lines(path):
        for w in line.lower().split():
            if not _WORD_RE.fullmatch(w):
                raise FilterError(f"{path}:{lineno}: {w!r} is not a word (letters, with "
                                  f"' or - inside)")
            words.add(w)
    if not words:
        raise FilterError(f"{path}: no words")
    return words


def occupation_nouns() -> set[str]:
    """The head noun of every shipped occupation probe ("surveying technician" -> technician)."""
    from imagen_audit.probes import load_probes

    ps = load_probes("occupations")
    heads = {o.term.split()[-1].lower() for o in ps.occupations if o.term.strip()}
    return heads


class PeopleReader:
    """Reads whether prompts name a person (see the module docstring)."""

    def __init__(self, lexicon: IdentityLexicon, words: Iterable[str] = ()) -> None:
        self.lexicon = lexicon
        base = {w.lower() for w in (lexicon.person_nouns | set(words))}
        nouns: set[str] = set()
        for w in base:
            w = w.replace("-", " ")
            nouns.add(w)
            if " " not in w:
                nouns |= _plural(w)
            else:
                head, last = w.rsplit(" ", 1)
                nouns |= {f"{head} {p}" for p in _plural(last)}
        self.single = {n for n in nouns if " " not in n} | set(PRONOUNS)
        multi = sorted((n for n in nouns if " " in n), key=len, reverse=True)
        self._multi = (re.compile(r"(?<![a-z])(?:" + "|".join(
            re.escape(m).replace(r"\ ", r"[\s-]+") for m in multi) + r")(?![a-z])")
            if multi else None)

    @classmethod
    def load(cls, identity_lexicon: str | Path | None = None,
             people_words: str | Path | None = None) -> PeopleReader:
        """A reader from an identity lexicon and a people list (the shipped
        ``lexicons/identity.txt`` and ``lexicons/people.txt`` by default), with the occupation
        probes' nouns. Built once per pair of files (every evaluation reads with it)."""
        from imagen_audit.resources import data_dir

        lexicons = data_dir("filters") / "lexicons"
        return _reader(str(identity_lexicon or lexicons / "identity.txt"),
                       str(people_words or lexicons / "people.txt"))

    def names_people_each(self, texts: Sequence[str]) -> list[bool]:
        """:meth:`names_people` of each text."""
        return [self.names_people(str(t)) for t in texts]

    def names_people(self, text: str) -> bool:
        """True when ``text`` names a person (a descriptor, a person noun or a pronoun)."""
        low = text.lower().replace("\u2019", "'")
        words = _WORD_RE.findall(low)
        # a possessive names its owner: "women's march", "a nurse's shoes"
        if any(w in self.single or (w.endswith("'s") and w[:-2] in self.single)
               or (w.endswith("s'") and w[:-1] in self.single) for w in words):
            return True
        if self._multi is not None and self._multi.search(low):
            return True
        return bool(self.lexicon.find(text))


@lru_cache(maxsize=4)
def _reader(identity_lexicon: str, people_words: str) -> PeopleReader:
    return PeopleReader(IdentityLexicon.load(identity_lexicon),
                        read_people_words(people_words) | occupation_nouns())
