"""What a comparison reads from each run: the report's inputs plus per-item filter decisions.

Everything comes through :func:`imagen_audit.report.inputs.collect` (the store's tables, the
run's filter evaluations) and the store's ``image_filter_scores_table``; prompt-filter
evaluations (``RUN_DIR/filters/prompt-filter-eval.json``, schema
``imagen-audit/prompt-filter-eval``) are read with their ``scores.csv`` when present, so
recall and false-positive rate compare prompt by prompt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from imagen_audit.compare.metrics import FilterData
from imagen_audit.report.inputs import RunInputs, collect
from imagen_audit.store import RunStore
from imagen_audit.store.run_store import filter_result_paths, require_run_folder

PROMPT_EVAL_SCHEMA = "imagen-audit/prompt-filter-eval"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) else float(v)


def _prompt_evals(run_dir: Path, problems: list[str]) -> list[FilterData]:
    out: list[FilterData] = []
    for path in filter_result_paths(run_dir):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue  # the report lists unreadable files
        if not isinstance(doc, dict) or doc.get("schema") != PROMPT_EVAL_SCHEMA:
            continue
        policy = doc.get("policy") if isinstance(doc.get("policy"), dict) else {}
        name = str(policy.get("name") or path.stem)
        overall = doc.get("overall") if isinstance(doc.get("overall"), dict) else {}
        scalars = {k: v for k, v in ((k, _number(v)) for k, v in overall.items()
                                     if k not in ("tp", "fp", "tn", "fn", "n_harmful",
                                                  "n_benign")) if v is not None}
        rows = None
        files = doc.get("files") if isinstance(doc.get("files"), dict) else {}
        scores = path.parent / str(files.get("scores", "scores.csv"))
        if scores.is_file() and scores.resolve().parent == path.parent.resolve():
            try:
                t = pd.read_csv(scores)
                main = t[t["set"].isin(["harmful", "benign"])]
                rows = pd.DataFrame({"key": main["set"].astype(str) + "\0"
                                     + main["prompt"].astype(str),
                                     "label": main["label"],
                                     "blocked": main["decision"].astype(str) == "block"})
            except (OSError, KeyError, ValueError, pd.errors.ParserError) as exc:
                problems.append(f"{scores.relative_to(run_dir)}: unreadable ({exc})")
        if rows is None and all(isinstance(overall.get(k), int) for k in ("tp", "fn", "fp",
                                                                         "tn")):
            # Counts only: items of their own (no pairing).
            parts = []
            for label, blocked, n in ((1, True, overall["tp"]), (1, False, overall["fn"]),
                                      (0, True, overall["fp"]), (0, False, overall["tn"])):
                parts += [(label, blocked)] * int(n)
            rows = pd.DataFrame(parts, columns=["label", "blocked"])
            rows["key"] = [f"{path}\0{i}" for i in range(len(rows))]
        out.append(FilterData(name=name, kind="prompt", rows=rows, scalars=scalars,
                              source=str(path.relative_to(run_dir))))
    return out


def _report_filters(inputs: RunInputs, taken: set[str]) -> list[FilterData]:
    """Filter results in the report's layout (a ``metrics`` object): scalars only. The
    report's summaries of ``filters scan`` are left out: :func:`_image_filters` compares the
    same verdicts image by image."""
    out = []
    for f in inputs.filters:
        if f.name in taken or f.kind == "image":
            continue
        scalars = {k: v for k, v in ((k, _number(v)) for k, v in f.scalars.items())
                   if v is not None}
        out.append(FilterData(name=f.name, kind="prompt", scalars=scalars, source=f.source))
    return out


def _image_filters(run_dir: Path) -> list[FilterData]:
    with RunStore.open_readonly(run_dir) as store:
        method = getattr(store, "image_filter_scores_table", None)
        scores = method() if method is not None else pd.DataFrame()
        samples = store.samples_table()[["sample_id", "seed"]] if len(scores) else None
    if scores.empty:
        return []
    scores = scores.merge(samples, on="sample_id", how="left")
    out = []
    for name, part in scores.groupby("filter", sort=True):
        key = (part["prompt_id"].astype(str) + "\0" + part["seed"].astype(str) + "\0"
               + part["stage"].astype(str))
        out.append(FilterData(name=str(name), kind="image", rows=pd.DataFrame({
            "key": key.to_numpy(), "label": float("nan"),
            "blocked": (part["decision"].astype(str) == "block").to_numpy(),
            "score": pd.to_numeric(part["score"], errors="coerce").to_numpy(),
            "threshold": pd.to_numeric(part["threshold"], errors="coerce").to_numpy()})))
    return out


def load_run(run_dir: str | Path, *, validation: Any = None) -> tuple[RunInputs, list[FilterData]]:
    """A run's report inputs and its filter evaluations, for a comparison."""
    run_dir = require_run_folder(run_dir)
    inputs = collect(run_dir, validation=validation)
    filters = _prompt_evals(run_dir, inputs.problems)
    filters += _report_filters(inputs, {f.name for f in filters})
    filters += _image_filters(run_dir)
    return inputs, filters
