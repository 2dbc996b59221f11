"""Perceived skin tone of a face: ITA° and the Monk Skin Tone scale, with a confidence.

Pure numpy, no weights. For one face this module

1. builds a **skin mask** from the face's landmarks. With dlib's 5-point model (outer and
   inner corner of each eye, base of the nose; the default): two cheek patches and a
   forehead patch placed in a face frame spanned by the eye centres and the nose, with the
   eyes, the brows, the nose and the lips cut out explicitly; without landmarks the same
   frame is guessed from the box. The cheeks are the reference; the forehead joins only
   when its colour agrees with theirs (bangs and hats often cover it). With 68-point
   landmarks (opt-in, see below): the whole face inside the jaw line and the raised brow
   line, minus eyes, brows, lips and nose (:func:`skin_polygon_68`);
2. keeps the **skin pixels** among them: specular highlights (near-white pixels, or L*
   far above the patch's median), shadows, hair and beard (L* far below it) and colours no
   skin has (saturated blues, greens, purples) are dropped, using robust statistics of the
   patch itself;
3. converts them to **CIELAB** (sRGB, D65) and takes the per-channel median;
4. reports the **Individual Typology Angle** ``ITA = atan2(L* - 50, b*)`` in degrees
   (Chardon et al. 1991) and its six categories (Del Bino et al. 2006): very light > 55°,
   light 41–55°, intermediate 28–41°, tan 10–28°, brown −30–10°, dark < −30°;
5. reports the nearest of the 10 **Monk Skin Tone** swatches (Monk 2019, the sRGB values
   Google publishes) by CIELAB distance ΔE*ab, 1 = lightest, 10 = darkest;
6. gives a **confidence** in [0, 1]: the product of a pixel-count term (``n / 400``,
   capped at 1), a spread term (robust standard deviation of L* over the skin pixels: 1
   up to 6, falling to 0 at 22) and a chroma term (0 for a greyscale or sepia-free
   neutral image with median chroma C* < 3, 1 from C* = 7). Below a threshold (default
   0.3) the estimate **abstains**: ``monk_tone`` and ``ita_category`` are ``None``; the raw
   ``ita`` and Lab medians stay for inspection.

Optional **white-balance correction** (``white_balance``, off by default; its effect on how
well ITA separates groups is measured by ``validate-annotators``, see the README):
``grey-world`` estimates the illuminant as the Minkowski mean (``p`` = 6, "shades of grey",
Finlayson & Trezzi 2004) of the linear-RGB pixels *outside* the face box, and divides it
out (von Kries; gains limited to ×0.67–×1.5) before the skin is measured. The correction
assumes the background averages to grey, which fails on coloured walls and single-colour
backdrops. ``exposure`` scales the linear RGB so that the 97th percentile of the image's
luminance is 0.9 (gain ×0.5–×3): an auto-exposure, which makes ITA relative to the scene's
brightest parts. ``exposure+grey-world`` does both. ``sclera`` scales the linear RGB so
that the eye whites (the 90th percentile of luminance inside the eyes) reach luminance
0.3 (gain ×0.33–×3; no correction when the eyes are too small to measure): an exposure
reference on the face itself, the same reflector on every face, which a bright background
does not skew; closed eyes, sunglasses and strong catch-lights defeat it.

Measured on the FairFace sample (AUC of ITA, White against Black race labels, faces whose
tone did not abstain; ``validate-annotators``): 5-point patches: none 0.76, grey-world 0.73
(worse), exposure 0.80, both 0.78, sclera 0.76 on the raw ITA (its abstentions differ);
68-point face outline: none 0.83, sclera 0.85, exposure 0.85 but with more abstentions.
All are opt-in, and ITA values with a correction are not comparable with uncorrected ones.

Known failure modes (document them wherever these numbers are reported):

- **Lighting and exposure**: ITA and Monk measure the *rendered* pixel colour, not skin.
  Dim, backlit or over-exposed photos shift both (a dark-lit light face reads darker).
- **White balance and colour casts**: warm or cool casts move b* and with it ITA; a sepia
  or tinted image gives a tone for the tint. Greyscale images abstain (no chroma).
- **Low resolution**: small faces (tens of pixels) leave few skin pixels, blur mixes
  skin with hair, eyes and background, and confidence drops; under ~30 pixels it abstains.
- **Make-up, face paint, masks, strong shadows, beards and hair over the forehead** are not
  skin; the robust filters remove the obvious cases, not all of them.
- **Landmark errors** on profiles or occluded faces put the patches on background.
- The Monk swatches are display colours: photographed skin rarely matches any swatch
  exactly; the index is the *nearest* swatch. Tone labels are perceived attributes of an
  image, never a person's identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The Monk Skin Tone scale, 1 (lightest) to 10 (darkest), as published by Google
# (skintone.google): sRGB hex values.
MONK_HEX: tuple[str, ...] = ("f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96",
                             "a07e56", "825c43", "604134", "3a312a", "292420")

# Lower bounds (degrees) of the six ITA categories, lightest first (Del Bino et al. 2006).
ITA_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("very_light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0),
    ("brown", -30.0), ("dark", -np.inf))

DEFAULT_TONE_THRESHOLD = 0.3
MIN_SKIN_PIXELS = 30
_FULL_COUNT = 400.0
_SPREAD_OK, _SPREAD_BAD = 6.0, 22.0
# The 68-point polygon spans the whole face, whose shading spreads L* about twice as much as
# the small 5-point patches do (median robust SD on the FairFace sample 10.0 vs 4.4), so its
# spread term is scaled by this factor; without it 16% of those faces abstained, not 7%.
_POLYGON_SPREAD_SCALE = 2.0
_CHROMA_BAD, _CHROMA_OK = 3.0, 7.0

_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPS = (6.0 / 29.0) ** 3


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (uint8 0–255 or float 0–1, shape ``(..., 3)``) to CIELAB (D65), float64."""
    c = np.asarray(rgb, dtype=np.float64)
    if np.asarray(rgb).dtype == np.uint8 or c.max(initial=0.0) > 1.0:
        c = c / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) to sRGB uint8 (clipped to the gamut), the inverse of :func:`srgb_to_lab`."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f ** 3, 3 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0))
    lin = np.clip((xyz * _WHITE_D65) @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)


MONK_RGB = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in MONK_HEX],
                    dtype=np.uint8)
MONK_LAB = srgb_to_lab(MONK_RGB)


def ita_degrees(lightness: float, b: float) -> float:
    """Individual Typology Angle in degrees: ``atan2(L* - 50, b*)``."""
    return float(np.degrees(np.arctan2(lightness - 50.0, b)))


def ita_category(ita: float) -> str:
    """The six ITA categories: very_light, light, intermediate, tan, brown, dark."""
    for name, lower in ITA_CATEGORIES:
        if ita > lower:
            return name
    return "dark"


def nearest_monk(lab: Sequence[float]) -> tuple[int, float]:
    """Index (1–10) of the nearest Monk swatch by ΔE*ab, and that distance."""
    d = np.linalg.norm(MONK_LAB - np.asarray(lab, dtype=np.float64), axis=1)
    k = int(np.argmin(d))
    return k + 1, float(d[k])


@dataclass(frozen=True)
class ToneEstimate:
    """One face's perceived skin tone. ``monk_tone``/``ita_category`` are None on abstention."""

    monk_tone: int | None
    ita: float | None
    ita_category: str | None
    confidence: float
    skin_pixels: int
    lab: tuple[float, float, float] | None
    monk_distance: float | None = None


ABSTAIN = ToneEstimate(None, None, None, 0.0, 0, None)


# ---------------------------------------------------------------------------- the mask
def face_frame(box: Sequence[float], landmarks: Sequence[Sequence[float]] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Origin (eye midpoint), unit axes u (across) and v (down), eye distance, nose depth."""
    if landmarks is not None and len(landmarks) == 5:
        pts = np.asarray(landmarks, dtype=np.float64)
        eyes = sorted([pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)], key=lambda p: p[0])
        nose = pts[4]
    elif landmarks is not None and len(landmarks) == 68:
        pts = np.asarray(landmarks, dtype=np.float64)
        eyes = sorted([pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)], key=lambda p: p[0])
        nose = pts[33]
    else:
        # No landmarks: where a frontal face's eyes and nose sit in a detector box.
        left, top, right, bottom = (float(v) for v in box)
        w, h = right - left, bottom - top
        eyes = [np.array([left + 0.3 * w, top + 0.38 * h]),
                np.array([left + 0.7 * w, top + 0.38 * h])]
        nose = np.array([left + 0.5 * w, top + 0.66 * h])
    origin = (eyes[0] + eyes[1]) / 2.0
    across = eyes[1] - eyes[0]
    dist = float(np.hypot(*across))
    if dist < 1e-6:
        raise ValueError("degenerate landmarks (the eyes coincide)")
    u = across / dist
    v = np.array([-u[1], u[0]])
    if np.dot(nose - origin, v) < 0:
        v = -v
    depth = float(np.dot(nose - origin, v)) / dist
    depth = min(max(depth, 0.4), 1.2)  # guard against wild landmarks
    return origin, u, v, dist, depth


def skin_patches(shape: tuple[int, int], box: Sequence[float],
                 landmarks: Sequence[Sequence[float]] | None) -> dict[str, np.ndarray]:
    """Boolean masks of the left cheek, right cheek and forehead patches.

    Eyes, brows, lips and the nose are cut out of every patch explicitly; the patches sit
    inside the face, away from the hairline and the background.
    """
    height, width = shape
    origin, u, v, dist, depth = face_frame(box, landmarks)
    reach = 1.3 * dist * max(1.0, depth + 0.6)
    x0, x1 = int(max(0, origin[0] - reach)), int(min(width, origin[0] + reach + 1))
    y0, y1 = int(max(0, origin[1] - reach)), int(min(height, origin[1] + reach + 1))
    names = ("cheek_left", "cheek_right", "forehead")
    if x1 <= x0 or y1 <= y0:
        return {n: np.zeros(shape, dtype=bool) for n in names}
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - origin[0], yy - origin[1]
    # Face coordinates in eye distances: x across (eyes at ±0.5), y down (nose at depth).
    fx = (dx * u[0] + dy * u[1]) / dist
    fy = (dx * v[0] + dy * v[1]) / dist

    def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((fx - cx) / rx) ** 2 + ((fy - cy) / ry) ** 2 <= 1.0

    excluded = (ellipse(-0.5, 0.0, 0.32, 0.17) | ellipse(0.5, 0.0, 0.32, 0.17)  # eyes
                | ((fy > -0.42) & (fy < -0.12) & (np.abs(fx) < 0.85))  # brows
                | ellipse(0.0, depth + 0.38, 0.36, 0.17)  # lips
                | ((np.abs(fx) < 0.22) & (fy > 0.0) & (fy < depth + 0.05))  # nose bridge
                | ellipse(0.0, depth - 0.08, 0.4, 0.22))  # nose wings and their shadows
    cheek_y = 0.6 * depth
    local = {"cheek_left": ellipse(-0.58, cheek_y, 0.16, 0.14),
             "cheek_right": ellipse(0.58, cheek_y, 0.16, 0.14),
             "forehead": ellipse(0.0, -0.55, 0.3, 0.1)}
    out = {}
    for name in names:
        mask = np.zeros(shape, dtype=bool)
        mask[y0:y1, x0:x1] = local[name] & ~excluded
        out[name] = mask
    return out


def skin_region_mask(shape: tuple[int, int], box: Sequence[float],
                     landmarks: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Union of the skin patches (see :func:`skin_patches`)."""
    patches = list(skin_patches(shape, box, landmarks).values())
    return np.logical_or.reduce(patches)


def _in_polygon(xx: np.ndarray, yy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule: which of the points (xx, yy) lie inside the closed polygon (K × 2)."""
    inside = np.zeros(xx.shape, dtype=bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue
        crosses = (ay > yy) != (by > yy)
        x_at = ax + (yy - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xx < x_at)
    return inside


def _window(poly: np.ndarray, shape: tuple[int, ...]
            ) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The polygon's bounding box clipped to an image of ``shape``: its row and column
    slices and the pixel-centre coordinates (``xx``, ``yy``) over it; None when empty."""
    x0, y0 = (int(max(0, np.floor(v))) for v in poly.min(axis=0))
    x1 = int(min(shape[1], np.ceil(poly[:, 0].max()) + 1))
    y1 = int(min(shape[0], np.ceil(poly[:, 1].max()) + 1))
    if x1 <= x0 or y1 <= y0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return slice(y0, y1), slice(x0, x1), xx + 0.5, yy + 0.5


def _grown(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + (points - centre) * factor


def skin_polygon_68(shape: tuple[int, int], landmarks: Sequence[Sequence[float]]
                    ) -> np.ndarray:
    """Boolean skin mask from dlib's 68 landmarks: the face outline (jaw line, closed over
    the brows raised by a quarter of the outer-eye-corner distance, for the lower forehead)
    minus the eyes and lips (grown 1.6× about their centres), the brows (thickened) and the
    nose's bridge and nostrils.

    Why: the 5-point patches cover a few percent of the face and miss on turned heads; the
    outline follows the real face, so the mask holds several times more skin pixels and
    little background. On the FairFace sample it raised the AUC of ITA between faces labelled
    White and Black from 0.77 (68-point frame, 5-point-style patches) to 0.81.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got {pts.shape}")
    scale = float(np.hypot(*(pts[45] - pts[36])))  # outer eye corners
    if scale < 1e-6:
        return np.zeros(shape, dtype=bool)
    eyes = (pts[36:42].mean(axis=0), pts[42:48].mean(axis=0))
    across = (eyes[1] - eyes[0]) / max(float(np.hypot(*(eyes[1] - eyes[0]))), 1e-6)
    up = np.array([across[1], -across[0]])  # perpendicular, towards the forehead
    if np.dot(pts[8] - (eyes[0] + eyes[1]) / 2.0, up) > 0:  # the chin must be "down"
        up = -up
    brows = pts[17:27] + 0.25 * scale * up
    outline = np.vstack([pts[0:17], brows[::-1]])
    mask = np.zeros(shape, dtype=bool)
    window = _window(outline, shape)
    if window is None:
        return mask
    rows, cols, xx, yy = window
    face = _in_polygon(xx, yy, outline)
    thick = 0.085 * scale
    cut = [_grown(pts[36:42], 1.6), _grown(pts[42:48], 1.6), _grown(pts[48:60], 1.6)]
    for brow in (pts[17:22], pts[22:27]):
        cut.append(np.vstack([brow + thick * up, brow[::-1] - thick * up]))
    side = 0.06 * scale * across
    cut.append(np.vstack([pts[31:36] - 0.06 * scale * up, pts[35] + side, pts[29],
                          pts[31] - side]))
    for poly in cut:
        face &= ~_in_polygon(xx, yy, poly)
    mask[rows, cols] = face
    return mask


def sclera_luminance(image: np.ndarray, box: Sequence[float],
                     landmarks: Sequence[Sequence[float]] | None, q: float = 90.0
                     ) -> float | None:
    """Linear luminance of the brightest part of the eyes (the ``q``-th percentile inside
    each eye, the larger of the two): the eye whites, a near-neutral, near-constant
    reflector on every face. None when the eyes are too small to measure (< 8 pixels)."""
    pts = None if landmarks is None else np.asarray(landmarks, dtype=np.float64)
    h, w = image.shape[:2]
    values = []
    if pts is not None and len(pts) == 68:
        regions = [pts[36:42], pts[42:48]]
        for poly in regions:
            window = _window(poly, image.shape)
            if window is None:
                continue
            rows, cols, xx, yy = window
            pix = image[rows, cols][_in_polygon(xx, yy, poly)]
            if len(pix) >= 8:
                values.append(float(np.percentile(_luminance(pix), q)))
    else:
        origin, u, v, dist, _ = face_frame(box, landmarks)
        for cx in (-0.5, 0.5):
            centre = origin + u * cx * dist
            r = int(0.4 * dist) + 2
            x0, x1 = max(0, int(centre[0]) - r), min(w, int(centre[0]) + r)
            y0, y1 = max(0, int(centre[1]) - r), min(h, int(centre[1]) + r)
            if x1 <= x0 or y1 <= y0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
            dx, dy = xx - origin[0], yy - origin[1]
            fx = (dx * u[0] + dy * u[1]) / dist
            fy = (dx * v[0] + dy * v[1]) / dist
            pix = image[y0:y1, x0:x1][((fx - cx) / 0.3) ** 2 + (fy / 0.1) ** 2 <= 1.0]
            if len(pix) >= 8:
                values.append(float(np.percentile(_luminance(pix), q)))
    return max(values) if values else None


SCLERA_TARGET = 0.3  # linear luminance the eye whites are scaled to
SCLERA_GAIN_LIMITS = (0.33, 3.0)


def sclera_gain(image: np.ndarray, box: Sequence[float],
                landmarks: Sequence[Sequence[float]] | None) -> float:
    """Exposure gain that brings the eye whites to :data:`SCLERA_TARGET` (1.0 when they
    cannot be measured): an exposure reference on the face itself, unlike the image-wide
    percentile of :func:`exposure_gain`, which a bright background or a dark scene skews."""
    ref = sclera_luminance(image, box, landmarks)
    if ref is None:
        return 1.0
    return float(np.clip(SCLERA_TARGET / max(ref, 1e-3), *SCLERA_GAIN_LIMITS))


def _robust_sd(values: np.ndarray) -> float:
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def select_skin(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the skin among candidate pixels (N×3 uint8): returns their Lab and a keep mask."""
    lab = srgb_to_lab(pixels)
    keep = pixels.min(axis=1) < 240  # near white: specular or blown out
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    keep &= (chroma < 6.0) | ((hue > -30.0) & (hue < 115.0))  # no skin is blue/green/purple
    for _ in range(2):
        if keep.sum() < MIN_SKIN_PIXELS:
            break
        light = lab[keep, 0]
        med, sd = float(np.median(light)), max(_robust_sd(light), 2.0)
        keep &= (lab[:, 0] > med - 2.5 * sd) & (lab[:, 0] < med + 2.0 * sd)
    return lab, keep


WHITE_BALANCE = ("none", "grey-world", "exposure", "exposure+grey-world", "sclera")


def exposure_gain(image: np.ndarray, q: float = 97.0, target: float = 0.9,
                  limits: tuple[float, float] = (0.5, 3.0)) -> float:
    """Linear gain that maps the ``q``-th percentile of the image's luminance to ``target``
    (an auto-exposure: under- and over-exposed photos are brought to a common level)."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / 40_000)))
    lin = _linear(image[::step, ::step].reshape(-1, 3))
    ref = float(np.percentile(lin @ np.array([0.2126, 0.7152, 0.0722]), q))
    return float(np.clip(target / max(ref, 1e-3), *limits))


def _luminance(pixels: np.ndarray) -> np.ndarray:
    """Linear-light relative luminance (Rec. 709 weights) of sRGB uint8 pixels (N × 3)."""
    return _linear(pixels) @ np.array([0.2126, 0.7152, 0.0722])


def _linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb8(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255.0), 0, 255).astype(np.uint8)


def illuminant_gains(image: np.ndarray, box: Sequence[float], p: float = 6.0,
                     limits: tuple[float, float] = (0.67, 1.5)) -> np.ndarray:
    """Per-channel von Kries gains that make the shades-of-grey mean of the pixels outside
    the face box neutral (same luminance)."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / 40_000)))  # ~40k pixels are plenty
    yy, xx = np.mgrid[0:h:step, 0:w:step]
    left, top, right, bottom = box
    outside = ~((xx >= left) & (xx <= right) & (yy >= top) & (yy <= bottom))
    pix = image[::step, ::step][outside]
    if len(pix) < 100:
        pix = image[::step, ::step].reshape(-1, 3)
    lin = _linear(pix)
    lin = lin[(pix.max(axis=1) < 250) & (pix.max(axis=1) > 5)]  # no clipped pixels
    if len(lin) < 100:
        return np.ones(3)
    illum = np.mean(lin ** p, axis=0) ** (1.0 / p)
    if np.any(illum <= 1e-6):
        return np.ones(3)
    gains = illum.mean() / illum
    return np.clip(gains, *limits)


def white_balanced(pixels: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Apply von Kries ``gains`` (linear RGB) to sRGB uint8 pixels."""
    return _srgb8(_linear(pixels) * gains)


def _cheeks_and_forehead(image: np.ndarray, patches: dict[str, np.ndarray]) -> np.ndarray:
    """Lab of the skin pixels of the cheeks, plus the forehead's when its colour agrees."""
    cheeks = image[patches["cheek_left"] | patches["cheek_right"]]
    lab, keep = select_skin(cheeks) if len(cheeks) else (np.zeros((0, 3)), np.zeros(0, bool))
    skin = lab[keep]
    forehead = image[patches["forehead"] & ~(patches["cheek_left"] | patches["cheek_right"])]
    if len(forehead) >= MIN_SKIN_PIXELS:
        flab, fkeep = select_skin(forehead)
        fskin = flab[fkeep]
        if len(fskin) >= MIN_SKIN_PIXELS and (
                len(skin) < MIN_SKIN_PIXELS
                or np.linalg.norm(np.median(fskin, axis=0) - np.median(skin, axis=0)) < 12.0):
            skin = np.concatenate([skin, fskin]) if len(skin) >= MIN_SKIN_PIXELS else fskin
    return skin


def estimate_tone(image: np.ndarray, box: Sequence[float],
                  landmarks: Sequence[Sequence[float]] | None = None,
                  threshold: float = DEFAULT_TONE_THRESHOLD,
                  white_balance: str = "none") -> ToneEstimate:
    """Perceived skin tone of the face at ``box`` (l, t, r, b) in an HxWx3 uint8 RGB image.

    With 5-point (or no) landmarks the cheeks are the reference; the forehead joins them
    only when its median colour agrees with theirs (ΔE*ab < 12), since hair over the
    forehead is common. With 68 landmarks the skin is every skin pixel inside the face
    outline (:func:`skin_polygon_68`), and the spread term of the confidence allows for the
    whole face's shading.
    """
    if white_balance not in WHITE_BALANCE:
        raise ValueError(f"white_balance must be one of {WHITE_BALANCE}, got {white_balance!r}")
    polygon = landmarks is not None and len(landmarks) == 68
    if polygon:
        patches = {"face": skin_polygon_68(image.shape[:2], landmarks)}  # type: ignore[arg-type]
    else:
        patches = skin_patches(image.shape[:2], box, landmarks)
    if white_balance != "none":
        gains = np.ones(3)
        if white_balance == "sclera":
            gains = gains * sclera_gain(image, box, landmarks)
        if "exposure" in white_balance:
            gains = gains * exposure_gain(image)
        if "grey-world" in white_balance:
            gains = gains * illuminant_gains(image, box)
        region = np.logical_or.reduce(list(patches.values()))
        image = image.copy()
        image[region] = white_balanced(image[region], gains)
    if polygon:
        pixels = image[patches["face"]]
        lab, keep = select_skin(pixels) if len(pixels) else (np.zeros((0, 3)),
                                                             np.zeros(0, bool))
        skin = lab[keep]
    else:
        skin = _cheeks_and_forehead(image, patches)
    n = len(skin)
    if n < MIN_SKIN_PIXELS:
        return ToneEstimate(None, None, None, 0.0, n, None)
    med = np.median(skin, axis=0)
    ita = ita_degrees(med[0], med[2])
    monk, distance = nearest_monk(med)
    spread = _robust_sd(skin[:, 0])
    chroma = float(np.hypot(med[1], med[2]))
    scale = _POLYGON_SPREAD_SCALE if polygon else 1.0
    spread_ok, spread_bad = _SPREAD_OK * scale, _SPREAD_BAD * scale
    confidence = (min(1.0, n / _FULL_COUNT)
                  * float(np.clip((spread_bad - spread) / (spread_bad - spread_ok), 0, 1))
                  * float(np.clip((chroma - _CHROMA_BAD) / (_CHROMA_OK - _CHROMA_BAD), 0, 1)))
    lab_t = (float(med[0]), float(med[1]), float(med[2]))
    if confidence < threshold:
        return ToneEstimate(None, ita, None, confidence, n, lab_t, distance)
    return ToneEstimate(monk, ita, ita_category(ita), confidence, n, lab_t, distance)
