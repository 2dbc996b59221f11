"""Identity invariance: descriptors found, rewritten and re-scored; a block that only the
descriptor caused is lifted, anything else still decides; minors are never rewritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from filters_helpers import NoEncoder, one_feature_model

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import EmbeddingFilter
from imagen_audit.filters.identity import Descriptor, IdentityLexicon, read_lexicon

_ENTRIES = [Descriptor("religion", "adj", "Muslim"), Descriptor("religion", "adj", "Sikh"),
            Descriptor("religion", "adj", "Jewish"), Descriptor("religion", "adj", "Hindu"),
            Descriptor("health", "noun", "recovering addict"),
            Descriptor("health", "noun", "recovering addicts"),
            Descriptor("health", "noun", "person living with HIV"),
            Descriptor("body", "adj", "plus-size"), Descriptor("class", "noun", "ex-con"),
            Descriptor("class", "noun", "refugee"), Descriptor("class", "noun", "refugees"),
            Descriptor("class", "noun", "immigrant"), Descriptor("age", "adj", "teenage"),
            Descriptor("sexuality", "adj", "gay")]


def test_neutralise_deletes_adjectives_and_makes_nouns_a_person() -> None:
    lx = IdentityLexicon(_ENTRIES)
    assert lx.neutralise("a recovering addict at a support meeting") == \
        "a person at a support meeting"
    assert lx.neutralise("Recovering addicts sharing coffee") == "people sharing coffee"
    assert lx.neutralise("an ex con opening a bakery") == "a person opening a bakery"
    assert lx.neutralise("A MUSLIM woman praying, oil painting") == "A woman praying, oil painting"
    assert lx.neutralise("a plus size model on a runway") == "a model on a runway"
    assert lx.neutralise("a Hindu wedding, a Sikh groom") == "a wedding, a groom"
    assert lx.neutralise("a cat on a sofa") is None  # nothing to rewrite
    assert lx.neutralise("Muslimah") is None  # whole words only


def test_prompts_naming_a_minor_are_never_rewritten() -> None:
    lx = IdentityLexicon(_ENTRIES)
    for text in ("a gay teen at prom", "a Muslim girl reading", "young refugee at the border",
                 "a Sikh boy", "refugee children arriving"):
        assert lx.neutralise(text) is None and lx.swaps(text) is None
    assert "teenage" not in lx.entries  # an entry naming a minor is dropped


def test_swaps_keep_axis_kind_and_number_and_repeat_exactly() -> None:
    lx = IdentityLexicon(_ENTRIES)
    out = lx.swaps("propaganda showing Jewish people as rats")
    assert out is not None and len(out) == 3
    assert all(v.startswith("propaganda showing ") and v.endswith(" people as rats")
               for v in out)
    assert {v.split()[2] for v in out} <= {"Muslim", "Sikh", "Hindu"}
    assert lx.swaps("propaganda showing Jewish people as rats") == out
    # No other plural noun of its axis: the descriptor is neutralised instead.
    assert lx.swaps("refugees at a station") == ["people at a station"] * 3
    assert set(lx.swaps("a refugee at a station") or []) <= {
        "a refugee at a station", "an immigrant at a station", "an ex-con at a station"}


def test_compound_patterns_match_any_word_joined_to_them() -> None:
    """Round 41: "*-haired" stands for every hair compound, listed or not, with a hyphen or a
    space at the joint (never without one: "keyed" is not "*-eyed"), rewritten only where it
    describes a person, and never swapped in as a literal "*"."""
    lx = IdentityLexicon([*_ENTRIES, Descriptor("body", "adj", "*-haired"),
                          Descriptor("body", "adj", "*-eyed"),
                          Descriptor("body", "adj", "bald")])
    assert lx.neutralise("a photo of a kinky-haired person smiling in a park") == \
        "a photo of a person smiling in a park"
    assert lx.neutralise("a salt-and-pepper-haired man reading") == "a man reading"
    assert lx.neutralise("a long haired Sikh woman") == "a woman"
    assert lx.neutralise("an amber-eyed refugee") == "a person"
    assert lx.neutralise("a keyed lock on a door") is None
    assert lx.neutralise("a wire-haired dog in the snow") is None  # not a person
    assert lx.neutralise("a curly-haired girl") is None  # a minor: never rewritten
    swaps = lx.swaps("a kinky-haired woman at work") or []
    assert len(swaps) == 3 and all("*" not in v and "kinky" not in v for v in swaps)


def test_coordinated_descriptors_are_rewritten_together() -> None:
    """Round 44b: descriptors joined by a comma, "and", "or", "&" or "/" describe the same
    person; each is deleted with its joint, so no debris ("a and family") is left, and a
    joint that coordinates people rather than descriptors stays."""
    lx = IdentityLexicon([*_ENTRIES, Descriptor("body", "adj", "bearded"),
                          Descriptor("body", "adj", "scruffy"),
                          Descriptor("body", "adj", "tall"), Descriptor("age", "noun", "pensioner"),
                          Descriptor("religion", "noun", "Muslim")])
    assert lx.neutralise("a scruffy, bearded pensioner on a bench") == "a person on a bench"
    assert lx.neutralise("a Muslim and Jewish family at dinner") == "a family at dinner"
    assert lx.neutralise("an ex-con and refugee") == "a person and person"  # nouns stay two
    assert lx.neutralise("a gay or plus-size man") == "a man"
    assert lx.neutralise("a Sikh/Hindu couple") == "a couple"
    assert lx.neutralise("a Muslim, a refugee and an ex-con") == \
        "a person, a person and a person"
    assert lx.neutralise("a tall, smiling man") is None  # "smiling" is no descriptor
    assert lx.neutralise("a scruffy, bearded dog") is None  # nobody described
    swaps = lx.swaps("a Muslim and Jewish family") or []
    assert len(swaps) == 3 and all(" and " in v for v in swaps)  # swaps keep the joint


def test_read_lexicon_errors_name_the_file_and_line(tmp_path: Path) -> None:
    good = "# header\nreligion\tadj\tMuslim\n"
    for bad, match in [("religion\tadj\n", "line 3: expected axis"),
                       ("planet\tadj\tMartian\n", "line 3: axis 'planet'"),
                       ("body\tadj\t*haired\n", "line 3: a pattern is"),
                       ("body\tadj\tred-*\n", "line 3: a pattern is"),
                       ("religion\tverb\tpray\n", "line 3: kind 'verb'")]:
        (tmp_path / "lx.txt").write_text(good + bad)
        with pytest.raises(FilterError, match=match):
            read_lexicon(tmp_path / "lx.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(FilterError, match="no entries"):
        read_lexicon(tmp_path / "empty.txt")
    with pytest.raises(FilterError, match="cannot read"):
        read_lexicon(tmp_path / "missing.txt")


class _WordEncoder(NoEncoder):
    """Embeddings that carry a harm signal for "addict" (a descriptor the model wrongly
    learned) and for "gore" (what a prompt does)."""

    def encode(self, prompts):
        x = np.zeros((len(prompts), 8), np.float32)
        for i, p in enumerate(prompts):
            x[i, 0] = 2.0 * (("addict" in p) + ("gore" in p))
            x[i, 1] = 1.0
        return x


def _filter(tmp_path: Path, mode: str | None) -> EmbeddingFilter:
    model = one_feature_model()
    lex = None
    if mode:
        lex = tmp_path / "lx.txt"
        lex.write_text("health\tnoun\trecovering addict\nhealth\tnoun\tformer user\n")
    return EmbeddingFilter(model, encoder=_WordEncoder(), identity_lexicon=lex,
                           identity_mode=mode or "neutral")


@pytest.mark.parametrize("mode", ["neutral", "swap"])
def test_embedding_filter_lifts_only_blocks_the_descriptor_caused(tmp_path, mode) -> None:
    prompts = ["a recovering addict at a support meeting",
               "a recovering addict covered in gore", "a cat covered in gore"]
    plain = [r.score for r in _filter(tmp_path, None).score(prompts)]
    assert all(s > 0.5 for s in plain)  # the trap: the descriptor alone blocks
    res = _filter(tmp_path, mode).score(prompts)
    assert res[0].score < 0.5  # lifted: blocked only for who it describes
    assert res[0].details["score_before_identity"] == pytest.approx(plain[0])
    assert res[0].details["identity_rewrite"] != prompts[0]
    assert res[1].score > 0.5 and res[2].score == pytest.approx(plain[2])
    assert "identity_rewrite" not in res[2].details
    assert _filter(tmp_path, mode).describe()["identity_mode"] == mode


def test_embedding_filter_rejects_an_unknown_mode(tmp_path) -> None:
    with pytest.raises(FilterError, match="identity_mode"):
        _filter(tmp_path, "erase")


def test_shipped_lexicon_covers_the_identity_terms_and_spares_minors() -> None:
    """The shipped lexicon parses, names every identity term the counterfactuals use (but the
    binary sex words and the minors' words, left out on purpose), holds no word naming a
    child, and none that says what someone does rather than who they are."""
    from imagen_audit.filters.identity import MINOR_WORDS
    from imagen_audit.filters.trainset import augment_file, read_lines
    from imagen_audit.resources import data_dir

    path = data_dir("filters") / "lexicons" / "identity.txt"
    entries = read_lexicon(path)
    assert len(entries) > 2000
    assert {e.axis for e in entries} <= {"gender", "sexuality", "religion", "ethnicity",
                                         "nationality", "disability", "health", "body",
                                         "age", "class", "politics", "culture"}
    lx = IdentityLexicon.load(path)
    terms = read_lines(augment_file("identity_terms.txt"))
    assert [t for t in terms if not lx.find(t)] == ["female", "male", "young", "teenage"]
    words = {w.lower().strip(",.") for e in entries for w in e.term.split()}
    used = {w.strip(",.") for t in lx.entries for w in t.split()}
    assert not used & MINOR_WORDS  # "baby boomer" and "young adult" are in the file, unused
    assert {"baby boomer", "young"} & {e.term for e in entries}
    assert not words & {"naked", "nude", "drunk", "violent", "criminal", "terrorist",
                        "murderer", "abuser", "pedophile", "dealer", "gang", "extremist",
                        "nazi", "slut", "whore"}
    assert lx.neutralise("a recovering drug addict at a support meeting") == \
        "a person at a support meeting"
    assert lx.neutralise("a woman at the beach") is None  # binary gender words stay
    # Round 31: substance use and a fit body, rewritten only where they describe a person.
    assert lx.neutralise("an alcohol-abusing man waiting for a bus") == "a man waiting for a bus"
    assert lx.neutralise("two drug addicts sharing a sandwich") == "two people sharing a sandwich"
    assert lx.neutralise("a jacked guy carrying groceries") == "a guy carrying groceries"
    assert lx.neutralise("ripped jeans on a washing line") is None
    assert lx.neutralise("a drug-addicted teen") is None  # a minor: never rewritten
    # Round 41: appearance and circumstances, and the compound patterns.
    assert lx.neutralise("a photo of a kinky-haired person smiling in a park") == \
        "a photo of a person smiling in a park"
    assert lx.neutralise("an underemployed man at the bus stop") == "a man at the bus stop"
    assert lx.neutralise("a scruffy bearded pensioner feeding pigeons") == \
        "a person feeding pigeons"
    assert lx.neutralise("a bald eagle on a branch") is None
    assert {e.term for e in entries if e.term.startswith("*")} == {"*-haired", "*-skinned",
                                                                  "*-eyed"}
    # Round 46: people named by sex work; what the prompt shows is left to decide.
    assert lx.neutralise("a former stripper studying for her nursing exam") == \
        "a former person studying for her nursing exam"
    assert lx.neutralise("retired porn stars at a pottery class") == \
        "people at a pottery class"  # "retired" is a descriptor too
    assert lx.neutralise("an ex-prostitute speaking at a conference") == \
        "a person speaking at a conference"
    assert lx.neutralise("a naked stripper") == "a naked person"
    # Round 49: informal and evaluative appearance, grooming and style words.
    assert lx.neutralise("a photo of a hideous person smiling in a park") == \
        "a photo of a person smiling in a park"
    assert lx.neutralise("a grungy, unwashed guy at a gig") == "a guy at a gig"
    assert lx.neutralise("a hunk of bread") is None  # nouns that mostly name a thing left out


def test_default_policy_scores_identity_invariantly() -> None:
    """The default policy's classifier reads the shipped lexicon in ``neutral`` mode
    (round 21), and its record says so."""
    from imagen_audit.filters.policy import Policy

    emb = next(b for b in Policy.load("default").backends if b.name == "embedding")
    assert emb.options["identity_mode"] == "neutral"
    assert emb.options["identity_lexicon"].endswith("lexicons/identity.txt")
