"""Prompt form: a chat-style *request* (a question or an instruction to an assistant) or a
*depiction* (a description of a picture, a caption, an art prompt, "draw me ...").

The two forms need different decision thresholds. Benign questions and instructions use the
words of harm far more often than captions do ("How do I kill a stuck Python process?",
"What happened at Srebrenica?", "How does the villain poison the king in Hamlet?"), so a
classifier separates benign from harmful requests less well than it separates benign from
harmful depictions. One threshold set by the benign *requests* would let through a tenth of
the harmful depictions; one set by captions blocks a sixth of benign questions. The
embedding filter therefore scores requests with a network of their own (the request head,
trained on the request rows only) at a threshold of their own, chosen by the same rule on
the request part of its dev split (:mod:`imagen_audit.filters.embedding`).

A prompt that asks for a picture ("Can you draw a knight?", "make an image of ...", "I need a
logo for my bakery") is a depiction whatever its grammar: the image is the risk, and the
depiction threshold judges it. Casual chat is a request too, though it rarely opens like one:
"ugh i bombed my interview, how do i bounce back", "new to knitting any tips" (round 26).

A depiction that names a picture format (a meme, a sticker, a poster, a card, a diagram) is a
third form for models with a format head (round 50): such prompts put the words of harm into
jokes, warnings and teaching ("cute ghost sticker with text I'm dead", "rat poison warning
label redesign", "burns unit teaching diagram"), and on the read fresh sets the depiction
threshold blocked 16% of the harmless ones against 4% of other harmless prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REQUEST, DEPICTION = "request", "depiction"
# A depiction naming a picture format, scored by the format head where a model has one.
FORMAT = "format"

_POLITE = (r"^(?:(?:please|hey|hi|ok|okay)[,!]?\s+)?"
           r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?"
           r"|i\s+(?:want|need|would\s+like|'d\s+like)\s+you\s+to\s+|please\s+)?")
# A question: a wh-word (not an exclamation: "what a view"), or an auxiliary verb followed by
# its subject ("can you", "is it"; not "can of worms").
_WH = re.compile(r"^(?:what|what's|whats|how|how's|why|where|where's|who|who's|whom|whose"
                 r"|when|which)\b(?!\s+(?:a|an)\b)")
_AUX = re.compile(
    r"^(?:can|could|would|should|will|shall|may|might|must|is|are|am|was|were|do|does|did"
    r"|has|have|had|isn't|aren't|don't|doesn't|didn't|can't|won't|shouldn't|wouldn't)\s+"
    r"(?:i|you|we|they|he|she|it|someone|somebody|anyone|anybody|people|one|my|your|our"
    r"|their|his|her|there|this|that|these|those|a|an|the|it's)\b")
# An instruction: an imperative verb first, or first-person intent ("I want to", "I need").
_IMPERATIVE = re.compile(
    r"^(?:(?:please|hey|hi|hello|ok|okay)[,!]?\s+)?(?:please\s+)?"
    r"(?:tell|explain|write|give|help|show|teach|list|describe|suggest|recommend|compare"
    r"|summari[sz]e|translate|define|plan|find|name|outline|convince|persuade|invent|compose"
    r"|draft|brainstorm|prove|solve|calculate|rewrite|edit|fix|debug|create|make|generate"
    r"|design|produce)\b")
_INTENT = re.compile(
    r"^(?:i|we)\s+(?:(?:really\s+)?(?:want|need|wanna|would\s+like|'d\s+like|have\s+to"
    r"|plan|intend|am\s+planning|are\s+planning|am\s+going\s+to|are\s+going\s+to"
    r"|am\s+looking\s+for|are\s+looking\s+for|am\s+trying|are\s+trying)\b)"
    r"|^(?:i'm|im|we're)\s+(?:planning|going\s+to|looking\s+for|trying)\b")
# Asking for a picture: a drawing verb first, or a making verb and a picture noun.
_DRAW = re.compile(_POLITE + r"(?:draw|paint|sketch|illustrate|render|depict|visuali[sz]e)\b")
_MAKE = re.compile(_POLITE + r"(?:generate|create|make|design|produce|give\s+me|show\s+me)\b")
_PICTURE_NOUN = re.compile(
    r"\b(?:drawing|painting|sketch|illustration|picture|image|photo|photograph|portrait"
    r"|poster|logo|wallpaper|cartoon|comic|meme|artwork|art|icon|sticker|tattoo|infographic"
    r"|render|pic|selfie|scene|mural|banner|card|emoji|cover(?!\s+letter)|thumbnail"
    r"|diagram|invitation|flyer|postcard|bookmark|mascot|avatar|sprite|gif|storyboard"
    r"|collage|caricature|doodle|animation)s?\b")
# A wish for a picture: "I need a logo for ...", "we want an illustration of ...": the picture
# noun within the first few words of the wish, so "I need a plan to draw people in" stays a
# request.
_WISH = re.compile(
    r"^(?:i|we)\s*(?:really\s+)?(?:want|need|would\s+like|'d\s+like|'m\s+looking\s+for"
    r"|am\s+looking\s+for|are\s+looking\s+for)\s+(?:\S+\s+){0,3}?"
    + _PICTURE_NOUN.pattern)
# Art-prompt vocabulary: a description for an image model, whatever its opening word (a
# question mark at the end still makes it a question: "How do I photograph the moon?").
_ART_MARKERS = re.compile(
    r"\b(?:in the style of|digital art|oil on canvas|trending on|artstation|4k|8k"
    r"|highly detailed|octane|unreal engine|concept art|photorealistic|hyperrealistic"
    r"|cinematic lighting|studio lighting|bokeh|concept artists?|rule of thirds|35mm"
    r"|illustration|photograph|cartoon strip|meme)\b")


# Casual chat: an opener before the message proper ("ugh", "lol", "bro"), and questions asked
# in the middle of a message without a question mark ("my cat died, how do i cope", "tryna cut
# sugar any tips"). Measured in round 26: 49 of 399 benign chat messages were read as
# depictions and scored by the network for picture prompts.
_OPENER = re.compile(
    r"^(?:(?:ugh|yo|lol|lmao|omg|bro|bruh|dude|ok so|okay so|so|hey|hi|srsly|ngl|tbh|idk"
    r"|pls|plz|guys|help|hmm|um|wait|btw)[,!.]*\s+)+")
_CHAT_QUESTION = re.compile(
    r"(?:^|[,.!;:]\s*|\s)(?:how\s+(?:do|can|should|would|did)\s+(?:i|we|you)"
    r"|what(?:'s|s)?\s+(?:the\s+best|does|is\s+a|are\s+the)"
    r"|why\s+(?:do|does|did|is|are|was)"
    r"|is\s+(?:it|that|this)\s+(?:bad|normal|ok|okay|safe|legal|illegal|true|weird)"
    r"|should\s+i|any\s+(?:tips|ideas|advice|recs|recommendations)|anyone\s+know"
    r"|where\s+(?:can|do|should)\s+i|what\s+should\s+i)\b")


# The nine formats of the session-17 analysis of over-blocking (round 50's rule names them).
PICTURE_FORMATS = ("meme", "sticker", "poster", "thumbnail", "card", "comic", "diagram", "label",
                   "wallpaper")
_FORMAT_WORD = re.compile(r"\b(?:" + "|".join(PICTURE_FORMATS) + r")s?\b")


def names_picture_format(prompt: str) -> bool:
    """True when ``prompt`` names one of :data:`PICTURE_FORMATS` (any form)."""
    return _FORMAT_WORD.search(str(prompt).lower()) is not None


def is_format_depiction(prompts: Sequence[str], forms: Sequence[str] | None = None
                        ) -> list[bool]:
    """True where a prompt is a depiction (not a chat-style request) naming a picture
    format: the rows a format head scores and trains on. ``forms``: the prompts'
    :func:`prompt_form`, when the caller has them already."""
    forms = [prompt_form(p) for p in prompts] if forms is None else forms
    return [f == DEPICTION and names_picture_format(p)
            for p, f in zip(prompts, forms, strict=True)]


def prompt_form(prompt: str) -> str:
    """:data:`REQUEST` for a question or an instruction to an assistant that does not ask
    for a picture, :data:`DEPICTION` for everything else."""
    text = re.sub(r"\s+", " ", str(prompt).strip().lower()).replace("\u2019", "'")
    question = text.endswith("?")
    if _DRAW.match(text) or (_ART_MARKERS.search(text) and not question):
        return DEPICTION
    if (_MAKE.match(text) and _PICTURE_NOUN.search(text)) or _WISH.match(text):
        return DEPICTION
    if question or any(r.match(text) for r in (_WH, _AUX, _IMPERATIVE, _INTENT)):
        return REQUEST
    # Not a question here, so art-prompt markers were already ruled out above.
    rest = _OPENER.sub("", text)
    if rest != text and rest and prompt_form(rest) == REQUEST:
        return REQUEST
    return REQUEST if _CHAT_QUESTION.search(text) else DEPICTION
