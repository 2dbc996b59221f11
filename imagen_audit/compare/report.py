"""The comparison's outputs, in ``--out DIR``:

- ``index.html``: one self-contained page in the report's style (thumbnails as data URIs,
  no scripts, a Content-Security-Policy forbidding every network request): what got worse,
  what got better, every metric by family, and side-by-side image grids of the same prompt
  and seed from both runs (read through each run's image storage);
- ``compare.json``: every number (schema ``imagen-audit/compare``, :data:`SCHEMA_VERSION`);
- ``summary.md``: a short Markdown summary for a pull-request comment;
- ``changes.csv``: the changes table.

All text from the runs is escaped (Jinja2 autoescaping in HTML, backslashes in Markdown).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit import __version__
from imagen_audit.analyse.pipeline import AnalysisConfig, records
from imagen_audit.compare.inputs import load_run
from imagen_audit.compare.metrics import Comparison, compare
from imagen_audit.errors import AuditError
from imagen_audit.files import write_atomic
from imagen_audit.report.html import PERCEIVED_NOTE, _Thumbs
from imagen_audit.report.inputs import RunInputs
from imagen_audit.resources import data_dir
from imagen_audit.store.storage import ImageStorage

SCHEMA = "imagen-audit/compare"
SCHEMA_VERSION = 1
GRID_PROMPTS = 12
GRID_SEEDS = 4
TOP_ROWS = 25
FAMILY_TITLES = {
    "overall": "Overall (headline stage)", "occupation_id": "By occupation",
    "baselines": "Occupations against the labour baseline and parity",
    "amplification": "Stereotype amplification across occupations",
    "identity_id": "By identity term", "family": "By probe family", "prompt_id": "By prompt",
    "stage": "By cascade stage", "drift": "Stage drift",
    "prompt_filter": "Prompt filters", "image_filter": "Output-image filters",
}


class CompareError(AuditError):
    """Two runs cannot be compared (not annotated, nothing in common)."""


# --------------------------------------------------------------------------- running
def compare_runs(baseline_dir: str | Path, candidate_dir: str | Path, *,
                 config: AnalysisConfig | None = None, n_perm: int = 999,
                 validation: Any = None) -> tuple[Comparison, RunInputs, RunInputs]:
    """Load two run folders and compare them (``validation``: for both runs; default each
    run's own)."""
    config = config or AnalysisConfig()
    in0, f0 = load_run(baseline_dir, validation=validation)
    in1, f1 = load_run(candidate_dir, validation=validation)
    bare = [(label, i) for label, i in (("baseline", in0), ("candidate", in1))
            if i.annotations is None]
    if bare:
        # Filter results need no faces: compare them alone, or say why nothing can be.
        from imagen_audit.compare.metrics import compare_filters_only

        try:
            result = compare_filters_only(f0, f1, config=config)
        except ValueError:
            label, inputs = bare[0]
            raise CompareError(f"{inputs.run_dir}: the {label} run has no annotations (run "
                               "`imagen-audit annotate` on it first), and the runs share no "
                               "filter result to compare without them") from None
        result.runs = {"baseline": _run_info(in0), "candidate": _run_info(in1)}
        return result, in0, in1
    base_table = in0.baselines if len(in0.baselines) else in1.baselines
    try:
        result = compare(in0.annotations, in1.annotations, base_table, config=config,
                         baseline_filters=f0, candidate_filters=f1, n_perm=n_perm)
    except (KeyError, ValueError) as exc:
        raise CompareError(f"cannot compare {baseline_dir} with {candidate_dir}: "
                           f"{exc}") from None
    result.runs = {"baseline": _run_info(in0), "candidate": _run_info(in1)}
    p0 = set(in0.samples["prompt_id"]) if len(in0.samples) else set()
    p1 = set(in1.samples["prompt_id"]) if len(in1.samples) else set()
    not_annotated = sorted((p0 & p1) - set(result.stacked["prompt_id"]))
    if not_annotated:
        result.notes.append(f"{len(not_annotated)} prompts both runs planned have no "
                            "annotations in one of them: left out")
    result.left_out["not_annotated_prompts"] = not_annotated[:200]
    return result, in0, in1


def _run_info(inputs: RunInputs) -> dict[str, Any]:
    s = inputs.samples
    return {"run": str(inputs.run_dir), "name": inputs.run_dir.name,
            "samples": len(s), "prompts": int(s["prompt_id"].nunique()) if len(s) else 0,
            "images": len(inputs.images),
            "stages": [{"stage": st.stage, "name": st.name} for st in inputs.stages],
            "mitigation": inputs.mitigation,
            "generators": sorted({_generator_name(rec) for rec in
                                  inputs.provenance.values()} - {""}),
            "notices": sorted({g["notice"] for g in (rec.get("generator") for rec in
                                                     inputs.provenance.values())
                               if isinstance(g, dict) and g.get("notice")})}


def _generator_name(rec: dict[str, Any]) -> str:
    g = rec.get("generator")
    if isinstance(g, dict):
        return str(g.get("name") or g.get("generator") or g.get("model") or "")
    return str(g or rec.get("model") or "")


# --------------------------------------------------------------------------- formatting
def _is_nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def fmt_value(metric: str, x: Any, signed: bool = False) -> str:
    if _is_nan(x):
        return "–"
    spec = "+" if signed else ""
    if "ita" in metric:
        return f"{x:{spec}.1f}°"
    return f"{x:{spec}.3f}"


def fmt_q(x: Any) -> str:
    if _is_nan(x):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _describe(r: pd.Series | Any) -> str:
    group = "" if r["group"] == "(all)" else f"{r['group']}: "
    return f"{group}{r['metric'].replace('_', ' ')}"


def change_rows(t: pd.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    rows = []
    for _, r in (t if limit is None else t.head(limit)).iterrows():
        m = r["metric"]
        rows.append({"family": r["family"], "group": r["group"], "metric": m,
                     "what": _describe(r), "baseline": fmt_value(m, r["baseline"]),
                     "candidate": fmt_value(m, r["candidate"]),
                     "difference": fmt_value(m, r["difference"], True),
                     "interval": f"{fmt_value(m, r['lo'], True)} to "
                                 f"{fmt_value(m, r['hi'], True)}",
                     "n": f"{r['n_baseline']} / {r['n_candidate']}", "pairs": r["n_pairs"],
                     "p": fmt_q(r["p"]), "q": fmt_q(r["q"]), "q_all": fmt_q(r["q_all"]),
                     "small": bool(r["small_sample"]), "significant": bool(r["significant"]),
                     "headline": bool(r["headline"]), "direction": r["direction"],
                     "test": r["test"]})
    return rows


def summary_lines(c: Comparison) -> list[str]:
    ch = c.changes
    tested = ch["p"].notna()
    pi = c.pairing
    if pi.get("filter_only"):
        lines = ["Compared the runs' filter results only (no annotations: no image "
                 "statistics)."]
    else:
        lines = [f"Compared {len(c.stacked['prompt_id'].unique())} prompts at stage {c.stage} "
                 f"({pi['n_baseline_units']} baseline and {pi['n_candidate_units']} candidate "
                 "images).",
                 (f"{pi['n_pairs']} images pair up by prompt and seed: their changes are "
                  "tested sample by sample." if pi["paired"] else
                  "No image shares a prompt and seed: the runs are compared as independent "
                  "samples.")]
    lines += [f"{int(tested.sum())} tests of no change; {int(ch['headline'].sum())} are "
              f"significant after Benjamini–Hochberg across the whole comparison (q < "
              f"{c.alpha}), {int(ch['significant'].sum())} within their family.",
              f"Worse: {len(c.worse())}; better: {len(c.better())}; changed with no better "
              f"side: {len(c.changed())}."]
    if c.no_change:
        lines.append("No significant change: the candidate cannot be told apart from the "
                     "baseline at this sample size.")
    return lines


# --------------------------------------------------------------------------- image grids
def _caption(r: Any) -> str:
    if not r.face_detected:
        return "no face"
    label = r.gender_label if isinstance(r.gender_label, str) else "gender unknown"
    tone = "" if pd.isna(r.monk_tone) else f", Monk {int(r.monk_tone)}"
    return f"{label}{tone}"


def image_grids(c: Comparison, in0: RunInputs, in1: RunInputs) -> list[dict[str, Any]]:
    """Same prompt (and seed, where the runs share seeds) side by side, both runs."""
    units = c.stacked[c.stacked["stage"] == c.stage]
    ch = c.changes[c.changes["family"] == "prompt_id"]
    ranked = ch.assign(_a=ch["difference"].abs()).sort_values(
        ["headline", "significant", "_a"], ascending=False)
    order = list(dict.fromkeys(list(ranked.loc[ranked["significant"], "group"])
                               + sorted(units["prompt_id"].astype(str).unique())))
    thumbs = [_Thumbs(i.storage if i.storage is not None else ImageStorage(i.run_dir),
                      budget=GRID_PROMPTS * GRID_SEEDS) for i in (in0, in1)]
    grids = []
    for pid in order[:GRID_PROMPTS]:
        part = units[units["prompt_id"].astype(str) == pid]
        both = part.groupby("cluster")["run"].nunique()
        pairs = [cl for cl in both.index if both[cl] == 2][:GRID_SEEDS]
        rows = []
        if pairs:
            for cl in pairs:
                u = part[part["cluster"] == cl].sort_values("run")
                rows.append([u.iloc[0], u.iloc[1]])
        else:
            a = part[part["run"] == 0].head(GRID_SEEDS)
            b = part[part["run"] == 1].head(GRID_SEEDS)
            rows = [[x, y] for x, y in zip([r for _, r in a.iterrows()],
                                           [r for _, r in b.iterrows()], strict=False)]
        cells = []
        for pair in rows:
            cells.append([{"src": thumbs[k](r["path"]) if isinstance(r["path"], str) else None,
                           "seed": r["seed"], "caption": _caption(r),
                           "sample_id": r["sample_id"]} for k, r in enumerate(pair)])
        prompt = part["prompt"].iloc[0] if "prompt" in part and len(part) else pid
        grids.append({"prompt_id": pid, "prompt": prompt, "paired": bool(pairs),
                      "rows": cells})
    return grids


# --------------------------------------------------------------------------- outputs
def build_context(c: Comparison, in0: RunInputs, in1: RunInputs) -> dict[str, Any]:
    ch = c.changes
    families = []
    for fam, title in FAMILY_TITLES.items():
        t = ch[ch["family"] == fam]
        if t.empty:
            continue
        if fam == "prompt_id":
            t = t[t["significant"] | (t["metric"] == "share_female")]
        t = t.sort_values(["significant", "p"], ascending=[False, True], na_position="last")
        families.append({"key": fam, "title": title, "rows": change_rows(t, None if fam in (
            "overall", "stage", "amplification", "drift", "prompt_filter", "image_filter")
            else 60 if fam != "baselines" else 120), "n": len(t)})
    return {
        "version": __version__, "perceived_note": PERCEIVED_NOTE,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": c.runs, "summary": summary_lines(c), "notes": c.notes,
        "left_out": c.left_out, "pairing": c.pairing, "config": c.config.to_dict(),
        "stage": c.stage, "alpha": c.alpha,
        "worse": change_rows(c.worse(), TOP_ROWS), "better": change_rows(c.better(), TOP_ROWS),
        "changed": change_rows(c.changed(), TOP_ROWS),
        "family_only": change_rows(ch[ch["significant"] & ~ch["headline"]].sort_values("q"),
                                   TOP_ROWS),
        "families": families, "grids": image_grids(c, in0, in1),
        "problems": in0.problems + in1.problems,
        "mitigations": {k: json.dumps(m, indent=1, sort_keys=True)
                        for k, m in ((k, v.get("mitigation")) for k, v in c.runs.items())
                        if isinstance(m, dict) and m and m.get("mitigation", 1) is not None},
    }


def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("reports") / "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("compare.html.j2").render(**context)


def to_json(c: Comparison) -> dict[str, Any]:
    """Every number of the comparison, machine-readable."""
    from imagen_audit.analyse.pipeline import _jsonable

    return _jsonable({
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "imagen_audit_version": __version__, "runs": c.runs, "stage": c.stage,
        "config": c.config.to_dict(), "pairing": c.pairing, "left_out": c.left_out,
        "notes": c.notes, "no_change": c.no_change,
        "counts": {"tests": int(c.changes["p"].notna().sum()),
                   "significant": int(c.changes["significant"].sum()),
                   "headline": int(c.changes["headline"].sum()),
                   "worse": len(c.worse()), "better": len(c.better()),
                   "changed": len(c.changed())},
        "changes": records(c.changes),
        "perceived_note": PERCEIVED_NOTE,
    })


def markdown_summary(c: Comparison) -> str:
    def md(text: Any) -> str:
        s = str(text)
        for ch in "\\`*_[]<>|#":
            s = s.replace(ch, "\\" + ch)
        return s

    b, k = c.runs.get("baseline", {}), c.runs.get("candidate", {})
    lines = ["## imagen-audit comparison", "",
             f"Baseline `{md(b.get('name', 'baseline'))}` → candidate "
             f"`{md(k.get('name', 'candidate'))}`.", ""]
    lines += [f"- {md(s)}" for s in summary_lines(c)] + [""]
    for title, t in (("What got worse", c.worse()), ("What got better", c.better()),
                     ("Changed (no better side)", c.changed())):
        if t.empty:
            continue
        lines += [f"### {title}", "", "| change | baseline | candidate | difference (95% "
                  "interval) | q |", "| --- | --- | --- | --- | --- |"]
        for r in change_rows(t, 10):
            lines.append(f"| {md(r['what'])} | {r['baseline']} | {r['candidate']} | "
                         f"{r['difference']} ({r['interval']}) | {r['q_all']} |")
        lines.append("")
    if c.notes:
        lines += [f"- note: {md(n)}" for n in c.notes] + [""]
    lines += [f"_{PERCEIVED_NOTE}_", ""]
    return "\n".join(lines)


def write_comparison(c: Comparison, in0: RunInputs, in1: RunInputs, out_dir: str | Path
                     ) -> Path:
    """Write index.html, compare.json, summary.md and changes.csv; return the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "compare.json", json.dumps(to_json(c), indent=1, allow_nan=False))
    write_atomic(out / "summary.md", markdown_summary(c))
    write_atomic(out / "changes.csv", c.changes.to_csv(index=False))
    page = out / "index.html"
    write_atomic(page, render(build_context(c, in0, in1)))
    return page
