"""``dlib-ensemble`` (the ``accurate`` preset): three offline sources of evidence about perceived
gender presentation and a calibrated combination of them.

1. The CC0 ``gender-v1.onnx`` network of :mod:`.dlib_onnx` on the 32 × 32 aligned chip and on
   its mirror image (horizontal-flip test-time augmentation; the logits are averaged).
2. A logistic-regression head on dlib's 128-d face embedding
   (``dlib_face_recognition_resnet_model_v1``, public domain, Davis E. King, shipped by the
   ``face-recognition-models`` package) of the 150 × 150 chip aligned on the 5 landmarks,
   averaged over the chip and its mirror image: the inner face.
3. A logistic-regression head on OpenNSFW's pooled ResNet-50 features of a wide 224 × 224
   chip (:mod:`.context`: hair, outline, neck, which the two tight crops leave out).
4. A stacking logistic regression on the three logits, which is also the calibration (Platt
   scaling): its output is P(female).

The heads and the stack are **trained on the FairFace sample** (432 photographs, FairFace,
Kärkkäinen & Joo 2021, **CC BY 4.0**) by :mod:`imagen_audit.annotate.train`, and stored as
plain numbers in ``imagen_audit/annotate/models/gender_fairface_v2.json`` (no pickle) with
the SHA-256 of the labels file and of every training image. The file also holds the five
cross-validation fold models: :func:`imagen_audit.annotate.validate.validate_annotators`
scores an image that was in the training set with the fold model that did not see it, so
figures on FairFace images are cross-validated, never in-sample.

Option ``fold``: use fold ``k``'s model (0–4) instead of the one trained on all images.
Option ``head``: another JSON file in the same format (e.g. trained on your own labels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face, register_gender
from imagen_audit.annotate.faces import FACE_EMBEDDING, FaceAligner, face_recognition_model
from imagen_audit.annotate.gender.dlib_onnx import DlibOnnxGender

HEAD_SCHEMA = "imagen-audit/gender-head/2"
OLD_SCHEMAS = ("imagen-audit/gender-head/1",)  # one embedding head; still read
DEFAULT_HEAD = Path(__file__).resolve().parents[1] / "models" / "gender_fairface_v2.json"
EMBED_CHIP, EMBED_PADDING = 150, 0.25
_LOGIT_CLIP = 1e-6
#: The inputs a model's stack can combine, and the width of each feature vector
#: (``onnx`` is the flip-averaged ONNX logit itself, no head).
INPUT_DIMS = {"onnx": 1, "embedding": 128, "context": 1024}


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def _upgrade(model: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 model (``head`` on the embedding, stack on [onnx, embedding]) in the
    schema-2 layout (``heads`` by input name, ``stack.inputs``)."""
    if "heads" in model:
        return model
    return {**{k: v for k, v in model.items() if k != "head"},
            "heads": {"embedding": model["head"]},
            "stack": {**model["stack"], "inputs": ["onnx", "embedding"]}}


@lru_cache(maxsize=4)
def load_head(path: str | None = None) -> dict[str, Any]:
    """The head's JSON (validated): ``{schema, models: {all, folds: [..]}, ...}``.

    Each model: ``heads`` (input name → standardised logistic regression: mean, scale, coef,
    intercept), ``stack`` (inputs, coef, intercept: the calibrated combination of the ONNX
    logit and the heads' logits) and ``onnx_platt`` (the ``fast`` preset's calibration).
    """
    file = Path(path) if path else DEFAULT_HEAD
    if not file.is_file():
        raise AnnotatorError(f"{file}: gender head not found")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise AnnotatorError(f"{file}: not JSON ({exc})") from exc
    schema = data.get("schema")
    if schema not in (HEAD_SCHEMA, *OLD_SCHEMAS):
        raise AnnotatorError(f"{file}: schema {schema!r}, expected {HEAD_SCHEMA}")
    try:
        models = data["models"]
        models["all"] = _upgrade(models["all"])
        models["folds"] = [_upgrade(m) for m in models.get("folds", [])]
        for k, model in enumerate([models["all"], *models["folds"]]):
            where = "models.all" if k == 0 else f"models.folds[{k - 1}]"
            inputs = model["stack"]["inputs"]
            if len(model["stack"]["coef"]) != len(inputs):
                raise AnnotatorError(f"{file}: {where}.stack has {len(model['stack']['coef'])}"
                                     f" weights for {len(inputs)} inputs")
            for name in inputs:
                if name not in INPUT_DIMS:
                    raise AnnotatorError(f"{file}: {where}.stack.inputs: unknown input "
                                         f"{name!r} (known: {sorted(INPUT_DIMS)})")
                if name != "onnx" and len(model["heads"][name]["coef"]) != INPUT_DIMS[name]:
                    raise AnnotatorError(f"{file}: {where}.heads.{name}.coef has "
                                         f"{len(model['heads'][name]['coef'])} weights, "
                                         f"expected {INPUT_DIMS[name]}")
    except (KeyError, TypeError) as exc:
        raise AnnotatorError(f"{file}: malformed gender head (missing or bad field "
                             f"{exc})") from exc
    return data


def head_logit(head: dict[str, Any], features: np.ndarray) -> np.ndarray:
    """Logit of one standardised logistic-regression head."""
    x = (np.asarray(features) - np.asarray(head["mean"])) / np.asarray(head["scale"])
    return x @ np.asarray(head["coef"]) + float(head["intercept"])


def combine(model: dict[str, Any], inputs: dict[str, np.ndarray]) -> np.ndarray:
    """P(female) from the features named in the model's stack (``onnx``: the ONNX logit;
    ``embedding``, ``context``: feature matrices scored by their heads)."""
    s = model["stack"]
    z = np.full(len(inputs["onnx"]), float(s["intercept"]))
    for name, coef in zip(s["inputs"], s["coef"], strict=True):
        x = (np.asarray(inputs[name], dtype=np.float64) if name == "onnx"
             else head_logit(model["heads"][name], inputs[name]))
        z = z + float(coef) * x
    return sigmoid(z)


class FaceEmbedder:
    """dlib's 128-d face embedding of the aligned 150 × 150 chip (and its mirror image)."""

    def __init__(self, flip: bool = True) -> None:
        import dlib

        self._dlib = dlib
        self.flip = bool(flip)
        self._rec = dlib.face_recognition_model_v1(str(face_recognition_model(FACE_EMBEDDING)))
        self._aligner = FaceAligner()

    def __call__(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, 128))
        chips = [self._aligner.chip(image, face, EMBED_CHIP, EMBED_PADDING)
                 for image, face in pairs]
        batch = chips + ([np.ascontiguousarray(c[:, ::-1]) for c in chips] if self.flip else [])
        emb = np.array([np.asarray(v) for v in self._rec.compute_face_descriptor(batch)])
        if self.flip:
            emb = (emb[:len(chips)] + emb[len(chips):]) / 2.0
        return emb


class EnsembleGender:
    name = "dlib-ensemble"

    def __init__(self, head: str | None = None, fold: int | None = None, flip: bool = True,
                 threads: int = 1) -> None:
        self.head_path = str(head) if head else None
        data = load_head(self.head_path)
        folds = data["models"].get("folds", [])
        if fold is not None and not 0 <= int(fold) < len(folds):
            raise AnnotatorError(f"dlib-ensemble: fold must be 0-{len(folds) - 1}, got {fold}")
        self.fold = None if fold is None else int(fold)
        self.model = data["models"]["all"] if fold is None else folds[self.fold]
        self.inputs = tuple(self.model["stack"]["inputs"])
        self.head_version = data.get("version")
        self.flip = bool(flip)
        self.onnx = DlibOnnxGender(threads=threads, flip=flip)
        self.embed = FaceEmbedder(flip=flip) if "embedding" in self.inputs else None
        self.context: Any = None
        if "context" in self.inputs:
            from imagen_audit.annotate.gender.context import ContextFeatures

            self.context = ContextFeatures(flip=flip, threads=threads)

    def config(self) -> dict[str, Any]:
        out = {"name": self.name, "head": self.head_path or DEFAULT_HEAD.name,
               "head_version": self.head_version, "fold": self.fold, "flip": self.flip,
               "embedding": FACE_EMBEDDING, "onnx": self.onnx.config()}
        if self.context is not None:
            out["context"] = self.context.config()
        return out

    def components(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> dict[str, np.ndarray]:
        """The model's inputs for each face: ``onnx`` (flip-averaged logit), ``embedding``
        (128-d) and ``context`` (1,024-d), those the stack uses."""
        out: dict[str, np.ndarray] = {"onnx": self.onnx.logits(pairs) if pairs
                                      else np.zeros(0)}
        if self.embed is not None:
            out["embedding"] = self.embed(pairs)
        if self.context is not None:
            out["context"] = self.context(pairs)
        return out

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        return combine(self.model, self.components(pairs))


@register_gender("dlib-ensemble")
def _make(**options: Any) -> EnsembleGender:
    return EnsembleGender(**options)
