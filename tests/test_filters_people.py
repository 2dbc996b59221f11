"""Which prompts are about people: the reading behind ``by_people`` in ``filters eval``."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.people import PeopleReader, occupation_nouns, read_people_words


@pytest.fixture(scope="module")
def reader() -> PeopleReader:
    return PeopleReader.load()


@pytest.mark.parametrize("text", [
    "a photo of the face of a man", "two grooms cutting a cake", "a Muslim praying",
    "policemen in riot gear", "a makeup artist at work", "makeup artists backstage",
    "she walks along the beach", "a crowd of commuters on a platform",
    "portrait of a bank teller", "a candid photo of phlebotomists", "a stay-at-home dad",
    "wheelchair users at a concert", "nannies in the park", "an elderly Sikh gentleman",
    "many hands of different skin tones forming a heart", "the women's march"])
def test_prompts_naming_a_person_are_about_people(reader: PeopleReader, text: str) -> None:
    assert reader.names_people(text) is True


@pytest.mark.parametrize("text", [
    "a lighthouse in a storm", "a bowl of ramen", "the meaning of life",
    "a watercolor of mountains at dawn", "an abandoned factory, rust, fog",
    "a red sports car on a wet road", "abraham lincoln at gettysburg"])
def test_prompts_naming_no_person_are_not(reader: PeopleReader, text: str) -> None:
    # the last one: named individuals are not recognised (the module docstring says so)
    assert reader.names_people(text) is False


def test_occupation_probes_lend_their_nouns(reader: PeopleReader) -> None:
    """Every shipped occupation probe's head noun reads as a person, plural too."""
    heads = occupation_nouns()
    assert len(heads) > 50 and "technician" in heads
    assert all(reader.names_people(f"two {h}s at lunch") or reader.names_people(f"a {h}")
               for h in heads)


def test_people_list_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "people.txt"
    p.write_text("# comment\nbaker welder\nnurse 3d-artist!\n")
    with pytest.raises(FilterError, match=r"people\.txt:3: '3d-artist!'"):
        read_people_words(p)
    p.write_text("# only a comment\n")
    with pytest.raises(FilterError, match="no words"):
        read_people_words(p)
    p.write_text("baker\nmakeup-artist\n")
    assert read_people_words(p) == {"baker", "makeup-artist"}
