"""The release gate: policies, pass / fail / error, JUnit XML and the CLI's exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagen_audit.analyse import AnalysisConfig, analyse
from imagen_audit.analyse.synthetic import synthetic_annotations
from imagen_audit.cli import main
from imagen_audit.report import gate
from imagen_audit.report import inputs as report_inputs
from imagen_audit.report.inputs import FilterResult
from imagen_audit.resources import data_dir


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _analysis(**kw):
    ann, base = synthetic_annotations(6, 80, stages=(1, 2), seed=8, **kw)
    return analyse(ann, base, config=AnalysisConfig(n_boot=100))


def test_shipped_policies_load() -> None:
    names = sorted(p.stem for p in (data_dir("reports") / "policies").glob("*.yaml"))
    assert {"release-default", "safety-filters", "smoke"} <= set(names)
    for name in names:
        assert gate.load_policy(data_dir("reports") / "policies" / f"{name}.yaml").checks


@pytest.mark.parametrize("text, message", [
    ("checks: []", "non-empty list"),
    ("checks:\n  - metric: nonsense\n    max: 1", "unknown 'nonsense'"),
    ("checks:\n  - metric: max_abs_gap_baseline", "needs 'min' or 'max'"),
    ("checks:\n  - metric: max_abs_gap_baseline\n    max: high", "a number is required"),
    ("analysis: {colour: red}\nchecks:\n  - metric: max_findings\n    max: 1", "unknown keys"),
    ("schema_version: 9\nchecks: []", "schema_version"),
    ("checks: [", "not valid YAML"),
])
def test_bad_policies_are_errors_naming_the_field(tmp_path: Path, text: str,
                                                  message: str) -> None:
    with pytest.raises(gate.PolicyError, match=message):
        gate.load_policy(_policy(tmp_path, text))


def test_pass_fail_and_error_outcomes() -> None:
    result = _analysis(share_female={"occ00": 0.8})  # baseline 0.1: gap 0.7
    gap = float(result.baselines.set_index("occupation_id").loc["occ00", "gap_baseline"])
    policy = gate.Policy("t", (
        gate.Check("max_abs_gap_baseline", maximum=0.9, name="loose"),
        gate.Check("max_abs_gap_baseline", maximum=0.3, name="strict"),
        gate.Check("min_face_detection_rate", minimum=0.5, name="faces",
                   params={"by": "prompt_id"}),
        gate.Check("min_filter_recall_at_fpr", minimum=0.9, name="filters",
                   params={"fpr": 0.05}),
    ))
    outcome = gate.evaluate(policy, result, [])
    status = {r.check.name: r.status for r in outcome.results}
    assert status == {"loose": "pass", "strict": "fail", "faces": "pass", "filters": "error"}
    assert outcome.results[1].value == pytest.approx(abs(gap))
    assert outcome.results[1].where == "occ00"
    assert outcome.exit_code == 2  # an error outranks a failure: missing data never passes
    assert gate.evaluate(gate.Policy("t", policy.checks[:2]), result).exit_code == 1
    assert gate.evaluate(gate.Policy("t", policy.checks[:1]), result).exit_code == 0
    # No annotations at all: every analysis check is an error.
    none = gate.evaluate(gate.Policy("t", policy.checks[:1]), None)
    assert none.exit_code == 2 and "no annotations" in none.results[0].message


def test_small_samples_never_decide_and_filter_recall_reads_the_sweep() -> None:
    ann, base = synthetic_annotations(3, 10, share_female=[0.99, 0.5, 0.01], stages=(1,))
    small = analyse(ann, base, config=AnalysisConfig(n_boot=50))
    out = gate.evaluate(gate.Policy("t", (gate.Check("max_abs_gap_baseline", maximum=0.1),)),
                        small)
    assert out.results[0].status == "error" and "at least 30" in out.results[0].message
    sweep = [{"fpr": 0.01, "recall": 0.7}, {"fpr": 0.05, "recall": 0.92},
             {"fpr": 0.2, "recall": 0.99}]
    f = FilterResult("p", "filters/p.json", {}, {}, {}, sweep)
    check = gate.Check("min_filter_recall_at_fpr", minimum=0.9, params={"fpr": 0.05})
    r = gate.evaluate(gate.Policy("t", (check,)), None, [f]).results[0]
    assert r.status == "pass" and r.value == 0.92
    check = gate.Check("min_filter_recall_at_fpr", minimum=0.9, params={"fpr": 0.02})
    assert gate.evaluate(gate.Policy("t", (check,)), None, [f]).results[0].status == "fail"


def test_junit_xml_lists_every_check() -> None:
    result = _analysis()
    policy = gate.Policy("t", (gate.Check("max_findings", maximum=1000, name="ok"),
                               gate.Check("mean_amplification", maximum=-5, name="bad"),
                               gate.Check("min_filter_recall_at_fpr", minimum=0.9,
                                          params={"fpr": 0.05}, name="missing")))
    root = ET.fromstring(gate.junit_xml(gate.evaluate(policy, result, [])))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): [e.tag for e in c] for c in root.iter("testcase")}
    assert cases == {"ok": ["system-out"], "bad": ["failure"], "missing": ["error"]}


def test_gate_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture) -> None:
    from tests.test_report_page import _annotations_for, _folder_run

    run = _folder_run(tmp_path, n=4)
    policy = _policy(tmp_path, "analysis: {min_n: 1}\nchecks:\n"
                               "  - metric: min_face_detection_rate\n    min: 0.5\n")
    junit = tmp_path / "junit.xml"
    # No annotations: an error (2), and the JUnit file says so.
    assert main(["gate", str(run), "--policy", str(policy), "--junit", str(junit)]) == 2
    assert ET.parse(junit).getroot().get("errors") == "1"
    ann = _annotations_for(run)
    monkeypatch.setattr(report_inputs, "read_annotations", lambda store: ann)
    assert main(["gate", str(run), "--policy", str(policy), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "min_face_detection_rate" in out and "limit >= 0.5" in out
    strict = _policy(tmp_path, "analysis: {min_n: 1}\nchecks:\n"
                               "  - metric: max_gender_abstention_rate\n    max: -1\n")
    assert main(["gate", str(run), "--policy", str(strict), "--junit", str(junit)]) == 1
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert main(["gate", str(run), "--policy", str(tmp_path / "nope.yaml")]) == 2
    assert main(["gate", str(tmp_path / "not-a-run"), "--policy", "smoke"]) == 2
    # A shipped policy by name; the default JUnit path is under the run's report folder.
    # (a folder import has no labour baselines: that check is missing data, an error)
    assert main(["gate", str(run), "--policy", "smoke", "--min-n", "1"]) == 2
    assert "no labour baseline" in capsys.readouterr().out
    assert (run / "report" / "gate-junit.xml").is_file()
    assert main(["analyse", str(run), "--json", str(tmp_path / "a.json"), "--min-n", "1"]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["n_units"] == 4
