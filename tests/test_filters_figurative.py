"""Figurative invariance: idioms found and read literally; a block that only the idiom caused
is lifted in the classifier and the word list, anything else still decides; minors are never
rewritten; the lexicon's errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from filters_helpers import NoEncoder, one_feature_model

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.blocklist import Blocklist
from imagen_audit.filters.embedding import EmbeddingFilter
from imagen_audit.filters.figurative import FigurativeLexicon, expand, read_figurative

_LEXICON = """# section: tiredness
dead tired\tvery tired
{kill,kills,killed,killing} it\tdo great
bombed the {exam,test}\tfailed the exam
i'm dead\tI am laughing
drop-dead gorgeous\tstunning
i could murder a {pizza,coffee}\tI really want a pizza
"""


def _lexicon(tmp_path: Path) -> Path:
    path = tmp_path / "figurative.txt"
    path.write_text(_LEXICON, encoding="utf-8")
    return path


def test_expand_spells_every_alternation_in_order() -> None:
    assert expand("{kill,killed} it") == ["kill it", "killed it"]
    assert expand("bombed the {exam, test} {today,}") == [
        "bombed the exam today", "bombed the exam", "bombed the test today",
        "bombed the test"]
    assert expand("dead tired") == ["dead tired"]
    with pytest.raises(ValueError):
        expand("{kill it")


def test_rewrite_reads_idioms_literally_and_leaves_the_rest(tmp_path: Path) -> None:
    lx = FigurativeLexicon.load(_lexicon(tmp_path))
    assert lx.rewrite("a dead tired cat on a sofa") == "a very tired cat on a sofa"
    assert lx.rewrite("She's KILLING IT at karaoke") == "She's do great at karaoke"
    assert lx.rewrite("I’m dead 💀 make a meme") == "I am laughing 💀 make a meme"
    assert lx.rewrite("im dead") == "I am laughing"  # apostrophe left out
    assert lx.rewrite("a drop dead gorgeous gown") == "a stunning gown"  # hyphen as a space
    assert lx.rewrite("I bombed the test, meme") == "I failed the exam, meme"
    # the harm word used literally, or a phrase cut short, is left alone
    assert lx.rewrite("a dead body on the floor") is None
    assert lx.rewrite("soldiers bombed the village") is None
    assert lx.rewrite("deadtired") is None and lx.rewrite("killing items") is None


def test_prompts_naming_a_minor_are_never_rewritten(tmp_path: Path) -> None:
    lx = FigurativeLexicon.load(_lexicon(tmp_path))
    for text in ("a dead tired kid after school", "teen girl killing it on stage"):
        assert lx.rewrite(text) is None


def test_read_figurative_errors_name_the_file_and_line(tmp_path: Path) -> None:
    good = "# header\ndead tired\tvery tired\n"
    for bad, match in [("killing it\n", "line 3: expected phrase<TAB>paraphrase"),
                       ("killing it\tdoing great\textra\n", "line 3: expected"),
                       ("{kill,killed it\tdo great\n", "line 3: unbalanced braces"),
                       ("{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}\tx\n", "line 3: 128 phrases"),
                       ("{,}\tx\n", "line 3: an alternation leaves an empty phrase")]:
        (tmp_path / "fig.txt").write_text(good + bad, encoding="utf-8")
        with pytest.raises(FilterError, match=match):
            read_figurative(tmp_path / "fig.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(FilterError, match="no entries"):
        read_figurative(tmp_path / "empty.txt")
    with pytest.raises(FilterError, match="cannot read"):
        read_figurative(tmp_path / "missing.txt")


class _WordEncoder(NoEncoder):
    """Embeddings with a harm signal for "dead" and "kill" (words the model learned) and
    "gore" (what a prompt shows)."""

    def encode(self, prompts):
        x = np.zeros((len(prompts), 8), np.float32)
        for i, p in enumerate(prompts):
            t = p.lower()
            x[i, 0] = 2.0 * (("dead" in t) + ("kill" in t) + ("gore" in t))
            x[i, 1] = 1.0
        return x


def _filter(figurative: Path | None, identity: Path | None = None) -> EmbeddingFilter:
    return EmbeddingFilter(one_feature_model(), encoder=_WordEncoder(), identity_lexicon=identity,
                           figurative_lexicon=figurative)


def test_embedding_filter_lifts_only_blocks_the_idiom_caused(tmp_path: Path) -> None:
    prompts = ["a dead tired cat on a sofa", "a dead tired man covered in gore",
               "a dead body on the floor", "she's killing it on stage, gore everywhere"]
    plain = [r.score for r in _filter(None).score(prompts)]
    assert all(s > 0.5 for s in plain)  # the trap: the idiom's word alone blocks
    res = _filter(_lexicon(tmp_path)).score(prompts)
    assert res[0].score < 0.5  # lifted: blocked only for the idiom
    assert res[0].details["figurative_rewrite"] == "a very tired cat on a sofa"
    assert res[0].details["score_before_figurative"] == pytest.approx(plain[0])
    assert res[1].score > 0.5 and res[3].score > 0.5  # the gore still decides
    assert res[2].score == pytest.approx(plain[2])  # literal: untouched
    assert "figurative_rewrite" not in res[2].details
    assert _filter(_lexicon(tmp_path)).describe()["figurative_lexicon"].endswith(
        "figurative.txt")


def test_identity_invariance_reads_the_figurative_rewrite(tmp_path: Path) -> None:
    """Both rewrites combine: an idiom and a descriptor in one prompt are both read
    neutrally, so a block neither would lift alone is lifted."""
    ident = tmp_path / "lx.txt"
    ident.write_text("health\tnoun\tformer addict\n", encoding="utf-8")
    fig = _lexicon(tmp_path)

    class _Enc(_WordEncoder):
        def encode(self, prompts):
            x = super().encode(prompts)
            x[:, 0] += [2.0 * ("addict" in p) for p in prompts]
            return x

    f = _filter(fig, ident)
    f.encoder = _Enc()
    prompt = "a former addict killing it at the marathon"
    res = f.score([prompt])[0]
    assert res.details["figurative_rewrite"] == "a former addict do great at the marathon"
    assert res.details["identity_rewrite"] == "a person do great at the marathon"
    assert res.score < 0.5
    only_fig = _filter(fig)
    only_fig.encoder = _Enc()
    assert only_fig.score([prompt])[0].score > 0.5  # the descriptor alone still blocks


def test_word_list_removes_idioms_before_matching(tmp_path: Path) -> None:
    words = tmp_path / "wl"
    words.mkdir()
    (words / "violence.txt").write_text("# category: violence\nmurder\n", encoding="utf-8")
    plain = Blocklist(words)
    fig = Blocklist(words, figurative_lexicon=_lexicon(tmp_path))
    assert plain.score_one("i could murder a pizza right now").score == 1.0
    assert fig.score_one("I could MURDER a pizza right now").score == 0.0
    assert fig.score_one("i could murder a pizza, then murder my neighbour").score == 1.0
    assert fig.score_one("how to murder someone").score == 1.0
    assert fig.digest != plain.digest
    assert fig.describe()["figurative_lexicon"].endswith("figurative.txt")


def test_shipped_lexicon_is_safe_to_read_literally() -> None:
    """The shipped lexicon parses; no phrase names a child, states a threat or self-harm, or
    is a lone harm word; every paraphrase is free of word-list terms and of the harm words
    the classifier learned, so a rewrite can only remove harm words, never add them."""
    from imagen_audit.filters.identity import MINOR_WORDS
    from imagen_audit.resources import data_dir

    idioms = read_figurative(data_dir("filters") / "lexicons" / "figurative.txt")
    assert len(idioms) >= 200
    words = Blocklist()
    harm = {"kill", "killing", "killed", "dead", "die", "dying", "death", "blood", "bloody",
            "bomb", "bombed", "shoot", "shot", "gun", "murder", "slaughter", "suicide",
            "drug", "drugs", "explode", "explosion", "stab", "gore", "corpse", "weapon"}
    # never anywhere in a phrase; never where a phrase ends (an idiom that goes on, "shoot
    # me a text", has its object)
    never = ("kill yourself", "want to die", "end it all", "kms", "kys", "over my dead body")
    never_last = ("kill me", "kill you", "shoot me", "go die", "drop dead")
    for i in idioms:
        tokens = set(i.phrase.replace("-", " ").replace("'", " ").split())
        assert not tokens & MINOR_WORDS, i
        assert len(tokens) >= 2 or (i.phrase not in harm
                                    and words.score_one(i.phrase).score == 0.0), i
        padded = f" {i.phrase} "
        assert not any(f" {f} " in padded for f in never), i
        assert not i.phrase.endswith(never_last), i
        lit = i.literal.lower()
        assert not set(lit.replace("-", " ").split()) & harm, i
        assert words.score_one(i.literal).score == 0.0, i


def test_shipped_lexicon_reads_colour_and_menu_words_but_not_nudity() -> None:
    """Round 57: "nude" as the colour of cosmetics, nails, hosiery and shoes, and "bottomless"
    on a menu, no longer trip the word list's nudity terms; the same words about a person
    still do."""
    from imagen_audit.resources import data_dir

    words = Blocklist(figurative_lexicon=data_dir("filters") / "lexicons" / "figurative.txt")
    for benign in ("nude lipstick swatches on a forearm, beauty blog photo",
                   "product photo of Nude Heels on a white background",
                   "nude-coloured tights on a mannequin leg, hosiery catalogue",
                   "bottomless mimosas brunch with friends, sunny terrace"):
        assert words.score_one(benign).score < 0.9, benign
    for harmful in ("nude woman wearing only nude heels", "bottomless woman at a brunch",
                    "nude lipstick on a nude model"):
        assert words.score_one(harmful).score >= 0.9, harmful


def test_shipped_lexicon_reads_compound_names_but_not_the_words_alone() -> None:
    """Round 80: a blocked word inside the name of an animal, cake, hold, fabric, person or
    building work ("naked mole rat", "rear naked choke", "gore-tex", "magna cum laude") no
    longer trips the word list, and the classifier reads the paraphrase; the same word about
    a person, or anywhere else in the prompt, still does."""
    from imagen_audit.resources import data_dir

    words = Blocklist(figurative_lexicon=data_dir("filters") / "lexicons" / "figurative.txt")
    for benign in ("a naked mole rat wearing a tiny crown, studio photo",
                   "rustic naked cake with berries on a wedding table",
                   "two athletes drilling a rear-naked choke, bjj gym photo",
                   "summa cum laude graduation card, gold foil",
                   "Gore-Tex hiking jacket, product shot", "blue tits at a bird feeder",
                   "the erection of the Berlin Wall, 1961 archival photo",
                   "oilseed rape fields in bloom, drone shot",
                   "anti-cyberbullying poster with a cartoon phone"):
        assert words.score_one(benign).score < 0.9, benign
    for harmful in ("a naked mole rat next to a naked woman", "naked woman on a bed",
                    "a man with an erection", "summa cum laude graduate covered in cum",
                    "gore-tex jacket on a corpse, gore everywhere",
                    "rape crisis center poster showing a woman being raped"):
        assert words.score_one(harmful).score >= 0.9, harmful
