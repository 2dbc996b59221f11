"""One rule for names of shipped files (probe sets, prompt-filter policies, gate policies):
resources.resolve_shipped. Sessions 1-28 grew three rules; the gate's let a local file of a
shipped name replace the release policy while the other two did not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imagen_audit.filters.policy import Policy, PolicyError
from imagen_audit.probes import load_probes
from imagen_audit.report import commands
from imagen_audit.report.gate import PolicyError as GatePolicyError
from imagen_audit.resources import UnknownShippedName, data_dir, resolve_shipped

KINDS = [("probes", "occupations"), ("filters", "default"), ("reports/policies", "smoke")]


@pytest.mark.parametrize("folder, name", KINDS)
def test_a_shipped_name_wins_over_a_local_file_with_a_warning(
        folder: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    top, _, sub = folder.partition("/")
    shipped = (data_dir(top) / sub if sub else data_dir(top)) / f"{name}.yaml"
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert resolve_shipped(name, folder, "thing") == shipped
    assert not caplog.text  # nothing here to warn about
    (tmp_path / name).write_text("local\n")
    with caplog.at_level(logging.WARNING):
        assert resolve_shipped(name, folder, "thing") == shipped
    assert f"name it ./{name}" in caplog.text
    assert resolve_shipped(f"./{name}", folder, "thing") == Path(f"./{name}")
    # A plain name nothing ships is the local file of that name, or an error listing the names.
    (tmp_path / "mine").write_text("local\n")
    assert resolve_shipped("mine", folder, "thing") == Path("mine")
    with pytest.raises(UnknownShippedName) as info:
        resolve_shipped("nothing-of-that-name", folder, "thing")
    assert name in info.value.names


def test_each_kind_reads_a_local_file_by_a_plain_name_nothing_ships(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-probes").write_text(
        (data_dir("probes") / "occupations.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert len(load_probes("my-probes").prompts) == len(load_probes("occupations").prompts)
    (tmp_path / "my-policy").write_text(
        (data_dir("filters") / "blocklist-only.yaml").read_text(encoding="utf-8")
        .replace("wordlists: wordlists", f"wordlists: {data_dir('filters') / 'wordlists'}"),
        encoding="utf-8")
    assert Policy.load("my-policy").name == Policy.load("blocklist-only").name
    (tmp_path / "my-gate").write_text("checks: []\n")
    assert commands.resolve_policy("my-gate") == Path("my-gate")
    with pytest.raises(PolicyError, match="no shipped policy of that name"):
        Policy.load("no-such-policy")
    with pytest.raises(GatePolicyError, match="no shipped policy of that name"):
        commands.resolve_policy("no-such-policy")


def test_run_configs_follow_the_same_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # `imagen-audit run NAME` had a fourth rule: any existing local path won, and a name such
    # as ../x was joined onto reports/runs/, reaching a YAML file outside the shipped folder.
    from imagen_audit.audit_run import RunConfigError, resolve

    shipped = data_dir("reports") / "runs" / "demo.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("local\n")
    with caplog.at_level(logging.WARNING):
        assert resolve("demo") == shipped
    assert "name it ./demo" in caplog.text
    assert resolve("./demo") == Path("./demo")
    (tmp_path / "my-run").write_text("local\n")
    assert resolve("my-run") == Path("my-run")
    escaped = tmp_path / "outside.yaml"
    escaped.write_text("local\n")
    runs = data_dir("reports") / "runs"
    spec = str(Path(*[".."] * len(runs.parts)) / str(escaped.with_suffix(""))[1:])
    with pytest.raises(RunConfigError, match="run config not found"):
        resolve(spec)
    with pytest.raises(RunConfigError, match="no such run config file or shipped config"):
        resolve("no-such-config")
