"""The audit report of a run: ``RUN_DIR/report/`` with

- ``index.html``: one self-contained page (thumbnails and matplotlib charts embedded as
  data URIs, no scripts, a Content-Security-Policy that forbids every network request);
  executive summary, top findings, baseline comparison, per-occupation sections with
  image grids and charts, identity terms, stage drift, adjusted shares, filter results,
  small samples, provenance, methodology and limitations;
- ``report.json``: every number (schema version :data:`SCHEMA_VERSION`);
- ``summary.md``: a short Markdown summary for a pull-request comment;
- ``units.parquet``: the units every number was computed from (one row per image, with
  ``sample_id`` and ``prompt_id``), so any number can be traced and recomputed.

All text from the run (prompts, ids, paths, settings) is escaped by Jinja2's
autoescaping: prompts are untrusted input. Files are written atomically. A run without
annotations gets the image pages and "no annotations yet" in the analysis sections.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit import __version__
from imagen_audit.analyse.pipeline import Analysis, AnalysisConfig, analyse, records, to_json
from imagen_audit.files import write_atomic
from imagen_audit.report import plots
from imagen_audit.report.inputs import RunInputs, collect, seed_text
from imagen_audit.resources import data_dir
from imagen_audit.store.storage import ImageStorage

SCHEMA_VERSION = 1
PERCEIVED_NOTE = ("Attributes in imagen-audit reports (skin tone, gender presentation, age) "
                  "are perceived attributes of generated images, estimated by classifiers, "
                  "never the identity of any person.")
MAX_PROMPTS = 60
SAMPLES_PER_PROMPT = 4
SAMPLES_PER_OCCUPATION = 6
MAX_THUMBNAILS = 600
MAX_OCCUPATION_SECTIONS = 200
TOP_FINDINGS = 10
THUMB_PX = 128


# --------------------------------------------------------------------------- helpers
def _thumbnail(data: bytes) -> str | None:
    """A PNG data URI of a thumbnail, or None when the image does not decode."""
    from PIL import Image

    from imagen_audit.store.images import decode_png

    try:
        img = Image.fromarray(decode_png(data))
    except (OSError, SyntaxError, ValueError):
        return None
    img.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Thumbs:
    """Thumbnails with a global budget, so the page size stays bounded on big runs.

    Images are read through the run's image storage (the run folder or a remote image
    store), which refuses paths that leave it.
    """

    def __init__(self, storage: Any, budget: int = MAX_THUMBNAILS) -> None:
        self.storage = storage
        self.budget = budget

    def __call__(self, rel: str) -> str | None:
        if self.budget <= 0:
            return None
        try:
            data = self.storage.read(rel)
        except (OSError, ValueError):  # missing, unreadable, or a path leaving the root
            return None
        self.budget -= 1
        return _thumbnail(data)


def _fmt_pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.0%}"


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_q(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _ids(ids: list[str], k: int = 3) -> str:
    ids = list(ids)
    return ", ".join(ids[:k]) + (f" (+{len(ids) - k} more)" if len(ids) > k else "")


# --------------------------------------------------------------------------- sections
def _image_sections(inputs: RunInputs, thumbs: _Thumbs) -> tuple[list[dict], bool]:
    images = inputs.images
    prompts = []
    for prompt_id, group in list(images.groupby("prompt_id", sort=False))[:MAX_PROMPTS]:
        rows = []
        for sample_id, sg in list(group.groupby("sample_id", sort=False))[:SAMPLES_PER_PROMPT]:
            first = sg.iloc[0]
            rows.append({"sample_id": sample_id, "seed": seed_text(first["seed"]),
                         "images": [{"stage": r.stage_name, "size": f"{r.width}×{r.height}",
                                     "src": thumbs(r.path)} for r in sg.itertuples()]})
        prompts.append({"prompt_id": prompt_id, "prompt": group["prompt"].iloc[0],
                        "samples": rows})
    return prompts, images["prompt_id"].nunique() > MAX_PROMPTS


def _occupation_sections(result: Analysis, inputs: RunInputs, thumbs: _Thumbs) -> list[dict]:
    units = result.stage_units
    occ_units = units[units["occupation_id"].notna()]
    if "identity_id" in occ_units.columns:
        occ_units = occ_units[occ_units["identity_id"].isna()]
    base = result.baselines.set_index("occupation_id") if not result.baselines.empty else None
    by = result.by.get("occupation_id")
    bands = list(result.config.tone_bands)
    inter = result.intersections
    sections = []
    drawer = plots.OccupationChart(bands)
    try:
        for occ_id, part in list(occ_units.groupby("occupation_id", sort=True))[
                :MAX_OCCUPATION_SECTIONS]:
            sections.append(_occupation_section(occ_id, part, by, base, bands, inter, inputs,
                                                thumbs, drawer))
    finally:
        drawer.close()
    return sections


def _occupation_section(occ_id: Any, part: pd.DataFrame, by: pd.DataFrame | None,
                        base: pd.DataFrame | None, bands: list[str], inter: pd.DataFrame,
                        inputs: RunInputs, thumbs: _Thumbs, drawer: Any) -> dict:
    """One occupation's section: metrics, chart, intersection cells and image grid."""
    metrics = {}
    if by is not None:
        for r in by[by["occupation_id"] == occ_id].itertuples(index=False):
            metrics[r.metric] = (r.value, r.lo, r.hi, r.n, r.small_sample)
    brow = base.loc[occ_id] if base is not None and occ_id in base.index else None
    name = (brow["occupation"] if brow is not None and isinstance(brow["occupation"], str)
            else occ_id)
    if brow is None and not inputs.baselines.empty:
        m = inputs.baselines[inputs.baselines["occupation_id"] == occ_id]
        if len(m) and isinstance(m["occupation"].iloc[0], str):
            name = m["occupation"].iloc[0]
    share = metrics.get("share_female", (np.nan,) * 3 + (0, True))
    baseline = None if brow is None else brow["baseline_women"]
    band_vals = {b: metrics.get(f"share_tone_{b}", (np.nan,) * 3)[:3] for b in bands}
    chart = drawer(share[:3], baseline, band_vals)
    rows = [{"label": label, "value": _fmt(v[0]) if "ita" in key else _fmt_pct(v[0]),
             "interval": (f"{_fmt(v[1])}–{_fmt(v[2])}" if "ita" in key
                          else f"{_fmt_pct(v[1])}–{_fmt_pct(v[2])}"),
             "n": v[3], "small": v[4]}
            for key, label in (("share_female", "share perceived female"),
                               *[(f"share_tone_{b}", f"share tone band {b}") for b in bands],
                               ("face_detection_rate", "face-detection rate"),
                               ("gender_abstention_rate", "gender abstention rate"),
                               ("tone_abstention_rate", "tone abstention rate"),
                               ("mean_ita", "mean ITA°"))
            for v in [metrics.get(key)] if v is not None]
    cells = inter[inter["group"] == str(occ_id)] if not inter.empty else inter
    samples = []
    for r in part.head(SAMPLES_PER_OCCUPATION).itertuples(index=False):
        label = r.gender_label if isinstance(r.gender_label, str) else (
            "no face" if not r.face_detected else "gender unknown")
        tone = "" if pd.isna(r.monk_tone) else f", Monk {int(r.monk_tone)}"
        samples.append({"src": thumbs(r.path) if isinstance(r.path, str) else None,
                        "sample_id": r.sample_id, "caption": f"{label}{tone}",
                        "prompt": r.prompt if isinstance(getattr(r, "prompt", None), str)
                        else r.prompt_id})
    return {
        "occupation_id": occ_id, "name": name, "chart": chart, "rows": rows,
        "n": len(part), "prompt_ids": sorted(set(map(str, part["prompt_id"]))),
        "prompts": sorted(set(map(str, part["prompt"]))) if "prompt" in part else [],
        "baseline": None if baseline is None else _fmt_pct(baseline),
        "gap": None if brow is None else _fmt(brow["gap_baseline"]),
        "q": None if brow is None else _fmt_q(brow["q_baseline"]),
        "small": bool(share[4]),
        "cells": [{"gender": c.gender_label, "band": c.tone_band, "count": c.count,
                   "share": _fmt_pct(c.share)} for c in cells.itertuples(index=False)],
        "samples": samples}


def _summary_lines(result: Analysis, inputs: RunInputs) -> list[str]:
    o = result.overall
    lines = []
    n_units = int((result.units["stage"] == result.stage).sum())
    lines.append(f"{n_units} annotated images at stage {result.stage} "
                 f"({result.units['sample_id'].nunique()} samples) by annotator "
                 f"{result.annotator!s}.")
    fd = o.loc["face_detection_rate"]
    lines.append(f"A face was detected in {fd['value']:.0%} of images "
                 f"(95% interval {fd['lo']:.0%}–{fd['hi']:.0%}).")
    sf = o.loc["share_female"]
    if sf["n"]:
        lines.append(f"{sf['value']:.0%} of faces with a perceived gender were perceived "
                     f"female (95% interval {sf['lo']:.0%}–{sf['hi']:.0%}, n = {int(sf['n'])}).")
    b = result.baselines
    if not b.empty:
        tested = b[~b["small_sample"].astype(bool)]
        sig = tested[tested["q_baseline"] < result.config.alpha]
        lines.append(f"{len(b)} occupations compared with the labour baseline; {len(tested)} "
                     f"have enough images for a claim; {len(sig)} differ significantly "
                     f"(Benjamini–Hochberg, q < {result.config.alpha}).")
        amp = result.amplification
        if amp.get("n_occupations") and not np.isnan(amp.get("mean_amplification", np.nan)):
            lines.append(f"Mean stereotype amplification {amp['mean_amplification']:+.2f} "
                         f"(95% interval {_fmt(amp['lo'])} to {_fmt(amp['hi'])}); "
                         f"{amp['share_amplified']:.0%} of occupations pushed further in the "
                         f"baseline's direction; slope of model share on baseline "
                         f"{_fmt(amp['slope'])} (1 = follows the baseline).")
    lines.append(f"{len(result.findings)} findings meet the rules (n ≥ {result.config.min_n}, "
                 f"q < {result.config.alpha}, effect ≥ {result.config.min_effect}).")
    return lines


def annotator_accuracy(validation: Any) -> dict[str, Any] | None:
    """The annotators' measured accuracy per group from a ``validate-annotators`` record (a
    dict or a path): perceived-gender accuracy and face-found rate, overall, per labelled
    group and per tone band, and one line of each to print next to every finding."""
    if validation is None:
        return None
    if not isinstance(validation, dict):
        try:
            validation = json.loads(Path(validation).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return None
    gender = validation.get("gender") if isinstance(validation, dict) else None
    if not isinstance(gender, dict) or not isinstance(gender.get("overall"), dict):
        return None

    def blocks(key: str) -> dict[str, dict]:
        part = gender.get(key) or {}
        return {str(k): b for k, b in part.items() if isinstance(b, dict)}

    def line(measure: str) -> str:
        overall = gender["overall"].get(measure)
        groups = {k: b.get(measure) for k, b in blocks("groups").items()
                  if b.get(measure) is not None}
        text = _fmt_pct(overall)
        if groups:
            low = min(groups, key=groups.__getitem__)
            text += (f" (by group {_fmt_pct(groups[low])}–{_fmt_pct(max(groups.values()))}, "
                     f"lowest {low})")
        return text

    rows = [{"group": name, "kind": kind, "n": b.get("n"),
             "faces": _fmt_pct(b.get("face_found_rate")), "coverage": _fmt_pct(b.get("coverage")),
             "accuracy": _fmt_pct(b.get("accuracy")),
             "ece": _fmt((b.get("calibration") or {}).get("ece"))}
            for kind, part in (("overall", {"overall": gender["overall"]}),
                               ("labelled group", blocks("groups")),
                               ("tone band", blocks("by_tone_band")))
            for name, b in part.items()]
    return {"gender": line("accuracy"), "faces": line("face_found_rate"), "rows": rows,
            "annotator": validation.get("annotator"), "preset": validation.get("preset"),
            "cross_fitted": bool(validation.get("cross_fitted"))}


def _accuracy_note(metric: str, acc: dict[str, Any] | None) -> str:
    if acc is None:
        return "not validated"
    if "female" in metric or "gender" in metric:
        return f"gender accuracy {acc['gender']}; faces found {acc['faces']}"
    return f"faces found {acc['faces']}"


def _finding_rows(result: Analysis, limit: int | None = TOP_FINDINGS,
                  accuracy: dict[str, Any] | None = None) -> list[dict]:
    rows = []
    for f in result.findings[:limit]:
        pct = f.metric != "ita"
        fmt = _fmt_pct if pct else (lambda x: _fmt(x, 1))
        rows.append({"title": f.title, "kind": f.kind, "value": fmt(f.value),
                     "interval": f"{fmt(f.lo)}–{fmt(f.hi)}", "n": f.n, "q": _fmt_q(f.q),
                     "prompt_ids": _ids(f.prompt_ids), "n_samples": len(f.sample_ids),
                     "annotator_accuracy": _accuracy_note(f.metric, accuracy)})
    return rows


def _baseline_rows(result: Analysis) -> list[dict]:
    return [{"occupation_id": r.occupation_id,
             "occupation": r.occupation if isinstance(r.occupation, str) else "",
             "n": r.n, "share": _fmt_pct(r.share_female),
             "interval": f"{_fmt_pct(r.lo)}–{_fmt_pct(r.hi)}",
             "baseline": _fmt_pct(r.baseline_women), "gap": _fmt(r.gap_baseline),
             "q": _fmt_q(r.q_baseline), "amp": _fmt(r.amplification),
             "q_parity": _fmt_q(r.q_parity), "small": bool(r.small_sample)}
            for r in result.baselines.itertuples(index=False)]


def _rate_rows(table: pd.DataFrame | None, key: str) -> list[dict]:
    if table is None:
        return []
    wide = table.pivot_table(index=key, columns="metric", values="value", aggfunc="first")
    n = table[table["metric"] == "face_detection_rate"].set_index(key)["n"]
    small = table[table["metric"] == "face_detection_rate"].set_index(key)["small_sample"]
    rows = []
    for k in wide.index:
        w = wide.loc[k]
        rows.append({"key": k, "n": int(n.get(k, 0)), "small": bool(small.get(k, True)),
                     "detection": _fmt_pct(w.get("face_detection_rate")),
                     "gender_abst": _fmt_pct(w.get("gender_abstention_rate")),
                     "tone_abst": _fmt_pct(w.get("tone_abstention_rate")),
                     "female": _fmt_pct(w.get("share_female"))})
    return rows


def _drift_rows(result: Analysis) -> list[dict]:
    d = result.drift
    if d.empty:
        return []
    keep = (d["group"] == "(all)") | ((d["q"] < result.config.alpha) & ~d["small_sample"])
    return [{"pair": f"{r.stage_from}→{r.stage_to}", "measure": r.measure, "group": r.group,
             "n": r.n_pairs, "value": _fmt(r.value, 3), "interval": f"{_fmt(r.lo, 3)} to "
             f"{_fmt(r.hi, 3)}", "q": _fmt_q(r.q), "small": bool(r.small_sample)}
            for r in d[keep].itertuples(index=False)]


def _filter_sections(inputs: RunInputs) -> list[dict]:
    return [{"name": f.name, "source": f.source,
             "scalars": [{"key": k, "value": _fmt(v, 3) if isinstance(v, float) else v}
                         for k, v in f.scalars.items()],
             "tables": [{"name": k, "rows": [{"key": r["key"], "value": _fmt(r["value"], 3)
                                              if isinstance(r["value"], float) else r["value"]}
                                             for r in rows]} for k, rows in f.tables.items()],
             "plot": plots.filter_sweep(f.sweep),
             "who_pays": plots.filter_who_pays(f.sweep)} for f in inputs.filters]


# --------------------------------------------------------------------------- assembly
def build_context(inputs: RunInputs, result: Analysis | None,
                  annotation_error: str | None = None) -> dict[str, Any]:
    """Everything the template shows."""
    samples, images = inputs.samples, inputs.images
    notices = sorted({rec.get("generator", {}).get("notice") for rec in
                      inputs.provenance.values() if rec.get("generator", {}).get("notice")})
    thumbs = _Thumbs(inputs.storage if inputs.storage is not None
                     else ImageStorage(inputs.run_dir))
    ctx: dict[str, Any] = {
        "version": __version__, "run": str(inputs.run_dir), "perceived_note": PERCEIVED_NOTE,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "notices": notices, "problems": inputs.problems,
        "counts": samples["status"].value_counts().to_dict() if len(samples) else {},
        "n_samples": len(samples), "n_images": len(images),
        "n_prompts": samples["prompt_id"].nunique() if len(samples) else 0,
        "stages": [{"stage": s.stage, "name": s.name,
                    "n": int((images["stage"] == s.stage).sum())} for s in inputs.stages],
        "failed": (samples[samples["status"] == "failed"][["prompt_id", "sample_index", "error"]]
                   .to_dict("records") if len(samples) else []),
        "provenance": [json.dumps(rec, indent=2, sort_keys=True, default=str)
                       for rec in inputs.provenance.values()],
        "annotated": result is not None, "annotation_error": annotation_error,
        "filters": _filter_sections(inputs),
        "validation_source": inputs.validation_source,
        "mitigation": (json.dumps(inputs.mitigation, indent=2, sort_keys=True)
                       if inputs.mitigation and inputs.mitigation.get("mitigation", 1) is not None
                       else None),
    }
    if result is None:
        ctx["prompts"], ctx["truncated"] = _image_sections(inputs, thumbs)
        return ctx
    base = result.baselines
    accuracy = annotator_accuracy(inputs.validation)
    ctx |= {
        "config": result.config.to_dict(), "stage": result.stage, "notes": result.notes,
        "summary": _summary_lines(result, inputs),
        "findings": _finding_rows(result, accuracy=accuracy),
        "n_findings": len(result.findings), "annotator_accuracy": accuracy,
        "baseline_rows": _baseline_rows(result),
        "baseline_scatter": plots.baseline_scatter(base) if not base.empty else None,
        "baseline_forest": plots.baseline_forest(base) if not base.empty else None,
        "occupations": _occupation_sections(result, inputs, thumbs),
        "identity_rows": _rate_rows(result.by.get("identity_id"), "identity_id"),
        "identity_plot": (plots.rate_bars(result.by["identity_id"], "identity_id",
                                          "face_detection_rate", "face-detection rate")
                          if "identity_id" in result.by else None),
        "prompt_rows": sorted(_rate_rows(result.by.get("prompt_id"), "prompt_id"),
                              key=lambda r: r["detection"])[:40],
        "control_rows": [
            {"term": r.identity_id, "attribute": r.attribute, "expected": r.expected,
             "n_images": r.n_images, "n": r.n_labelled, "share": _fmt_pct(r.share),
             "interval": f"{_fmt_pct(r.lo)}–{_fmt_pct(r.hi)}", "small": bool(r.small_sample)}
            for r in result.controls.itertuples(index=False)],
        "drift_rows": _drift_rows(result),
        "drift_plot": plots.drift_plot(result.drift) if not result.drift.empty else None,
        "adjusted_rows": [] if result.adjusted is None else [
            {"group": r.group, "label": r.label, "n": r.n, "observed": _fmt_pct(r.observed),
             "adjusted": _fmt_pct(r.adjusted), "interval": f"{_fmt_pct(r.lo)}–{_fmt_pct(r.hi)}"}
            for r in result.adjusted.itertuples(index=False)],
        "intersections_all": [
            {"gender": r.gender_label, "band": r.tone_band, "count": r.count,
             "share": _fmt_pct(r.share), "interval": f"{_fmt_pct(r.lo)}–{_fmt_pct(r.hi)}"}
            for r in result.intersections[result.intersections["group"] == "(all)"]
            .itertuples(index=False)],
        "small_groups": [{"grouping": g, "key": r[g], "n": int(r["n"])}
                         for g in ("occupation_id", "identity_id", "prompt_id")
                         for _, r in result.small_groups(g).head(50).iterrows()],
        "prompts": [], "truncated": False,
    }
    return ctx


def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("reports") / "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("run.html.j2").render(**context)


def report_json(inputs: RunInputs, result: Analysis | None,
                annotation_error: str | None = None) -> dict[str, Any]:
    """All numbers, machine-readable. ``schema_version`` changes on incompatible edits."""
    return {
        "schema_version": SCHEMA_VERSION, "imagen_audit_version": __version__,
        "run": str(inputs.run_dir),
        "counts": {"prompts": int(inputs.samples["prompt_id"].nunique())
                   if len(inputs.samples) else 0, "samples": len(inputs.samples),
                   "images": len(inputs.images),
                   "by_status": {str(k): int(v) for k, v in
                                 inputs.samples["status"].value_counts().items()}
                   if len(inputs.samples) else {}},
        "stages": [{"stage": s.stage, "name": s.name} for s in inputs.stages],
        "annotated": result is not None, "annotation_error": annotation_error,
        "analysis": to_json(result) if result is not None else None,
        "filters": [{"name": f.name, "source": f.source, "metrics": f.metrics}
                    for f in inputs.filters],
        "validation_source": inputs.validation_source,
        "perceived_note": PERCEIVED_NOTE,
    }


def markdown_summary(inputs: RunInputs, result: Analysis | None) -> str:
    """A short Markdown summary for a pull-request comment (plain text, no HTML)."""
    def md(text: Any) -> str:  # neutralise Markdown/HTML in run-provided text
        s = str(text)
        for ch in "\\`*_[]<>|#":
            s = s.replace(ch, "\\" + ch)
        return s

    lines = ["## imagen-audit report", "",
             # escaped plain text, not a code span (Markdown shows backslashes inside one)
             f"Run {md(inputs.run_dir.name)}: {inputs.samples['prompt_id'].nunique() if len(inputs.samples) else 0} prompts, "  # noqa: E501
             f"{len(inputs.samples)} samples, {len(inputs.images)} images.", ""]
    if result is None:
        lines += ["No annotations yet: no statistics. Run `imagen-audit annotate` first.", ""]
    else:
        lines += [f"- {md(s)}" for s in _summary_lines(result, inputs)] + [""]
        if result.findings:
            lines += ["| finding | value | 95% interval | n | q |",
                      "| --- | --- | --- | --- | --- |"]
            lines += [f"| {md(f['title'])} | {f['value']} | {f['interval']} | {f['n']} | "
                      f"{f['q']} |" for f in _finding_rows(result, 5)]
            lines.append("")
    lines += [f"_{PERCEIVED_NOTE}_", ""]
    return "\n".join(lines)





def run_analysis(inputs: RunInputs, config: AnalysisConfig | None = None
                 ) -> tuple[Analysis | None, str | None]:
    """Analyse a run's annotations; (None, reason) when there is nothing to analyse."""
    from imagen_audit.analyse.adjust import ValidationFileError

    if inputs.annotations is None:
        return None, None
    try:
        try:
            return analyse(inputs.annotations, inputs.baselines, validation=inputs.validation,
                           config=config), None
        except ValidationFileError as exc:
            result = analyse(inputs.annotations, inputs.baselines, config=config)
            result.notes.append(f"annotator validation not used: {exc}")
            return result, None
    except KeyError as exc:  # annotations that do not match the contract
        return None, f"annotations could not be analysed: {exc}"


def write_report_files(inputs: RunInputs, out_dir: Path,
                       config: AnalysisConfig | None = None) -> Path:
    """Analyse and write index.html, report.json, summary.md (and units.parquet)."""
    result, error = run_analysis(inputs, config)
    html = render(build_context(inputs, result, error))
    write_atomic(out_dir / "report.json",
                  json.dumps(report_json(inputs, result, error), indent=1, allow_nan=False))
    write_atomic(out_dir / "summary.md", markdown_summary(inputs, result))
    if result is not None:
        buf = io.BytesIO()
        units = result.units.copy()
        for col in units.columns:
            if units[col].dtype == object:
                units[col] = units[col].map(lambda v: None if v is None or
                                            (isinstance(v, float) and np.isnan(v)) else str(v))
        units.to_parquet(buf, index=False)
        write_atomic(out_dir / "units.parquet", buf.getvalue())
    out = out_dir / "index.html"
    write_atomic(out, html)
    return out


def write_report(run_dir: str | Path, *, validation: Any = None,
                 config: AnalysisConfig | None = None) -> Path:
    """Write ``RUN_DIR/report/index.html`` (and report.json, summary.md); return its path."""
    inputs = collect(run_dir, validation=validation)
    return write_report_files(inputs, Path(run_dir) / "report", config)


__all__ = ["SCHEMA_VERSION", "build_context", "markdown_summary", "records", "render",
           "report_json", "write_report", "write_report_files"]
