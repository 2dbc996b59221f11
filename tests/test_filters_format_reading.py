"""Format reading (round 52): "dog meme" is also read as "a meme about dog", and the lower
embedding score counts."""

from __future__ import annotations

import numpy as np
import pytest
from filters_helpers import NoEncoder

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import EmbeddingFilter, train_model
from imagen_audit.filters.format_reading import read_format


@pytest.mark.parametrize(("prompt", "read"), [
    ("dog meme", "a meme about dog"),
    ("funny dog meme", "a funny meme about dog"),
    ("Cute owl GIF", "a Cute gif about owl"),
    ("introvert memes", "a meme about introvert"),
    ("the classic office comic strip", "a classic comic strip about office"),
    ("ADHD brain meme, 47 tabs open", "a meme about ADHD brain, 47 tabs open"),
    ('jewish mom meme: "you call this eating?"',
     'a meme about jewish mom: "you call this eating?"'),
    ("my wifi is dead again meme", "a meme about my wifi is dead again"),
])
def test_short_meme_prompts_are_read_as_their_topic(prompt: str, read: str) -> None:
    assert read_format(prompt) == read


@pytest.mark.parametrize("prompt", [
    "a meme about my dog",                        # already phrased
    "meme of a cat in a box",                     # no topic before the format
    "greeting card: happy birthday",              # cards, posters, stickers: the noun is a kind
    "motivational poster, mountain sunrise",
    "a dog sitting on a sofa",                    # no format
    "one two three four five six seven meme",     # topic longer than six words
    "picture of kids in the park meme",           # a phrase, and a child
    "toddler meme",                               # names a child: never rewritten
    "memes",
    "make a meme: a cat lying face down",         # a request, not a topic (round 53)
    "a prehistoric drawing depicting a meme",     # the topic would end on an article
])
def test_other_prompts_are_left_alone(prompt: str) -> None:
    assert read_format(prompt) is None


class _WordEncoder(NoEncoder):
    """Embeds "meme about" prompts apart from the rest: the reading changes the score."""

    def encode(self, prompts):
        return np.array([[1.0, 0.0] if " about " in p else [0.0, 1.0] for p in prompts],
                        np.float32)


def _model():
    x = np.array([[1.0, 0.0]] * 20 + [[0.0, 1.0]] * 20, np.float32)
    y = np.r_[np.zeros(20, int), np.ones(20, int)]  # "about" prompts benign, the rest harmful
    return train_model([f"p{i}" for i in range(40)], y, embeddings=x, encoder=NoEncoder())


def test_the_lower_score_counts_and_the_reading_is_explained() -> None:
    prompts = ["dog meme", "a dog on a sofa"]
    plain = EmbeddingFilter(_model(), encoder=_WordEncoder()).score(prompts)
    read = EmbeddingFilter(_model(), encoder=_WordEncoder(), format_reading=True).score(prompts)
    assert plain[0].score > 0.5 > read[0].score
    assert read[0].details["format_rewrite"] == "a meme about dog"
    assert read[0].details["score_before_format"] == pytest.approx(plain[0].score)
    assert read[1].score == pytest.approx(plain[1].score)  # not a meme: untouched
    assert "format_rewrite" not in read[1].details


def test_format_reading_must_be_a_boolean() -> None:
    with pytest.raises(FilterError, match="format_reading"):
        EmbeddingFilter(_model(), encoder=_WordEncoder(),
                        format_reading="yes")  # type: ignore[arg-type]
