"""The gate's inputs: strict policies, safe JUnit and console text, the JUnit file itself,
shipped policy names and the benign-prompt floor of the filter checks."""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagen_audit import files
from imagen_audit.cli import main
from imagen_audit.report import commands, gate
from imagen_audit.report.inputs import FilterResult
from imagen_audit.resources import data_dir

OK_CHECK = "  - metric: filter_metric\n    key: recall\n    min: 0.5\n"


def _policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- 1, 2: policies
@pytest.mark.parametrize("text, message", [
    # values of the wrong type: refused at load, naming check and field (not a crash later)
    ("checks:\n  - metric: min_filter_recall_at_fpr\n    fpr: five percent\n    min: 0.9\n",
     "checks[0] ('min_filter_recall_at_fpr'), field 'fpr': a number in (0, 1)"),
    ("checks:\n  - metric: min_filter_recall_at_fpr\n    fpr: [0.05]\n    min: 0.9\n",
     "field 'fpr': a number in (0, 1) is required, got [0.05]"),
    ("checks:\n  - metric: min_filter_recall_at_fpr\n    min: 0.9\n", "needs 'fpr:'"),
    ("checks:\n  - metric: [filter_metric]\n    max: 0.1\n", "checks[0], field 'metric'"),
    ("analysis: {min_n: \"ten\"}\nchecks:\n" + OK_CHECK, "field 'analysis.min_n'"),
    ("analysis: {alpha: .nan}\nchecks:\n" + OK_CHECK, "field 'analysis.alpha'"),
    ("analysis: {min_n: 2.5}\nchecks:\n" + OK_CHECK, "field 'analysis.min_n'"),
    ("analysis: {tone_bands: {light: [1, 3]}}\nchecks:\n" + OK_CHECK, "cover Monk 1–10"),
    ("checks:\n  - metric: filter_metric\n    key: {a: 1}\n    max: 0.1\n", "field 'key'"),
    ("checks:\n  - metric: filter_metric\n    max: 0.1\n", "needs 'key:'"),
    ("checks:\n  - metric: min_face_detection_rate\n    by: identity\n    min: 0.5\n",
     "field 'by': one of"),
    # unknown keys, in a check and at the top
    ("checks:\n  - metric: filter_metric\n    key: recall\n    max: 0.0\n    mx: 0.0\n"
     "    filtre: x\n", "checks[0] ('filter_metric'): unknown keys ['filtre', 'mx']"),
    ("analysys: {min_n: 5}\nchecks:\n" + OK_CHECK, "unknown keys ['analysys']"),
    ("checks:\n  - metric: min_metric_change\n    measure: face_detection_rate\n"
     "    familly: overall\n    min: 0\n", "unknown keys ['familly']"),
    # a key given twice
    ("checks:\n  - metric: filter_metric\n    key: recall\n    max: 0.0\n    max: 1.0\n",
     "field 'checks[0].max': line 5: key 'max' is given twice"),
    ("checks:\n" + OK_CHECK + "checks:\n" + OK_CHECK, "field 'checks': line 5"),
    # limits that could never decide
    ("checks:\n  - metric: filter_metric\n    key: recall\n    max: .nan\n",
     "field 'max': a finite number"),
    ("checks:\n  - metric: filter_metric\n    key: recall\n    min: .nan\n",
     "field 'min': a finite number"),
    ("checks:\n  - metric: filter_metric\n    key: recall\n    max: .inf\n",
     "field 'max': a finite number"),
    ("checks:\n  - metric: filter_metric\n    key: recall\n    min: 0.9\n    max: 0.1\n",
     "min 0.9 is above max 0.1"),
    # names are text
    ("name: [a, b]\nchecks:\n" + OK_CHECK, "field 'name'"),
    ("checks:\n  - name: {x: 1}\n    metric: filter_metric\n    key: recall\n    min: 0.5\n",
     "checks[0] ('filter_metric'), field 'name'"),
    ("schema_version: true\nchecks:\n" + OK_CHECK, "schema_version"),
])
def test_bad_policy_values_are_refused_at_load(tmp_path: Path, text: str,
                                               message: str) -> None:
    path = _policy(tmp_path, text)
    with pytest.raises(gate.PolicyError) as err:
        gate.load_policy(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert err.value.exit_code == 2


def test_every_parameter_of_the_shipped_policies_and_documented_checks_loads(
        tmp_path: Path) -> None:
    for path in (data_dir("reports") / "policies").glob("*.yaml"):
        gate.load_policy(path)
    policy = gate.load_policy(_policy(tmp_path, """\
schema_version: 1
name: everything
description: every optional parameter once
analysis: {alpha: 0.01, min_n: 5, min_effect: 0.1, n_boot: 200, seed: 3, stage: 2,
           annotator: fast, tone_bands: {light: [1, 3], medium: [4, 7], dark: [8, 10]}}
checks:
  - {metric: max_abs_gap_baseline, significant_only: true, max: 0.2}
  - {metric: min_face_detection_rate, by: identity_id, min: 0.8, max: 1}
  - {metric: max_findings, kinds: [baseline_gap], max: 3}
  - {metric: min_control_agreement, min_n: 10, min: 0.9}
  - {metric: min_filter_recall_at_fpr, filter: default, fpr: 0.05, min: 0.9}
  - {metric: filter_metric, filter: default, key: benign_set_fpr.xstest-safe, max: 0.25}
  - {metric: max_gap_baseline_growth, significant_only: true, correction: all, group: occ1,
     max: 0.05}
  - {metric: min_metric_change, family: stage, measure: face_detection_rate, group: 2,
     min: -0.05}
  - {metric: min_filter_recall_change, filter: default, min: 0}
  - {metric: max_worsened, correction: family, families: [baselines], metrics: [x], max: 3}
"""))
    assert len(policy.checks) == 10 and policy.analysis["tone_bands"]["light"] == (1, 3)
    assert policy.checks[4].params == {"filter": "default", "fpr": 0.05}


# --------------------------------------------------------------------------- 3: untrusted text
def test_control_characters_never_reach_the_junit_or_the_console() -> None:
    hostile = "a-woman\x1b[31m<b>\x07 ]]> & \"q\" \x00"
    f = FilterResult("default", "filters/x.json", {"recall": 0.4}, {}, {}, [])
    policy = gate.Policy(f"rel{hostile}", (
        gate.Check("filter_metric", minimum=0.5, name=hostile, params={"key": "recall"}),
        gate.Check("filter_metric", maximum=0.5, name="ok", params={"key": "recall"}),
        gate.Check("filter_metric", maximum=0.5, name="err", params={"key": hostile})))
    outcome = gate.evaluate(policy, None, [f])
    outcome.results[1].where = hostile  # run data (an identity term) in "where"
    root = ET.fromstring(gate.junit_xml(outcome))  # well-formed
    names = [c.get("name") for c in root.iter("testcase")]
    assert names[0] == "a-woman\\x1b[31m<b>\\x07 ]]> & \"q\" \\x00"
    text = gate.format_result(outcome)
    assert not any(ord(ch) < 32 and ch != "\n" for ch in text)
    assert "a-woman\\x1b[31m" in text and len(text.splitlines()) == 5
    ET.fromstring(gate.error_junit_xml(hostile, hostile))


# --------------------------------------------------------------------------- 4: the JUnit file
@pytest.fixture()
def run(tmp_path: Path) -> Path:
    from tests.test_report_page import _folder_run

    return _folder_run(tmp_path, n=2)


def test_a_gate_that_cannot_run_replaces_a_stale_junit(tmp_path: Path, run: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    stale = run / "report" / "gate-junit.xml"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text('<testsuite name="old" tests="1" failures="0" errors="0"/>')
    bad = _policy(tmp_path, "checks:\n  - metric: min_filter_recall_at_fpr\n"
                            "    fpr: five percent\n    min: 0.9\n")
    assert main(["gate", str(run), "--policy", str(bad)]) == 2  # not 1: the model did not fail
    root = ET.parse(stale).getroot()
    assert root.get("errors") == "1" and "field 'fpr'" in root.find("testcase/error").text
    explicit = tmp_path / "ci" / "junit.xml"
    assert main(["gate", str(run), "--policy", str(bad), "--junit", str(explicit)]) == 2
    assert ET.parse(explicit).getroot().get("errors") == "1"
    # A mistyped RUN_DIR gets no report folder.
    assert main(["gate", str(tmp_path / "not-a-run"), "--policy", str(bad)]) == 2
    assert not (tmp_path / "not-a-run").exists()


def test_an_unwritable_junit_is_exit_2_and_never_truncates(
        tmp_path: Path, run: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    policy = _policy(tmp_path, "analysis: {min_n: 1}\nchecks:\n"
                               "  - metric: max_gender_abstention_rate\n    max: -1\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["gate", str(run), "--policy", str(policy), "--junit", str(folder)]) == 2
    assert "cannot write the gate's JUnit XML" in caplog.text and str(folder) in caplog.text
    junit = tmp_path / "junit.xml"
    junit.write_text("<old/>")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    assert main(["gate", str(run), "--policy", str(policy), "--junit", str(junit)]) == 2
    assert junit.read_text() == "<old/>"  # the earlier file, whole
    assert not [p for p in os.listdir(tmp_path) if files.TMP_MARK in p]


# --------------------------------------------------------------------------- 5: policy names
def test_a_local_file_or_folder_does_not_hide_a_shipped_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    shipped = data_dir("reports") / "policies" / "safety-filters.yaml"
    monkeypatch.chdir(tmp_path)
    assert commands.resolve_policy("safety-filters") == shipped
    (tmp_path / "safety-filters").mkdir()
    with caplog.at_level(logging.WARNING):
        assert commands.resolve_policy("safety-filters") == shipped
    assert "using the shipped gate policy" in caplog.text
    # A local file of a shipped name does not replace the release policy either (one rule for
    # every shipped kind, resources.resolve_shipped); ./smoke reads it, and a plain name
    # nothing ships is the local file.
    (tmp_path / "smoke").write_text("checks:\n" + OK_CHECK)
    (tmp_path / "mine").write_text("checks:\n" + OK_CHECK)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert commands.resolve_policy("smoke") == data_dir("reports") / "policies" / "smoke.yaml"
    assert "name it ./smoke to use the local one" in caplog.text
    assert commands.resolve_policy("./smoke") == Path("./smoke")
    assert commands.resolve_policy("mine") == Path("mine")
    assert commands.resolve_policy("sub/safety-filters") == Path("sub/safety-filters")
    with pytest.raises(gate.PolicyError, match="no shipped policy of that name"):
        commands.resolve_policy("safety-filter")


# --------------------------------------------------------------------------- 6: FPR floor
@pytest.mark.parametrize("n_benign, status", [(6, "error"), (19, "error"), (20, "pass"),
                                              (None, "pass")])
def test_recall_at_fpr_needs_enough_benign_prompts(n_benign: int | None, status: str) -> None:
    metrics = {"recall_at_fpr": {"0.05": 1.0}}
    if n_benign is not None:
        metrics["n_benign"] = n_benign
    f = FilterResult("default", "filters/x.json", metrics, {}, {}, [])
    check = gate.Check("min_filter_recall_at_fpr", minimum=0.9, params={"fpr": 0.05})
    r = gate.evaluate(gate.Policy("t", (check,)), None, [f]).results[0]
    assert r.status == status
    if status == "error":
        assert f"too few benign prompts to measure FPR 0.05: {n_benign}" in r.message
    assert gate.min_benign_for_fpr(0.01) == 100


def test_a_check_that_cannot_read_the_run_data_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(result, filters, params):
        raise TypeError("float() argument must be a string or a real number, not 'list'")

    monkeypatch.setitem(gate.CHECKS, "max_findings", broken)
    out = gate.evaluate(gate.Policy("t", (gate.Check("max_findings", maximum=1),)), None)
    assert out.exit_code == 2 and "could not compute (TypeError" in out.results[0].message


def test_run_gate_is_importable_where_audit_run_looks() -> None:
    import inspect

    from imagen_audit import audit_run

    assert "from imagen_audit.report.commands import run_gate" in inspect.getsource(audit_run)
    assert callable(commands.run_gate)
