"""`imagen-audit compare` and `gate --baseline` on real run folders: tiny-cascade runs,
annotated through the annotation runner with a deterministic test annotator (labels drawn
from a hash of each image's pixels, so they are noise like the images)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit.analyse import AnalysisConfig
from imagen_audit.analyse.synthetic import synthetic_annotations
from imagen_audit.annotate.base import AnnotatorSpec, Face, register_detector, register_gender
from imagen_audit.annotate.runner import annotate_run
from imagen_audit.cli import main
from imagen_audit.compare.metrics import compare
from imagen_audit.compare.report import SCHEMA_VERSION
from imagen_audit.generate import GeneratorOptions
from imagen_audit.generate.runner import generate_run
from imagen_audit.report import gate
from imagen_audit.resources import data_dir

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _draw(image: np.ndarray) -> np.random.Generator:
    digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@register_detector("test-pixel-hash")
class _HashDetector:
    name = "test-pixel-hash"

    def detect(self, images):
        out = []
        for im in images:
            h, w = im.shape[:2]
            found = _draw(im).random() < 0.85
            out.append([Face((w * 0.25, h * 0.2, w * 0.75, h * 0.8), 1.0)] if found else [])
        return out

    def config(self):
        return {"kind": "test"}


@register_gender("test-pixel-hash")
class _HashGender:
    name = "test-pixel-hash"

    def p_female(self, pairs):
        out = []
        for im, _ in pairs:
            r = _draw(im)
            r.random()
            u = r.random()
            out.append(0.5 if u < 0.1 else 0.9 if u < 0.55 else 0.1)
        return np.array(out)

    def config(self):
        return {"kind": "test"}


SPEC = AnnotatorSpec(detector="test-pixel-hash", gender="test-pixel-hash", name="hash")
OPTS = GeneratorOptions(num_stages=1, steps=(2,), micro_batch=8)


def _run(root: Path, seed: int) -> Path:
    run = root / f"seed{seed}"
    generate_run(run, model="tiny-cascade", probes="occupations", limit_prompts=2,
                 samples_per_prompt=6, seed=seed, batch_size=6, options=OPTS,
                 progress=False)
    annotate_run(run, SPEC, workers=1, progress=False)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_cascade_dir) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare-runs")
    return _run(root, 0), _run(root, 1)


POLICY = """
schema_version: 1
name: regression-test
analysis: {min_n: 3, n_boot: 100}
checks:
  - metric: max_gap_baseline_growth
    significant_only: true
    max: 0.05
  - metric: min_metric_change
    family: overall
    measure: face_detection_rate
    significant_only: true
    min: -0.05
  - metric: max_worsened
    max: 0
"""


def _policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return p


def test_a_run_compared_with_itself_shows_no_change_and_passes_the_gate(runs, tmp_path):
    a, _ = runs
    out = tmp_path / "self"
    assert main(["compare", str(a), str(a), "--out", str(out), "--min-n", "3",
                 "--permutations", "199"]) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert doc["schema"] == "imagen-audit/compare" and doc["schema_version"] == SCHEMA_VERSION
    assert doc["no_change"] and doc["counts"]["headline"] == 0
    assert doc["counts"]["significant"] == 0 and doc["counts"]["tests"] > 20
    assert doc["pairing"]["paired"] and doc["pairing"]["n_unpaired_candidate"] == 0
    assert all(r["difference"] in (0, None) for r in doc["changes"])
    assert all(r["p"] in (1.0, None) for r in doc["changes"])
    html = (out / "index.html").read_text()
    assert "Nothing got significantly worse" in html and "Content-Security-Policy" in html
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(srcs) == 2 * 2 * 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert (out / "summary.md").read_text().startswith("## imagen-audit comparison")
    assert len(pd.read_csv(out / "changes.csv")) == len(doc["changes"])
    assert main(["gate", str(a), "--policy", str(_policy(tmp_path)), "--baseline", str(a),
                 "--junit", str(tmp_path / "j.xml")]) == 0


def test_runs_with_different_seeds_differ_but_not_significantly(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "seeds"
    assert main(["compare", str(a), str(b), "--out", str(out), "--min-n", "3",
                 "--permutations", "199"]) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert not doc["pairing"]["paired"]  # another --seed: no image shares a seed
    assert any("independent samples" in n for n in doc["notes"])
    diffs = [r["difference"] for r in doc["changes"] if r["difference"] not in (None, 0)]
    assert diffs  # the numbers move ...
    assert doc["no_change"] and doc["counts"]["headline"] == 0  # ... but not significantly
    assert all(r["q_all"] is None or r["q_all"] >= 0.05 for r in doc["changes"])
    html = (out / "index.html").read_text()
    assert "share no seed for this prompt" in html
    policy = _policy(tmp_path)
    assert main(["gate", str(b), "--policy", str(policy), "--baseline", str(a),
                 "--junit", str(tmp_path / "j.xml")]) == 0
    # Without --baseline the comparison checks have no data: an error, never a pass.
    assert main(["gate", str(b), "--policy", str(policy),
                 "--junit", str(tmp_path / "j2.xml")]) == 2
    assert "give --baseline" in capsys.readouterr().out


def test_compare_refuses_unannotated_runs(runs, tmp_path):
    a, _ = runs
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    (src / "manifest.csv").write_text("file,prompt\na.png,a photo\n")
    bare = tmp_path / "bare"
    generate_run(bare, model=f"folder:{src}", probes=None, progress=False)
    assert main(["compare", str(a), str(bare), "--out", str(tmp_path / "o")]) == 2
    assert main(["compare", str(a), str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "o")]) == 2


def test_gate_fails_when_an_occupation_gap_grows_significantly() -> None:
    a, base = synthetic_annotations(6, 150, stages=(1,), seed=1)
    b, _ = synthetic_annotations(6, 150, stages=(1,), seed=2, share_female={"occ00": 0.35})
    c = compare(a, b, base, config=AnalysisConfig(n_boot=50), n_perm=99)
    policy = gate.load_policy(data_dir("reports") / "policies" / "regression-default.yaml")
    outcome = gate.evaluate(policy, c.candidate, [], c)
    by_name = {r.check.metric: r for r in outcome.results}
    growth = by_name["max_gap_baseline_growth"]
    assert growth.status == "fail" and growth.value > 0.15 and "occ00" in growth.where
    assert by_name["max_gap_parity_growth"].status == "pass"  # 0.1 → 0.35 is towards parity
    assert outcome.exit_code == 1
    # The same policy on a comparison with itself passes.
    same = compare(a, a, base, config=AnalysisConfig(n_boot=50), n_perm=99)
    assert gate.evaluate(policy, same.candidate, [], same).exit_code == 0
    # Without a comparison, comparison checks are errors.
    assert gate.evaluate(policy, same.candidate, []).exit_code == 2


def _filter_eval(run: Path, recall_hits: int) -> None:
    folder = run / "filters"
    folder.mkdir(exist_ok=True)
    rows = [{"set": "harmful", "prompt": f"harm {i}", "label": 1,
             "decision": "block" if i < recall_hits else "allow"} for i in range(200)]
    rows += [{"set": "benign", "prompt": f"ok {i}", "label": 0,
              "decision": "block" if i < 4 else "allow"} for i in range(200)]
    pd.DataFrame(rows).assign(score=0.5, category=None).to_csv(folder / "scores.csv",
                                                               index=False)
    (folder / "prompt-filter-eval.json").write_text(json.dumps({
        "schema": "imagen-audit/prompt-filter-eval", "schema_version": 1,
        "policy": {"name": "default"}, "overall": {"recall": recall_hits / 200, "fpr": 0.02},
        "files": {"scores": "scores.csv"}}))


def test_prompt_filter_recall_drop_fails_the_regression_gate(runs, tmp_path):
    a, b = runs
    base_copy, cand_copy = tmp_path / "base", tmp_path / "cand"
    shutil.copytree(a, base_copy)
    shutil.copytree(b, cand_copy)
    _filter_eval(base_copy, 180)
    _filter_eval(cand_copy, 150)  # same prompts, 30 fewer caught: paired by prompt
    code = main(["gate", str(cand_copy), "--policy", "regression-filters", "--baseline",
                 str(base_copy), "--min-n", "3", "--junit", str(tmp_path / "j.xml")])
    assert code == 1
    junit = (tmp_path / "j.xml").read_text()
    assert "recall may not drop" in junit and "<failure" in junit
    assert main(["gate", str(base_copy), "--policy", "regression-filters", "--baseline",
                 str(base_copy), "--min-n", "3", "--junit", str(tmp_path / "j.xml")]) == 0


def test_filter_results_are_compared_without_annotations(tmp_path, capsys):
    """Filter results need no faces: two runs never annotated compare on their filter
    evaluations (page, JSON and the regression-filters gate), and say that only those were
    compared; with no filter result in common the refusal names the missing annotations."""
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    (src / "manifest.csv").write_text("file,prompt\na.png,a photo\n")
    base, cand = tmp_path / "base", tmp_path / "cand"
    for run in (base, cand):
        generate_run(run, model=f"folder:{src}", probes=None, progress=False)
    _filter_eval(base, 180)
    _filter_eval(cand, 150)
    assert main(["compare", str(base), str(cand), "--out", str(tmp_path / "cmp")]) == 0
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["pairing"]["filter_only"] and "only their filter results" in doc["notes"][0]
    assert {c["family"] for c in doc["changes"]} == {"prompt_filter"}
    assert "filter results only" in (tmp_path / "cmp" / "index.html").read_text()
    assert main(["gate", str(cand), "--policy", "regression-filters", "--baseline",
                 str(base), "--junit", str(tmp_path / "j.xml")]) == 1
    assert main(["gate", str(base), "--policy", "regression-filters", "--baseline",
                 str(base), "--junit", str(tmp_path / "j.xml")]) == 0
    # A comparison check about faces has no data here: an error, never a pass.
    policy = tmp_path / "faces.yaml"
    policy.write_text("schema_version: 1\nchecks:\n  - metric: max_gap_baseline_growth\n"
                      "    max: 0.05\n")
    assert main(["gate", str(cand), "--policy", str(policy), "--baseline", str(base),
                 "--junit", str(tmp_path / "j.xml")]) == 2
    bare = tmp_path / "bare"
    generate_run(bare, model=f"folder:{src}", probes=None, progress=False)
    assert main(["compare", str(base), str(bare), "--out", str(tmp_path / "o")]) == 2


def test_comparison_page_renders_in_headless_chromium(runs, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (make chromium)")
        pytest.skip("chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    a, b = runs
    out = tmp_path / "page"
    assert main(["compare", str(a), str(b), "--out", str(out), "--min-n", "3",
                 "--permutations", "99"]) == 0
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "index.html").as_uri(), wait_until="load")
            widths = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            text = page.inner_text("body")
        finally:
            browser.close()
    assert errors == [] and widths and all(w > 0 for w in widths)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert "What got worse" in text and "Same prompt, same seed" in text
