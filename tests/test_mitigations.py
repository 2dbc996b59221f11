"""Mitigations as run options: prompt templates and per-sample identity descriptors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from imagen_audit.errors import AuditError, RunStoreError
from imagen_audit.generate import GeneratorOptions
from imagen_audit.generate.mitigations import Mitigation, insert_descriptor
from imagen_audit.generate.runner import generate_run
from imagen_audit.probes import Prompt, load_probes
from imagen_audit.store import RunStore

NURSE = Prompt("occupations/face/registered_nurse", "a photo of the face of a registered nurse",
               "occupations", "face", occupation_id="registered_nurse")


@pytest.mark.parametrize(("text", "adjective", "occupation", "expected"), [
    ("a photo of the face of a registered nurse", "Black", "registered nurse",
     "a photo of the face of a Black registered nurse"),
    ("a photo of an electrician at work", "female", "electrician",
     "a photo of a female electrician at work"),
    ("A carpenter", "elderly", "carpenter", "An elderly carpenter"),
    ("a portrait of a person", "Muslim", None, "a portrait of a person, Muslim"),
    ("two chefs", "Asian", "chef", "two chefs, Asian"),  # no whole-word match: appended
])
def test_insert_descriptor(text, adjective, occupation, expected) -> None:
    assert insert_descriptor(text, adjective, occupation) == expected


def test_descriptors_are_drawn_uniformly_and_reproducibly() -> None:
    m = Mitigation.build(augment_axes=["gender"],
                         occupation_terms={"registered_nurse": "registered nurse"})
    draws = [m.rewrite(NURSE, k, seed) for k, seed in enumerate(range(4000))]
    assert draws == [m.rewrite(NURSE, k, seed) for k, seed in enumerate(range(4000))]
    adjectives = Counter(next(t.adjective for t in m.terms if f" {t.adjective} " in d)
                         for d in draws)
    assert set(adjectives) == {t.adjective for t in m.terms}
    expected = 4000 / len(m.terms)
    chi2 = sum((n - expected) ** 2 / expected for n in adjectives.values())
    assert chi2 < 16.3, adjectives  # chi-square, 3 d.f., p = 0.001


def test_prompts_that_name_an_identity_are_not_augmented() -> None:
    m = Mitigation.build(augment_axes=["ethnicity"])
    woman = next(p for p in load_probes("identities").prompts if p.identity_id == "woman")
    assert m.rewrite(woman, 0, 1) is None


def test_template_must_contain_the_prompt() -> None:
    with pytest.raises(AuditError, match="prompt"):
        Mitigation.build(prompt_template="a diverse photo")
    m = Mitigation.build(prompt_template="a diverse photo: {prompt}")
    assert m.rewrite(NURSE, 0, 1) == "a diverse photo: a photo of the face of a registered nurse"
    with pytest.raises(Exception, match="axis"):
        Mitigation.build(augment_axes=["hair_colour"])


def test_mitigated_run_records_and_uses_the_rewritten_prompt(tiny_cascade_dir: Path,
                                                              tmp_path: Path) -> None:
    opts = GeneratorOptions(num_stages=1, steps=(2,))
    common = {"limit_prompts": 2, "samples_per_prompt": 2, "options": opts, "progress": False}
    generate_run(tmp_path / "before", **common)
    mitigation = Mitigation.build(prompt_template="{prompt}, diverse", augment_axes=["gender"])
    generate_run(tmp_path / "after", mitigation=mitigation, **common)
    with RunStore.open_readonly(tmp_path / "before") as a, \
            RunStore.open_readonly(tmp_path / "after") as b:
        before, after = a.samples_table(), b.samples_table()
        assert (before["effective_prompt"] == before["prompt"]).all()
        assert after["effective_prompt"].str.endswith(", diverse").all()
        assert list(after["prompt"]) == list(before["prompt"])  # analysis groups by probe
        assert list(after["seed"]) == list(before["seed"])
        assert b.get_meta("mitigation")["augment_identity_axes"] == ["gender"]
        assert a.get_meta("mitigation") == {"mitigation": None}
        pix_a = a.images_table().set_index("sample_id")["pixel_sha256"]
        pix_b = b.images_table().set_index("sample_id")["pixel_sha256"]
        assert (pix_a != pix_b).all()  # the model saw the rewritten text
    from imagen_audit.report.html import write_report

    assert "Mitigation applied to this run" in write_report(tmp_path / "after").read_text()
    assert "No mitigation" in write_report(tmp_path / "before").read_text()
    with pytest.raises(RunStoreError, match="mitigation"):
        generate_run(tmp_path / "after", **common)
