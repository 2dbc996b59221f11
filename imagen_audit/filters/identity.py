"""Identity invariance: a prompt filter's decision must not depend on who a prompt describes.

A classifier trained on I2P against captions learns that words naming who someone is
(religion, sexuality, disability, body, addiction recovery, migration status, ...) are more
common in harmful prompts, and blocks "a recovering addict at a support meeting" for the word
"addict". Counterfactual training data narrows that gap for the terms it lists; it cannot
list every descriptor people type. So the embedding backend can also score each prompt with
its identity descriptors *neutralised* and keep the lower score: a prompt is blocked only
when it would be blocked whoever it described. What a prompt *does* (gore, nudity, a slur, a
call to attack) is left in place and still decides.

Descriptors come from a lexicon (``filters/lexicons/identity.txt``: ``axis<TAB>kind<TAB>term``,
``kind`` ``adj`` or ``noun``; a term listed as both is read by its context). A term that opens
with ``*`` is a compound pattern: ``*-haired`` stands for any word joined to "haired" by a
hyphen or a space ("kinky-haired", "salt-and-pepper-haired", "long haired"), because appearance
compounds are productive and no list names them all. Two modes:

- ``neutral``: adjectives are deleted, nouns become "person" / "people";
- ``swap``: each descriptor is replaced by others of its axis and kind (three variants, the
  median of their scores counts), which keeps a sentence's shape for hate prompts whose target
  is the only word naming a group.

A prompt that names a child is never rewritten: invariance must not lower the score of
anything involving minors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagen_audit.filters.base import FilterError

AXES = frozenset({"gender", "sexuality", "religion", "ethnicity", "nationality", "disability",
                  "health", "body", "age", "class", "family", "politics", "culture"})
KINDS = frozenset({"adj", "noun"})
MODES = ("neutral", "swap")
SWAP_VARIANTS = 3
# Words that name (or may name) a minor: a prompt holding one is never rewritten, and no
# lexicon entry containing one is used.
MINOR_WORDS = frozenset({
    "child", "children", "kid", "kids", "minor", "minors", "underage", "teen", "teens",
    "teenage", "teenager", "teenagers", "preteen", "preteens", "toddler", "toddlers", "baby",
    "babies", "infant", "infants", "schoolgirl", "schoolgirls", "schoolboy", "schoolboys",
    "girl", "girls", "boy", "boys", "young", "youth", "juvenile", "adolescent", "adolescents",
    "loli", "shota", "tween", "tweens", "pubescent", "prepubescent"})
_MINOR_RE = re.compile(r"(?<![\w-])(" + "|".join(sorted(MINOR_WORDS)) + r")(?![\w-])", re.I)
_PLURAL_NOUNS = ("men", "women", "people", "folk", "folks")
_POSTMODIFIER_HEADS = frozenset({"with", "in", "on", "living", "who", "from"})
_CONTEXT_FREE_AXES = frozenset({"religion", "ethnicity", "nationality", "sexuality", "gender"})
# Nouns a descriptor may modify: a term listed both as adjective and as noun ("Muslim") is an
# adjective before one of these or before another lexicon noun ("a Muslim woman" -> "a
# woman"), a noun otherwise ("a Muslim praying" -> "a person praying").
PERSON_NOUNS = frozenset(str.split("""
person people persons individual individuals man men woman women guy guys lady ladies
gentleman gentlemen couple couples family families mother mothers father fathers mom moms
mum mums dad dads parent parents grandmother grandmothers grandfather grandfathers grandma
grandpa grandparents wife wives husband husbands partner partners bride brides groom grooms
son sons daughter daughters brother brothers sister sisters friend friends neighbor neighbors
neighbour neighbours student students worker workers employee employees colleague colleagues
coworker coworkers boss doctor doctors nurse nurses teacher teachers soldier soldiers veteran
veterans athlete athletes artist artists model models chef chefs farmer farmers priest
priests pastor imam rabbi monk nun community communities crowd group groups citizen citizens
elder elders senior seniors patient patients customer customers tourist tourists traveler
travelers traveller travellers dancer dancers singer singers musician musicians scientist
scientists engineer engineers lawyer lawyers judge officer officers firefighter firefighters
player players runner runners climber climbers survivor survivors volunteer volunteers
activist activists protester protesters leader leaders owner owners entrepreneur
entrepreneurs shopkeeper vendor vendors child children kid kids baby babies boy boys girl girls
"""))
_SPACES_RE = re.compile(r"[ \t]{2,}")
# A joint that coordinates two descriptors ("Muslim and Jewish", "scruffy, bearded", "deaf or
# blind"): the first then modifies what the second does.
_JOINT_RE = re.compile(r"\s*,\s*(?:(?:and|or)\s+)?|\s+(?:and|or|&|/)\s+|\s*/\s*", re.I)
# What ``*`` stands for in a compound pattern: one word, hyphenated parts allowed.
_PATTERN_WORD = r"[A-Za-z]+(?:-[A-Za-z]+)*"
_PATTERN_RE = re.compile(r"\*[\s-][A-Za-z]+(?:[\s-][A-Za-z]+)*")


@dataclass(frozen=True)
class Descriptor:
    """One lexicon entry: who-someone-is words of an ``axis``, used as ``adj`` or ``noun``."""

    axis: str
    kind: str
    term: str

    @property
    def plural(self) -> bool:
        last = self.term.split()[-1].lower()
        return (last in _PLURAL_NOUNS or last.endswith("men")
                or (last.endswith("s") and not last.endswith("ss")))

    @property
    def pattern(self) -> bool:
        """A compound pattern ("*-haired"): any word joined to the rest stands for it."""
        return self.term.startswith("*")

    @property
    def postmodifier(self) -> bool:
        """An adjective phrase that follows its noun ("with PTSD", "in recovery")."""
        return self.kind == "adj" and self.term.split()[0].lower() in _POSTMODIFIER_HEADS


def read_lexicon(path: str | Path) -> list[Descriptor]:
    """Parse a lexicon file; errors name the file and line."""
    from imagen_audit.filters.trainset import numbered_lines

    p = Path(path)
    out: list[Descriptor] = []
    for i, line in numbered_lines(p):
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2].strip():
            raise FilterError(f"{p}, line {i}: expected axis<TAB>kind<TAB>term, got {line!r}")
        axis, kind, term = (x.strip() for x in parts)
        if "*" in term and not _PATTERN_RE.fullmatch(term):
            raise FilterError(f"{p}, line {i}: a pattern is '*' then a hyphen or space and "
                              f"words (e.g. '*-haired'), got {term!r}")
        if axis not in AXES:
            raise FilterError(f"{p}, line {i}: axis {axis!r} is not one of {sorted(AXES)}")
        if kind not in KINDS:
            raise FilterError(f"{p}, line {i}: kind {kind!r} is not one of {sorted(KINDS)}")
        out.append(Descriptor(axis, kind, term))
    if not out:
        raise FilterError(f"{p}: no entries (axis<TAB>kind<TAB>term a line)")
    return out


def names_minor(text: str) -> bool:
    return _MINOR_RE.search(text) is not None


class IdentityLexicon:
    """Finds identity descriptors in a prompt and rewrites them (``neutral`` / ``swap``)."""

    def __init__(self, entries: Sequence[Descriptor], person_nouns: Sequence[str] = ()) -> None:
        usable = [e for e in entries if not names_minor(e.term) and not e.pattern]
        # Compound patterns ("*-haired"): tried first, so that "curly-haired" is one match, and
        # never swapped in. The joint is required ("keyed" is not "*-eyed").
        self.patterns = [(_pattern_regex(e.term), e)
                         for e in entries if e.pattern and not names_minor(e.term)]
        # One entry per lower-cased term; a term listed as adjective and as noun is read by
        # its context (:meth:`_read_as`).
        self.entries: dict[str, Descriptor] = {}
        self.kinds: dict[str, set[str]] = {}
        # The same entries by their spelling with spaces and hyphens made one space, for
        # matches written another way ("ex con" for "ex-con").
        self._by_key: dict[str, Descriptor] = {}
        for e in usable:
            self.entries.setdefault(e.term.lower(), e)
            self.kinds.setdefault(e.term.lower(), set()).add(e.kind)
            self._by_key.setdefault(_separators_key(e.term), e)
        if not self.entries and not self.patterns:
            raise FilterError("the identity lexicon has no usable entries")
        # Person nouns: the built-in ones, the lexicon's one-word nouns and ``person_nouns``
        # (e.g. the occupations a caller knows).
        self.person_nouns = set(PERSON_NOUNS) | {w.lower() for w in person_nouns}
        self.person_nouns |= {t for t, kinds in self.kinds.items()
                              if "noun" in kinds and " " not in t}
        terms = sorted(self.entries, key=len, reverse=True)  # longest first
        alts = "|".join([rx.pattern for rx, _ in self.patterns] + [_term_regex(t) for t in terms])
        self._re = re.compile(rf"(?<![\w-])(?:{alts})(?![\w-])", re.I)
        self._pools: dict[tuple[str, str, bool, bool], list[str]] = {}
        for e in sorted(usable, key=lambda e: (e.term.lower(), e.kind)):
            key = (e.axis, e.kind, e.plural, e.postmodifier)
            if e.term not in self._pools.get(key, []):
                self._pools.setdefault(key, []).append(e.term)

    @classmethod
    def load(cls, path: str | Path) -> IdentityLexicon:
        """The lexicon at ``path``, with the shipped person nouns and occupations (the
        identity counterfactuals' ``person_nouns.txt``) as the nouns a descriptor modifies."""
        from imagen_audit.filters.trainset import augment_file, read_lines

        try:
            nouns = [line for line in read_lines(augment_file("person_nouns.txt"))
                     if " " not in line]
        except FilterError:
            nouns = []
        return cls(read_lexicon(path), nouns)

    def find(self, text: str) -> list[tuple[int, int, Descriptor]]:
        """``(start, end, descriptor)`` of each descriptor in ``text``, left to right."""
        out = []
        for m in self._re.finditer(text):
            e = (self.entries.get(m.group(0).lower())
                 or self._by_key.get(_separators_key(m.group(0)))
                 or self._pattern_match(m.group(0)))
            if e is not None:
                out.append((m.start(), m.end(), e))
        return out

    def _pattern_match(self, matched: str) -> Descriptor | None:
        """The descriptor a compound pattern makes of ``matched``: the pattern's axis and
        kind, the matched words as its term."""
        for rx, e in self.patterns:
            if rx.fullmatch(matched):
                return Descriptor(e.axis, e.kind, matched)
        return None

    def neutralise(self, text: str) -> str | None:
        """``text`` with adjectives removed and nouns made "person"/"people"; None when it
        names no descriptor or names a minor."""
        found = self._rewritable(text)
        return None if found is None else self._rewrite(
            text, found, lambda e, _k: "" if e.kind == "adj" else
            ("people" if e.plural else "person"), 0)

    def _read_as(self, e: Descriptor, text: str, start: int, end: int, found_starts: set[int],
                 found_ends: set[int], rewritten_starts: set[int]) -> Descriptor | None:
        """``e`` as its context reads it, or None to leave it alone.

        Before a person noun or another descriptor it modifies a person: an adjective,
        deleted ("an undocumented immigrant farmworker" -> "a person"); so does one
        coordinated with a rewritten descriptor by a comma, "and", "or", "&" or "/" ("a
        scruffy, bearded pensioner" -> "a person"). Elsewhere a term that
        can be a noun is one ("a Muslim praying" -> "a person praying"); an adjective is
        rewritten there only on the axes whose words rarely mean anything but who someone is
        (religion, ethnicity, nationality, sexuality, gender), so "a big nose" or "a fat cat"
        stay as written (a colour word of the ethnicity axis is rewritten: "a black dress" is
        scored as "a dress", which only lowers a score that the colour alone raised)."""
        if e.postmodifier:  # "with PTSD" after a person: deleted
            before = re.search(r"([A-Za-z]+)[\s,]*$", text[:start])
            return e if before is not None and (before.group(1).lower() in self.person_nouns
                                                or start in found_ends) else None
        rest = text[end:]
        gap = len(rest) - len(rest.lstrip(" -"))
        nxt = re.match(r"[A-Za-z]+", rest[gap:])
        if nxt is not None and (nxt.group(0).lower() in self.person_nouns
                                or end + gap in found_starts):
            return Descriptor(e.axis, "adj", e.term)
        kinds = self.kinds.get(e.term.lower(), {e.kind})
        # Coordinated with the next descriptor: an adjective of the same person ("a scruffy,
        # bearded pensioner", "a gay and lesbian couple"), when the term can be one.
        if "adj" in kinds and _joint_end(text, end) in rewritten_starts:
            return Descriptor(e.axis, "adj", e.term)
        if "noun" in kinds:
            return Descriptor(e.axis, "noun", e.term)
        return e if e.axis in _CONTEXT_FREE_AXES else None

    def swaps(self, text: str, n: int = SWAP_VARIANTS) -> list[str] | None:
        """``n`` variants of ``text``, each descriptor replaced by another of its axis and
        kind (chosen by a hash: the same prompt always gives the same variants); None when it
        names no descriptor or names a minor."""
        found = self._rewritable(text)
        if found is None:
            return None
        out = [self._rewrite(text, found, self._substitute, k + 1) for k in range(n)]
        return None if None in out else out  # type: ignore[return-value]

    def variants(self, text: str, mode: str) -> list[str] | None:
        """The rewrites of ``text`` that ``mode`` scores (one for ``neutral``,
        :data:`SWAP_VARIANTS` for ``swap``); None when it names no descriptor or a minor."""
        if mode == "swap":
            return self.swaps(text)
        v = self.neutralise(text)
        return None if v is None else [v]

    def _substitute(self, e: Descriptor, k: int) -> str:
        pool = [t for t in self._pools.get((e.axis, e.kind, e.plural, e.postmodifier), [])
                if t.lower() != e.term.lower()]
        if not pool:
            return "" if e.kind == "adj" else ("people" if e.plural else "person")
        h = int.from_bytes(hashlib.sha256(e.term.lower().encode()).digest()[:4], "big")
        return pool[(h + k) % len(pool)]  # consecutive: distinct while the pool allows

    def _rewritable(self, text: str) -> list[tuple[int, int, Descriptor]] | None:
        """The descriptors of ``text``, or None when it names none or names a minor."""
        if names_minor(text):
            return None
        return self.find(text) or None

    def _rewrite(self, text: str, found: list[tuple[int, int, Descriptor]],
                 replace: Callable[[Descriptor, int], str], k: int) -> str | None:
        starts = {start for start, _, e in found if not e.postmodifier}
        ends = {end + 1 for _, end, _ in found}
        # Read right to left, so a descriptor coordinated with the next one knows whether
        # that one is rewritten ("a scruffy, bearded dog" describes nobody: both stay).
        reads: list[Descriptor | None] = [None] * len(found)
        rewritten_starts: set[int] = set()
        for i in reversed(range(len(found))):
            start, end, e = found[i]
            reads[i] = self._read_as(e, text, start, end, starts, ends, rewritten_starts)
            if reads[i] is not None:
                rewritten_starts.add(start)
        out, last, rewritten = "", 0, 0
        for (start, end, _), read in zip(found, reads, strict=True):
            if read is None:
                continue
            rep = replace(read, k)
            # A deleted adjective takes its joint along: "a Muslim and Jewish family" -> "a
            # family", not "a and family".
            joint = _joint_end(text, end)
            after = joint if not rep and joint in rewritten_starts else end
            out = _fix_article(out + text[last:start], rep or text[after:])
            out, last, rewritten = out + rep, after, rewritten + 1
        if not rewritten:
            return None
        out = _SPACES_RE.sub(" ", out + text[last:]).strip()
        return re.sub(r"\s+([,.;:!?])", r"\1", out)


def _joint_end(text: str, end: int) -> int:
    """Where the descriptor after a coordinating joint at ``end`` would start, or -1 when no
    comma, "and", "or", "&" or "/" follows there."""
    m = _JOINT_RE.match(text, end)
    return m.end() if m is not None and m.end() > end else -1


def _term_regex(term: str) -> str:
    """A listed term as a regex: spaces match spaces or hyphens, hyphens may be dropped."""
    return re.escape(term).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]?")


def _pattern_regex(term: str) -> re.Pattern[str]:
    """A compound pattern ("*-haired") as a regex: one word, a hyphen or space, the rest."""
    return re.compile(_PATTERN_WORD + r"[\s-]" + _term_regex(term[2:]), re.I)


def _separators_key(term: str) -> str:
    return re.sub(r"[\s-]+", " ", term.lower()).strip()


def _fix_article(prefix: str, following: str) -> str:
    """``prefix`` with a trailing "a"/"an" made to fit the word that now follows it."""
    m = re.search(r"(?<![\w-])([Aa])n?(\s+)$", prefix)
    nxt = following.lstrip(" -")
    if m is None or not nxt:
        return prefix
    word = "an" if nxt[0].lower() in "aeiou" else "a"
    return prefix[:m.start()] + (word.capitalize() if m.group(1) == "A" else word) + m.group(2)
