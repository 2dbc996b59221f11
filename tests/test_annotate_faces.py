"""The default annotator on a real photo, on noise and blank images, and on bad files."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from imagen_audit.annotate.base import AnnotatorSpec, decide_gender, load_image
from imagen_audit.annotate.runner import iter_annotations
from imagen_audit.annotate.skin_tone import lab_to_srgb, srgb_to_lab

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def annotator():
    a = AnnotatorSpec().build()
    yield a
    a.close()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


def test_astronaut_one_face_plausible_tone_and_gender(annotator, astronaut):
    (ann,) = annotator.annotate([astronaut])
    assert ann.error is None and ann.n_faces == 1
    face = ann.faces[0]
    left, top, right, bottom = face.face.box
    assert 150 < left < right < 300 and 60 < top < bottom < 200  # her face, not the flag
    assert len(face.face.landmarks) == 5 and face.face.score > 0
    assert face.gender.label == "female" and face.gender.probability >= 0.75
    assert face.gender.p_female == face.gender.probability
    assert face.tone.monk_tone in (2, 3, 4, 5)  # light skin under warm studio light
    assert face.tone.ita_category in ("very_light", "light", "intermediate")
    assert 0.3 <= face.tone.confidence <= 1.0


def test_noise_and_blank_have_no_face(annotator):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8),
              np.zeros((512, 512, 3), np.uint8), np.full((256, 256, 3), 255, np.uint8),
              np.full((64, 64, 3), 128, np.uint8)]
    for ann in annotator.annotate(images):
        assert ann.error is None and ann.n_faces == 0


def test_same_result_at_any_resolution(annotator, astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1024, 1024), Image.LANCZOS))
    a, b = annotator.annotate([astronaut, big])
    assert a.n_faces == b.n_faces == 1
    np.testing.assert_allclose(np.array(b.faces[0].face.box) / 2, a.faces[0].face.box, atol=3)
    assert a.faces[0].gender.label == b.faces[0].gender.label


def test_tone_monotone_when_the_photo_skin_is_darkened_or_lightened(annotator, astronaut):
    """Shift L* of the face region of the photo in CIELAB: the full pipeline (detection,
    landmarks, mask, tone) must give monotone Monk indices and ITA."""
    (ref,) = annotator.annotate([astronaut])
    left, top, right, bottom = (int(v) for v in ref.faces[0].face.box)
    lab = srgb_to_lab(astronaut[top:bottom, left:right])
    monks, itas = [], []
    for shift in (16, 8, 0, -8, -16, -24, -32):
        image = astronaut.copy()
        shifted = lab.copy()
        shifted[..., 0] = np.clip(shifted[..., 0] + shift, 0, 100)
        image[top:bottom, left:right] = lab_to_srgb(shifted)
        (ann,) = annotator.annotate([image])
        assert ann.n_faces == 1, f"face lost at ΔL*={shift}"
        monks.append(ann.faces[0].tone.monk_tone)
        itas.append(ann.faces[0].tone.ita)
    assert None not in monks
    assert all(a <= b for a, b in pairwise(monks)), monks
    assert all(a > b for a, b in pairwise(itas)), itas
    assert monks[-1] > monks[0]


def test_gender_abstains_below_threshold():
    assert decide_gender(0.9, 0.75).label == "female"
    assert decide_gender(0.1, 0.75).label == "male"
    unsure = decide_gender(0.6, 0.75)
    assert unsure.label == "unknown" and unsure.probability == pytest.approx(0.6)
    unsure = decide_gender(0.35, 0.75)
    assert unsure.label == "unknown" and unsure.probability == pytest.approx(0.65)
    assert decide_gender(0.6, 0.5).label == "female"


def write_bad_files(folder, astronaut):
    """Corrupt, truncated, non-image, CMYK, greyscale, 1-pixel and 8000-pixel files."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(astronaut).save(folder / "good.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    data = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "not_an_image.png").write_text("name,prompt\nthis is text\n")
    Image.fromarray(astronaut).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(astronaut).convert("L").save(folder / "grey.png")
    Image.new("RGB", (1, 1), (200, 150, 120)).save(folder / "one_pixel.png")
    Image.fromarray(astronaut).resize((8000, 8000), Image.BILINEAR).save(folder / "huge.jpg",
                                                                         quality=80)
    return ["good.png", "corrupt.png", "truncated.png", "not_an_image.png", "cmyk.jpg",
            "grey.png", "one_pixel.png", "huge.jpg"]


def test_bad_files_get_an_error_or_a_correct_result(tmp_path, astronaut):
    names = write_bad_files(tmp_path, astronaut)
    results = dict(iter_annotations([(n, tmp_path / n) for n in names], AnnotatorSpec(),
                                    batch_size=3, workers=1))
    assert list(results) == names  # nothing lost, input order kept
    for name in ("corrupt.png", "truncated.png", "not_an_image.png"):
        assert results[name].error and results[name].n_faces == 0, name
    for name in ("good.png", "cmyk.jpg", "grey.png", "huge.jpg"):
        assert results[name].error is None and results[name].n_faces == 1, name
    assert results["huge.jpg"].width == 8000
    box = results["huge.jpg"].faces[0].face.box  # in the 8000-px image's coordinates
    assert 8000 * 150 / 512 < box[0] < box[2] < 8000 * 300 / 512
    assert results["one_pixel.png"].error is None and results["one_pixel.png"].n_faces == 0
    grey = results["grey.png"].faces[0]
    assert grey.tone.monk_tone is None  # no colour, no tone: abstains
    cmyk = results["cmyk.jpg"].faces[0]
    assert cmyk.gender.label == "female"
    assert load_image(tmp_path / "cmyk.jpg").shape == (512, 512, 3)


def test_high_bit_depth_photos_keep_their_brightness(tmp_path):
    """A 16-bit photo is read by its bit depth, as the run store reads it: a dark image stays
    dark (stretching it to its own brightest pixel would lighten every face in it and move
    its perceived skin tone)."""
    from PIL import Image

    dark = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096) * 4  # up to ~16,380
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    got = load_image(tmp_path / "dark16.png")
    assert got.shape == (64, 64, 3) and got.max() <= 64  # ~16380/257, not stretched to 255
    assert abs(float(got[..., 0].mean()) - float(dark.mean()) / 257) < 1.0
