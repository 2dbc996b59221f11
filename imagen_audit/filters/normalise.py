"""Text normalisation against filter evasion: case, Unicode confusables, leetspeak, spacing.

:func:`views` turns a prompt into a few normalised *views* that a word list is matched
against with word boundaries:

1. ``base``: NFKC, confusable letters mapped to Latin (Cyrillic ``о``, Greek ``ν``,
   fullwidth and mathematical letters via NFKC), accents and zero-width characters removed,
   case folded, punctuation turned into spaces, runs of 3+ equal letters shortened;
2. ``leet``: ``base`` with digits and symbols inside letter words read as letters
   (``s3x`` → ``sex``, ``p0rn`` → ``porn``, ``@ss`` → ``ass``); tokens that are only digits
   (``8k``, ``1920``) are left alone;
3. ``joined``: runs of three or more single characters joined (``n u d e``, ``n.u.d.e``,
   ``n-u-d-e`` → ``nude``), on the leet view.

Word boundaries are kept in every view, so ``Scunthorpe``, ``assassin``, ``cocktail`` and
``Sussex`` never match the shorter words they contain.
"""

from __future__ import annotations

import re
import unicodedata

# Letters that look like Latin ones but are not removed by NFKC (Cyrillic, Greek, others).
CONFUSABLES = {
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i",
    "ј": "j", "к": "k", "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r",
    "ѕ": "s", "т": "t", "υ": "u", "ѵ": "v", "ԝ": "w", "х": "x", "у": "y", "з": "3", "ь": "b",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "χ": "x", "γ": "y", "ω": "w", "ϲ": "c", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ո": "n",
    "ս": "u", "օ": "o", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r",
    "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ø": "o", "ł": "l",
    "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ı": "i",
}
# Upper-case forms of the same letters.
CONFUSABLES.update({k.upper(): v for k, v in list(CONFUSABLES.items()) if k.upper() != k})
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
        "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l"}
_LEET_CHARS = "".join(re.escape(c) for c in LEET)
_NON_WORD = re.compile(r"[^a-z0-9@$!|+€£]+")
_TOKEN_WITH_LEET = re.compile(rf"[a-z0-9{_LEET_CHARS}]+")
_REPEATS = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """NFKC, confusables → Latin, accents and invisible characters removed, case folded."""
    t = unicodedata.normalize("NFKC", str(text)).translate(_INVISIBLE)
    t = "".join(CONFUSABLES.get(ch, ch) for ch in t)
    t = unicodedata.normalize("NFKD", t)
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    return t.casefold()


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _leet_token(tok: str) -> str:
    # Only words of 2+ letters with leet characters in them: "8k", "3d", "1920s" stay as they are.
    if sum(c.isalpha() for c in tok) < 2 or not any(c in LEET for c in tok):
        return tok
    return "".join(LEET.get(c, c) for c in tok)


def _join_singles(text: str) -> str:
    tokens = text.split(" ")
    out: list[str] = []
    run: list[str] = []
    for tok in [*tokens, ""]:
        if len(tok) == 1 and tok.isalpha():
            run.append(tok)
            continue
        if len(run) >= 4 and run[0] in ("a", "i"):  # "a n u d e" is "a nude"
            out += [run[0], "".join(run[1:])]
        elif len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if tok:
            out.append(tok)
    return " ".join(out)


def views(text: str) -> dict[str, str]:
    """Normalised views of ``text`` (see the module docstring); each is space-separated words."""
    folded = fold(text)
    # Keep leet symbols for now: they may be letters in disguise.
    spaced = _tidy(_NON_WORD.sub(" ", folded))
    base = _tidy(re.sub(r"[^a-z0-9 ]+", " ", spaced))
    base = _REPEATS.sub(r"\1", base)
    leet = " ".join(_leet_token(t) for t in spaced.split(" "))
    leet = _REPEATS.sub(r"\1", _tidy(re.sub(r"[^a-z0-9 ]+", " ", leet)))
    # Spelled-out words: separators between single letters ("n.u.d.e", "n_u_d_e").
    joined = _join_singles(leet)
    out = {"base": base, "leet": leet, "joined": joined}
    return out


# Leetspeak undone in the text a classifier reads (round 74): digits and "@"/"$" standing for
# letters inside a word. Narrower than the word list's views, because the result is read as
# text: "!" and "|" end or separate words too often ("wow!"), and digits at a word's edge are
# usually model numbers or units ("mp4", "gpt4", "web3", "4k", "3d", "1920s"), not letters.
_TEXT_LEET = {c: letter for c, letter in LEET.items() if c.isdigit() or c in "@$"}
_WORD_CORE = re.compile(r"^(\W*?)([A-Za-z0-9@$]+)(\W*)$")
_INSIDE_LEET = re.compile(r"[A-Za-z][013-9@$]+[A-Za-z]")
# A leet character opening a word of three or more letters ("3vil", "0ffice", "@ss" counts with
# two); shorter tails are units and ordinals ("3rd", "4th", "9am", "35mm", "4k").
_LEADING_LEET = re.compile(r"^(?:[@$][A-Za-z]{2,}|[013-9]+[A-Za-z]{3,})")


def undo_leet(text: str) -> str:
    """``text`` with leetspeak words spelt out ("s3x" -> "sex", "n4ked" -> "naked", "@ss" ->
    "ass", "c0worker" -> "coworker", "3vil" -> "evil"), every other character kept as written:
    a word is changed only when a leet character sits between two letters, or opens a word of
    three or more letters ("@"/"$": two)."""
    parts = re.split(r"(\s+)", str(text))
    for i, part in enumerate(parts):
        m = _WORD_CORE.match(part)
        if m is None:
            continue
        core = m.group(2)
        if sum(c.isalpha() for c in core) < 2 or not (
                _INSIDE_LEET.search(core) or _LEADING_LEET.match(core)):
            continue
        upper = core.isupper()  # "S3X" -> "SEX"
        spelt = "".join(_TEXT_LEET.get(c, c) for c in core)
        parts[i] = m.group(1) + (spelt.upper() if upper else spelt) + m.group(3)
    return "".join(parts)
