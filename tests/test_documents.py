"""Every user document fails in the same words: probe sets, prompt-filter policies, run
configs, gate policies and validation records all read through :mod:`imagen_audit.documents`,
so a file saved as Latin-1 or missing says so by name, never with a traceback."""

from __future__ import annotations

import pytest

from imagen_audit.analyse.adjust import ValidationFileError
from imagen_audit.audit_run import RunConfigError
from imagen_audit.cli import main
from imagen_audit.documents import read_document
from imagen_audit.errors import ProbeFileError
from imagen_audit.filters.base import PolicyError
from imagen_audit.filters.policy import Policy
from imagen_audit.probes import load_probes

LATIN1 = "schema_version: 1\nname: caf\u00e9\n".encode("latin-1")


@pytest.mark.parametrize("kind", ["probes", "policy", "config", "json"])
def test_a_file_saved_in_another_encoding_names_the_byte_and_line(tmp_path, kind) -> None:
    path = tmp_path / "doc.yaml"
    path.write_bytes(LATIN1)
    load, err = {
        "probes": (lambda p: load_probes(str(p)), ProbeFileError),
        "policy": (Policy.load, PolicyError),
        "config": (lambda p: read_document(p, "YAML", RunConfigError), RunConfigError),
        "json": (lambda p: read_document(p, "JSON", ValidationFileError), ValidationFileError),
    }[kind]
    with pytest.raises(err) as info:
        load(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "not UTF-8 text" in text
    assert "0xe9" in text and "offset 27" in text and "line 2" in text
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("kind", ["probes", "policy", "config"])
def test_a_missing_file_is_named_as_missing(tmp_path, kind) -> None:
    path = tmp_path / "absent.yaml"
    load, err, what = {
        "probes": (lambda p: load_probes(str(p)), ProbeFileError,
                   "probe file not found"),
        "policy": (Policy.load, PolicyError, "no such policy file"),
        "config": (lambda p: read_document(p, "YAML", RunConfigError, "run config file"),
                   RunConfigError, "no such run config file"),
    }[kind]
    with pytest.raises(err, match=what) as info:
        load(path)
    assert str(info.value).startswith(str(path))


def test_invalid_json_and_duplicate_yaml_keys_name_the_file_and_field(tmp_path) -> None:
    bad = tmp_path / "v.json"
    bad.write_text('{"a": 1,', encoding="utf-8")
    with pytest.raises(ValidationFileError, match=r"v\.json: not valid JSON"):
        read_document(bad, "JSON", ValidationFileError)
    dup = tmp_path / "gate.yaml"
    dup.write_text("checks:\n  - metric: m\n    max: 0.1\n    max: 0.9\n", encoding="utf-8")
    with pytest.raises(RunConfigError) as info:
        read_document(dup, "YAML", RunConfigError, unique_keys=True)
    text = str(info.value)
    assert "field 'checks[0].max'" in text and "line 4" in text and "first on line 3" in text
    # Without unique_keys the same reader still refuses python tags (safe loading only).
    tag = tmp_path / "tag.yaml"
    tag.write_text("x: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(RunConfigError, match="not valid YAML"):
        read_document(tag, "YAML", RunConfigError)


def test_the_probes_command_refuses_a_latin1_probe_file_with_exit_2(tmp_path, caplog) -> None:
    path = tmp_path / "occupations.yaml"
    path.write_bytes(LATIN1)
    out = tmp_path / "prompts.csv"
    assert main(["probes", str(path), "--out", str(out)]) == 2
    assert "not UTF-8 text" in caplog.text and not out.exists()


def test_a_latin1_folder_manifest_or_labels_file_is_refused_by_name(tmp_path) -> None:
    from imagen_audit.annotate.validate import read_labels
    from imagen_audit.errors import AuditError, ManifestError
    from imagen_audit.generate.folder import read_manifest

    (tmp_path / "manifest.csv").write_bytes("file,prompt\na.png,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"manifest\.csv: not UTF-8 text .*line 2"):
        read_manifest(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_bytes("file,gender\nn\u00e9e.png,woman\n".encode("latin-1"))
    with pytest.raises(AuditError, match=r"labels\.csv: not UTF-8 text .*line 2"):
        read_labels(labels, tmp_path)


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path) -> None:
    from imagen_audit.generate.folder import read_manifest

    (tmp_path / "manifest.csv").write_text("\ufefffile,prompt\na.png,a cat\n",
                                           encoding="utf-8")
    with pytest.raises(Exception) as info:  # a.png is absent: the header itself was read
        read_manifest(tmp_path)
    assert "missing column" not in str(info.value) and "a.png" in str(info.value)
