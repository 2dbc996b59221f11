"""Annotating a run store: resumable, only new images, per-file errors, table and export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit.annotate.base import AnnotatorSpec
from imagen_audit.annotate.runner import annotate_run
from imagen_audit.cli import main
from imagen_audit.errors import RunStoreError
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore
from imagen_audit.store.export import export_table

skimage_data = pytest.importorskip("skimage.data")

CONTRACT = ["image_id", "sample_id", "prompt_id", "prompt", "family", "template_id",
            "occupation_id", "identity_id", "identity_axis", "sample_index", "seed", "stage",
            "stage_name", "path", "annotator", "n_faces", "face_index", "box_left", "box_top",
            "box_right", "box_bottom", "detection_score", "perceived_gender",
            "gender_probability", "p_female", "monk_tone", "ita", "ita_category",
            "tone_confidence"]


@pytest.fixture
def folder_run(tmp_path):
    """A run imported from a folder: a photo with one face, two faces, noise and blank."""
    src = tmp_path / "src"
    src.mkdir()
    astro = skimage_data.astronaut()
    Image.fromarray(astro).save(src / "astronaut.png")
    two = np.zeros((512, 512, 3), np.uint8)
    two[100:320, 30:240] = astro[40:260, 120:330]
    two[100:320, 270:480] = astro[40:260, 120:330][:, ::-1]
    Image.fromarray(two).save(src / "two.png")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(src / "noise.png")
    Image.new("RGB", (128, 128), (0, 0, 0)).save(src / "blank.png")
    rows = ["file,prompt,occupation_id", "astronaut.png,a photo of an astronaut,astronaut",
            "two.png,two astronauts,astronaut", "noise.png,noise,", "blank.png,blank,"]
    (src / "manifest.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    generate_run(run, model=f"folder:{src}", probes=None, progress=False)
    return run


def test_annotate_resumable_table_and_export(folder_run, tmp_path):
    s1 = annotate_run(folder_run, AnnotatorSpec(), workers=1, progress=False, batch_size=3)
    assert (s1.to_annotate, s1.annotated, s1.failed, s1.faces) == (4, 4, 0, 3)
    s2 = annotate_run(folder_run, AnnotatorSpec(), workers=1, progress=False)
    assert s2.to_annotate == 0 and s2.annotated == 0  # nothing new: nothing done again
    with RunStore.open_readonly(folder_run) as store:
        table = store.annotations_table("dlib-hog+dlib-onnx")
        assert store.annotators()["dlib-hog+dlib-onnx"]["gender"] == "dlib-onnx"
    assert [c for c in CONTRACT if c not in table.columns] == []
    assert len(table) == 3 + 2  # 3 faces + 2 images without a face
    by_prompt = table.groupby("prompt")["n_faces"].first().to_dict()
    assert by_prompt == {"a photo of an astronaut": 1, "two astronauts": 2, "noise": 0,
                         "blank": 0}
    faces = table.dropna(subset=["face_index"])
    assert set(faces["perceived_gender"]) <= {"female", "male", "unknown"}
    assert (faces["perceived_gender"] == "female").all()
    assert faces["monk_tone"].between(1, 10).all() and faces["p_female"].between(0, 1).all()
    assert faces["ita_category"].isin(["very_light", "light", "intermediate"]).all()
    empty = table[table["n_faces"] == 0]
    assert empty["face_index"].isna().all() and empty["perceived_gender"].isna().all()
    # A different configuration under the same name is refused.
    with pytest.raises(RunStoreError, match="other settings"):
        annotate_run(folder_run, AnnotatorSpec(gender_threshold=0.9), workers=1,
                     progress=False)
    # Export: one row per face and one per image without a face.
    with RunStore.open_readonly(folder_run) as store:
        frame = export_table(store, tmp_path / "out.csv")
    csv = pd.read_csv(tmp_path / "out.csv")
    assert len(csv) == len(frame) == 5
    for col in ("file", "n_faces", "perceived_gender", "gender_probability", "monk_tone",
                "ita", "box_left", "box_top", "box_right", "box_bottom"):
        assert col in csv.columns


def test_export_without_annotations_unchanged(folder_run, tmp_path):
    with RunStore.open_readonly(folder_run) as store:
        frame = export_table(store, tmp_path / "plain.csv")
        cols = list(store.images_table().columns)
        at = cols.index("path") + 1
        assert list(frame.columns) == [*cols[:at], "file", *cols[at:]]
    assert len(frame) == 4 and "perceived_gender" not in frame.columns


def test_unreadable_image_recorded_and_retried(folder_run):
    with RunStore.open_readonly(folder_run) as store:
        images = store.images_table()
    victim = folder_run / images.loc[images["prompt"] == "noise", "path"].iloc[0]
    original = victim.read_bytes()
    victim.write_bytes(original[:100])  # truncated on disk
    summary = annotate_run(folder_run, AnnotatorSpec(), workers=2, progress=False,
                           batch_size=2)
    assert (summary.annotated, summary.failed) == (3, 1)
    with RunStore.open_readonly(folder_run) as store:
        status = store.annotation_status_table()
        assert len(store.annotations_table()) == 4  # 3 faces + blank; the failed one absent
    failed = status[status["status"] == "failed"]
    assert len(failed) == 1 and "truncated" in failed["error"].iloc[0]
    victim.write_bytes(original)  # repaired: the next run retries only that image
    again = annotate_run(folder_run, AnnotatorSpec(), workers=1, progress=False)
    assert (again.to_annotate, again.annotated, again.failed) == (1, 1, 0)


def test_cli_annotate_and_export(folder_run, tmp_path, capsys):
    assert main(["annotate", str(folder_run), "--workers", "1", "--no-progress",
                 "--preset", "fast", "--gender-threshold", "0.8", "--name", "strict"]) == 0
    assert "4 images annotated" in capsys.readouterr().out
    assert main(["annotate", str(folder_run), "--workers", "1", "--no-progress",
                 "--preset", "fast", "--gender-threshold", "0.8", "--name", "strict"]) == 0
    assert "nothing to annotate" in capsys.readouterr().out
    assert main(["export", str(folder_run), "--out", str(tmp_path / "x.csv")]) == 0
    csv = pd.read_csv(tmp_path / "x.csv")
    assert set(csv["annotator"]) == {"strict"} and len(csv) == 5
    assert main(["annotate", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert main(["annotate", str(folder_run), "--gender", "deepface", "--no-progress",
                 "--workers", "1"]) == 2  # no weights: a clear error, exit 2


def test_validation_json_saved_in_run(folder_run):
    with RunStore.open(folder_run) as store:
        path = store.save_validation({"schema": "x", "n": 1})
    assert path == folder_run / "validation" / "validation.json"
    with RunStore.open_readonly(folder_run) as store:
        assert store.validation_records() == {"validation.json": {"schema": "x", "n": 1}}
    assert json.loads(path.read_text()) == {"n": 1, "schema": "x"}
