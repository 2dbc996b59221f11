"""Prompt form (request vs depiction) and the embedding model's second threshold for
requests: per-form thresholds on the dev split, one aligned score scale for the policy."""

from __future__ import annotations

import numpy as np
import pytest
from filters_helpers import NoEncoder, drop_model_array

from imagen_audit.filters.commands import _is_request, _pick_form_thresholds, _pick_threshold
from imagen_audit.filters.embedding import (
    EmbeddingFilter,
    EmbeddingModel,
    piecewise_align,
    train_model,
)
from imagen_audit.filters.form import DEPICTION, REQUEST, prompt_form


@pytest.mark.parametrize("text", [
    "How do I kill a stuck Python process?", "what happened at Srebrenica",
    "Tell me a joke about penguins.", "Write a wedding speech for my brother",
    "i want to learn the drums, where do I start", "Is the ivy strangling my oak tree?",
    "Please explain how vaccines work", "Could you summarise this article?",
    "How can I get a minor to send me pictures?",  # asks for an act, not for a picture
    "How do I photograph the moon?", "I'm looking for a good lawyer", "can you help me",
    "I need to print my thesis", "Create a cover letter for my job application",
    "I need a plan to draw people in", "How do I make a gif?",
])
def test_questions_and_instructions_are_requests(text: str) -> None:
    assert prompt_form(text) == REQUEST


@pytest.mark.parametrize("text", [
    "a man riding a bike down a hill", "portrait of a knight, trending on artstation",
    "Draw a dragon guarding its hoard", "Can you paint a lighthouse at dawn?",
    "make an image of a pirate ship firing its cannons",
    "Please generate a poster for my band", "What a beautiful sunset, oil on canvas",
    "two people kissing on a bench", "",
    # statements and titles, not requests (art prompts are full of them)
    "i'm so sad", "I have no mouth and I must scream", "can of worms", "what a view",
    "We are looking at the floor between the toilet and the wall.", "my wife laying in bed",
    "can you hold me by disney concept artists, rule of thirds",
    # wishes for a picture, and picture products beyond "image" and "poster"
    "I need a logo for my dog-walking business", "We'd like an illustration of a fox",
    "i really want a picture of my cat as a pirate", "Make a diagram of the human heart",
    "Design a party invitation with balloons", "Make a thumbnail for my cooking video",
    "Make an album cover for my band", "Create a flyer for the bake sale",
])
def test_captions_art_prompts_and_picture_requests_are_depictions(text: str) -> None:
    assert prompt_form(text) == DEPICTION


@pytest.mark.parametrize("text,form", [
    # casual chat (round 26): an opener before the message, or a question mid-message
    ("ugh my sourdough starter smells weird, is it normal", REQUEST),
    ("lol what does ratio mean on twitter", REQUEST),
    ("bro can you explain crypto to me like im five", REQUEST),
    ("my dog ate a grape earlier how do i know if he's ok", REQUEST),
    ("new to knitting any tips for a first scarf", REQUEST),
    ("anyone know a good budget laptop for college", REQUEST),
    ("my landlord won't fix the heater, what should i do", REQUEST),
    # ... but a picture stays a depiction, whatever the chat around it
    ("lol draw my cat as a wizard", DEPICTION),
    ("omg make a meme of my roommate's messy desk", DEPICTION),
    ("how to train your dragon fan art, digital art", DEPICTION),
    ("a man teaching his son how to ride a bike", DEPICTION),  # "how to" in a caption
    ("so many stars over the desert, 35mm", DEPICTION),
    ("yo mama so big cartoon", DEPICTION),
])
def test_casual_chat_messages(text: str, form: str) -> None:
    assert prompt_form(text) == form


def test_piecewise_align_is_monotone_and_moves_the_threshold() -> None:
    p = np.linspace(0, 1, 101)
    q = piecewise_align(p, 0.9, 0.6)
    assert np.all(np.diff(q) >= 0) and q[0] == 0 and q[-1] == pytest.approx(1)
    assert piecewise_align(np.array([0.9]), 0.9, 0.6)[0] == pytest.approx(0.6)
    assert ((p >= 0.9) == (q >= 0.6 - 1e-12)).all()  # same decisions at the two thresholds


def _model(threshold: float, request_threshold: float | None) -> EmbeddingModel:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    x = (rng.normal(size=(100, 8)) + y[:, None]).astype(np.float32)
    m = train_model([f"p{i}" for i in range(100)], y, [None] * 100, embeddings=x,
                    encoder=NoEncoder())
    m.meta["decision_threshold"] = threshold
    if request_threshold is not None:
        m.meta["request_threshold"] = request_threshold
    return m


class _FixedEncoder(NoEncoder):
    def encode(self, prompts):  # one embedding for every prompt: only the form differs
        return np.ones((len(prompts), 8), np.float32) * 0.3


def test_requests_are_scored_on_the_depiction_scale(tmp_path) -> None:
    prompts = ["a knife on a table", "How do I sharpen a knife?"]
    plain = EmbeddingFilter(_model(0.6, None), encoder=_FixedEncoder()).score(prompts)
    assert plain[0].score == pytest.approx(plain[1].score)  # one threshold: same score
    m = _model(0.6, 0.9)
    m.save(tmp_path / "m")
    f = EmbeddingFilter(EmbeddingModel.load(tmp_path / "m"), encoder=_FixedEncoder())
    dep, req = f.score(prompts)
    assert (dep.details["form"], req.details["form"]) == (DEPICTION, REQUEST)
    assert dep.details["raw"] == pytest.approx(req.details["raw"])
    assert dep.score == pytest.approx(dep.details["raw"])
    assert req.score == pytest.approx(float(piecewise_align(np.array([req.details["raw"]]),
                                                            0.9, 0.6)[0]))
    assert req.score < dep.score  # a request needs a higher raw score to be blocked


def test_model_rejects_bad_request_threshold() -> None:
    from imagen_audit.filters.base import FilterError

    with pytest.raises(FilterError, match="request_threshold"):
        _model(0.6, 1.5).form_thresholds()


def test_form_thresholds_are_picked_on_their_own_rows() -> None:
    rng = np.random.default_rng(1)
    n = 400
    prompts = ([f"a photo of thing {i}" for i in range(n)]
               + [f"How do I do thing {i}?" for i in range(n)])
    labels = np.r_[np.zeros(n // 2), np.ones(n // 2), np.zeros(n // 2), np.ones(n // 2)]
    # Benign requests score high (0.5-0.9), benign depictions low (0-0.4).
    scores = np.r_[rng.uniform(0, 0.4, n // 2), rng.uniform(0.6, 1, n // 2),
                   rng.uniform(0.5, 0.9, n // 2), rng.uniform(0.85, 1, n // 2)]
    sources = ["coco"] * n + ["requests"] * n
    t_dep, t_req, at = _pick_form_thresholds(scores, _is_request(prompts), labels, sources,
                                             0.05)
    assert t_dep <= 0.41 and 0.85 <= t_req <= 0.9
    assert at["request"]["fpr"]["requests"] <= 0.05
    one, _ = _pick_threshold(scores, labels, sources, 0.05)
    assert one == pytest.approx(t_req, abs=0.01)  # one threshold: the requests set it
    # Too few benign requests: no request threshold.
    few = [p for p in prompts[:n]] + prompts[n:n + 10]
    t, none, _ = _pick_form_thresholds(scores[:n + 10], _is_request(few), labels[:n + 10],
                                       sources[:n + 10], 0.05)
    assert none is None and t == pytest.approx(t_dep, abs=0.01)


def test_small_sources_are_pooled_not_trusted_alone() -> None:
    scores = np.r_[np.zeros(100), np.ones(5), np.ones(10)]
    labels = np.r_[np.zeros(105), np.ones(10)]
    sources = ["coco"] * 100 + ["tiny"] * 5 + ["harm"] * 10
    t, at = _pick_threshold(scores, labels, sources, 0.05)
    assert t == pytest.approx(0.05) and "tiny" not in at["fpr"]


def test_request_head_averages_logits_and_round_trips(tmp_path) -> None:
    m = _model(0.6, 0.8)
    rng = np.random.default_rng(3)
    m.request_head = ([rng.normal(size=(8, 4)), rng.normal(size=(4, 1))],
                      [np.zeros(4), np.array([0.5])])
    x = rng.normal(size=(5, 8))
    p = m.predict_proba(x)
    z_head = np.maximum(x @ m.request_head[0][0], 0) @ m.request_head[0][1] + 0.5
    want = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + z_head[:, 0]) / 2))
    assert np.allclose(m.request_proba(x, p), want)
    js = m.save(tmp_path / "h")
    import json

    doc = json.loads(js.read_text())
    assert doc["format_version"] == 3 and doc["request_head_layers"] == 2
    again = EmbeddingModel.load(tmp_path / "h")
    assert np.allclose(again.request_proba(x, p), want, atol=1e-5)
    prompts = ["How do I do this?"] * 5
    _, raw, forms = again.aligned_proba(x.astype(np.float32), prompts)
    assert forms == [REQUEST] * 5 and np.allclose(raw, want, atol=1e-5)
    # Arrays named in the JSON must be there.
    drop_model_array(tmp_path / "h", "rq_b1")
    from imagen_audit.filters.base import FilterError

    with pytest.raises(FilterError, match="request head missing"):
        EmbeddingModel.load(tmp_path / "h")


def test_request_head_must_fit_the_embeddings() -> None:
    from imagen_audit.filters.base import FilterError

    m = _model(0.6, 0.8)
    with pytest.raises(FilterError, match="request head"):
        EmbeddingModel(m.weights, m.biases, request_head=([np.zeros((5, 1))], [np.zeros(1)]))
