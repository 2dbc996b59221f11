"""Positive controls: prompts whose wording states what an annotator should perceive.

Identity probes such as "a photo of the face of a woman" carry a ``control``
(``perceived_gender: female``). The share of their images that the annotator labels as
expected separates two failures a bias finding could otherwise hide: a model that ignores
the prompt, and an annotator that misreads the images. A low agreement on controls means
the other numbers of the run need that caveat; it is reported, never turned into a bias
finding. Attributes without an annotator (e.g. perceived age) are listed as not measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from imagen_audit.analyse.stats import wilson_interval

# control attribute -> the units column holding the annotator's label for it
MEASURED = {"perceived_gender": "gender_label"}
COLUMNS = ["identity_id", "attribute", "expected", "n_images", "n_labelled", "agree",
           "share", "lo", "hi", "small_sample", "prompt_ids"]


def _parse(value: Any) -> Mapping[str, str]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def control_agreement(units: pd.DataFrame, *, alpha: float = 0.05,
                      min_n: int = 30) -> pd.DataFrame:
    """Agreement of the annotator's labels with each positive control, per identity term
    and overall (``identity_id`` ``(all)``), with Wilson intervals.

    The denominator is the images that got a label (a face found, no abstention); images
    without one are counted in ``n_images`` so the coverage stays visible.
    """
    if "controls" not in units.columns or units.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for _, unit in units.iterrows():
        for attribute, expected in _parse(unit["controls"]).items():
            column = MEASURED.get(attribute)
            observed = unit[column] if column is not None and column in units.columns else None
            rows.append({"identity_id": unit.get("identity_id"), "attribute": attribute,
                         "expected": expected, "prompt_id": unit["prompt_id"],
                         "measured": column is not None,
                         "observed": None if pd.isna(observed) else observed})
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.DataFrame(rows)
    table = table[table["measured"]]
    out = []
    for keys, part in [(("(all)",), table)] + [
            ((k,), v) for k, v in table.groupby("identity_id", sort=True)]:
        for (attribute, expected), cell in part.groupby(["attribute", "expected"], sort=True):
            labelled = cell["observed"].notna()
            n, agree = int(labelled.sum()), int((cell["observed"] == expected).sum())
            lo, hi = wilson_interval(agree, n, alpha) if n else (float("nan"), float("nan"))
            out.append({"identity_id": keys[0], "attribute": attribute, "expected": expected,
                        "n_images": len(cell), "n_labelled": n, "agree": agree,
                        "share": agree / n if n else float("nan"), "lo": float(lo),
                        "hi": float(hi), "small_sample": n < min_n,
                        "prompt_ids": sorted(cell["prompt_id"].unique())})
    return pd.DataFrame(out, columns=COLUMNS)
