"""Annotation while generation goes on: the same annotations as annotating afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit.annotate.base import AnnotatorSpec
from imagen_audit.annotate.runner import annotate_run
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore

COLUMNS = ["image_id", "n_faces", "face_index", "perceived_gender", "gender_probability",
           "monk_tone", "ita", "box_left", "box_top"]


@pytest.fixture
def faces_folder(tmp_path: Path) -> Path:
    skdata = pytest.importorskip("skimage.data")
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(skdata.astronaut()).save(src / "astronaut.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(src / "noise.png")
    (src / "manifest.csv").write_text(
        "file,prompt,seed\nastronaut.png,a photo of an astronaut,1\nnoise.png,noise,2\n")
    return src


def _annotations(run: Path) -> pd.DataFrame:
    with RunStore.open_readonly(run) as store:
        return store.annotations_table()[COLUMNS].sort_values("image_id").reset_index(drop=True)


def test_pipelined_annotations_equal_annotating_afterwards(faces_folder: Path,
                                                           tmp_path: Path) -> None:
    model = f"folder:{faces_folder}"
    summary = generate_run(tmp_path / "piped", model=model, probes=None, progress=False,
                           annotate=AnnotatorSpec(), annotate_workers=1)
    assert summary.annotated == 2
    generate_run(tmp_path / "after", model=model, probes=None, progress=False)
    annotate_run(tmp_path / "after", AnnotatorSpec(), workers=1, progress=False)
    piped = _annotations(tmp_path / "piped")
    assert int(piped["n_faces"].max()) == 1  # the astronaut's face is found
    pd.testing.assert_frame_equal(piped, _annotations(tmp_path / "after"))


def test_images_left_unannotated_by_an_earlier_run_are_annotated(faces_folder: Path,
                                                                 tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, model=f"folder:{faces_folder}", probes=None, progress=False)
    summary = generate_run(run, model=f"folder:{faces_folder}", probes=None, progress=False,
                           annotate=AnnotatorSpec(), annotate_workers=1)
    assert summary.generated == 0 and summary.annotated == 2
    assert len(_annotations(run)) == 2
