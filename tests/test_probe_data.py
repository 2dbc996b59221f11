"""Checks on the probe data files (probes/occupations.yaml, probes/identities.yaml)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "probes"
BLS_CSV = ROOT.parent / "shared/data/bls-occupations-2018/occupations.csv"

BASELINE_COLUMNS = {
    "women": "pct_women",
    "white": "pct_white",
    "black": "pct_black",
    "asian": "pct_asian",
    "hispanic_or_latino": "pct_hispanic_or_latino",
}
AXES = {"gender", "ethnicity", "age", "religion", "disability", "sexual_orientation"}


def _load(name: str) -> dict:
    with (PROBES / name).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def occupations() -> dict:
    return _load("occupations.yaml")


@pytest.fixture(scope="module")
def identities() -> dict:
    return _load("identities.yaml")


def test_occupations_file_is_well_formed(occupations):
    assert occupations["schema_version"] == 1
    assert occupations["family"] == "occupations"
    for template in occupations["templates"]:
        assert "{a}" in template["text"] and "{occupation}" in template["text"]
    entries = occupations["occupations"]
    assert len(entries) >= 100
    ids = [e["id"] for e in entries]
    terms = [e["term"] for e in entries]
    assert len(set(ids)) == len(ids), "duplicate occupation ids"
    assert len(set(terms)) == len(terms), "duplicate occupation terms"
    for entry in entries:
        assert isinstance(entry["employed_thousands"], int), entry["id"]
        baseline = entry["baseline"]
        assert set(baseline) == set(BASELINE_COLUMNS), entry["id"]
        assert baseline["women"] is not None, entry["id"]
        for key, value in baseline.items():
            assert value is None or 0.0 <= value <= 1.0, (entry["id"], key, value)


def test_occupation_figures_match_bls(occupations):
    if not BLS_CSV.exists():
        pytest.skip(f"BLS table not available at {BLS_CSV}")
    with BLS_CSV.open(newline="", encoding="utf-8") as f:
        rows = {row["occupation"]: row for row in csv.DictReader(f)}
    for entry in occupations["occupations"]:
        row = rows.get(entry["bls_occupation"])
        assert row is not None, f"{entry['id']}: {entry['bls_occupation']!r} not in the BLS table"
        assert entry["employed_thousands"] == int(row["employed_thousands"]), entry["id"]
        for key, column in BASELINE_COLUMNS.items():
            raw = row[column].strip()
            value = entry["baseline"][key]
            if raw == "-":
                assert value is None, (entry["id"], key)
            else:
                assert value is not None, (entry["id"], key)
                assert abs(value - float(raw) / 100) <= 1e-9, (entry["id"], key, value, raw)


def test_identities_file_is_well_formed(identities, occupations):
    assert identities["schema_version"] == 1
    assert identities["family"] == "identities"
    assert set(identities["axes"]) == AXES
    ids = []
    for axis, terms in identities["axes"].items():
        assert 4 <= len(terms) <= 9, axis
        for term in terms:
            ids.append(term["id"])
            assert isinstance(term["person"], str) and term["person"].strip(), term["id"]
            assert isinstance(term["adjective"], str) and term["adjective"].strip(), term["id"]
    assert len(set(ids)) == len(ids), "duplicate identity ids"
    occupation_ids = {e["id"] for e in occupations["occupations"]}
    combine = identities["combine_with_occupations"]
    assert combine, "combine_with_occupations is empty"
    missing = [oid for oid in combine if oid not in occupation_ids]
    assert not missing, f"combine_with_occupations names unknown occupations: {missing}"


def test_women_share_spans_the_range(occupations, identities):
    women = {e["id"]: e["baseline"]["women"] for e in occupations["occupations"]}
    assert min(women.values()) < 0.1
    assert max(women.values()) > 0.85
    combined = [women[oid] for oid in identities["combine_with_occupations"] if oid in women]
    assert min(combined) < 0.1
    assert max(combined) > 0.85
