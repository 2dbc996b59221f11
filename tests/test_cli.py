"""The imagen-audit command line: help, probes, generate errors, export and status."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit import __version__
from imagen_audit.cli import main
from imagen_audit.generate.runner import generate_run
from imagen_audit.probes import Prompt, load_probes
from imagen_audit.store import RunStore, SampleResult, StageSpec

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def imported_run(tmp_path) -> Path:
    """A complete run of three imported images."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        rows.append(f"{i}.png,a photo of person {i},{i}")
    (folder / "manifest.csv").write_text("file,prompt,seed\n" + "\n".join(rows) + "\n",
                                         encoding="utf-8")
    out = tmp_path / "run"
    summary = generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    assert summary.generated == 3
    return out


# --------------------------------------------------------------------------- parser
def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("generate", "export", "status", "probes", "report"):
        assert command in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["generate"],  # --out is required
    ["generate", "--out", "x", "--limit-prompts", "0"],
    ["generate", "--out", "x", "--steps", "5,x"],
    ["export", "run"],  # --out is required
    ["export", "run", "--out", "x.csv", "--table", "prompts"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_building_the_parser_does_not_import_torch():
    code = ("import sys; from imagen_audit.cli import main, build_parser; "
            "build_parser().format_help(); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_probes_and_status_do_not_import_torch(imported_run, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from imagen_audit.cli import main
        codes = [main(["probes"]), main(["status", {str(imported_run)!r}, "--verify"]),
                 main(["export", {str(imported_run)!r}, "--out", {str(tmp_path / "e.csv")!r}])]
        print(codes, 'torch' in sys.modules, 'diffusers' in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=ENV, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0, 0] False False"


# --------------------------------------------------------------------------- probes
def test_probes_lists_the_shipped_sets(capsys):
    assert main(["probes"]) == 0
    out = capsys.readouterr().out
    n_occ, n_id = len(load_probes("occupations")), len(load_probes("identities"))
    assert f"occupations: {n_occ} prompts" in out
    assert f"identities: {n_id} prompts" in out
    assert n_occ > 0 and n_id > 0


def test_probes_expands_to_csv(tmp_path, capsys):
    out = tmp_path / "sub" / "prompts.csv"
    out.parent.mkdir()
    assert main(["probes", "occupations", "--out", str(out)]) == 0
    expected = load_probes("occupations")
    assert f"wrote {len(expected)} prompts" in capsys.readouterr().out
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {"prompt_id", "prompt", "family", "template_id", "occupation_id"} <= set(rows[0])
    assert [r["prompt_id"] for r in rows] == [p.prompt_id for p in expected.prompts]
    assert [r["prompt"] for r in rows] == [p.prompt for p in expected.prompts]
    assert rows[0]["prompt_id"].startswith("occupations/face/")


def test_probes_prints_prompts(capsys):
    assert main(["probes", "identities"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = load_probes("identities")
    assert len(lines) == len(expected)
    assert lines[0] == f"{expected.prompts[0].prompt_id}\t{expected.prompts[0].prompt}"


def test_probes_unknown_name_exits_2(caplog):
    assert main(["probes", "no_such_set"]) == 2
    assert any("no_such_set" in m for m in _errors(caplog))


def test_probes_bad_file_exits_2(tmp_path, caplog):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 7\nfamily: occupations\n", encoding="utf-8")
    assert main(["probes", str(bad)]) == 2
    assert any(str(bad) in m and "schema_version" in m for m in _errors(caplog))


def test_probes_top_level_list_exits_2(tmp_path, caplog):
    """Regression: a top-level YAML list crashed the CLI with AttributeError."""
    bad = tmp_path / "list.yaml"
    bad.write_text("- occupations\n", encoding="utf-8")
    assert main(["probes", str(bad)]) == 2
    assert any(str(bad) in m for m in _errors(caplog))


# --------------------------------------------------------------------------- generate
@pytest.fixture
def bad_probes(tmp_path) -> Path:
    bad = tmp_path / "probes_bad.yaml"
    bad.write_text("schema_version: 1\nfamily: occupations\nsource: {name: x, year: 2018}\n"
                   "templates:\n  - id: face\n    text: 'a photo of {a} {job}'\n"
                   "occupations:\n  - id: nurse\n    term: nurse\n    baseline: {women: 0.9}\n",
                   encoding="utf-8")
    return bad


def test_generate_with_bad_probes_exits_2(bad_probes, tmp_path, monkeypatch, caplog):
    # The default model builds its tiny weights on first use: keep them out of ~/.cache.
    if not os.environ.get("IMAGEN_AUDIT_CACHE"):
        monkeypatch.setenv("IMAGEN_AUDIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["generate", "--probes", str(bad_probes), "--out", str(out),
                 "--no-progress"]) == 2
    errors = _errors(caplog)
    assert any(str(bad_probes) in m and "templates[0]" in m and "'text'" in m and "job" in m
               for m in errors), errors
    assert not out.exists()


def test_generate_with_missing_probe_file_exits_2(tmp_path, caplog):
    missing = tmp_path / "missing.yaml"
    out = tmp_path / "run"
    assert main(["generate", "--model", "diffusers:/nonexistent/model", "--probes",
                 str(missing), "--out", str(out), "--no-progress"]) == 2
    assert any(str(missing) in m and "not found" in m for m in _errors(caplog))
    assert not out.exists()


def test_generate_with_unknown_model_exits_2(tmp_path, caplog):
    assert main(["generate", "--model", "nosuchmodel", "--out", str(tmp_path / "r")]) == 2
    assert any("nosuchmodel" in m and "folder" in m for m in _errors(caplog))


def test_generate_into_a_locked_run_exits_2(imported_run, caplog):
    folder = imported_run.parent / "in"
    with RunStore.open(imported_run):
        assert main(["generate", "--model", f"folder:{folder}", "--out", str(imported_run),
                     "--no-progress"]) == 2
    assert any("in use" in m and f"pid {os.getpid()}" in m for m in _errors(caplog))


# --------------------------------------------------------------------------- export
def test_export_not_a_run_exits_2(tmp_path, caplog):
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    out = tmp_path / "x.csv"
    assert main(["export", str(not_a_run), "--out", str(out)]) == 2
    assert any(str(not_a_run) in m and "not a run folder" in m for m in _errors(caplog))
    assert not out.exists()


def test_export_run(imported_run, tmp_path, capsys):
    out = tmp_path / "images.parquet"
    assert main(["export", str(imported_run), "--out", str(out)]) == 0
    assert "wrote 3 images rows" in capsys.readouterr().out
    frame = pd.read_parquet(out)
    assert len(frame) == 3
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in frame["file"])
    samples = tmp_path / "samples.csv"
    assert main(["export", str(imported_run), "--out", str(samples), "--table", "samples"]) == 0
    assert list(pd.read_csv(samples)["seed"]) == [0, 1, 2]


def test_export_bad_format_exits_2(imported_run, tmp_path, caplog):
    assert main(["export", str(imported_run), "--out", str(tmp_path / "x.txt")]) == 2
    assert any(".csv or .parquet" in m for m in _errors(caplog))


# --------------------------------------------------------------------------- status
def test_status_and_verify(imported_run, capsys):
    assert main(["status", str(imported_run)]) == 0
    out = capsys.readouterr().out
    assert f"run {imported_run}: 3 samples planned; done 3" in out
    assert "stage 1 (imported): 3 images" in out
    assert main(["status", str(imported_run), "--verify"]) == 0
    assert "verify: 3 images checked, 0 problem(s)" in capsys.readouterr().out

    with RunStore.open_readonly(imported_run) as store:
        rel = store.images_table()["path"].iloc[1]
        png = store.image_path(rel)
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])
    assert main(["status", str(imported_run), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"problem: {rel}: unreadable" in out
    assert "verify: 3 images checked, 1 problem(s)" in out
    # Without --verify, status does not read the images.
    assert main(["status", str(imported_run)]) == 0


def test_status_shows_failed_samples(tmp_path, capsys):
    run = tmp_path / "run"
    prompts = [Prompt(f"imported/p{i}", f"prompt {i}", "imported", "manifest") for i in range(3)]
    with RunStore.open(run) as store:
        store.add_prompts(prompts)
        store.plan_probe_samples(prompts, 1, base_seed=0)
        store.register_stages([StageSpec(1, "final")])
        ids = store.samples_table()["sample_id"].tolist()
        store.commit_sample(SampleResult(ids[0], {1: np.zeros((2, 2, 3), np.uint8)}))
        store.mark_failed([ids[1]], "RuntimeError: CUDA out of memory")
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "3 samples planned; done 1, failed 1, planned 1" in out
    assert "stage 1 (final): 1 images" in out
    assert "failed: imported/p1 #0: RuntimeError: CUDA out of memory" in out


def test_status_not_a_run_exits_2(tmp_path, caplog):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert any("not a run folder" in m for m in _errors(caplog))


def test_export_spreadsheet_safe_writes_formula_prompts_as_text(tmp_path):
    """A folder of someone else's images comes with untrusted prompts; with
    --spreadsheet-safe a prompt starting with = is exported with a leading apostrophe (CSV
    only: Parquet keeps types and is refused with the flag)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "0.png")
    Image.new("RGB", (4, 4), "white").save(folder / "1.png")
    (folder / "manifest.csv").write_text(
        'file,prompt,seed\n0.png,"=HYPERLINK(""http://x.example"")",0\n1.png,a red barn,1\n',
        encoding="utf-8")
    run = tmp_path / "run"
    assert generate_run(run, model=f"folder:{folder}", probes=None, progress=False).generated == 2
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    assert main(["export", str(run), "--out", str(plain)]) == 0
    assert main(["export", str(run), "--out", str(safe), "--spreadsheet-safe"]) == 0
    by_seed = {s: p for s, p in zip(pd.read_csv(safe)["seed"], pd.read_csv(safe)["prompt"],
                                    strict=True)}
    assert by_seed == {0: "'=HYPERLINK(\"http://x.example\")", 1: "a red barn"}
    assert '=HYPERLINK("http://x.example")' in pd.read_csv(plain)["prompt"].tolist()
    assert main(["export", str(run), "--out", str(tmp_path / "x.parquet"),
                 "--spreadsheet-safe"]) == 2
    assert not (tmp_path / "x.parquet").exists()
