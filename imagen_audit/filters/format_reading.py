"""Format reading: "dog meme" is a meme about a dog, whatever its shape.

People ask for memes and comics in two or three words: "dog meme", "funny cat meme", "mom
meme", "ADHD brain meme, 47 tabs open". Hateful memes are written that way too ("<group>
meme"), and a classifier trained on them learns the shape, not the topic: the default of
round 51 blocked "<noun> meme" for 96 of 116 everyday nouns ("dog", "pizza", "monday"), but
"a meme about a <noun>" for 4 (round 52, filters/README.md). So the embedding filter also
reads such a prompt as "a meme about <topic>" and keeps the lower score, as it reads idioms
literally (:mod:`imagen_audit.filters.figurative`) and identity descriptors neutrally
(:mod:`imagen_audit.filters.identity`): what the topic and the rest of the prompt show still
decide ("nazi meme", "gore meme" stay blocked).

Only the meme family (meme, comic, comic strip, cartoon, gif, reaction image or pic): before a
card, a poster or a sticker the noun often names a kind of it ("greeting card", "motivational
poster", "recipe card"), not its topic, and reading those as topics unblocked harmful prompts.
A prompt that names a child is never rewritten.
"""

from __future__ import annotations

import re

from imagen_audit.filters.identity import names_minor

FORMATS = ("meme", "comic strip", "comic", "cartoon", "gif", "reaction image", "reaction pic")
TONES = ("funny", "cute", "silly", "relatable", "wholesome", "dank", "dumb", "classic", "new",
         "quick", "simple", "little", "tiny")
MAX_TOPIC_WORDS = 6

_PATTERN = re.compile(
    r"^\s*(?:(?:a|an|the)\s+)?(?P<tone>(?:(?:" + "|".join(TONES) + r")\s+)*)"
    r"(?P<topic>[^,:;.!?\"]{1,80}?)\s+(?P<format>" + "|".join(FORMATS) + r")s?"
    r"(?P<rest>\s*(?:[,:;.!?].*)?)$", re.IGNORECASE | re.DOTALL)
# A topic already phrased ("meme of a dog about ...") or a format noun inside a clause.
_PHRASED = re.compile(r"\b(?:of|about|with|for|in|on|from|where|when|that|who)\b", re.I)
# Not a topic: a request ("make a meme: ...", round 53) or a phrase that ends on an article
# ("a drawing depicting a meme").
_REQUEST = re.compile(r"^(?:make|create|generate|draw|design|give|send|show|post|need|want)\b",
                      re.I)
_ARTICLE_END = re.compile(r"\b(?:a|an|the)$", re.I)


def read_format(prompt: str) -> str | None:
    """``"a [tone] <format> about <topic><rest>"`` for a prompt that opens with a short topic
    and a meme-family format ("funny dog meme, impact font" -> "a funny meme about dog,
    impact font"); None when it does not, or when it names a child."""
    m = _PATTERN.match(str(prompt))
    if m is None:
        return None
    topic = m["topic"].strip()
    if (len(topic.split()) > MAX_TOPIC_WORDS or not re.search(r"\w", topic)
            or _PHRASED.search(topic) or _REQUEST.match(topic) or _ARTICLE_END.search(topic)
            or names_minor(prompt)):
        return None
    tone = " ".join(m["tone"].split())
    fmt = m["format"].lower()
    article = "an" if (tone or fmt)[0].lower() in "aeiou" else "a"
    return f"{article} {tone + ' ' if tone else ''}{fmt} about {topic}{m['rest']}"
