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


# Latin-script prompts with no function word the lists know (Turkish, Polish, Vietnamese, a
# German caption around an English "in"): the language identifier reads them.
IDENTIFIED = [
    "kırmızı bisikletli yaşlı adam, sonbahar yaprakları, yağlı boya",  # Turkish
    "stary drewniany młyn nad rzeką o świcie, akwarela",  # Polish
    "con mèo ngủ trên cửa sổ, tranh màu nước",  # Vietnamese
    "gemütlicher Biergarten in München, Sonnenuntergang, Ölgemälde",  # German with "in"
    "Ragazza che legge sotto un albero di limoni, acquerello",  # Italian, capitalised
]
# Short English keyword prompts that an identifier alone reads as Afrikaans or Dutch.
KEYWORDS = ["sugar skull sticker, bright colors, die cut",
            "bank vault door, art deco, brass rivets, dramatic rim lighting",
            "atomic age diner, googie architecture, 1950s",
            "Hazardous Materials. Coffin. Zdzislaw Beksinski."]


@pytest.mark.parametrize("prompt", IDENTIFIED)
def test_the_identifier_reads_languages_the_function_words_miss(prompt: str) -> None:
    assert not reads_english(prompt)


@pytest.mark.parametrize("prompt", KEYWORDS)
def test_mostly_english_words_stay_english_whatever_the_identifier_says(prompt: str) -> None:
    assert reads_english(prompt)


def test_without_the_identifier_the_function_words_decide(monkeypatch) -> None:
    """A stripped install (no langid) still answers: the function-word test alone, which
    misses the Turkish prompt but still reads the Spanish one."""
    from imagen_audit.filters import language

    monkeypatch.setattr(language, "_identifier", lambda: None)
    assert reads_english(IDENTIFIED[0])
    assert not reads_english("un gato durmiendo en una silla al sol, acuarela")
