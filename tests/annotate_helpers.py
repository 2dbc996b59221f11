"""Shared builders for the annotate tests: synthetic faces with a known skin colour."""

from __future__ import annotations

import csv
from pathlib import Path

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


def _landmarks_68() -> tuple[tuple[float, float], ...]:
    """dlib's 68-point scheme for :func:`synthetic_face`: jaw 0-16 (just inside the face
    outline), brows 17-26, nose 27-35, eyes 36-47, lips 48-67."""
    angles = np.linspace(np.pi + 0.25, -0.25, 17)
    jaw = [(100 + 50 * np.cos(a), 100 + 66 * np.sin(a)) for a in angles]
    brows = [(x, 66.0) for x in np.linspace(64, 92, 5)] + [(x, 66.0)
                                                          for x in np.linspace(108, 136, 5)]
    nose = [(100.0, y) for y in np.linspace(84, 110, 4)] + [(x, 118.0) for x in
                                                            (92, 96, 100, 104, 108)]
    eyes = []
    for cx in (78.0, 122.0):
        eyes += [(cx - 11, 80.0), (cx - 4, 75.5), (cx + 4, 75.5), (cx + 11, 80.0),
                 (cx + 4, 84.5), (cx - 4, 84.5)]
    outer = [(100 + 16 * np.cos(a), 137 + 6 * np.sin(a))
             for a in np.linspace(np.pi, -np.pi, 13)[:-1]]
    inner = [(100 + 10 * np.cos(a), 137 + 3 * np.sin(a))
             for a in np.linspace(np.pi, -np.pi, 9)[:-1]]
    return tuple((float(x), float(y)) for x, y in jaw + brows + nose + eyes + outer + inner)


LANDMARKS_68 = _landmarks_68()


def with_eye_whites(image: np.ndarray) -> np.ndarray:
    """:func:`synthetic_face` with white eyes (L* 90) around a dark iris, as photographed
    eyes are: the reference for the sclera exposure correction."""
    out = image.copy()
    yy, xx = np.mgrid[0:200, 0:200]
    for cx in (78, 122):
        eye = ((xx - cx) / 11.0) ** 2 + ((yy - 80) / 5.0) ** 2 <= 1.0
        out[eye] = lab_to_srgb(np.array([90.0, 0.0, 2.0]))
        iris = ((xx - cx) ** 2 + (yy - 80) ** 2) <= 16
        out[iris] = lab_to_srgb(np.array([25.0, 2.0, 8.0]))
    return out


FAIRFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fairface-sample"


def fairface_subset(folder: Path, prefix: str, n: int) -> tuple[Path, list[dict[str, str]]]:
    """A ``labels.csv`` in ``folder`` with the first ``n`` FairFace-sample rows whose file
    starts with ``prefix`` (all columns kept), for quick validation runs on real photos;
    returns its path and the rows."""
    with open(FAIRFACE / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    labels = folder / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        picked = [r for r in rows if r["file"].startswith(prefix)][:n]
        w.writerows(picked)
    return labels, picked
