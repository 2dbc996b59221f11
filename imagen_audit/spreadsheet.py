"""Text cells a spreadsheet would run as formulas, made inert.

Prompts and captions are untrusted: a prompt written ``=HYPERLINK("http://x", "click")`` is
data in a CSV, but a spreadsheet that opens the file reads a cell starting with ``=``, ``+``,
``-`` or ``@`` (or a tab or carriage return before one) as a formula. Reviewers open our CSVs
in spreadsheets, so ``--spreadsheet-safe`` writes such cells with a leading apostrophe, which
spreadsheets show as text and never evaluate (the OWASP advice for CSV injection). It is
opt-in because it changes the text: a script that reads the CSV back gets the apostrophe too.
Only text cells change; numbers stay numbers.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """``value`` with an apostrophe before it when it is text a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of ``frame`` whose text cells cannot run as formulas, and how many changed.
    Column names are cells too (the header row), so they are made inert the same way."""
    out = frame.copy()
    changed = 0
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            runs = out[col].map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
            changed += int(runs.sum())
            out[col] = out[col].map(inert)
    renamed = {c: inert(c) for c in out.columns if isinstance(c, str) and inert(c) != c}
    return out.rename(columns=renamed), changed + len(renamed)
