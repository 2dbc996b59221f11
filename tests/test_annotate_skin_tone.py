"""Skin tone: CIELAB, ITA, Monk swatches, the skin mask and abstention (pure numpy)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from annotate_helpers import BOX, LANDMARKS, synthetic_face

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
