"""Skin tone: CIELAB, ITA, Monk swatches, the skin mask and abstention (pure numpy)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from annotate_helpers import BOX, LANDMARKS, LANDMARKS_68, synthetic_face, with_eye_whites

from imagen_audit.annotate import skin_tone as st


def test_lab_round_trip_and_known_values():
    rgb = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8)
    lab = st.srgb_to_lab(rgb)
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # textbook sRGB red
    grid = np.random.default_rng(0).integers(0, 256, (500, 3), dtype=np.uint8)
    np.testing.assert_array_equal(st.lab_to_srgb(st.srgb_to_lab(grid)), grid)


def test_ita_categories_and_monk_order():
    assert st.ita_category(60) == "very_light"
    assert st.ita_category(45) == "light"
    assert st.ita_category(30) == "intermediate"
    assert st.ita_category(20) == "tan"
    assert st.ita_category(0) == "brown"
    assert st.ita_category(-45) == "dark"
    assert st.ita_degrees(50.0, 10.0) == 0.0
    # The swatches run from light to dark: their ITA decreases strictly.
    itas = [st.ita_degrees(lab[0], lab[2]) for lab in st.MONK_LAB]
    assert all(a > b for a, b in pairwise(itas))
    for k, lab in enumerate(st.MONK_LAB, start=1):
        assert st.nearest_monk(lab)[0] == k


@pytest.mark.parametrize("skin", [(85.0, 6.0, 16.0), (70.0, 10.0, 20.0), (55.0, 13.0, 25.0),
                                  (40.0, 12.0, 20.0), (28.0, 10.0, 13.0)])
def test_synthetic_face_known_skin_colour(skin):
    image = synthetic_face(skin)
    est = st.estimate_tone(image, BOX, LANDMARKS)
    expected_ita = st.ita_degrees(skin[0], skin[2])
    assert est.lab is not None
    np.testing.assert_allclose(est.lab, skin, atol=1.0)  # hair, eyes, lips, highlight left out
    assert abs(est.ita - expected_ita) < 2.0
    assert est.monk_tone == st.nearest_monk(skin)[0]
    assert est.ita_category == st.ita_category(expected_ita)
    assert est.confidence > 0.8
    assert est.skin_pixels >= 400


def test_mask_excludes_eyes_brows_lips_and_background():
    mask = st.skin_region_mask((200, 200), BOX, LANDMARKS)
    image = synthetic_face((70.0, 10.0, 20.0))
    lab = st.srgb_to_lab(image[mask])
    # Every masked pixel is skin (or the highlight the pixel filter removes).
    skin_like = np.abs(lab[:, 0] - 70) < 6
    highlight = lab[:, 0] > 95
    assert np.all(skin_like | highlight)
    assert highlight.sum() > 0  # the highlight is inside the patch and must be filtered


def test_monotone_in_lightness():
    monks, itas = [], []
    for lightness in np.linspace(90, 20, 15):
        est = st.estimate_tone(synthetic_face((lightness, 11.0, 19.0)), BOX, LANDMARKS)
        monks.append(est.monk_tone)
        itas.append(est.ita)
    assert None not in monks
    assert all(a <= b for a, b in pairwise(monks)), monks
    assert all(a > b for a, b in pairwise(itas)), itas
    assert monks[0] <= 4 and monks[-1] >= 8


def test_abstains_on_greyscale_and_tiny_faces():
    grey = synthetic_face((60.0, 0.0, 0.0))
    est = st.estimate_tone(grey, BOX, LANDMARKS)
    assert est.monk_tone is None and est.ita_category is None and est.confidence < 0.3
    tiny = synthetic_face((60.0, 10.0, 20.0))[::10, ::10]
    est = st.estimate_tone(tiny, tuple(v / 10 for v in BOX),
                           [(x / 10, y / 10) for x, y in LANDMARKS])
    assert est.monk_tone is None and est.skin_pixels < st.MIN_SKIN_PIXELS


def test_box_only_fallback_is_close():
    skin = (62.0, 12.0, 22.0)
    est = st.estimate_tone(synthetic_face(skin), BOX, None)
    assert est.ita is not None and abs(est.ita - st.ita_degrees(skin[0], skin[2])) < 4.0


def test_polygon_mask_from_68_landmarks_holds_only_skin():
    skin = (62.0, 12.0, 22.0)
    image = synthetic_face(skin)
    mask = st.skin_polygon_68((200, 200), LANDMARKS_68)
    patches = st.skin_region_mask((200, 200), BOX, LANDMARKS)
    assert mask.sum() > 3 * patches.sum()  # far more skin than the 5-point patches
    lab, keep = st.select_skin(image[mask])
    not_skin = (np.abs(lab[:, 0] - skin[0]) >= 6) & (lab[:, 0] <= 95)
    assert not_skin.mean() < 0.01  # a sliver of background at the raised brow corners
    assert np.all(np.abs(lab[keep, 0] - skin[0]) < 6)  # which the pixel filter removes
    for x, y in [(78, 80), (122, 80), (100, 137), (78, 66), (100, 30), (20, 100)]:
        assert not mask[y, x], (x, y)  # eyes, lips, brow, hair, background
    est = st.estimate_tone(image, BOX, LANDMARKS_68)
    np.testing.assert_allclose(est.lab, skin, atol=1.0)
    assert est.monk_tone is not None and est.confidence > 0.8
    with pytest.raises(ValueError, match="68 landmarks"):
        st.skin_polygon_68((200, 200), LANDMARKS)


@pytest.mark.parametrize("landmarks", [LANDMARKS, LANDMARKS_68], ids=["5-point", "68-point"])
def test_sclera_exposure_makes_ita_independent_of_exposure(landmarks):
    image = with_eye_whites(synthetic_face((62.0, 12.0, 22.0)))
    dark = st._srgb8(st._linear(image) * 0.35)  # the same face, under-exposed
    assert st.sclera_luminance(image, BOX, landmarks) == pytest.approx(
        st._luminance(st.lab_to_srgb(np.array([[90.0, 0.0, 2.0]])))[0], rel=0.05)
    plain = [st.estimate_tone(im, BOX, landmarks).ita for im in (image, dark)]
    fixed = [st.estimate_tone(im, BOX, landmarks, white_balance="sclera").ita
             for im in (image, dark)]
    assert abs(plain[0] - plain[1]) > 15.0  # exposure moves ITA a lot
    assert abs(fixed[0] - fixed[1]) < 2.0  # the eye whites put it back
    closed = synthetic_face((62.0, 12.0, 22.0))[:, :, :] * 0  # no eyes to measure
    assert st.sclera_gain(closed[:1, :1], BOX, landmarks) == 1.0
