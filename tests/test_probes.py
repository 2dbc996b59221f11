"""Probe sets: loading, strict validation with precise error messages, stable expansion."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagen_audit.errors import AuditError, ProbeFileError
from imagen_audit.probes import (
    BASELINE_KEYS,
    IDENTITY_AXES,
    ProbeSet,
    indefinite_article,
    load_probes,
    render,
    sample_seed,
)
from imagen_audit.resources import data_dir

SHIPPED = data_dir("probes")


def _raw(name: str) -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- shipped sets
@pytest.fixture(scope="module")
def occupations() -> ProbeSet:
    return load_probes("occupations")


@pytest.fixture(scope="module")
def identities() -> ProbeSet:
    return load_probes("identities")


def test_occupations_expand_to_every_template_times_every_occupation(occupations):
    raw = _raw("occupations")
    n_occ, n_tpl = len(raw["occupations"]), len(raw["templates"])
    assert n_occ > 100 and n_tpl > 0
    assert len(occupations) == n_occ * n_tpl
    assert len(occupations.occupations) == n_occ
    assert [o.id for o in occupations.occupations] == [e["id"] for e in raw["occupations"]]
    assert occupations.name == "occupations"
    assert occupations.sources == (str(SHIPPED / "occupations.yaml"),)
    assert {p.family for p in occupations.prompts} == {"occupations"}


def test_occupation_prompt_ids_are_readable_paths(occupations):
    raw = _raw("occupations")
    template_ids = [t["id"] for t in raw["templates"]]
    occupation_ids = [e["id"] for e in raw["occupations"]]
    pattern = re.compile(r"^occupations/([a-z0-9_]+)/([a-z0-9_]+)$")
    for p in occupations.prompts:
        m = pattern.match(p.prompt_id)
        assert m, p.prompt_id
        assert m.group(1) == p.template_id
        assert m.group(2) == p.occupation_id
    # Template-major order: all occupations for the first template, then the next template.
    expected = [f"occupations/{t}/{o}" for t in template_ids for o in occupation_ids]
    assert [p.prompt_id for p in occupations.prompts] == expected
    first = raw["occupations"][0]
    assert occupations.prompts[0].prompt_id == f"occupations/face/{first['id']}"
    assert first["term"] in occupations.prompts[0].prompt


def test_specific_occupation_prompt(occupations):
    by_id = {p.prompt_id: p for p in occupations.prompts}
    p = by_id["occupations/face/software_developer"]
    assert p.prompt == "a photo of the face of a software developer"
    assert p.occupation_id == "software_developer"
    assert p.identity_id is None and p.identity_axis is None
    assert dict(p.controls) == {}
    # An occupation starting with a vowel sound gets "an".
    assert by_id["occupations/face/electrician"].prompt == "a photo of the face of an electrician"


def test_identities_expand_alone_and_with_occupations(identities):
    raw = _raw("identities")
    n_terms = sum(len(terms) for terms in raw["axes"].values())
    n_alone = len(raw["templates"]["alone"])
    n_with = len(raw["templates"]["with_occupation"])
    n_comb = len(raw["combine_with_occupations"])
    assert len(identities) == n_terms * (n_alone + n_with * n_comb) > 0
    assert [o.id for o in identities.occupations] == raw["combine_with_occupations"]
    pattern = re.compile(r"^identities/[a-z0-9_]+/[a-z0-9_]+(\+[a-z0-9_]+)?$")
    for p in identities.prompts:
        assert pattern.match(p.prompt_id), p.prompt_id
        assert p.identity_axis in IDENTITY_AXES
        assert p.prompt_id.split("/")[2].split("+")[0] == p.identity_id
    by_id = {p.prompt_id: p for p in identities.prompts}
    woman = by_id["identities/face/woman"]
    assert woman.prompt == "a photo of the face of a woman"
    assert dict(woman.controls) == {"perceived_gender": "female"}
    combo = by_id["identities/face/woman+software_developer"]
    assert combo.prompt == "a photo of the face of a female software developer"
    assert combo.occupation_id == "software_developer"
    assert combo.identity_axis == "gender"


def test_combined_load(occupations, identities):
    both = load_probes("occupations,identities")
    assert len(both) == len(occupations) + len(identities)
    assert both.prompts == occupations.prompts + identities.prompts
    assert both.name == "occupations+identities"
    # The identities' occupations are a subset of the occupations file.
    assert len(both.occupations) == len(occupations.occupations)
    ids = [p.prompt_id for p in both.prompts]
    assert len(set(ids)) == len(ids)


def test_same_list_form_as_comma_form(occupations):
    assert load_probes(["occupations", "identities"]).prompts == \
        load_probes(" occupations , identities ").prompts


@pytest.mark.parametrize("spec", ["occupations", "identities", "occupations,identities"])
def test_loading_is_stable(spec):
    a, b = load_probes(spec), load_probes(spec)
    assert a.prompts == b.prompts
    assert [p.prompt_id for p in a.prompts] == [p.prompt_id for p in b.prompts]
    assert a.digest == b.digest and len(a.digest) == 64
    ids = [p.prompt_id for p in a.prompts]
    assert len(ids) == len(set(ids)) > 0


def test_loading_by_path_equals_loading_by_name(occupations):
    by_path = load_probes(str(SHIPPED / "occupations.yaml"))
    assert by_path.prompts == occupations.prompts
    assert by_path.digest == occupations.digest


def test_same_set_twice_is_refused():
    with pytest.raises(ProbeFileError, match="occurs twice"):
        load_probes("occupations,occupations")


def test_unknown_shipped_name_lists_the_choices():
    with pytest.raises(ProbeFileError) as info:
        load_probes("occupationz")
    msg = str(info.value)
    assert "occupationz" in msg and "occupations" in msg and "identities" in msg


def test_missing_yaml_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProbeFileError, match="not found") as info:
        load_probes(str(missing))
    assert str(missing) in str(info.value)


def test_a_probe_name_cannot_leave_the_shipped_folder(tmp_path, monkeypatch):
    # "../x" named relative to probes/ used to load <repo>/x.yaml; now only a plain name is
    # looked up among the shipped sets, and anything else must be an existing file.
    from imagen_audit.resources import data_dir

    outside = data_dir("probes").parent / "escaped-probes.yaml"
    assert not outside.exists()
    with pytest.raises(ProbeFileError, match="not found"):
        load_probes("../escaped-probes")
    # A user's own file loads whatever the case of its suffix, or with none.
    shipped = (data_dir("probes") / "occupations.yaml").read_text(encoding="utf-8")
    for name in ("mine.YAML", "mine"):
        (tmp_path / name).write_text(shipped, encoding="utf-8")
        assert len(load_probes(str(tmp_path / name)).prompts) == len(
            load_probes("occupations").prompts)


@pytest.mark.parametrize("spec", ["", " , ", []])
def test_no_probe_set_given(spec):
    with pytest.raises(ProbeFileError, match="no probe set given"):
        load_probes(spec)


def test_probe_file_error_is_an_audit_error_with_exit_code_2():
    err = ProbeFileError("f.yaml", "boom", entry="occupations[1]", field="term")
    assert isinstance(err, AuditError)
    assert err.exit_code == 2
    assert str(err) == "f.yaml, entry occupations[1], field 'term': boom"
    assert (err.path, err.entry, err.field) == ("f.yaml", "occupations[1]", "term")


def test_baselines_frame(occupations):
    frame = occupations.baselines()
    assert len(frame) == len(occupations.occupations)
    assert list(frame["occupation_id"]) == [o.id for o in occupations.occupations]
    for key in BASELINE_KEYS:
        assert f"baseline_{key}" in frame.columns
    assert frame["baseline_women"].notna().all()
    assert frame["baseline_women"].between(0, 1).all()


# --------------------------------------------------------------------------- limit
def test_limit_keeps_order_and_metadata(occupations):
    small = occupations.limit(5)
    assert small.prompts == occupations.prompts[:5]
    assert len(small) == 5
    assert small.occupations == occupations.occupations
    assert small.digest == occupations.digest
    assert small.name == occupations.name
    assert occupations.limit(1).prompts == occupations.prompts[:1]


def test_limit_none_or_large_is_the_same_set(occupations):
    assert occupations.limit(None) is occupations
    assert occupations.limit(len(occupations)) is occupations
    assert occupations.limit(len(occupations) + 100) is occupations


@pytest.mark.parametrize("n", [0, -3])
def test_limit_below_one_is_refused(occupations, n):
    with pytest.raises(ValueError, match="at least 1"):
        occupations.limit(n)


# --------------------------------------------------------------------------- seeds
def test_sample_seed_is_deterministic_and_in_range():
    s = sample_seed(0, "occupations/face/nurse", 0)
    assert s == sample_seed(0, "occupations/face/nurse", 0)
    expected = int.from_bytes(
        hashlib.sha256(b"0:occupations/face/nurse:0").digest()[:4], "big") & 0x7FFFFFFF
    assert s == expected
    assert 0 <= s < 2**31


def test_sample_seed_depends_on_each_argument():
    base = sample_seed(0, "occupations/face/nurse", 0)
    assert sample_seed(1, "occupations/face/nurse", 0) != base
    assert sample_seed(0, "occupations/face/doctor", 0) != base
    assert sample_seed(0, "occupations/face/nurse", 1) != base


def test_sample_seed_does_not_depend_on_other_prompts(occupations):
    full = {p.prompt_id: [sample_seed(7, p.prompt_id, k) for k in range(3)]
            for p in occupations.prompts}
    limited = {p.prompt_id: [sample_seed(7, p.prompt_id, k) for k in range(3)]
               for p in reversed(occupations.limit(10).prompts)}
    assert all(full[pid] == seeds for pid, seeds in limited.items())
    seeds = [s for v in full.values() for s in v]
    assert len(set(seeds)) == len(seeds)  # no collisions in a set this small


# --------------------------------------------------------------------------- articles
@pytest.mark.parametrize(("word", "article"), [
    ("elderly", "an"), ("Asian", "an"), ("electrician", "an"), ("older", "an"),
    ("university", "a"), ("unicorn", "a"), ("user", "a"), ("European", "a"), ("one", "a"),
    ("MRI", "an"), ("FBI", "an"), ("CEO", "a"), ("NYPD", "an"), ("US", "a"),
    ("hour", "an"), ("honest", "an"), ("heir", "an"), ("honorable", "an"),
    ("nurse", "a"), ("hairdresser", "a"), ("umbrella", "an"), ("usher", "an"),
    ('"apple', "an"), ("(owl", "an"), ("", "a"),
])
def test_indefinite_article(word, article):
    assert indefinite_article(word) == article


@pytest.mark.parametrize(("word", "article"), [
    ("uninsured", "an"),        # "un-" + "i", not "uni-" (you-ni)
    ("8-year-old", "an"),       # "eight"
    ("X-ray", "an"),            # "ex-ray"
])
def test_indefinite_article_known_gaps(word, article):
    assert indefinite_article(word) == article


@pytest.mark.parametrize(("template", "values", "expected"), [
    ("a photo of {a} {occupation}", {"occupation": "elderly man"}, "a photo of an elderly man"),
    ("{a} {identity} {occupation}", {"identity": "Asian", "occupation": "nurse"},
     "an Asian nurse"),
    ("{a} {occupation}", {"occupation": "university professor"}, "a university professor"),
    ("{a} {occupation}", {"occupation": "MRI technician"}, "an MRI technician"),
    ("{a} {occupation}", {"occupation": "CEO"}, "a CEO"),
    ("{a} {occupation}", {"occupation": "hour-long shift"}, "an hour-long shift"),
    ("photo of  {a} {person}  outdoors ", {"person": "owl"}, "photo of an owl outdoors"),
    ("{a} {x} and {a} {y}", {"x": "apple", "y": "pear"}, "an apple and a pear"),
])
def test_render(template, values, expected):
    assert render(template, **values) == expected


def test_render_article_with_extra_spaces():
    assert render("photo of {a}  {person}", person="owl") == "photo of an owl"


def test_render_dangling_article_falls_back_to_a():
    assert render("at {a}") == "at a"
    assert "\x00" not in render("{a}")


# --------------------------------------------------------------------------- bad files
def _occupations_doc() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "family": "occupations",
        "description": "test set",
        "source": {"name": "test source", "year": 2018},
        "templates": [
            {"id": "face", "text": "a photo of the face of {a} {occupation}"},
            {"id": "portrait", "text": "a portrait of {a} {occupation}"},
        ],
        "occupations": [
            {"id": "nurse", "term": "nurse", "category": "Health",
             "bls_occupation": "Registered nurses", "employed_thousands": 10,
             "baseline": {"women": 0.9, "white": 0.7, "black": 0.1, "asian": 0.1,
                          "hispanic_or_latino": 0.05}},
            {"id": "engineer", "term": "engineer", "category": "Engineering",
             "bls_occupation": "Engineers", "employed_thousands": 20,
             "baseline": {"women": 0.2, "white": None, "black": None, "asian": None,
                          "hispanic_or_latino": None}},
        ],
    }


def _identities_doc() -> dict[str, Any]:
    axes = {axis: [{"id": f"{axis}_{i}", "person": f"{axis} person {i}",
                    "adjective": f"{axis}-{i}"} for i in range(2)] for axis in IDENTITY_AXES}
    axes["gender"][0] = {"id": "woman", "person": "woman", "adjective": "female",
                         "control": {"perceived_gender": "female"}}
    return {
        "schema_version": 1,
        "family": "identities",
        "templates": {
            "alone": [{"id": "face", "text": "a photo of {a} {person}"}],
            "with_occupation": [{"id": "face", "text": "a photo of {a} {identity} {occupation}"}],
        },
        "combine_with_occupations": ["nurse", "engineer"],
        "axes": axes,
    }


def _write(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_minimal_occupations_file_loads(tmp_path):
    path = _write(tmp_path / "occupations.yaml", _occupations_doc())
    probes = load_probes(str(path))
    assert [p.prompt_id for p in probes.prompts] == [
        "occupations/face/nurse", "occupations/face/engineer",
        "occupations/portrait/nurse", "occupations/portrait/engineer"]
    assert probes.prompts[1].prompt == "a photo of the face of an engineer"
    eng = probes.occupations[1]
    assert eng.baseline == {"women": 0.2, "white": None, "black": None, "asian": None,
                            "hispanic_or_latino": None}
    assert eng.employed_thousands == 20
    assert probes.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_minimal_identities_file_loads(tmp_path):
    _write(tmp_path / "occupations.yaml", _occupations_doc())
    path = _write(tmp_path / "identities.yaml", _identities_doc())
    probes = load_probes(str(path))
    n_terms = 2 * len(IDENTITY_AXES)
    assert len(probes) == n_terms * (1 + 2)
    by_id = {p.prompt_id: p for p in probes.prompts}
    assert by_id["identities/face/woman+engineer"].prompt == "a photo of a female engineer"
    assert dict(by_id["identities/face/woman+engineer"].controls) == {
        "perceived_gender": "female"}
    assert [o.id for o in probes.occupations] == ["nurse", "engineer"]


def _occ_error(tmp_path: Path, doc: dict) -> tuple[Path, str]:
    path = _write(tmp_path / "occupations.yaml", doc)
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    return path, str(info.value)


def test_missing_term(tmp_path):
    doc = _occupations_doc()
    del doc["occupations"][1]["term"]
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg
    assert "occupations[1]" in msg and "'engineer'" in msg
    assert "field 'term'" in msg
    assert f"line {_line_of(path, '- id: engineer')}" in msg


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True])
def test_bad_baseline_share(tmp_path, value):
    doc = _occupations_doc()
    doc["occupations"][1]["baseline"]["women"] = value
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg
    assert "occupations[1]" in msg and "baseline" in msg
    assert "field 'women'" in msg
    assert repr(value) in msg
    assert f"line {_line_of(path, '- id: engineer')}" in msg


def test_bad_share_on_another_key(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][0]["baseline"]["asian"] = 2
    path, msg = _occ_error(tmp_path, doc)
    assert "occupations[0]" in msg and "field 'asian'" in msg
    assert f"line {_line_of(path, '- id: nurse')}" in msg


def test_women_share_is_required(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][1]["baseline"]["women"] = None
    _, msg = _occ_error(tmp_path, doc)
    assert "occupations[1]" in msg and "field 'women'" in msg and "required" in msg


def test_unknown_baseline_key(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][1]["baseline"]["martian"] = 0.1
    _, msg = _occ_error(tmp_path, doc)
    assert "occupations[1]" in msg and "field 'baseline'" in msg and "martian" in msg


def test_negative_employed(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][1]["employed_thousands"] = -5
    _, msg = _occ_error(tmp_path, doc)
    assert "occupations[1]" in msg and "field 'employed_thousands'" in msg


def test_duplicate_id(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][1]["id"] = "nurse"
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg
    assert "occupations[1]" in msg and "field 'id'" in msg and "duplicate" in msg
    assert f"line {_line_of(path, 'term: engineer') - 1}" in msg


@pytest.mark.parametrize("bad", ["Nurse", "nurse-1", "_nurse", "nurse practitioner"])
def test_id_must_be_snake_case(tmp_path, bad):
    doc = _occupations_doc()
    doc["occupations"][1]["id"] = bad
    _, msg = _occ_error(tmp_path, doc)
    assert "occupations[1]" in msg and "field 'id'" in msg and "snake_case" in msg


def test_unknown_template_placeholder(tmp_path):
    doc = _occupations_doc()
    doc["templates"][1]["text"] = "a portrait of {a} {job}"
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg
    assert "templates[1]" in msg and "'portrait'" in msg
    assert "field 'text'" in msg and "job" in msg
    assert f"line {_line_of(path, '- id: portrait')}" in msg


def test_template_must_use_the_occupation(tmp_path):
    doc = _occupations_doc()
    doc["templates"][0]["text"] = "a photo of {a} person"
    _, msg = _occ_error(tmp_path, doc)
    assert "templates[0]" in msg and "field 'text'" in msg and "occupation" in msg


def test_unbalanced_template_brace(tmp_path):
    doc = _occupations_doc()
    doc["templates"][0]["text"] = "a photo of {a} {occupation"
    _, msg = _occ_error(tmp_path, doc)
    assert "templates[0]" in msg and "field 'text'" in msg and "bad template" in msg


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_wrong_schema_version(tmp_path, version):
    doc = _occupations_doc()
    doc["schema_version"] = version
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg and "field 'schema_version'" in msg
    assert repr(version) in msg


@pytest.mark.parametrize("family", ["people", None])
def test_wrong_family(tmp_path, family):
    doc = _occupations_doc()
    doc["family"] = family
    path, msg = _occ_error(tmp_path, doc)
    assert str(path) in msg and "field 'family'" in msg and repr(family) in msg


def test_occupations_file_declared_as_identities(tmp_path):
    doc = _occupations_doc()
    doc["family"] = "identities"
    path = _write(tmp_path / "mine.yaml", doc)
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    msg = str(info.value)
    assert str(path) in msg and "field 'templates'" in msg and "mapping" in msg


def test_source_year_must_be_integer(tmp_path):
    doc = _occupations_doc()
    doc["source"]["year"] = "2018"
    _, msg = _occ_error(tmp_path, doc)
    assert "entry source" in msg and "field 'year'" in msg


def test_empty_occupations_list(tmp_path):
    doc = _occupations_doc()
    doc["occupations"] = []
    _, msg = _occ_error(tmp_path, doc)
    assert "field 'occupations'" in msg and "non-empty list" in msg


def test_entry_that_is_not_a_mapping(tmp_path):
    doc = _occupations_doc()
    doc["occupations"][1] = "engineer"
    _, msg = _occ_error(tmp_path, doc)
    assert "occupations[1]" in msg and "mapping" in msg


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("schema_version: 1\nfamily: occupations\ntemplates: [unclosed\n  - a: b\n",
                    encoding="utf-8")
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    msg = str(info.value)
    assert str(path) in msg and "not valid YAML" in msg and "line " in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"],
                         ids=["list", "string", "number"])
def test_top_level_not_a_mapping(tmp_path, text):
    """Regression: a list or scalar document raised AttributeError, not ProbeFileError."""
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    assert str(path) in str(info.value) and "mapping" in str(info.value)


def test_unhashable_mapping_key(tmp_path):
    path = tmp_path / "occupations.yaml"
    path.write_text("schema_version: 1\nfamily: occupations\n? [a, b]\n: 1\n", encoding="utf-8")
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    assert str(path) in str(info.value)


def test_template_with_bad_format_spec(tmp_path):
    doc = _occupations_doc()
    doc["templates"][0]["text"] = "a photo of {a} {occupation:d}"
    _, msg = _occ_error(tmp_path, doc)
    assert "templates[0]" in msg and "field 'text'" in msg


def test_python_tags_are_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'schema_version: 1\nfamily: !!python/object/apply:os.system ["touch '
                    f'{marker}"]\n', encoding="utf-8")
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_python_tag_inside_an_entry(tmp_path):
    marker = tmp_path / "pwned2"
    doc = _occupations_doc()
    path = _write(tmp_path / "occupations.yaml", doc)
    text = path.read_text(encoding="utf-8").replace(
        "term: engineer", f'term: !!python/object/apply:os.system ["touch {marker}"]')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProbeFileError, match="not valid YAML"):
        load_probes(str(path))
    assert not marker.exists()


# --------------------------------------------------------------------------- identities files
def _id_error(tmp_path: Path, doc: dict, occupations: bool = True) -> tuple[Path, str]:
    if occupations:
        _write(tmp_path / "occupations.yaml", _occupations_doc())
    path = _write(tmp_path / "identities.yaml", doc)
    with pytest.raises(ProbeFileError) as info:
        load_probes(str(path))
    return path, str(info.value)


def test_combine_with_unknown_occupation(tmp_path):
    doc = _identities_doc()
    doc["combine_with_occupations"] = ["nurse", "astronaut"]
    path, msg = _id_error(tmp_path, doc)
    assert str(path) in msg
    assert "combine_with_occupations[1]" in msg
    assert "field 'combine_with_occupations'" in msg and "astronaut" in msg


def test_combine_without_an_occupations_file(tmp_path):
    path, msg = _id_error(tmp_path, _identities_doc(), occupations=False)
    assert str(path) in msg and "combine_with_occupations[0]" in msg and "nurse" in msg


def test_identity_missing_adjective(tmp_path):
    doc = _identities_doc()
    del doc["axes"]["age"][1]["adjective"]
    path, msg = _id_error(tmp_path, doc)
    assert str(path) in msg
    assert "axes.age[1]" in msg and "field 'adjective'" in msg and "line " in msg
    assert f"line {_line_of(path, '- id: age_1')}" in msg


def test_identity_duplicate_id_across_axes(tmp_path):
    doc = _identities_doc()
    doc["axes"]["religion"][0]["id"] = "woman"
    _, msg = _id_error(tmp_path, doc)
    assert "axes.religion[0]" in msg and "field 'id'" in msg and "duplicate" in msg


def test_identity_unknown_axis(tmp_path):
    doc = _identities_doc()
    doc["axes"]["height"] = [{"id": "tall", "person": "tall person", "adjective": "tall"}]
    _, msg = _id_error(tmp_path, doc)
    assert "field 'axes'" in msg and "height" in msg


def test_identity_missing_axis(tmp_path):
    doc = _identities_doc()
    del doc["axes"]["disability"]
    _, msg = _id_error(tmp_path, doc)
    assert "field 'disability'" in msg


def test_identity_control_must_be_text(tmp_path):
    doc = _identities_doc()
    doc["axes"]["gender"][0]["control"] = {"perceived_gender": 1}
    _, msg = _id_error(tmp_path, doc)
    assert "axes.gender[0]" in msg and "field 'control'" in msg


def test_identity_template_placeholder(tmp_path):
    doc = copy.deepcopy(_identities_doc())
    doc["templates"]["with_occupation"][0]["text"] = "a photo of {a} {person} {occupation}"
    _, msg = _id_error(tmp_path, doc)
    assert "templates.with_occupation[0]" in msg and "field 'text'" in msg
    assert "person" in msg and "line " in msg
