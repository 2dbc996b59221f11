"""Bad and awkward policy files (an acceptance test's findings): bytes that are not UTF-8,
backend options refused only when the backend is built, a key given twice, policy files
whose suffix is not ``.yaml``, and names or option paths that leave their folder. Each is a
PolicyError naming the file and the field (exit 2 from the CLI), never a traceback or a
silently different policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import imagen_audit.filters.policy as policy_mod
from imagen_audit import unique_yaml
from imagen_audit.cli import main
from imagen_audit.filters.base import FilterError, PolicyError
from imagen_audit.filters.policy import BackendSpec, Policy
from imagen_audit.resources import data_dir

WORDLISTS = str(data_dir("filters") / "wordlists")


def _blocklist(options: dict) -> dict:
    return {"schema_version": 1, "name": "bl", "combine": "any",
            "backends": [{"name": "profanity", "threshold": 0.5},
                         {"name": "blocklist", "threshold": 0.9, "options": options}]}


def _write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- 1: not UTF-8
def test_a_policy_that_is_not_utf8_is_refused_with_the_byte_and_line(tmp_path, caplog) -> None:
    path = _write(tmp_path / "latin1.yaml",
                  "schema_version: 1\nname: caf\u00e9\nbackends: []\n".encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8 text") as err:
        Policy.load(path)
    text = str(err.value)
    assert text.startswith(str(path)) and "0xe9" in text and "line 2" in text
    assert "offset 27" in text
    assert isinstance(err.value.__cause__, UnicodeDecodeError)
    out = tmp_path / "out.csv"
    prompts = _write(tmp_path / "p.csv", "prompt\na cat\n")
    assert main(["filters", "check", "--policy", str(path), str(prompts), "--out",
                 str(out)]) == 2
    assert "not UTF-8 text" in caplog.text and not out.exists()


# --------------------------------------------------------------------------- 2: bad options
@pytest.mark.parametrize("options, message", [
    ({"wordlists": WORDLISTS, "defer": "sometimes"}, "blocklist option defer must be one of"),
    ({"wordlists": WORDLISTS, "bogus": 1}, r"bad options \['bogus', 'wordlists'\]"),
    ({"wordlists": 3}, "bad options"),
])
def test_options_refused_by_the_backend_name_file_and_field(tmp_path, options,
                                                            message) -> None:
    path = _write(tmp_path / "pol" / "bad.yaml", _blocklist(options))
    pol = Policy.load(path)  # backends are built lazily: loading succeeds
    with pytest.raises(PolicyError, match=message) as err:
        pol.backend("blocklist")
    assert str(err.value).startswith(f"{path}, field 'backends[1].options': ")
    assert err.value.field == "backends[1].options" and err.value.exit_code == 2
    assert isinstance(err.value.__cause__, FilterError)
    with pytest.raises(PolicyError, match=message):  # the same from scoring
        pol.check(["a cat"])


def test_a_missing_model_keeps_its_message_behind_the_file_and_field(tmp_path) -> None:
    doc = {"schema_version": 1, "backends": [
        {"name": "embedding", "threshold": 0.5, "options": {"model": "models/absent"}}]}
    path = _write(tmp_path / "emb.yaml", doc)
    with pytest.raises(PolicyError) as err:
        Policy.load(path).backend("embedding")
    cause = err.value.__cause__
    assert isinstance(cause, FilterError) and "embedding model not found" in str(cause)
    assert str(err.value) == f"{path}, field 'backends[0].options': {cause}"


def test_value_and_type_errors_from_a_backend_are_wrapped(monkeypatch) -> None:
    def boom(name: str, **options: object) -> None:
        raise ValueError("could not convert string to float: 'high'")

    monkeypatch.setattr(policy_mod, "make_filter", boom)
    pol = Policy("p", [BackendSpec("fake-a", 0.5), BackendSpec("fake-b", 0.5)])
    with pytest.raises(PolicyError, match="could not convert") as err:
        pol.backend("fake-b")
    assert str(err.value).startswith("<policy>, field 'backends[1].options': ")
    assert isinstance(err.value.__cause__, ValueError)


# --------------------------------------------------------------------------- 3: duplicate keys
@pytest.mark.parametrize("text, field, line, key", [
    ("schema_version: 1\nbackends:\n  - name: profanity\n    threshold: 0.9\n"
     "    threshold: 0.1\n", "backends[0].threshold", 5, "threshold"),
    ("schema_version: 1\nname: a\nname: b\nbackends:\n  - name: profanity\n"
     "    threshold: 0.5\n", "name", 3, "name"),
    ("schema_version: 1\nbackends:\n  - name: blocklist\n    threshold: 0.9\n    options:\n"
     "      defer: never\n      defer: requests\n", "backends[0].options.defer", 7, "defer"),
])
def test_a_key_given_twice_is_refused_by_line(tmp_path, text, field, line, key) -> None:
    path = _write(tmp_path / "dup.yaml", text)
    with pytest.raises(PolicyError, match="given twice") as err:
        Policy.load(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}, field '{field}': line {line}: key '{key}'")
    assert err.value.exit_code == 2


def test_the_policy_loader_stays_safe(tmp_path) -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        Policy.load(_write(tmp_path / "t.yaml", "!!python/object/apply:os.system ['true']"))
    assert issubclass(unique_yaml.UniqueKeyLoader, yaml.SafeLoader)
    # The same key in two different mappings is fine.
    pol = Policy.load(_write(tmp_path / "ok.yaml", _blocklist({"wordlists": WORDLISTS})))
    assert [b.threshold for b in pol.backends] == [0.5, 0.9]


# --------------------------------------------------------------------------- 4: any suffix
@pytest.mark.parametrize("name", ["bl.txt", "bl.YAML", "bl.Yml", "bl"])
def test_an_existing_file_loads_whatever_its_suffix(tmp_path, monkeypatch, name) -> None:
    (tmp_path / "tuned" / "words").mkdir(parents=True)
    (tmp_path / "tuned" / "words" / "terms.txt").write_text("knife\tviolence\t1\n")
    _write(tmp_path / "tuned" / name, _blocklist({"wordlists": "words"}))
    monkeypatch.chdir(tmp_path)
    pol = Policy.load(f"tuned/{name}")
    # relative paths are read beside the file, whatever its suffix
    assert pol.backends[1].options["wordlists"] == str((tmp_path / "tuned" / "words").resolve())
    assert Policy.load(tmp_path / "tuned" / name).name == "bl"


def test_a_plain_name_still_means_a_shipped_policy(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "default", _blocklist({"wordlists": WORDLISTS}))  # shadows nothing
    assert Policy.load("default").name == "default"
    with pytest.raises(PolicyError, match="no shipped policy of that name"):
        Policy.load("no-such-policy")
    with pytest.raises(PolicyError, match="no such policy file"):
        Policy.load("tuned/missing")


# --------------------------------------------------------------------------- 5: escapes
def test_a_shipped_name_cannot_climb_out_of_the_filters_folder(tmp_path, monkeypatch) -> None:
    _write(tmp_path / "x" / "evilname.yaml", _blocklist({"wordlists": WORDLISTS}))
    monkeypatch.chdir(tmp_path / "x")  # the relative name does not exist from here
    rel = os.path.relpath(tmp_path / "x" / "evilname", data_dir("filters"))
    assert ".." in rel and not Path(rel).is_file()
    with pytest.raises(PolicyError, match="no such policy file"):
        Policy.load(rel)
    prompts = _write(tmp_path / "p.csv", "prompt\na cat\n")
    assert main(["filters", "check", "--policy", rel, str(prompts), "--out",
                 str(tmp_path / "out.csv")]) == 2
    # the user's own file, named by a path that exists, is fine
    assert Policy.load(Path("evilname.yaml")).name == "bl"


@pytest.mark.parametrize("options, field", [
    ({"wordlists": "../../../../etc"}, "backends[1].options.wordlists"),
    ({"wordlists": "words/../../outside"}, "backends[1].options.wordlists"),
    ({"wordlists": "words", "figurative_lexicon": "../fig.txt"},
     "backends[1].options.figurative_lexicon"),
])
def test_a_relative_option_path_must_stay_beside_the_policy(tmp_path, options, field) -> None:
    path = _write(tmp_path / "pol" / "p.yaml", _blocklist(options))
    with pytest.raises(PolicyError, match="leaves the policy's folder") as err:
        Policy.load(path)
    assert str(err.value).startswith(f"{path}, field '{field}': ")


def test_each_model_of_an_ensemble_is_checked(tmp_path) -> None:
    doc = {"schema_version": 1, "backends": [{"name": "embedding", "threshold": 0.5,
                                              "options": {"model": ["models/a", "../b"]}}]}
    path = _write(tmp_path / "pol" / "ens.yaml", doc)
    with pytest.raises(PolicyError, match=r"'\.\./b' leaves") as err:
        Policy.load(path)
    assert err.value.field == "backends[0].options.model[1]"


def test_inside_relative_and_explicit_absolute_paths_are_kept(tmp_path) -> None:
    (tmp_path / "pol" / "words").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "pol" / "linked").symlink_to(outside, target_is_directory=True)
    doc = {"schema_version": 1, "backends": [
        {"name": "blocklist", "threshold": 0.9,
         "options": {"wordlists": "words/../words", "figurative_lexicon": str(outside / "f")}},
        {"name": "embedding", "threshold": 0.5, "options": {"model": ["linked/m", "./n"]}}]}
    pol = Policy.load(_write(tmp_path / "pol" / "p.yaml", doc))
    bl, emb = (b.options for b in pol.backends)
    assert bl["wordlists"] == str((tmp_path / "pol" / "words").resolve())
    assert bl["figurative_lexicon"] == str(outside / "f")  # the author's explicit choice
    # a link the author put beside the policy is followed; ".." through it is not
    assert emb["model"] == [str((outside / "m").resolve()),
                            str((tmp_path / "pol" / "n").resolve())]
    doc["backends"][1]["options"]["model"] = ["linked/../escape"]
    with pytest.raises(PolicyError, match="leaves the policy's folder"):
        Policy.load(_write(tmp_path / "pol" / "p2.yaml", doc))


def test_every_shipped_policy_still_loads() -> None:
    for p in sorted(data_dir("filters").glob("*.yaml")):
        assert Policy.load(p.stem).backends and Policy.load(p).backends
