"""The whole analysis of a run, tables in, tables out: :func:`analyse`.

Input: the annotation table (``RunStore.annotations_table()``), the baselines table
(``RunStore.baselines_table()``) and, optionally, annotator validation confusion matrices.
Output: an :class:`Analysis` holding plain pandas tables (one per kind of result, all with
group keys, ``n``, intervals, ``small_sample`` and the prompt ids behind each number), the
units table every number is computed from (with ``sample_id``), and the ranked findings.

The headline numbers use one cascade stage, the **final** one by default (what a user of
the model would see); per-stage tables and the stage drift use all stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit.analyse import adjust, baselines, drift, findings
from imagen_audit.analyse.controls import control_agreement
from imagen_audit.analyse.frame import Distribution, Mean, Metric, MetricFrame, Rate, Share
from imagen_audit.analyse.units import (
    DEFAULT_TONE_BANDS,
    GENDER_LABELS,
    choose_annotator,
    units_from_annotations,
    validate_tone_bands,
)


@dataclass(frozen=True)
class AnalysisConfig(findings.FindingRules):
    """What to analyse and how: the finding rules (``alpha``, ``min_n``, ``min_effect``,
    ``min_ita_change``, inherited so their defaults live in one place) plus the bootstrap,
    the stage, the annotator and the tone bands."""

    n_boot: int = 1000
    seed: int = 0
    stage: int | None = None  # None: the final stage
    annotator: str | None = None
    tone_bands: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: dict(DEFAULT_TONE_BANDS))

    def rules(self) -> findings.FindingRules:
        return findings.FindingRules(**{f.name: getattr(self, f.name)
                                        for f in fields(findings.FindingRules)})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["tone_bands"] = {k: list(v) for k, v in self.tone_bands.items()}
        return out


GROUPINGS = ("prompt_id", "occupation_id", "identity_id", "family")


@dataclass
class Analysis:
    config: AnalysisConfig
    annotator: str | None
    annotators: list[str]
    stage: int | None
    units: pd.DataFrame                       # every unit, all stages
    overall: pd.DataFrame                     # metric × value, lo, hi, n, small_sample
    by: dict[str, pd.DataFrame]               # grouping → long interval table
    differences: dict[str, pd.DataFrame]      # grouping → metric × difference/ratio (+ CI)
    by_stage: pd.DataFrame
    baselines: pd.DataFrame
    amplification: dict[str, Any]
    intersections: pd.DataFrame
    drift: pd.DataFrame
    adjusted: pd.DataFrame | None
    findings: list[findings.Finding]
    notes: list[str]
    controls: pd.DataFrame = field(default_factory=pd.DataFrame)  # positive controls

    @property
    def stage_units(self) -> pd.DataFrame:
        return self.units[self.units["stage"] == self.stage]

    def small_groups(self, grouping: str) -> pd.DataFrame:
        t = self.by.get(grouping)
        if t is None or t.empty:
            return pd.DataFrame()
        t = t[t["metric"] == "face_detection_rate"]
        return t[t["small_sample"]]


def metric_set(tone_bands: Mapping[str, tuple[int, int]]) -> dict[str, Metric]:
    bands = list(tone_bands)
    metrics: dict[str, Metric] = {"share_female": Share("gender_label", "female")}
    for b in bands:
        metrics[f"share_tone_{b}"] = Share("tone_band", b)
    metrics |= {
        "gender_gap_from_uniform": Distribution("gender_label", GENDER_LABELS),
        "gender_entropy": Distribution("gender_label", GENDER_LABELS, "entropy"),
        "tone_gap_from_uniform": Distribution("tone_band", bands),
        "tone_entropy": Distribution("tone_band", bands, "entropy"),
        "face_detection_rate": Rate("face_detected"),
        "gender_abstention_rate": Rate("gender_abstained"),
        "tone_abstention_rate": Rate("tone_abstained"),
        "mean_ita": Mean("ita"),
    }
    return metrics


def intersections(units: pd.DataFrame, *, by: str | None = "occupation_id",
                  alpha: float = 0.05, min_n: int = 30) -> pd.DataFrame:
    """Perceived gender × tone band cells with counts and shares (Wilson), overall and by
    ``by``. The denominator is the units with both labels."""
    from imagen_audit.analyse.stats import wilson_interval

    both = units.dropna(subset=["gender_label", "tone_band"])
    parts = [("(all)", both)]
    if by and by in both.columns:
        parts += [(str(k), v) for k, v in both.groupby(by, sort=True)]
    rows = []
    for key, part in parts:
        n = len(part)
        counts = part.groupby(["gender_label", "tone_band"]).size()
        for (gl, tb), c in counts.items():
            lo, hi = wilson_interval(c, n, alpha)
            rows.append({"group": key, "gender_label": gl, "tone_band": tb, "count": int(c),
                         "n": n, "share": c / n, "lo": float(lo), "hi": float(hi),
                         "small_sample": n < min_n})
    return pd.DataFrame(rows, columns=["group", "gender_label", "tone_band", "count", "n",
                                       "share", "lo", "hi", "small_sample"])


def analyse(annotations: pd.DataFrame, baselines_table: pd.DataFrame | None = None, *,
            validation: str | Path | Mapping[str, Any] | None = None,
            config: AnalysisConfig | None = None) -> Analysis:
    """Run every analysis on an annotation table (see the module docstring)."""
    config = config or AnalysisConfig()
    validate_tone_bands(config.tone_bands)
    notes: list[str] = []
    rows, annotator, annotators = choose_annotator(annotations, config.annotator)
    if len(annotators) > 1:
        notes.append(f"annotations by {annotators}; this analysis uses {annotator!r}")
    units = units_from_annotations(rows, config.tone_bands)
    stages = sorted(int(s) for s in units["stage"].dropna().unique())
    stage = config.stage if config.stage is not None else (stages[-1] if stages else None)
    if stage is not None and stage not in stages:
        raise KeyError(f"no annotations at stage {stage}; annotated stages: {stages}")
    current = units[units["stage"] == stage]
    metrics = metric_set(config.tone_bands)
    common = dict(alpha=config.alpha, n_boot=config.n_boot, seed=config.seed,
                  min_n=config.min_n)
    overall_frame = MetricFrame(metrics, current, **common)
    by: dict[str, pd.DataFrame] = {}
    differences: dict[str, pd.DataFrame] = {}
    for key in GROUPINGS:
        if key not in current.columns or current[key].isna().all():
            continue
        data = current[current[key].notna()]
        if key == "occupation_id":
            data = baselines.neutral_occupation_units(data)
        if data.empty:
            continue
        mf = MetricFrame(metrics, data, by=key, **common)
        by[key] = mf.intervals
        dci = mf.difference_ci()
        differences[key] = pd.DataFrame({
            "difference": mf.difference(), "difference_lo": dci["lo"],
            "difference_hi": dci["hi"], "ratio": mf.ratio(),
            "group_min": mf.group_min(), "group_max": mf.group_max()})
    by_stage = MetricFrame(metrics, units, by="stage", **common).intervals if len(units) else \
        pd.DataFrame()
    base_table = (baselines.compare_to_baselines(current, baselines_table, alpha=config.alpha,
                                                 min_n=config.min_n)
                  if baselines_table is not None and "occupation_id" in current.columns
                  else pd.DataFrame())
    if baselines_table is None:
        notes.append("no baselines table: no comparison with the labour baseline")
    amp = (baselines.amplification_summary(base_table, seed=config.seed, alpha=config.alpha)
           if not base_table.empty else {"n_occupations": 0})
    inter = intersections(current, alpha=config.alpha, min_n=config.min_n)
    drift_table = drift.stage_drift(units, alpha=config.alpha, n_boot=config.n_boot,
                                    seed=config.seed, min_n=config.min_n)
    adjusted = None
    if validation is not None:
        sets = adjust.load_validation(validation)
        gender = sets.get("gender") or sets.get("perceived_gender")
        if gender is None:
            notes.append("validation has no gender confusion matrix: shares are not adjusted")
        else:
            group_col = "tone_band" if gender.by_group and set(gender.by_group) & set(
                config.tone_bands) else None
            adjusted = pd.concat([
                adjust.adjusted_shares(current, "gender_label", gender, group_column=group_col,
                                       alpha=config.alpha, seed=config.seed),
                adjust.adjusted_shares(baselines.neutral_occupation_units(current),
                                       "gender_label", gender, by="occupation_id",
                                       group_column=group_col, alpha=config.alpha,
                                       seed=config.seed),
            ], ignore_index=True)
    rules = config.rules()
    found: list[findings.Finding] = []
    if not base_table.empty:
        found += findings.baseline_findings(base_table, current, rules)
    overall = overall_frame.overall
    for key in ("prompt_id", "identity_id"):
        if key in by:
            found += findings.rate_findings(by[key], overall, "face_detection_rate", key,
                                            current, rules, worse="lower")
            found += findings.rate_findings(by[key], overall, "gender_abstention_rate", key,
                                            current, rules, worse="higher")
    if "occupation_id" in by:
        found += findings.concentration_findings(
            by["occupation_id"], "tone_gap_from_uniform", "occupation_id", current, rules,
            "perceived skin-tone bands concentrated: gap from uniform")
    found += findings.drift_findings(drift_table, units, rules)
    return Analysis(config=config, annotator=annotator, annotators=annotators, stage=stage,
                    units=units, overall=overall, by=by, differences=differences,
                    by_stage=by_stage, baselines=base_table, amplification=amp,
                    intersections=inter, drift=drift_table, adjusted=adjusted,
                    findings=findings.rank(found), notes=notes,
                    controls=control_agreement(current, alpha=config.alpha,
                                               min_n=config.min_n))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) or np.isinf(value) else float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    """A table as JSON-ready records (NaN → null, numpy scalars → Python)."""
    if table is None or table.empty:
        return []
    return [_jsonable(r) for r in table.to_dict("records")]


def to_json(result: Analysis) -> dict[str, Any]:
    """Every number of the analysis, machine-readable (the ``analysis`` part of report.json)."""
    overall = result.overall.reset_index(names="metric")
    return _jsonable({
        "config": result.config.to_dict(),
        "annotator": result.annotator, "annotators": result.annotators,
        "stage": result.stage,
        "n_units": int((result.units["stage"] == result.stage).sum()),
        "n_samples": int(result.units["sample_id"].nunique()),
        "overall": records(overall),
        "by": {k: records(v) for k, v in result.by.items()},
        "differences": {k: records(v.reset_index(names="metric"))
                        for k, v in result.differences.items()},
        "by_stage": records(result.by_stage),
        "baselines": records(result.baselines),
        "amplification": result.amplification,
        "intersections": records(result.intersections),
        "drift": records(result.drift),
        "adjusted": records(result.adjusted),
        "controls": records(result.controls),
        "findings": [f.to_dict() for f in result.findings],
        "notes": result.notes,
    })
