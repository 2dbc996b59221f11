"""Perceived attributes of generated images: faces, skin tone and perceived gender.

Every estimate carries a probability or confidence and abstains below a threshold. These
are *perceived* attributes of images, estimated by classifiers with known error rates,
never the identity of any person. Modules: ``base`` (protocols, registry, the annotator),
``faces`` (detectors), ``skin_tone`` (ITA, Monk), ``gender/`` (one module per backend;
``gender/context``: the ensemble's wide-crop features), ``runner`` (annotate a run store,
resumably), ``validate`` (against labelled faces), ``train`` (the gender heads and
calibration, cross-validated), ``commands`` (CLI), ``models/`` (the trained heads as JSON).
"""

from imagen_audit.annotate.base import (
    Annotator,
    AnnotatorError,
    AnnotatorSpec,
    Face,
    GenderEstimate,
    ImageAnnotation,
)

__all__ = ["Annotator", "AnnotatorError", "AnnotatorSpec", "Face", "GenderEstimate",
           "ImageAnnotation"]
