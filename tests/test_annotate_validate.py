"""validate-annotators: metrics, the JSON record, bad files, and the FairFace sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from annotate_helpers import fairface_subset
from PIL import Image

from imagen_audit.annotate.validate import SCHEMA, cohen_kappa, validate_annotators
from imagen_audit.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
skimage_data = pytest.importorskip("skimage.data")


def test_kappa_matches_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a = rng.integers(1, 11, 200)
    b = np.clip(a + rng.integers(-2, 3, 200), 1, 10)
    for w in (None, "linear", "quadratic"):
        assert cohen_kappa(a, b, w, labels=range(1, 11)) == pytest.approx(
            cohen_kappa_score(a, b, weights=w, labels=list(range(1, 11))))
    assert cohen_kappa(["f", "m", "f"], ["f", "m", "f"]) == 1.0


def test_validate_small_folder_with_tone_labels(tmp_path):
    astro = skimage_data.astronaut()
    Image.fromarray(astro).save(tmp_path / "a.png")
    Image.fromarray(astro[:, ::-1]).save(tmp_path / "b.png")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(tmp_path / "blank.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "labels.csv").write_text(
        "file,perceived_gender,monk_tone,group\n"
        "a.png,female,3,g1\nb.png,male,7,g2\nblank.png,female,,g2\nbroken.png,male,4,g1\n")
    run = tmp_path / "run"
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(astro).save(src / "x.png")
    (src / "manifest.csv").write_text("file,prompt\nx.png,x\n")
    from imagen_audit.generate.runner import generate_run

    generate_run(run, model=f"folder:{src}", probes=None, progress=False)
    rc = main(["validate-annotators", "--labels", str(tmp_path / "labels.csv"), "--out",
               str(tmp_path / "val"), "--run", str(run), "--workers", "1", "--no-progress",
               "--preset", "fast"])
    assert rc == 0
    record = json.loads((tmp_path / "val" / "validation.json").read_text())
    assert record == json.loads((run / "validation" / "validation.json").read_text())
    assert record["schema"] == SCHEMA and record["n_files"] == 4
    assert record["n_unreadable"] == 1 and record["errors"][0]["file"] == "broken.png"
    g = record["gender"]["overall"]
    # a: female → female; b (mirrored, labelled male): female → wrong; blank: no face.
    assert g["n"] == 3 and g["confusion"] == [[1, 0, 0, 1], [1, 0, 0, 0]]
    assert g["face_found_rate"] == pytest.approx(2 / 3) and g["accuracy"] == 0.5
    assert record["gender"]["groups"]["g1"]["accuracy"] == 1.0
    t = record["tone"]["overall"]
    pred = [r for r in (tmp_path / "val" / "predictions.csv").read_text().splitlines()]
    assert len(pred) == 5
    monk = int(float(pred[1].split(",")[9]))
    assert t["n"] == 2 and t["mae"] == pytest.approx((abs(monk - 3) + abs(monk - 7)) / 2)
    assert np.array(t["confusion"]).sum() == 2


def test_labels_errors_name_the_line(tmp_path):
    (tmp_path / "labels.csv").write_text("file,perceived_gender\na.png,robot\n")
    assert main(["validate-annotators", "--labels", str(tmp_path / "labels.csv"),
                 "--workers", "1", "--no-progress"]) == 2


@pytest.mark.skipif(not (SHARED / "fairface-sample" / "labels.csv").is_file(),
                    reason="shared/data/fairface-sample not present")
def test_fairface_sample_handful(tmp_path):
    labels, picked = fairface_subset(tmp_path, "V1_", 16)
    record = validate_annotators(labels, images=SHARED / "fairface-sample", workers=1)
    g = record["gender"]["overall"]
    assert g["n"] == 16 and record["tone"] is None and record["group_column"] == "race_label"
    assert g["face_found_rate"] >= 0.5 and g["accuracy"] >= 0.6
    assert set(record["ita_by_group"]) == {r["race_label"] for r in picked}
