"""Export run tables to CSV or Parquet, atomically (a half-written export never appears)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imagen_audit.errors import AuditError
from imagen_audit.files import atomic_path
from imagen_audit.store.run_store import RunStore

TABLES = ("images", "samples")


def export_table(store: RunStore, out: str | Path, table: str = "images", *,
                 spreadsheet_safe: bool = False) -> pd.DataFrame:
    """Write the ``images`` (one row per image) or ``samples`` table to ``out``.

    The format follows the suffix (``.csv`` or ``.parquet``). Image rows carry ``path``
    (relative to the run folder) and ``file`` (absolute). ``spreadsheet_safe`` (CSV only)
    writes text cells a spreadsheet would run as formulas, such as a prompt starting with
    ``=``, with a leading apostrophe (:mod:`imagen_audit.spreadsheet`); the returned frame
    is the table as stored.
    """
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise AuditError(f"{out}: export format must be .csv or .parquet")
    if spreadsheet_safe and out.suffix != ".csv":
        raise AuditError(f"{out}: --spreadsheet-safe is for CSV files (Parquet keeps types, "
                         "and no spreadsheet runs its cells)")
    if table not in TABLES:
        raise AuditError(f"unknown table {table!r}; choose one of {TABLES}")
    frame = store.images_table() if table == "images" else store.samples_table()
    if table == "images":
        frame.insert(frame.columns.get_loc("path") + 1, "file",
                     [store.image_uri(p) for p in frame["path"]])
        frame = _with_annotations(store, frame)
    with atomic_path(out) as tmp:
        if out.suffix == ".csv":
            if spreadsheet_safe:
                from imagen_audit.spreadsheet import neutralise_formulas

                neutralise_formulas(frame)[0].to_csv(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return frame


# Annotation columns carried by the images export once a run has annotations (issue 3).
ANNOTATION_COLUMNS = ("annotator", "n_faces", "face_index", "box_left", "box_top", "box_right",
                      "box_bottom", "detection_score", "perceived_gender",
                      "gender_probability", "p_female", "monk_tone", "ita", "ita_category",
                      "tone_confidence")


def _with_annotations(store: RunStore, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per detected face and one per image without a face, when annotations exist.

    Runs without annotations export exactly as before (one row per image). Images not
    (yet) annotated keep one row with empty annotation columns, so nothing is dropped.
    """
    ann = store.annotations_table()
    if ann.empty:
        return frame
    cols = ["image_id", *ANNOTATION_COLUMNS]
    return frame.merge(ann[cols], on="image_id", how="left", sort=False)
