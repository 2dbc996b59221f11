"""What an I2P prompt's *text* asks for, as read by two raters, kept apart from I2P's own label.

I2P labels a prompt by the images Stable Diffusion 1.4 made from it (the share of ten judged
inappropriate), not by its words, so many of its prompts read as harmless ("the meaning of
life", "a photo of a banana"). A prompt filter sees only words: it cannot catch those without
blocking the same words everywhere else. To say how much of a filter's miss rate on I2P is
that, every prompt of I2P's canonical dev and test buckets was read by two raters (eight in
all, each pair reading half a bucket) who saw only the prompt text (no category, no
percentage, no model score) and labelled it ``H`` (the text asks for sexual, violent,
hateful, harassing, self-harm, illegal or shocking content), ``B`` (it asks for nothing of
the kind) or ``U`` (borderline or unclear). The raters were AI assistants working blind from
a written brief (filters/annotations/rater_brief.md; filters/README.md, rounds 60-61), not
people, and agreed on 94-97% of prompts (Cohen's kappa 0.88-0.94): read the labels as a
second opinion on the text, not as ground truth. The dev labels set one threshold
rule (``words-first.yaml``, round 61); the test labels are only reported.

The file ships the prompts' hashes (:func:`~imagen_audit.filters.datasets.prompt_hashes`),
never their text, so I2P is not copied. :func:`text_labels` gives each prompt its agreed label:
``H`` or ``B`` when both raters agree, ``U`` when either said ``U`` or they disagree, and
``None`` for a prompt no rater read (any prompt of the train bucket, or outside I2P).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from imagen_audit.filters.base import FilterError
from imagen_audit.resources import data_dir

LABELS = ("H", "B", "U")
LABELS_FILE = "annotations/i2p_text_labels.tsv"


def agreed(a: str, b: str) -> str:
    """The agreed label of two raters: their label when they agree, else ``U``."""
    return a if a == b else "U"


def read_labels(path: Path) -> dict[int, tuple[str, str, str]]:
    """``{prompt hash: (rater_a, rater_b, agreed)}`` from a labels file (``#`` comments, then
    ``key<TAB>rater_a<TAB>rater_b<TAB>label`` lines, the key 16 hex digits). A malformed line,
    a label outside H/B/U, an agreed label that does not follow from the raters', or a key
    given twice is an error naming the file and line."""
    out: dict[int, tuple[str, str, str]] = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 4 or len(parts[0]) != 16:
            raise FilterError(f"{path}:{no}: expected key<TAB>rater_a<TAB>rater_b<TAB>label "
                              "with a 16-digit hex key")
        try:
            key = int(parts[0], 16)
        except ValueError:
            raise FilterError(f"{path}:{no}: key {parts[0]!r} is not hexadecimal") from None
        a, b, label = parts[1:]
        if any(x not in LABELS for x in (a, b, label)):
            raise FilterError(f"{path}:{no}: labels must be one of {', '.join(LABELS)}")
        if label != agreed(a, b):
            raise FilterError(f"{path}:{no}: label {label!r} does not follow from the raters' "
                              f"{a!r} and {b!r} (expected {agreed(a, b)!r})")
        if key in out:
            raise FilterError(f"{path}:{no}: key {parts[0]} given twice")
        out[key] = (a, b, label)
    return out


@lru_cache(maxsize=1)
def _shipped() -> dict[int, tuple[str, str, str]]:
    return read_labels(data_dir("filters") / LABELS_FILE)


def text_labels(prompts: Iterable[str]) -> list[str | None]:
    """The agreed text label of each prompt (``H``, ``B``, ``U``), None where none exists."""
    from imagen_audit.filters.datasets import prompt_hashes

    table = _shipped()
    return [table[k][2] if k in table else None
            for k in map(int, prompt_hashes(list(prompts)))]
