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
    # "prompt": an evaluation on labelled prompt sets (filters eval); "image": an output-image
    # filter's verdicts on this run's own images (filters scan), which have no labels.
    kind: str = "prompt"


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
        # Per identity term too (over-blocking is reported per term and axis), and the
        # probes blocked, named: who pays is a list of people, not only a rate.
        metrics["identity_fpr_by_term"] = {k: v.get("fpr") for k, v in
                                           (identity.get("by_term") or {}).items()
                                           if isinstance(v, dict)}
        blocked = identity.get("blocked_prompts")
        if isinstance(blocked, list) and blocked:
            metrics["identity_probes_blocked"] = {str(p): 1 for p in blocked}
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
    # Sets that carry each prompt's language (the multilingual sets): the blocked share of each
    # benign set and the recall of each harmful set per language, "<set> / <code>", gateable
    # (language_fpr.multilingual-benign / de): which languages pay for an English-only filter.
    harmful_sets = data.get("extra_harmful") or {}
    for key, sets, rate in (("language_fpr", blocking, "fpr"),
                            ("language_recall", harmful_sets, "recall")):
        by_code = {f"{k} / {c}": e[rate] for k, v in sets.items()
                   if isinstance(v, dict) and isinstance(v.get("by_language_code"), dict)
                   for c, e in v["by_language_code"].items()
                   if isinstance(e, dict) and isinstance(e.get(rate), (int, float))}
        if by_code:
            metrics[key] = by_code
    recall = {k: v["recall"] for k, v in harmful_sets.items()
              if isinstance(v, dict) and isinstance(v.get("recall"), (int, float))}
    if recall:
        metrics["harmful_set_recall"] = recall
    # The share blocked among each benign set's prompts that name a picture format (memes,
    # stickers, posters: the largest source of over-blocking) and among those about people (a
    # person noun, identity descriptor, occupation or pronoun) and that do not read as English,
    # gateable set by set: benign_picture_format_blocked_share.<set>,
    # benign_people_blocked_share.<set>, benign_language_blocked_share.<set>.
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
        from imagen_audit.store.run_store import filter_result_paths

        files = filter_result_paths(run_dir)
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
        name = str(data.get("name") or data.get("policy") or path.stem)
        results.append(_as_result(name, str(path.relative_to(run_dir)), metrics,
                                  _flatten_sweep(metrics, data)))
    return results, problems


def _as_result(name: str, source: str, metrics: dict[str, Any],
               sweep: list[dict[str, float]], kind: str = "prompt") -> FilterResult:
    """A filter result with the report's views of its metrics: the scalars, and each mapping
    of numbers as a two-column table."""
    scalars = {k: v for k, v in metrics.items()
               if isinstance(v, (int, float, str, bool)) or v is None}
    tables = {k: [{"key": str(a), "value": b} for a, b in v.items()]
              for k, v in metrics.items()
              if isinstance(v, dict) and v
              and all(isinstance(x, (int, float)) or x is None for x in v.values())}
    return FilterResult(name=name, source=source, metrics=metrics, scalars=scalars,
                        tables=tables, sweep=sweep, kind=kind)


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
        image_scores = store.image_filter_scores_table()
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
    inputs.filters += image_filter_results(image_scores, inputs.samples, inputs.stages)
    inputs.problems += problems
    return inputs


FLAGGED_LISTED = 50  # flagged images named in the report, per filter


def image_filter_results(scores: pd.DataFrame, samples: pd.DataFrame,
                         stages: Sequence[Any]) -> list[FilterResult]:
    """What ``filters scan`` found in this run's images, one result per output-image filter:
    the share of scanned images it flagged (with a Wilson interval), by stage, the detected
    classes of the flagged images, and the first flagged images by prompt, seed and stage.
    Gateable like a prompt-filter result: ``filter_metric`` with ``filter: opennsfw`` and
    ``key: flag_rate`` (or ``flag_rate_by_stage.<stage name>``)."""
    if scores is None or scores.empty:
        return []
    from imagen_audit.analyse.stats import wilson_interval

    names = {int(s.stage): str(s.name) for s in stages}
    cols = [c for c in ("sample_id", "prompt", "seed") if c in samples]
    merged = scores.merge(samples[cols], on="sample_id", how="left") if "sample_id" in cols \
        else scores.assign(prompt=None, seed=None)
    out = []
    for name, part in merged.groupby("filter", sort=True):
        flagged = part["decision"].astype(str) == "block"
        n, k = len(part), int(flagged.sum())
        lo, hi = wilson_interval(k, n)
        thresholds = sorted({float(t) for t in part["threshold"].dropna()})
        metrics: dict[str, Any] = {
            "kind": "output-image filter (filters scan)", "n_images": n, "flagged": k,
            "flag_rate": k / n, "flag_rate_low": float(lo), "flag_rate_high": float(hi),
            "threshold": thresholds[0] if len(thresholds) == 1 else
            ", ".join(f"{t:g}" for t in thresholds),
        }
        by_stage = part.assign(flagged=flagged).groupby("stage", sort=True)["flagged"].mean()
        metrics["flag_rate_by_stage"] = {names.get(int(s), f"stage {s}"): float(v)
                                         for s, v in by_stage.items()}
        classes: dict[str, float] = {}
        for details in part.loc[flagged, "details"]:
            for c in _detected_classes(details):
                classes[c] = classes.get(c, 0) + 1
        if classes:
            metrics["flagged_images_by_detected_class"] = dict(
                sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])))
        listed = part[flagged].head(FLAGGED_LISTED)
        if len(listed):  # each flagged image with its score
            metrics["flagged_images"] = {
                f"{r.prompt} (seed {seed_text(r.seed)}, {names.get(int(r.stage), r.stage)})"
                + "".join(f" [{c}]" for c in _detected_classes(r.details)): float(r.score)
                for r in listed.itertuples(index=False)}
        out.append(_as_result(str(name), "run.sqlite (filters scan)", metrics, [], "image"))
    return out


def _detected_classes(details: Any) -> list[str]:
    """The classes a detector reported for one image (nudenet's ``detections``); empty for a
    classifier that reports only a score (opennsfw)."""
    try:
        d = json.loads(details) if isinstance(details, str) else details
    except ValueError:
        return []
    found = d.get("detections") if isinstance(d, dict) else None
    if not isinstance(found, list):
        return []
    return sorted({str(x.get("class")) for x in found if isinstance(x, dict) and x.get("class")})


def seed_text(seed: Any) -> str:
    """A seed as written: an integer, or "none" for an imported image without one."""
    try:
        f = float(seed)
    except (TypeError, ValueError):
        return "none"
    return "none" if f != f else str(int(f)) if f.is_integer() else str(seed)


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
