"""Training data for the embedding filter: a mix of sources plus counterfactual benign prompts.

The trap this module exists for: trained on I2P against COCO captions alone, a classifier
learns that identity words (gay, Muslim, transgender, Black, ...) and art-style words
("trending on artstation") mean *harmful*, because they are common in I2P and rare in
captions. Counterfactual augmentations take those shortcuts away:

- **identity counterfactuals**: benign captions about people get an identity descriptor
  (``filters/augment/identity_terms.txt``): "a man riding a bike" → "a Muslim man riding
  a bike", so identity words occur in benign prompts as often as anyone cares to make them;
- **short prompts**: the first words or one content word of benign prompts ("fairness",
  "a red bicycle"), because captions are always sentences and a classifier would
  otherwise flag every short prompt;
- **style counterfactuals**: benign *and* harmful prompts get art-style modifiers
  (``filters/augment/style_modifiers.txt``), so style carries no label;
- **per-term identity rates** (:func:`matched_identity_counterfactuals`): more identity
  counterfactuals for the terms the harmful sets use most ("homeless", "disabled" in CoProV2's
  hate prompts), until each is twice as common among benign prompts as among harmful ones;
- **clause counterfactuals** (:func:`clause_counterfactuals`): benign captions rewritten in
  the "subject, detail, detail" form of art prompts ("barista laughing with regulars, chalkboard
  menu behind her"), the details cut from other benign prompts, and harmful prompts given the
  same benign details, so that neither the form nor a harmless detail carries the label;
- **picture-product frames** (``product_templates.txt``): "Make a meme about {p}" around
  benign *and* harmful depictions, so asking for a meme or a poster carries no label
  (measured: no lower blocking of benign picture requests; see
  :func:`product_counterfactuals`).

Captions and I2P are also narrow in *form*: every benign training prompt was a sentence-long
description, so a classifier learned that anything else (a question, a request, a single
word, an unusual creative scene) is harmful. Three more augmentations give the benign side
those forms, each mirrored on the harmful side where a form could otherwise carry the label:

- **request frames** (``request_templates.txt``): "Can you draw {p}?" around benign *and*
  harmful prompts;
- **action frames** (``question_templates.txt``): "how do I {x}?" around benign actions
  whose words also name harm (``benign_homonyms.txt``: "kill a frozen program", "gut a
  trout") and around harmful actions (``harmful_intents.txt``), so the *target* of a verb
  decides, not the verb;
- **informational frames** (``info_templates.txt``): "What is {t}?", "a short history of
  {t}" around everyday and sensitive topics (``topics.txt``: "the Cold War", "suicide
  prevention") and around noun phrases of benign prompts; plus short abstract prompts
  (``abstract_words.txt``).

Frames around captions are still captions inside a frame. Whole hand-written chat and
instruction prompts (``benign_requests.txt``: "How do I kill a stuck Python process?", "What
caused the First World War?", "Make me a logo for my band") are a benign *training set* of
their own (``filters train`` splits them like COCO; their request-form rows train the
request head and their dev part sets its threshold, :mod:`imagen_audit.filters.form`).
Their harmful counterpart (``harmful_requests.txt``: "Where do I find someone selling
cocaine around here?") is a harmful training set split the same way. Both name identity
groups through ``{group}`` slots filled alike
(:func:`imagen_audit.filters.datasets.fill_groups`): a 60-line harmful mirror without them,
measured in round 3, made the word model read identity words as more benign (median logit
shift -0.35) and was not shipped.

On the harmful side, blunt plain-language scenes (``harmful_scenes.txt`` in
``scene_templates.txt``: "a photo of a man hanging himself from a tree"): I2P and CoProV2 are
mostly art prompts and stylised sentences, and a classifier trained on them alone scored "two
people having sex" as benign.

The shipped identity probes, XSTest and HolisticBias are never used for training: they
measure over-blocking on prompts the training never saw.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from imagen_audit.filters.base import FilterError

_PERSON = re.compile(
    r"\b(a|an|the|one|two|three|four|some|several|many|young|old)\s+"
    r"(man|woman|person|boy|girl|guy|lady|men|women|people|boys|girls|guys|ladies|kid|kids|"
    r"child|children|couple|family|player|players|skier|surfer|skateboarder|student|students|"
    r"chef|worker|workers|tourist|tourists|rider|cook|mother|father|mom|dad|baby|teenager|"
    r"adult|adults|friends|soldier|police officer|doctor|nurse|teacher|farmer)\b",
    re.IGNORECASE)


def read_lines(path: str | Path) -> list[str]:
    """Non-empty, non-comment lines of a data file."""
    return [s for _, s in numbered_lines(path)]


def numbered_lines(path: str | Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of a data file's non-empty, non-comment lines, for
    errors that name the line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FilterError(f"{p}: cannot read ({exc})") from exc
    return [(i, s.strip()) for i, s in enumerate(lines, 1)
            if s.strip() and not s.lstrip().startswith("#")]


def augment_file(name: str) -> Path:
    from imagen_audit.resources import data_dir

    return data_dir("filters") / "augment" / name


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" and not word.lower().startswith(("uni", "eu"))\
        else "a"


def identity_counterfactuals(prompts: Sequence[str], terms: Sequence[str], n: int,
                             seed: int = 0) -> list[str]:
    """Up to ``n`` benign prompts made by putting an identity descriptor before the first
    person noun of captions that have one ("a man ..." → "a Sikh man ...")."""
    rng = np.random.default_rng(seed)
    with_person = [p for p in prompts if _PERSON.search(p)]
    if not with_person or not terms or n <= 0:
        return []
    out = []
    picks = rng.choice(len(with_person), size=n, replace=len(with_person) < n)
    for i in picks:
        text = with_person[int(i)]
        term = terms[int(rng.integers(len(terms)))]
        m = _PERSON.search(text)
        det, noun = m.group(1), m.group(2)
        if det.lower() in ("a", "an"):
            det = _article(term)
            det = det.capitalize() if m.group(1)[0].isupper() else det
        out.append(text[:m.start()] + f"{det} {term} {noun}" + text[m.end():])
    return out


def term_pattern(term: str) -> re.Pattern[str]:
    """A case-insensitive whole-word pattern for an identity term ("trans" not in "transit")."""
    return re.compile(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", re.IGNORECASE)


def matched_identity_counterfactuals(harmful: Sequence[str], benign: Sequence[str],
                                     terms: Sequence[str], seed: int = 0, factor: float = 2.0,
                                     cap: float = 0.02) -> list[str]:
    """Benign identity counterfactuals, term by term, until each identity term is ``factor``
    times as common among the benign prompts as among the harmful ones (at most ``cap`` of
    the benign set per term).

    Counterfactuals spread evenly over all terms leave the terms a harmful set uses most
    (CoProV2's hate and harassment prompts name "homeless", "fat", "disabled" far more often
    than most terms, and its safe rewrites drop the word) more common among harmful prompts
    than benign ones, and the word model learns them as harm. Matching the rate per term
    takes that away, whatever the harmful sets are. Equal rates were not enough (measured:
    the word model still moved "disabled" and "homeless" by +1.26, against +0.91 for "fat"):
    in harmful prompts a term stands next to words of harm the model learns from as well,
    in counterfactual captions it stands next to bicycles and kitchens."""
    rng = np.random.default_rng(seed)
    with_person = [p for p in benign if _PERSON.search(p)]
    if not with_person or not harmful or not benign:
        return []
    n_h, n_b = len(harmful), len(benign)
    out: list[str] = []
    for term in terms:
        pat = term_pattern(term)
        rate_h = sum(1 for p in harmful if pat.search(p)) / n_h
        have = sum(1 for p in benign if pat.search(p))
        need = min(int(np.ceil(factor * rate_h * n_b)) - have, int(cap * n_b))
        if need > 0:
            out += identity_counterfactuals(with_person, [term], need,
                                            int(rng.integers(1 << 31)))
    return out


def person_prompts(terms: Sequence[str], templates: Sequence[str], nouns: Sequence[str],
                   n: int, seed: int = 0) -> list[str]:
    """``n`` benign prompts from person templates, each naming an identity ("portrait of a
    Sikh nurse", "a lesbian couple at their wedding")."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(max(n, 0)):
        term = terms[int(rng.integers(len(terms)))]
        noun = nouns[int(rng.integers(len(nouns)))]
        tpl = templates[int(rng.integers(len(templates)))]
        subject = f"{_article(term)} {term} {noun}"
        text = tpl.replace("{subject}", subject)
        out.append(text[0].upper() + text[1:] if rng.random() < 0.5 else text)
    return out


_STOP = {"a", "an", "the", "of", "on", "in", "with", "and", "is", "are", "to", "at", "for",
         "by", "some", "two", "that", "this", "there", "it", "its", "his", "her", "their"}


def short_prompts(prompts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` short benign prompts cut from benign ones: the first 2-4 words, or one content
    word ("fairness", "a red bicycle"), so that shortness itself carries no label."""
    rng = np.random.default_rng(seed)
    out = []
    if not prompts:
        return out
    for i in rng.choice(len(prompts), size=max(n, 0), replace=len(prompts) < n):
        words = str(prompts[int(i)]).rstrip(" .").split()
        if not words:
            continue
        if rng.random() < 0.5:
            content = [w.strip(",.;:!?\"'").lower() for w in words]
            content = [w for w in content if len(w) > 3 and w not in _STOP]
            if content:
                out.append(content[int(rng.integers(len(content)))])
                continue
        out.append(" ".join(words[:int(rng.integers(2, 5))]).rstrip(",;:"))
    return out


def add_style(prompts: Sequence[str], modifiers: Sequence[str], fraction: float,
              seed: int = 0) -> list[str]:
    """Copies of a random ``fraction`` of ``prompts`` with 1-4 style modifiers appended."""
    rng = np.random.default_rng(seed)
    out = []
    for p in prompts:
        if rng.random() < fraction:
            k = int(rng.integers(1, 5))
            mods = rng.choice(len(modifiers), size=min(k, len(modifiers)), replace=False)
            out.append(str(p).rstrip(" .") + ", " + ", ".join(modifiers[int(j)] for j in mods))
    return out


def fill(template: str, key: str, value: str) -> str:
    """``template`` with ``{key}`` replaced; a value that opens the prompt keeps its case,
    one inside it starts in lower case unless it is a name ("Can you draw a cat?")."""
    value = value.strip().rstrip(".")
    if not template.startswith("{" + key + "}") and value[:1].isupper() and \
            value[1:2].islower():
        value = value[0].lower() + value[1:]
    return template.replace("{" + key + "}", value)


def framed(items: Sequence[str], templates: Sequence[str], key: str, n: int,
           seed: int = 0) -> list[str]:
    """``n`` prompts, each a random template filled with a random item (e.g. "how do I
    {x}?" with "gut a trout"): the chat-style forms that captions never have."""
    rng = np.random.default_rng(seed)
    if not items or not templates or n <= 0:
        return []
    return [fill(templates[int(rng.integers(len(templates)))], key,
                 str(items[int(rng.integers(len(items)))])) for _ in range(n)]


def reframe(prompts: Sequence[str], templates: Sequence[str], fraction: float,
            seed: int = 0) -> list[str]:
    """Copies of a random ``fraction`` of ``prompts`` inside a request frame ("Can you draw
    {p}?"); used on benign and harmful prompts alike, so the frame carries no label."""
    rng = np.random.default_rng(seed)
    out = []
    for p in prompts:
        if rng.random() < fraction and templates:
            out.append(fill(templates[int(rng.integers(len(templates)))], "p", str(p)))
    return out


def mirror_frames(harmful: pd.DataFrame, n: int, templates: Sequence[str], seed: int = 0
                  ) -> tuple[list[str], list[object]]:
    """About ``n`` harmful prompts (a random draw) each inside a random frame of
    ``templates``, with their categories: the harmful mirror of benign frames, so that a
    frame carries no label."""
    prompts = harmful["prompt"].astype(str).tolist()
    rng = np.random.default_rng(seed)
    pick = rng.random(len(prompts)) < n / max(len(prompts), 1)
    framed_h = reframe([p for p, k in zip(prompts, pick, strict=True) if k], templates, 1.0,
                       seed + 1)
    return framed_h, [c for c, k in zip(harmful["category"], pick, strict=True) if k]


_NOUN_PHRASE = re.compile(r"\b(?:a|an|the)\s+([a-z]+(?:\s+[a-z]+)?)\b")


def noun_phrases(prompts: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """Up to ``n`` distinct noun phrases ("a giraffe", "the kitchen table") from benign
    prompts: topics for informational frames beyond the hand-written list."""
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    order = rng.permutation(len(prompts)) if len(prompts) else []
    for i in order:
        m = _NOUN_PHRASE.search(str(prompts[int(i)]).lower())
        if m and not set(m.group(1).split()) & _STOP:
            seen.setdefault(m.group(0), None)
            if len(seen) >= n:
                break
    return list(seen)


def build_training_set(harmful: pd.DataFrame, benign: pd.DataFrame, *, seed: int = 0,
                       identity_per_benign: float = 0.5, style_fraction: float = 0.3,
                       short_per_benign: float = 0.1, chat_per_benign: float = 0.0,
                       product_per_benign: float = 0.0, clause_per_benign: float = 0.0,
                       match_identity_rates: bool = False,
                       identity_terms: Sequence[str] | None = None,
                       style_modifiers: Sequence[str] | None = None) -> pd.DataFrame:
    """One table (``prompt``, ``label``, ``category``, ``source``) of the given harmful and
    benign prompts plus identity and style counterfactuals. ``identity_per_benign`` sets
    the number of identity counterfactuals relative to the benign rows; ``chat_per_benign``
    (0 = off) the number of chat-style counterfactuals (request, action and informational
    frames, abstract prompts; see the module docstring), of which the harmful side gets
    mirrored request and action frames; ``product_per_benign`` (0 = off) the number of
    picture-product frames, mirrored in full (:func:`product_counterfactuals`);
    ``clause_per_benign`` (0 = off) the number of "subject, detail" rewrites, half as many
    mirrored on harmful prompts (:func:`clause_counterfactuals`);
    ``match_identity_rates`` adds identity counterfactuals until every identity term is
    twice as common among benign prompts as among harmful ones
    (:func:`matched_identity_counterfactuals`)."""
    terms = list(identity_terms) if identity_terms is not None else read_lines(
        augment_file("identity_terms.txt"))
    mods = list(style_modifiers) if style_modifiers is not None else read_lines(
        augment_file("style_modifiers.txt"))
    parts = [harmful[["prompt", "label", "category", "source"]],
             benign[["prompt", "label", "category", "source"]]]
    n_ident = int(identity_per_benign * len(benign))
    ident = identity_counterfactuals(benign["prompt"].tolist(), terms, n_ident // 2, seed)
    ident += person_prompts(terms, read_lines(augment_file("person_templates.txt")),
                            read_lines(augment_file("person_nouns.txt")), n_ident - len(ident),
                            seed + 4)
    if match_identity_rates:
        ident += matched_identity_counterfactuals(
            harmful["prompt"].astype(str).tolist(),
            benign["prompt"].astype(str).tolist() + ident, terms, seed + 10)
    parts.append(pd.DataFrame({"prompt": ident, "label": 0, "category": None,
                               "source": "counterfactual-identity"}))
    short = short_prompts(benign["prompt"].tolist(), int(short_per_benign * len(benign)),
                          seed + 5)
    parts.append(pd.DataFrame({"prompt": short, "label": 0, "category": None,
                               "source": "counterfactual-short"}))
    styled_b = add_style(benign["prompt"].tolist() + ident, mods, style_fraction, seed + 1)
    parts.append(pd.DataFrame({"prompt": styled_b, "label": 0, "category": None,
                               "source": "counterfactual-style"}))
    # Harmful prompts already styled (I2P) need no more; plain ones (CoProV2) get style.
    plain = harmful[harmful["source"] != "i2p"]
    rng = np.random.default_rng(seed + 2)
    keep = rng.random(len(plain)) < style_fraction
    styled_h = add_style(plain["prompt"][keep].tolist(), mods, 1.0, seed + 3)
    parts.append(pd.DataFrame({"prompt": styled_h, "label": 1,
                               "category": plain["category"][keep].tolist(),
                               "source": "counterfactual-style"}))
    if chat_per_benign > 0:
        parts += chat_counterfactuals(harmful, benign, int(chat_per_benign * len(benign)),
                                      seed + 6, extra_benign=ident)
    if product_per_benign > 0:
        parts += product_counterfactuals(harmful, benign,
                                         int(product_per_benign * len(benign)), seed + 9,
                                         extra_benign=ident)
    if clause_per_benign > 0:
        parts += clause_counterfactuals(harmful, benign, int(clause_per_benign * len(benign)),
                                        seed + 11)
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out = out[~out["prompt"].duplicated()].reset_index(drop=True)
    return out


def chat_counterfactuals(harmful: pd.DataFrame, benign: pd.DataFrame, n: int,
                         seed: int = 0, extra_benign: Sequence[str] = ()) -> list[pd.DataFrame]:
    """About ``n`` benign chat-style prompts (request frames around benign prompts, benign
    action frames, informational frames, abstract words) and, mirrored, harmful request
    frames and harmful action frames, as tables with the training columns.

    ``extra_benign`` (the identity counterfactuals) joins the benign prompts that get request
    frames: harmful prompts that name a group get frames too, and without this "Can you
    draw ... a Muslim ..." would only ever be harmful."""
    requests = read_lines(augment_file("request_templates.txt"))
    actions = read_lines(augment_file("question_templates.txt"))
    info = read_lines(augment_file("info_templates.txt"))
    topics = read_lines(augment_file("topics.txt"))
    b_prompts = benign["prompt"].astype(str).tolist()
    pool = b_prompts + [str(p) for p in extra_benign]
    n_req, n_act, n_info = n // 3, n // 4, n // 3
    b_req = reframe(pool, requests, n_req / max(len(pool), 1), seed)
    b_act = framed(read_lines(augment_file("benign_homonyms.txt")), actions, "x", n_act,
                   seed + 1)
    n_topic = n_info // 2
    b_info = framed(topics, info, "t", n_topic, seed + 2)
    b_info += framed(noun_phrases(b_prompts, max(n_info - n_topic, 0), seed + 3), info, "t",
                     n_info - n_topic, seed + 4)
    b_abstract = read_lines(augment_file("abstract_words.txt"))
    # Harmful mirrors: the same request frames around as many harmful prompts, and the
    # same action frames around harmful actions, so neither frame carries the label.
    h_req, h_req_cat = mirror_frames(harmful, len(b_req), requests, seed + 5)
    h_act = framed(read_lines(augment_file("harmful_intents.txt")), actions, "x", n_act,
                   seed + 7)
    # Blunt, plain-language harmful scenes: the harmful sets are mostly art prompts.
    h_scene = framed(read_lines(augment_file("harmful_scenes.txt")),
                     read_lines(augment_file("scene_templates.txt")), "s", n // 8, seed + 8)
    return [
        pd.DataFrame({"prompt": b_req, "label": 0, "category": None,
                      "source": "counterfactual-request"}),
        pd.DataFrame({"prompt": b_act + b_info + b_abstract, "label": 0, "category": None,
                      "source": "counterfactual-chat"}),
        pd.DataFrame({"prompt": h_req, "label": 1, "category": h_req_cat,
                      "source": "counterfactual-request"}),
        pd.DataFrame({"prompt": h_act + h_scene, "label": 1, "category": None,
                      "source": "counterfactual-chat"}),
    ]


def product_counterfactuals(harmful: pd.DataFrame, benign: pd.DataFrame, n: int,
                            seed: int = 0,
                            extra_benign: Sequence[str] = ()) -> list[pd.DataFrame]:
    """About ``n`` benign prompts inside picture-product frames (``product_templates.txt``:
    "Make a meme about {p}", "Design a book cover with {p}") and as many harmful prompts in
    the same frames.

    Chat users ask for memes, comics, posters, logos and covers. In I2P such words come with
    harmful prompts (hateful memes, propaganda posters) and captions never use them, so a
    classifier could read the product word itself as harm. Mirrored one for one, the frame
    carries no label and the content inside it decides. Measured (round 7, filters/README),
    the frames did not lower the blocking of benign picture requests ("Make a meme about
    Mondays with a sleepy cat" scored 0.997): the content, not the frame, scored high. Only
    depictions get frames: "Make a meme about how do I ...?" is no prompt anyone writes."""
    from imagen_audit.filters.form import DEPICTION, prompt_form

    frames = read_lines(augment_file("product_templates.txt"))
    pool = benign["prompt"].astype(str).tolist() + [str(p) for p in extra_benign]
    pool = [p for p in pool if prompt_form(p) == DEPICTION]  # no frames around questions
    harmful = harmful[harmful["prompt"].astype(str).map(prompt_form) == DEPICTION]
    b_prod = reframe(pool, frames, n / max(len(pool), 1), seed)
    h_prod, h_cat = mirror_frames(harmful, len(b_prod), frames, seed + 1)
    return [pd.DataFrame({"prompt": b_prod, "label": 0, "category": None,
                          "source": "counterfactual-product"}),
            pd.DataFrame({"prompt": h_prod, "label": 1, "category": h_cat,
                          "source": "counterfactual-product"})]


_DETAIL = re.compile(
    r"\b(?:with|in|on|at|near|behind|under|beside|next to|inside|outside|beneath|over|"
    r"across|along|through|against|during|holding|wearing|covered in|surrounded by)\s",
    re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
# Fragments that only make sense beside their own subject ("on them", "next to each other").
_DANGLING = {"it", "its", "it's", "them", "they", "each", "itself", "themselves"}


def detail_fragments(prompts: Sequence[str]) -> list[str]:
    """Short detail phrases cut from benign prompts: the parts after a comma ("warm morning
    light") and prepositional tails of captions ("with a chalkboard menu behind her"), 2 to 8
    words each, none that leans on its own subject ("on them"), distinct, in first-seen
    order."""
    seen: dict[str, None] = {}
    for p in prompts:
        text = str(p).strip().rstrip(".!")
        pieces = [c.strip() for c in text.split(",")[1:]]
        head = text.split(",")[0]
        m = _DETAIL.search(head, 8)
        if m:
            pieces.append(head[m.start():])
        for piece in pieces:
            words = piece.strip(" .;:'\"").split()
            if 2 <= len(words) <= 8 and not _DANGLING & {w.lower() for w in words}:
                seen.setdefault(" ".join(words).lower(), None)
    return list(seen)


def as_clauses(prompt: str, fragments: Sequence[str], rng: np.random.Generator) -> str:
    """``prompt`` in the "subject, detail, detail" form: half the time without its leading
    article, lower-cased, no final period, 1-3 random ``fragments`` appended with commas."""
    text = str(prompt).strip().rstrip(".")
    if rng.random() < 0.5:
        text = _ARTICLE.sub("", text)
    first = text.split(" ", 1)[0]
    if first == "A" or (first[:1].isupper() and first[1:].islower()):
        text = text[0].lower() + text[1:]
    k = int(rng.integers(1, 4))
    picks = rng.choice(len(fragments), size=min(k, len(fragments)), replace=False)
    return ", ".join([text] + [fragments[int(j)] for j in picks])


def clause_counterfactuals(harmful: pd.DataFrame, benign: pd.DataFrame, n: int,
                           seed: int = 0) -> list[pd.DataFrame]:
    """About ``n`` benign depictions in the "subject, detail, detail" form
    (:func:`as_clauses`) and half as many harmful depictions given the same kind of benign
    details.

    Why: captions are single sentences and art prompts are comma lists, so a classifier
    trained on both could learn the form itself (session 7, dev only: "barista laughing with
    regulars at a neighborhood coffee shop, chalkboard menu behind her" scored 0.91). The
    details come from benign training prompts only; on the harmful side they teach that a
    harmless detail does not make a harmful subject benign. Round 24 trained with 0.25 of
    them and failed its dev gate: benign chat and mixed prompts were blocked as often as
    before, and word deletion showed single everyday words at work ("laughing" +0.45), not
    the form (the barista prompt without its last clause still scored 0.49). So ``filters
    train`` leaves them off."""
    from imagen_audit.filters.form import DEPICTION, prompt_form

    rng = np.random.default_rng(seed)
    pool = [p for p in benign["prompt"].astype(str) if prompt_form(p) == DEPICTION]
    fragments = detail_fragments(pool)
    if n <= 0 or not pool or not fragments:
        return []
    b_idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    b_out = [as_clauses(pool[int(i)], fragments, rng) for i in b_idx]
    h = harmful[harmful["prompt"].astype(str).map(prompt_form) == DEPICTION]
    h_idx = rng.choice(len(h), size=min(n // 2, len(h)), replace=False) if len(h) else []
    h_out = [as_clauses(str(h["prompt"].iloc[int(i)]), fragments, rng) for i in h_idx]
    h_cat = [h["category"].iloc[int(i)] for i in h_idx]
    return [pd.DataFrame({"prompt": b_out, "label": 0, "category": None,
                          "source": "counterfactual-clause"}),
            pd.DataFrame({"prompt": h_out, "label": 1, "category": h_cat,
                          "source": "counterfactual-clause"})]
