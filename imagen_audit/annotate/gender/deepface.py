"""``deepface``: deepface's gender model, for users who have its weights.

deepface (serengil/deepface, 0.0.103) keeps its weights in
``$DEEPFACE_HOME/.deepface/weights/`` (``DEEPFACE_HOME`` defaults to the home folder) and
downloads them on first use. Its gender model's ONNX graph (the onnxruntime backend,
``deepface/models/demography/onnx/Gender.py``) is ``gender_model_weights.onnx``: input
``(N, 224, 224, 3)`` float32, BGR, values in [0, 1], the face resized to fit 224 × 224 and
padded with black (``deepface.modules.preprocessing.resize_image``); output ``(N, 2)``
probabilities ordered Woman, Man.

We read that same file with onnxruntime and reproduce that preprocessing, so the deepface
package itself (which pins ``opencv-contrib-python-headless``, clashing with our
``opencv-python-headless``) is not needed, and nothing is ever downloaded: when the file is
missing the error names the folder to put it in. Pass ``weights=PATH`` to use another file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face, register_gender

WEIGHTS_FILE = "gender_model_weights.onnx"
INPUT_SIZE = 224
WEIGHTS_URL = "https://github.com/serengil/deepface_models/releases/download/v1.0/" + WEIGHTS_FILE


def weights_folder() -> Path:
    """Where deepface keeps its weights: ``$DEEPFACE_HOME/.deepface/weights``."""
    home = os.environ.get("DEEPFACE_HOME") or os.path.expanduser("~")
    return Path(home) / ".deepface" / "weights"


def letterbox(face: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """deepface's ``resize_image``: fit inside size × size, keep aspect, pad with black."""
    import cv2

    h, w = face.shape[:2]
    factor = min(size / h, size / w)
    resized = cv2.resize(face, (max(1, int(w * factor)), max(1, int(h * factor))))
    dh, dw = size - resized.shape[0], size - resized.shape[1]
    out = np.pad(resized, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)))
    if out.shape[:2] != (size, size):
        out = cv2.resize(out, (size, size))
    return out


def crop(image: np.ndarray, box: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """The face box (grown by ``margin`` of its size on each side), clipped to the image."""
    left, top, right, bottom = box
    mw, mh = (right - left) * margin, (bottom - top) * margin
    h, w = image.shape[:2]
    x0, y0 = int(max(0, np.floor(left - mw))), int(max(0, np.floor(top - mh)))
    x1, y1 = int(min(w, np.ceil(right + mw) + 1)), int(min(h, np.ceil(bottom + mh) + 1))
    if x1 <= x0 or y1 <= y0:
        return image[:1, :1]
    return image[y0:y1, x0:x1]


class DeepfaceGender:
    name = "deepface"

    def __init__(self, weights: str | None = None, margin: float = 0.0,
                 threads: int = 1) -> None:
        path = Path(weights) if weights else weights_folder() / WEIGHTS_FILE
        if not path.is_file():
            raise AnnotatorError(
                f"deepface gender weights not found: {path}. imagen-audit never downloads "
                f"weights; put deepface's {WEIGHTS_FILE} in {path.parent} (set DEEPFACE_HOME "
                f"to change the folder; deepface downloads it from {WEIGHTS_URL}) or pass "
                "--gender-weights PATH")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise AnnotatorError(f"{path}: not a loadable ONNX graph ({exc})") from exc
        inp = self._session.get_inputs()[0]
        if list(inp.shape[1:]) != [INPUT_SIZE, INPUT_SIZE, 3]:
            raise AnnotatorError(f"{path}: input shape {inp.shape}, deepface's gender model "
                                 f"takes [N, {INPUT_SIZE}, {INPUT_SIZE}, 3]")
        self._input = inp.name
        self.path = path
        self.margin = float(margin)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "weights": str(self.path), "margin": self.margin}

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        batch = np.stack([
            letterbox(crop(image, face.box, self.margin)[:, :, ::-1]).astype(np.float32) / 255.0
            for image, face in pairs])
        probs = np.asarray(self._session.run(None, {self._input: batch})[0], dtype=np.float64)
        probs = probs / probs.sum(axis=1, keepdims=True)
        return probs[:, 0]  # Woman, Man


@register_gender("deepface")
def _make(**options: Any) -> DeepfaceGender:
    return DeepfaceGender(**options)
