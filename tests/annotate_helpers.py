"""Shared builders for the annotate tests: synthetic faces with a known skin colour."""

from __future__ import annotations

import numpy as np

from imagen_audit.annotate.skin_tone import lab_to_srgb

# Landmarks in dlib's 5-point order for the synthetic face below (200 × 200 image).
LANDMARKS = ((132.0, 80.0), (112.0, 80.0), (68.0, 80.0), (88.0, 80.0), (100.0, 118.0))
BOX = (50.0, 40.0, 150.0, 165.0)


def synthetic_face(skin_lab: tuple[float, float, float], seed: int = 0) -> np.ndarray:
    """A face-like 200 × 200 RGB image whose skin is ``skin_lab`` (plus mild texture), with
    blue background, dark hair over the forehead top, dark eyes and brows, red lips and a
    white specular highlight on a cheek: everything the skin mask must leave out."""
    rng = np.random.default_rng(seed)
    h = w = 200
    yy, xx = np.mgrid[0:h, 0:w]
    lab = np.zeros((h, w, 3))
    lab[:] = (55.0, 5.0, -40.0)  # blue background
    face = ((xx - 100) / 52.0) ** 2 + ((yy - 100) / 68.0) ** 2 <= 1.0
    lab[face] = skin_lab
    lab[face] += rng.normal(0, 1.0, size=(int(face.sum()), 3))  # skin texture
    hair = face & (yy < 48)
    lab[hair] = (18.0, 4.0, 8.0)
    for cx in (78, 122):
        eye = ((xx - cx) / 11.0) ** 2 + ((yy - 80) / 5.0) ** 2 <= 1.0
        lab[eye] = (20.0, 0.0, 0.0)
        brow = (np.abs(xx - cx) < 14) & (np.abs(yy - 66) < 3)
        lab[brow] = (22.0, 3.0, 6.0)
    lips = ((xx - 100) / 16.0) ** 2 + ((yy - 137) / 6.0) ** 2 <= 1.0
    lab[lips] = (45.0, 45.0, 20.0)
    highlight = ((xx - 76) ** 2 + (yy - 103) ** 2) <= 9
    lab[highlight] = (99.0, 0.0, 0.0)
    return lab_to_srgb(lab)
