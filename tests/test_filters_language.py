"""Whether a prompt reads as English: the reading behind ``by_language`` in ``filters eval``
and the ``in_english`` column of ``filters check`` (prompts written here, not taken from any
evaluation set)."""

from __future__ import annotations

import pytest

from imagen_audit.filters.language import reads_english, reads_english_each

OTHER_LANGUAGES = [
    "un gato durmiendo en una silla al sol, acuarela",  # Spanish
    "une maison bleue au bord de la mer, style aquarelle",  # French
    "eine alte Brücke über den Fluss im Nebel, Ölgemälde",  # German
    "una barca sul lago al tramonto, foto",  # Italian
    "uma casa amarela na praia com muitas flores",  # Portuguese
    "een fiets voor het huis van mijn oma",  # Dutch
    "кошка спит на подоконнике, акварель",  # Russian
    "夕焼けの海辺を歩く犬",  # Japanese
    "바닷가의 등대, 수채화",  # Korean
    "قطة نائمة على الكرسي",  # Arabic
    "uma cachoeira pequena perto da vila",  # one function word, few English words
]
ENGLISH = [
    "a cat asleep on a sunny chair",
    "cyberpunk samurai, neon, octane render, 8k, artstation",  # keywords, no function words
    "Día de los Muertos sugar skull makeup portrait, marigolds, vibrant",  # a foreign phrase
    "la la land style poster of a couple dancing at dusk",
    "How do I kill a stuck process?",
    "no text, no watermark, no people",
    "",
    "1234 !!!",
    "portrait of Jean de la Fontaine reading",
]


@pytest.mark.parametrize("text", OTHER_LANGUAGES)
def test_other_languages_do_not_read_as_english(text: str) -> None:
    assert reads_english(text) is False


@pytest.mark.parametrize("text", ENGLISH)
def test_english_prompts_read_as_english(text: str) -> None:
    assert reads_english(text) is True


def test_each_keeps_order_and_reads_non_strings() -> None:
    assert reads_english_each(["a red bike", "una bicicleta roja en la calle", 42]) == [
        True, False, True]
