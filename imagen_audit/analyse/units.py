"""From annotation rows (one per face, one per faceless image) to units of analysis.

The **unit** is one image (a sample at a cascade stage). Seeds are independent, so units
are independent draws from the model for their prompt, and binomial intervals are valid.
Faces within one image are not independent of each other; an image with several faces
contributes its **primary face** (the largest box; ties broken by detection score, then
face index). Images with no face count towards the face-detection rate only.

Columns of the annotation table (the contract with the annotators, ``annotations_table``):
``image_id, sample_id, prompt_id, prompt, family, template_id, occupation_id, identity_id,
identity_axis, sample_index, seed, stage, stage_name, path, annotator, n_faces, face_index,
box_left, box_top, box_right, box_bottom, detection_score, perceived_gender,
gender_probability, p_female, monk_tone, ita, ita_category, tone_confidence``.

Columns added to each unit:

- ``face_detected`` (bool): the image has at least one face;
- ``gender_label``: ``female``/``male`` of the primary face; NaN when there is no face or
  the classifier abstained (``unknown``);
- ``gender_abstained``: on images with a face, whether the gender classifier abstained
  (NaN on images without a face);
- ``tone_abstained``: likewise for the Monk tone;
- ``tone_band``: the Monk tone grouped into bands (default Monk 1–3 ``light``, 4–7
  ``medium``, 8–10 ``dark``; configurable with ``tone_bands``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

GENDER_LABELS = ("female", "male")
DEFAULT_TONE_BANDS: dict[str, tuple[int, int]] = {"light": (1, 3), "medium": (4, 7),
                                                  "dark": (8, 10)}
ITA_CATEGORIES = ("very_light", "light", "intermediate", "tan", "brown", "dark")
ANNOTATION_COLUMNS = (
    "image_id", "sample_id", "prompt_id", "prompt", "family", "template_id", "occupation_id",
    "identity_id", "identity_axis", "sample_index", "seed", "stage", "stage_name", "path",
    "annotator", "n_faces", "face_index", "box_left", "box_top", "box_right", "box_bottom",
    "detection_score", "perceived_gender", "gender_probability", "p_female", "monk_tone", "ita",
    "ita_category", "tone_confidence")
REQUIRED_COLUMNS = ("image_id", "sample_id", "prompt_id", "stage", "n_faces",
                    "perceived_gender", "monk_tone")


def validate_tone_bands(bands: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Bands must cover Monk 1–10 exactly once, in order, without gaps."""
    covered = []
    for name, (lo, hi) in bands.items():
        if not (1 <= int(lo) <= int(hi) <= 10):
            raise ValueError(f"tone band {name!r}: {lo}–{hi} is not within Monk 1–10")
        covered.extend(range(int(lo), int(hi) + 1))
    if sorted(covered) != list(range(1, 11)):
        raise ValueError(f"tone bands {dict(bands)} must cover Monk 1–10 exactly once")
    return {str(k): (int(v[0]), int(v[1])) for k, v in bands.items()}


def tone_band(monk: pd.Series, bands: Mapping[str, tuple[int, int]] = DEFAULT_TONE_BANDS
              ) -> pd.Series:
    """Map Monk tones (1–10, NaN) to band names (NaN stays NaN)."""
    bands = validate_tone_bands(bands)
    lookup = np.full(12, None, dtype=object)
    for name, (lo, hi) in bands.items():
        lookup[lo:hi + 1] = name
    m = pd.to_numeric(monk, errors="coerce")
    ok = m.notna() & m.between(1, 10)
    out = pd.Series(np.full(len(m), np.nan, dtype=object), index=monk.index)
    out[ok] = lookup[m[ok].astype(int).to_numpy()]
    return out


def check_annotations(table: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(f"annotation table lacks column(s) {missing}; expected the columns of "
                       "RunStore.annotations_table()")


def choose_annotator(table: pd.DataFrame, annotator: str | None = None
                     ) -> tuple[pd.DataFrame, str | None, list[str]]:
    """Keep one annotator's rows. Returns (rows, chosen, all annotators present)."""
    if "annotator" not in table.columns or table.empty:
        return table, annotator, []
    names = sorted(table["annotator"].dropna().astype(str).unique())
    if annotator is None:
        if len(names) <= 1:
            return table, names[0] if names else None, names
        annotator = table["annotator"].astype(str).value_counts().index[0]
    if annotator not in names:
        raise KeyError(f"no annotations by {annotator!r}; present: {names}")
    return table[table["annotator"].astype(str) == annotator], annotator, names


def units_from_annotations(table: pd.DataFrame,
                           tone_bands: Mapping[str, tuple[int, int]] = DEFAULT_TONE_BANDS
                           ) -> pd.DataFrame:
    """One row per image (all stages): primary-face attributes plus detection flags."""
    check_annotations(table)
    t = table.copy()
    box_cols = ("box_left", "box_top", "box_right", "box_bottom")
    if all(c in t.columns for c in box_cols):
        area = ((pd.to_numeric(t["box_right"], errors="coerce")
                 - pd.to_numeric(t["box_left"], errors="coerce"))
                * (pd.to_numeric(t["box_bottom"], errors="coerce")
                   - pd.to_numeric(t["box_top"], errors="coerce")))
    else:
        area = pd.Series(np.nan, index=t.index)
    t["_area"] = area.fillna(-1.0)
    t["_score"] = (pd.to_numeric(t["detection_score"], errors="coerce").fillna(-1.0)
                   if "detection_score" in t.columns else -1.0)
    t["_fi"] = (pd.to_numeric(t["face_index"], errors="coerce").fillna(0)
                if "face_index" in t.columns else 0)
    t = t.sort_values(["image_id", "_area", "_score", "_fi"],
                      ascending=[True, False, False, True], kind="stable")
    units = t.drop_duplicates("image_id", keep="first").drop(columns=["_area", "_score", "_fi"])
    n_faces = pd.to_numeric(units["n_faces"], errors="coerce").fillna(0).astype(int)
    units["n_faces"] = n_faces
    face = n_faces > 0
    units["face_detected"] = face
    gender = units["perceived_gender"].where(face)
    units["gender_label"] = gender.where(gender.isin(GENDER_LABELS))
    units["gender_abstained"] = (~gender.isin(GENDER_LABELS)).where(face)
    monk = pd.to_numeric(units["monk_tone"], errors="coerce").where(face)
    units["monk_tone"] = monk
    units["tone_abstained"] = monk.isna().where(face)
    units["tone_band"] = tone_band(monk, tone_bands)
    if "ita" in units.columns:
        units["ita"] = pd.to_numeric(units["ita"], errors="coerce").where(face)
    for col in ("gender_abstained", "tone_abstained"):
        units[col] = units[col].astype(object)
    units["stage"] = pd.to_numeric(units["stage"], errors="coerce").astype("Int64")
    return units.reset_index(drop=True)
