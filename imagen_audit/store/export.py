"""Export run tables to CSV or Parquet, atomically (a half-written export never appears)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from imagen_audit.errors import AuditError
from imagen_audit.store.run_store import RunStore

TABLES = ("images", "samples")


def export_table(store: RunStore, out: str | Path, table: str = "images") -> pd.DataFrame:
    """Write the ``images`` (one row per image) or ``samples`` table to ``out``.

    The format follows the suffix (``.csv`` or ``.parquet``). Image rows carry ``path``
    (relative to the run folder) and ``file`` (absolute).
    """
    out = Path(out)
    if out.suffix not in (".csv", ".parquet"):
        raise AuditError(f"{out}: export format must be .csv or .parquet")
    if table not in TABLES:
        raise AuditError(f"unknown table {table!r}; choose one of {TABLES}")
    frame = store.images_table() if table == "images" else store.samples_table()
    if table == "images":
        frame.insert(frame.columns.get_loc("path") + 1, "file",
                     [str(store.image_path(p)) for p in frame["path"]])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if out.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return frame
