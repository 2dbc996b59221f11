"""`imagen-audit run CONFIG.yaml`: the stages chained from one validated config, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagen_audit.audit_run import RunConfigError, load_config
from imagen_audit.cli import main
from imagen_audit.store import RunStore

SMALL = """\
schema_version: 1
out: {out}
generate:
  model: tiny-cascade
  limit_prompts: 2
  samples_per_prompt: 1
  stages: 1
  steps: [2]
annotate:
  detector: dlib-hog
  gender: dlib-onnx
  workers: 1
"""


def test_shipped_demo_config_is_valid(tmp_path: Path) -> None:
    cfg = load_config("demo", out=tmp_path / "x")
    assert cfg.out == tmp_path / "x" and cfg.report and cfg.annotate is not None
    assert cfg.generate["model"] == "tiny-cascade"


@pytest.mark.parametrize(("text", "message"), [
    ("generate: {model: tiny-cascade}\nextra: 1\nout: x\n", "unknown key(s) ['extra']"),
    ("out: x\n", "section 'generate' is required"),
    ("out: x\ngenerate: {modle: tiny-cascade}\n", "section 'generate': unknown key(s) ['modle']"),
    ("out: x\ngenerate: {}\nannotate: {detectr: x}\n", "section 'annotate': unknown key(s)"),
    ("out: x\ngenerate: {}\ngate: {junit: a.xml}\n", "section 'gate', key 'policy'"),
    ("generate: {}\n", "key 'out'"),
    ("- a\n- b\n", "expected a mapping"),
    ("out: x\ngenerate: !!python/object/apply:os.system [echo]\n", "not valid YAML"),
])
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(RunConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_run_chains_the_stages_and_resumes(tiny_cascade_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(SMALL.format(out=run))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "generate: 2 new" in out and "annotate (dlib-hog+dlib-onnx): 2 images" in out
    assert (run / "report" / "index.html").is_file()
    assert (run / "report" / "report.json").is_file()
    with RunStore.open_readonly(run) as store:
        assert len(store.annotations_table()) == 2  # noise images: one no-face row each
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "generate: 0 new, 2 already done" in out
    assert "annotate (dlib-hog+dlib-onnx): 0 images" in out
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    # With a gate section the run's exit code is the gate's (its import used to fail).
    policy = tmp_path / "policy.yaml"
    policy.write_text("schema_version: 1\nchecks:\n  - metric: max_findings\n    max: 0\n")
    cfg.write_text(SMALL.format(out=run) + f"gate:\n  policy: {policy}\n"
                   f"  junit: {tmp_path / 'gate.xml'}\n")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert "<testsuite" in (tmp_path / "gate.xml").read_text()


def test_run_can_annotate_while_generating(tiny_cascade_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(SMALL.format(out=tmp_path / "run") + "  while_generating: true\nreport: false\n")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "annotate (dlib-hog+dlib-onnx): 0 images" in out  # all done during generation
    assert not (tmp_path / "run" / "report").exists()
    with RunStore.open_readonly(tmp_path / "run") as store:
        assert len(store.annotations_table()) == 2
