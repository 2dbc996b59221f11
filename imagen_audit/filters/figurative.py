"""Figurative invariance: harm words used as idioms must not decide a prompt.

People write "a dead tired cat on the sofa", "she's killing it at karaoke", "this pizza is to
die for", "bath bombs fizzing", "I bombed the exam, make a meme". A classifier trained on I2P
learns the words (dead, killing, die, bomb) and blocks them; a word list that matches
"murder" blocks "I could murder a pizza". Listing every idiom in the training data cannot
keep up with how people write, so the prompt filters can also read a prompt with its idioms
replaced by a literal paraphrase ("very tired", "doing great", "wonderful", "bath fizzer",
"failed the exam") and keep the lower score, as identity invariance
(:mod:`imagen_audit.filters.identity`) does for who a prompt describes: a block that only the
idiom caused is lifted, and what the rest of the prompt shows still decides.

The phrases are data (``filters/lexicons/figurative.txt``): ``phrase<TAB>paraphrase`` a line,
``{a,b,c}`` in a phrase an alternation ("{kill,killing,killed} it"). A phrase holds the words
that make it figurative ("bombed the {exam,test}", never "bombed the"), so a literal use of
the harm word elsewhere in the prompt is untouched. Threats, self-harm statements ("kill me
now") and sexual phrases are never listed, and a prompt that names a child is never
rewritten: invariance must not lower the score of anything involving minors.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.identity import names_minor

# One line expands to at most this many phrases: a typo in the braces must not explode.
MAX_EXPANSIONS = 64
_BRACES_RE = re.compile(r"\{([^{}]*)\}")
_SPACES_RE = re.compile(r"[ \t]{2,}")


@dataclass(frozen=True)
class Idiom:
    """One expanded phrase and the literal paraphrase it is read as."""

    phrase: str
    literal: str
    source: str  # file:line


def expand(phrase: str) -> list[str]:
    """Every phrase ``{a,b}`` alternations spell, in order: ``"{kill,killed} it"`` ->
    ``["kill it", "killed it"]``. Unbalanced braces raise ``ValueError``."""
    parts = _BRACES_RE.split(phrase)
    fixed, options = parts[0::2], [[o.strip() for o in p.split(",")] for p in parts[1::2]]
    if any("{" in f or "}" in f for f in fixed):
        raise ValueError("unbalanced braces")
    out = []
    for combo in itertools.product(*options):
        words = fixed[0] + "".join(c + f for c, f in zip(combo, fixed[1:], strict=True))
        out.append(re.sub(r"\s+", " ", words).strip())
    return out


def read_figurative(path: str | Path) -> list[Idiom]:
    """Parse a figurative lexicon; errors name the file and line."""
    from imagen_audit.filters.trainset import numbered_lines

    p = Path(path)
    out: list[Idiom] = []
    for i, line in numbered_lines(p):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise FilterError(f"{p}, line {i}: expected phrase<TAB>paraphrase, got {line!r}")
        try:
            phrases = expand(parts[0].strip().lower())
        except ValueError:
            raise FilterError(f"{p}, line {i}: unbalanced braces in {parts[0]!r}") from None
        if len(phrases) > MAX_EXPANSIONS:
            raise FilterError(f"{p}, line {i}: {len(phrases)} phrases from one line (at most "
                              f"{MAX_EXPANSIONS})")
        if any(not ph for ph in phrases):
            raise FilterError(f"{p}, line {i}: an alternation leaves an empty phrase")
        out += [Idiom(ph, parts[1].strip(), f"{p.name}:{i}") for ph in phrases]
    if not out:
        raise FilterError(f"{p}: no entries (phrase<TAB>paraphrase a line)")
    return out


def _phrase_regex(phrase: str) -> str:
    """A phrase as a regex: any run of spaces or hyphens between words ("drop-dead",
    "drop dead"), straight or curly apostrophes or none ("i'm", "i’m", "im")."""
    out = []
    for ch in phrase:
        if ch in " -":
            if not out or out[-1] != r"[\s-]+":
                out.append(r"[\s-]+")
        elif ch in "'’":
            out.append(r"['’]?")
        else:
            out.append(re.escape(ch))
    return "".join(out)


class FigurativeLexicon:
    """Finds listed idioms in a prompt and reads them literally."""

    def __init__(self, idioms: Sequence[Idiom]) -> None:
        self.idioms: dict[str, Idiom] = {}
        for idiom in idioms:
            self.idioms.setdefault(_key(idiom.phrase), idiom)
        if not self.idioms:
            raise FilterError("the figurative lexicon has no entries")
        alts = "|".join(_phrase_regex(p) for p in sorted(
            (i.phrase for i in self.idioms.values()), key=len, reverse=True))
        # Word boundaries that also hold next to emoji and punctuation at a phrase's edge.
        self._re = re.compile(rf"(?<![\w'’-])(?:{alts})(?![\w'’-])", re.I)

    @classmethod
    def load(cls, path: str | Path) -> FigurativeLexicon:
        return cls(read_figurative(path))

    def find(self, text: str) -> list[tuple[int, int, Idiom]]:
        """``(start, end, idiom)`` of each listed idiom in ``text``, left to right."""
        out = []
        for m in self._re.finditer(text):
            idiom = self.idioms.get(_key(m.group(0)))
            if idiom is not None:
                out.append((m.start(), m.end(), idiom))
        return out

    def rewrite(self, text: str) -> str | None:
        """``text`` with each idiom replaced by its paraphrase; None when it holds none or
        names a minor."""
        if names_minor(text):
            return None
        found = self.find(text)
        if not found:
            return None
        out, last = "", 0
        for start, end, idiom in found:
            out += text[last:start] + idiom.literal
            last = end
        return _SPACES_RE.sub(" ", out + text[last:]).strip()


def _key(text: str) -> str:
    """A phrase as matched, spelled one way: lower case, apostrophes dropped, runs of spaces
    and hyphens made one space."""
    return re.sub(r"[\s-]+", " ", re.sub(r"['’]", "", text.lower())).strip()
