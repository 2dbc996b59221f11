"""What the report and the gate read from a run: store tables plus optional results files.

Annotations come from ``RunStore.annotations_table()``; on a run that was never annotated
``annotations`` is ``None`` and the report says so. Annotator validation (confusion
matrices) and filter evaluations come through the store too:

- validation: a path given explicitly, else the store's ``validation_records()``
  (``RUN_DIR/validation/validation.json``, written by ``validate-annotators --run``), else
  ``RUN_DIR/validation.json`` (layout: :func:`imagen_audit.analyse.adjust.load_validation`);
- filter evaluations: the store's ``filter_result_files()`` (``RUN_DIR/filters/**/*.json``,
  written by ``filters eval --run`` through ``RunStore.save_filter_files``) holding a
  ``"metrics"`` object or a prompt-filter evaluation. Files that do not parse are listed as
  problems, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imagen_audit.store import RunStore

log = logging.getLogger(__name__)

VALIDATION_CANDIDATES = ("validation/validation.json", "validation.json")


@dataclass
class FilterResult:
    name: str
    source: str
    metrics: dict[str, Any]
    scalars: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]
    sweep: list[dict[str, float]]


@dataclass
class RunInputs:
    run_dir: Path
    samples: pd.DataFrame
    images: pd.DataFrame
    stages: list[Any]
    provenance: dict[int, dict[str, Any]]
    baselines: pd.DataFrame
    annotations: pd.DataFrame | None
    validation: Any = None  # a path or dict, or None
    validation_source: str | None = None
    filters: list[FilterResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    storage: Any = None  # the run's ImageStorage (images may live outside the run folder)
    mitigation: dict[str, Any] | None = None


def read_annotations(store: RunStore) -> pd.DataFrame | None:
    """The store's annotation table, or None when the store has none (yet) or it is empty."""
    method = getattr(store, "annotations_table", None)
    if method is None:
        return None
    table = method()
    if table is None or len(table) == 0:
        return None
    return table


def _blocked_share_column(name: object) -> bool:
    """A sweep column that gives a benign set's blocked share at each threshold (``filters
    eval``'s sweep.csv: ``identity_fpr`` for the identity probes, ``fpr_<set>`` for each
    further benign set): who pays, read beside the main ``fpr``."""
    return name == "identity_fpr" or str(name).startswith("fpr_")


def _flatten_sweep(metrics: dict[str, Any], data: dict[str, Any]) -> list[dict[str, float]]:
    for holder in (metrics, data):
        for key in ("threshold_sweep", "sweep", "roc", "thresholds"):
            rows = holder.get(key)
            if isinstance(rows, list) and rows and isinstance(rows[0], dict) and \
                    {"fpr", "recall"} <= set(rows[0]):
                out = []
                for r in rows:
                    try:
                        row = {"fpr": float(r["fpr"]), "recall": float(r["recall"]),
                               "threshold": float(r.get("threshold", float("nan")))}
                        row.update({str(k): float(v) for k, v in r.items()
                                    if _blocked_share_column(k) and v is not None and v == v})
                    except (TypeError, ValueError):
                        continue
                    out.append(row)
                return out
    return []


PROMPT_FILTER_SCHEMA = "imagen-audit/prompt-filter-eval"


def _from_prompt_filter_eval(path: Path, data: dict[str, Any],
                             problems: list[str]) -> dict[str, Any]:
    """Flatten ``filters eval`` output (see filters/README.md) into the report's layout:
    headline metrics, recall per category and subset, over-blocking per identity axis and
    benign set, and the threshold sweep from its ``sweep.csv``."""
    metrics: dict[str, Any] = dict(data["overall"])
    metrics["category_recall"] = {k: v.get("recall") for k, v in
                                  (data.get("category_recall") or {}).items()
                                  if isinstance(v, dict)}
    metrics["subset_recall"] = {k: v.get("recall") for k, v in
                                (data.get("subsets") or {}).items() if isinstance(v, dict)}
    blocking = data.get("over_blocking") or {}
    identity = blocking.get("identity_probes") or {}
    if isinstance(identity, dict):
        metrics["identity_probe_fpr"] = identity.get("fpr")
        metrics["identity_fpr_by_axis"] = {k: v.get("fpr") for k, v in
                                           (identity.get("by_axis") or {}).items()
                                           if isinstance(v, dict)}
    metrics["benign_set_fpr"] = {k: v.get("fpr") for k, v in blocking.items()
                                 if isinstance(v, dict) and k != "identity_probes"}
    # The groups an extra set of identity prompts found blocked (holisticbias-grid): the
    # share of each blocked term's prompts, "<set> / <term>".
    terms = {f"{k} / {t}": e["blocked"] / e["n"] for k, v in blocking.items()
             if isinstance(v, dict) and isinstance(v.get("blocked_terms"), dict)
             for t, e in v["blocked_terms"].items()
             if isinstance(e, dict) and isinstance(e.get("n"), int) and e["n"] > 0
             and isinstance(e.get("blocked"), int)}
    if terms:
        metrics["identity_terms_blocked_share"] = terms
    # The share blocked among each benign set's prompts that name a picture format (memes,
    # stickers, posters: the largest source of over-blocking) and among those about people (a
    # person noun, identity descriptor, occupation or pronoun), gateable set by set:
    # benign_picture_format_blocked_share.<set>, benign_people_blocked_share.<set>.
    from imagen_audit.filters.evaluate import BENIGN_SPLITS, benign_split

    for key, part, _what in BENIGN_SPLITS:
        shares = {k: v[part].get("blocked_share") for k, v in benign_split(data, key).items()
                  if isinstance(v.get(part), dict)}
        if shares:
            metrics[f"benign_{key.removeprefix('by_')}_blocked_share"] = shares
    sweep_name = (data.get("files") or {}).get("sweep")
    if isinstance(sweep_name, str) and "/" not in sweep_name and (path.parent / sweep_name
                                                                   ).is_file():
        try:
            table = pd.read_csv(path.parent / sweep_name)
            cols = ["threshold", "recall", "fpr",
                    *(c for c in table.columns if _blocked_share_column(c))]
            metrics["threshold_sweep"] = table[cols].to_dict("records")
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{sweep_name}: unreadable sweep ({exc})")
    policy = data.get("policy") or {}
    name = policy.get("name") if isinstance(policy, dict) else None
    return {"name": str(name or path.stem), "metrics": metrics}


def read_filter_results(run_dir: Path, files: Sequence[Path] | None = None
                        ) -> tuple[list[FilterResult], list[str]]:
    """Filter results from ``files`` (as listed by ``RunStore.filter_result_files``), or,
    for a folder without a run store, every JSON under ``run_dir/filters/``."""
    if files is None:
        folder = run_dir / "filters"
        files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    results: list[FilterResult] = []
    problems: list[str] = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path.relative_to(run_dir)}: unreadable ({exc})")
            continue
        if isinstance(data, dict) and isinstance(data.get("overall"), dict) and \
                data.get("schema") == PROMPT_FILTER_SCHEMA:
            data = _from_prompt_filter_eval(path, data, problems)
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            continue
        metrics = data["metrics"]
        scalars = {k: v for k, v in metrics.items()
                   if isinstance(v, (int, float, str, bool)) or v is None}
        tables = {}
        for k, v in metrics.items():
            if isinstance(v, dict) and v and all(
                    isinstance(x, (int, float)) or x is None for x in v.values()):
                tables[k] = [{"key": str(a), "value": b} for a, b in v.items()]
        name = str(data.get("name") or data.get("policy") or path.stem)
        results.append(FilterResult(name=name, source=str(path.relative_to(run_dir)),
                                    metrics=metrics, scalars=scalars, tables=tables,
                                    sweep=_flatten_sweep(metrics, data)))
    return results, problems


def find_validation(run_dir: Path) -> Path | None:
    for rel in VALIDATION_CANDIDATES:
        if (run_dir / rel).is_file():
            return run_dir / rel
    return None


def collect(run_dir: str | Path, *, validation: Any = None) -> RunInputs:
    """Read everything the report needs from a run folder (read-only)."""
    run_dir = Path(run_dir)
    with RunStore.open_readonly(run_dir) as store:
        inputs = RunInputs(
            run_dir=run_dir, samples=store.samples_table(), images=store.images_table(),
            stages=store.stages(), provenance=store.provenance_records(),
            baselines=store.baselines_table(), annotations=read_annotations(store),
            storage=store.storage, mitigation=store.get_meta("mitigation"))
        filter_files = store.filter_result_files()
        stored = getattr(store, "validation_records", None)
        if validation is None and stored is not None:
            try:
                recs = stored()
            except (OSError, ValueError) as exc:
                inputs.problems.append(f"validation records unreadable ({exc})")
                recs = {}
            if recs:
                name = "validation.json" if "validation.json" in recs else sorted(recs)[0]
                validation = recs[name]
                inputs.validation_source = f"validation/{name}"
    if validation is None:
        found = find_validation(run_dir)
        if found is not None:
            validation = found
    inputs.validation = validation
    if inputs.validation_source is None and validation is not None:
        inputs.validation_source = (str(validation) if isinstance(validation, (str, Path))
                                    else "given")
    inputs.filters, problems = read_filter_results(run_dir, filter_files)
    inputs.problems += problems
    return inputs


def inputs_from_tables(run_dir: str | Path, annotations: pd.DataFrame | None,
                       baselines: pd.DataFrame, *, validation: Any = None) -> RunInputs:
    """Inputs built from tables alone (no run store): for tests, benchmarks and analyses
    of annotation exports. Samples and images are derived from the annotation rows."""
    from imagen_audit.store.records import StageSpec

    ann = annotations if annotations is not None else pd.DataFrame(
        columns=["image_id", "sample_id", "prompt_id", "prompt", "stage", "stage_name",
                 "path", "seed"])
    images = ann.drop_duplicates("image_id")
    samples = images.drop_duplicates("sample_id").assign(status="done", error=None)
    stages = [StageSpec(int(s), str(n)) for s, n in
              images[["stage", "stage_name"]].drop_duplicates().sort_values("stage")
              .itertuples(index=False)]
    images = images.assign(width=0, height=0)
    filters, problems = read_filter_results(Path(run_dir))
    return RunInputs(run_dir=Path(run_dir), samples=samples, images=images, stages=stages,
                     provenance={}, baselines=baselines, annotations=annotations,
                     validation=validation,
                     validation_source=None if validation is None else "given",
                     filters=filters, problems=problems)
