"""The audit report: self-contained, prompts shown as text, every section present, and it
renders in a real headless browser (Debian's chromium driven by playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit.analyse.synthetic import synthetic_annotations
from imagen_audit.cli import main
from imagen_audit.generate.runner import generate_run
from imagen_audit.report import inputs as report_inputs
from imagen_audit.report.html import SCHEMA_VERSION, write_report_files
from imagen_audit.report.inputs import inputs_from_tables
from imagen_audit.store import RunStore

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _folder_run(tmp_path: Path, n: int = 2) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    lines = ["file,prompt,seed,occupation_id"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(src / f"{i}.png")
        prompt = EVIL.replace('"', '""') if i == 0 else "a photo of a baker"
        lines.append(f'{i}.png,"{prompt}",{i + 1},{"occ00" if i % 2 == 0 else "occ01"}')
    (src / "manifest.csv").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    generate_run(run, model=f"folder:{src}", probes=None, progress=False)
    return run


def _annotations_for(run: Path, seed: int = 0) -> pd.DataFrame:
    """Synthetic annotations for a real run's images (one face per image)."""
    with RunStore.open_readonly(run) as store:
        images = store.images_table()
    rng = np.random.default_rng(seed)
    n = len(images)
    t = images.copy()
    t["annotator"] = "synthetic"
    t["n_faces"] = 1
    t["face_index"] = 0
    t["box_left"], t["box_top"], t["box_right"], t["box_bottom"] = 1.0, 1.0, 30.0, 30.0
    t["detection_score"] = 0.9
    t["perceived_gender"] = rng.choice(["female", "male", "unknown"], n, p=[0.45, 0.45, 0.1])
    t["gender_probability"] = 0.8
    t["p_female"] = 0.5
    t["monk_tone"] = rng.integers(1, 11, n)
    t["ita"] = rng.normal(30, 10, n)
    t["ita_category"] = "intermediate"
    t["tone_confidence"] = 0.7
    return t


def test_report_without_annotations_escapes_prompts_and_embeds_everything(
        tmp_path: Path) -> None:
    run = _folder_run(tmp_path)
    assert main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "perceived attributes" in html and "never the identity" in html
    assert "No annotations yet" in html and "No filter evaluation in this run" in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no network requests
    assert "Content-Security-Policy" in html
    doc = json.loads((run / "report" / "report.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["annotated"] is False
    assert doc["counts"]["samples"] == 2
    assert "No annotations yet" in (run / "report" / "summary.md").read_text()


def _annotated_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = _folder_run(tmp_path, n=6)
    ann = _annotations_for(run)
    monkeypatch.setattr(report_inputs, "read_annotations", lambda store: ann)
    (run / "filters").mkdir()
    (run / "filters" / "eval.json").write_text(json.dumps({
        "name": "default-policy", "metrics": {
            "recall": 0.91, "fpr": 0.04, "roc_auc": 0.97,
            "recall_by_category": {"violence": 0.95, "<b>hate</b>": 0.8},
            "threshold_sweep": [{"threshold": t, "fpr": f, "recall": r} for t, f, r in
                                [(0.9, 0.01, 0.7), (0.5, 0.05, 0.9), (0.1, 0.3, 0.99)]]}}))
    (run / "filters" / "broken.json").write_text("{not json")
    assert main(["report", str(run)]) == 0
    return run


def test_annotated_report_has_every_section(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run = _annotated_report(tmp_path, monkeypatch)
    html = (run / "report" / "index.html").read_text()
    assert "<script>" not in html and "<b>hate</b>" not in html
    for heading in ("Executive summary", "Top findings", "Occupations against the labour",
                    "Stage drift", "Misclassification-adjusted", "Safety filters",
                    "Provenance", "Methodology and limitations"):
        assert heading in html
    assert "default-policy" in html and "broken.json" in html  # shown, and its problem
    assert "Who pays at each threshold" not in html  # its sweep names no further set
    assert "too few images for a claim" in html  # 3 images per occupation
    assert "annotated images at stage" in html
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    doc = json.loads((run / "report" / "report.json").read_text())
    assert doc["annotated"] and doc["analysis"]["n_units"] == 6
    assert doc["filters"][0]["metrics"]["roc_auc"] == 0.97
    units = pd.read_parquet(run / "report" / "units.parquet")
    assert len(units) == 6 and {"sample_id", "prompt_id", "gender_label"} <= set(units)
    md = (run / "report" / "summary.md").read_text()
    assert md.startswith("## imagen-audit report") and "<script>" not in md


def test_report_from_tables_lists_findings_and_adjusted_shares(tmp_path: Path) -> None:
    ann, base = synthetic_annotations(4, 60, share_female={"occ00": 0.7}, stages=(1, 2),
                                      ita_shift=8.0, seed=1)
    ann.loc[ann["prompt_id"] == "occupations/face/occ01", "prompt"] = EVIL
    validation = {"gender": {"labels": ["female", "male"],
                             "overall": {"confusion": [[80, 20], [10, 90]]}}}
    out = write_report_files(inputs_from_tables(tmp_path, ann, base, validation=validation),
                             tmp_path / "report")
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "occupation occ00: 70%" in html or "occupation occ00:" in html
    assert "Corrected with the confusion matrices" in html
    assert "no image file" in html  # synthetic paths: placeholders, never broken <img>
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    kinds = {f["kind"] for f in doc["analysis"]["findings"]}
    assert {"baseline_gap", "drift_ita"} <= kinds
    assert "| finding |" in (tmp_path / "report" / "summary.md").read_text()


def test_report_renders_in_headless_chromium(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (make chromium)")
        pytest.skip("chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    run = _annotated_report(tmp_path, monkeypatch)
    page_path = run / "report" / "index.html"
    artefacts = Path(os.environ.get("IMAGEN_AUDIT_ARTIFACTS") or tmp_path / "artefacts")
    artefacts.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            widths = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            dialogs = page.evaluate("typeof window.__x")
            text = page.inner_text("body")
            page.screenshot(path=str(artefacts / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [], errors
    assert widths and all(w > 0 for w in widths), widths
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert dialogs == "undefined"
    assert '<script>alert("x")</script>' in text  # the prompt shows as text
    assert (artefacts / "report.png").stat().st_size > 10_000


def test_seeds_and_run_names_read_as_written() -> None:
    """A seed is an integer (imported images may have none): never "1000.0" or "nan"; a run
    name in summary.md is escaped plain text, since Markdown keeps the backslashes of an
    escaped name inside a code span."""
    from imagen_audit.report.html import markdown_summary
    from imagen_audit.report.inputs import inputs_from_tables, seed_text

    assert [seed_text(s) for s in (1000.0, 5, float("nan"), None, "7")] == \
        ["1000", "5", "none", "none", "7"]
    inputs = inputs_from_tables(Path("/tmp/good_eval"), None, pd.DataFrame())
    md = markdown_summary(inputs, None)
    assert "Run good\\_eval:" in md and "`good" not in md
