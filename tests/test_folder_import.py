"""Importing a folder of images listed in manifest.csv (the ``folder:PATH`` generator)."""

from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagen_audit.cli import main
from imagen_audit.errors import AuditError, ManifestError, RunStoreError
from imagen_audit.generate.base import make_generator
from imagen_audit.generate.folder import FolderImporter, read_manifest
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore
from imagen_audit.store.images import read_png


def _write_manifest(folder: Path, rows: list[dict], fields: list[str] | None = None) -> Path:
    fields = fields or list(rows[0])
    path = folder / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """Four images (two prompts, one of them twice): RGB PNG, RGBA PNG, grey PNG, JPEG."""
    root = tmp_path / "images_in"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), "RGB").save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (4, 7, 4), dtype=np.uint8), "RGBA").save(
        root / "sub" / "b.png")
    Image.fromarray(rng.integers(0, 256, (3, 3), dtype=np.uint8), "L").save(root / "c.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB").save(
        root / "d.jpg", quality=90)
    _write_manifest(root, [
        {"file": "a.png", "prompt": "a photo of a nurse", "seed": "11"},
        {"file": "sub/b.png", "prompt": "a photo of a carpenter", "seed": "22"},
        {"file": "c.png", "prompt": "a photo of a nurse", "seed": ""},
        {"file": "d.jpg", "prompt": "a photo of a nurse", "seed": "-4"},
    ])
    return root


def _expected_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _pid(prompt: str) -> str:
    return "imported/" + hashlib.sha256(prompt.encode()).hexdigest()[:12]


def test_import_a_folder(folder, tmp_path):
    out = tmp_path / "run"
    summary = generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    assert (summary.planned, summary.added_to_plan, summary.generated, summary.failed) == \
        (4, 4, 4, 0)
    assert summary.complete and summary.generator == "folder"
    with RunStore.open_readonly(out) as store:
        assert [(s.stage, s.name) for s in store.stages()] == [(1, "imported")]
        assert store.status_counts() == {"done": 4}
        samples = store.samples_table()
        assert list(samples["source_file"]) == ["a.png", "sub/b.png", "c.png", "d.jpg"]
        seeds = samples["seed"].tolist()
        assert seeds[:2] == [11, 22] and np.isnan(seeds[2]) and seeds[3] == -4
        nurse, carpenter = _pid("a photo of a nurse"), _pid("a photo of a carpenter")
        assert list(samples["prompt_id"]) == [nurse, carpenter, nurse, nurse]
        assert list(samples["sample_index"]) == [0, 0, 1, 2]
        assert set(samples["family"]) == {"imported"}
        assert set(samples["template_id"]) == {"manifest"}
        images = store.images_table()
        assert len(images) == 4
        assert set(images["stage_name"]) == {"imported"} and set(images["stage"]) == {1}
        for (_, row), src in zip(images.iterrows(), samples["source_file"], strict=True):
            expected = _expected_pixels(folder / src)
            stored = read_png(store.image_path(row["path"]))
            np.testing.assert_array_equal(stored, expected)
            assert (row["height"], row["width"]) == expected.shape[:2]
        # PNG sources come back bit-exact, not just "the same after our own decoding".
        rgb = np.asarray(Image.open(folder / "a.png"))
        np.testing.assert_array_equal(read_png(store.image_path(images["path"].iloc[0])), rgb)
        assert store.verify() == []
        prov = store.provenance_records()
        assert len(prov) == 1
        record = next(iter(prov.values()))
        assert record["generator"]["generator"] == "folder"
        assert record["generator"]["folder"] == str(folder.resolve())
        assert store.get_meta("generator") == {"generator": "folder",
                                               "folder": str(folder.resolve())}


def test_import_again_generates_nothing(folder, tmp_path):
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    with RunStore.open_readonly(out) as store:
        before = store.images_table()
    again = generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    assert (again.planned, again.added_to_plan, again.already_done, again.generated) == \
        (4, 0, 4, 0)
    with RunStore.open_readonly(out) as store:
        after = store.images_table()
    assert after.equals(before)


def test_new_manifest_rows_are_added_on_the_next_run(folder, tmp_path):
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    Image.new("RGB", (2, 2), (1, 2, 3)).save(folder / "e.png")
    with open(folder / "manifest.csv", "a", newline="", encoding="utf-8") as fh:
        fh.write("e.png,a photo of a judge,5\n")
    summary = generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    assert (summary.planned, summary.added_to_plan, summary.generated) == (5, 1, 1)


def test_changed_seed_in_manifest_is_refused_on_resume(folder, tmp_path):
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    manifest = folder / "manifest.csv"
    text = manifest.read_text(encoding="utf-8")
    assert "a.png,a photo of a nurse,11" in text
    manifest.write_text(text.replace("a.png,a photo of a nurse,11", "a.png,a photo of a nurse,12"),
                        encoding="utf-8")
    with pytest.raises(RunStoreError, match="seed"):
        generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    # The failed run released the folder.
    with RunStore.open(out) as store:
        assert store.status_counts() == {"done": 4}


def test_manifest_with_probe_attributes(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("n.png", "c.png"):
        Image.new("RGB", (3, 3), (10, 20, 30)).save(root / name)
    _write_manifest(root, [
        {"file": "n.png", "prompt": "a photo of a nurse", "seed": "1",
         "occupation_id": "registered_nurse", "prompt_id": "occupations/face/registered_nurse",
         "family": "occupations", "template_id": "face"},
        {"file": "c.png", "prompt": "a photo of a carpenter", "seed": "2",
         "occupation_id": "carpenter", "prompt_id": "", "family": "", "template_id": ""},
    ])
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{root}", probes=None, progress=False)
    with RunStore.open_readonly(out) as store:
        images = store.images_table()
    assert list(images["occupation_id"]) == ["registered_nurse", "carpenter"]
    assert list(images["prompt_id"]) == ["occupations/face/registered_nurse",
                                         _pid("a photo of a carpenter")]
    assert list(images["family"]) == ["occupations", "imported"]
    assert list(images["template_id"]) == ["face", "manifest"]
    assert list(images["seed"]) == [1, 2]


def test_manifest_without_seed_column_and_with_bom(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    Image.new("RGB", (2, 2)).save(root / "x.png")
    (root / "manifest.csv").write_text("\ufefffile,prompt\n x.png , a photo \n",
                                       encoding="utf-8")
    rows = read_manifest(root)
    assert [(r.line, r.file, r.prompt, r.seed) for r in rows] == [(2, "x.png", "a photo", None)]


def test_folder_importer_plan(folder):
    gen = make_generator(f"folder:{folder}")
    assert isinstance(gen, FolderImporter)
    nurse = _pid("a photo of a nurse")
    assert [p.prompt_id for p in gen.prompts()] == [nurse, _pid("a photo of a carpenter")]
    assert gen.sample_rows() == [(nurse, 0, 11, "a.png"),
                                 (_pid("a photo of a carpenter"), 0, 22, "sub/b.png"),
                                 (nurse, 1, None, "c.png"), (nurse, 2, -4, "d.jpg")]
    assert [s.name for s in gen.stages()] == ["imported"]


def test_prompt_id_reused_for_another_prompt(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (2, 2)).save(root / name)
    path = _write_manifest(root, [
        {"file": "a.png", "prompt": "one", "prompt_id": "p/1"},
        {"file": "b.png", "prompt": "two", "prompt_id": "p/1"},
    ])
    with pytest.raises(ManifestError) as info:
        make_generator(f"folder:{root}").prompts()
    assert str(path) in str(info.value) and "line 3" in str(info.value)


# --------------------------------------------------------------------------- manifest errors
@pytest.fixture
def base(tmp_path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    Image.new("RGB", (2, 2), (9, 9, 9)).save(root / "ok.png")
    Image.new("RGB", (2, 2), (8, 8, 8)).save(root / "ok2.png")
    (root / "notes.txt").write_text("not an image")
    Image.new("RGB", (2, 2)).save(tmp_path / "outside.png")
    (root / "escape.png").symlink_to(tmp_path / "outside.png")
    (root / "escape_dir").symlink_to(tmp_path, target_is_directory=True)
    return root


def _import_error(root: Path, tmp_path: Path, second_row: str,
                  header: str = "file,prompt,seed") -> str:
    path = root / "manifest.csv"
    path.write_text(f"{header}\nok.png,a photo of a nurse,1\n{second_row}\n", encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises(ManifestError) as info:
        generate_run(out, model=f"folder:{root}", probes=None, progress=False)
    assert not out.exists()  # refused before the run folder is touched
    msg = str(info.value)
    assert str(path) in msg
    return msg


@pytest.mark.parametrize(("row", "column", "words"), [
    ("ok2.png,,3", "prompt", "empty"),
    (",a photo,3", "file", "empty"),
    ("ok2.png,a photo,abc", "seed", "'abc' is not an integer"),
    ("ok2.png,a photo,1.5", "seed", "not an integer"),
    ("missing.png,a photo,3", "file", "not found"),
    ("../outside.png,a photo,3", "file", "leaves the folder"),
    ("escape.png,a photo,3", "file", "leaves the folder"),
    ("escape_dir/outside.png,a photo,3", "file", "leaves the folder"),
    ("ok.png,a photo,3", "file", "listed twice"),
    ("notes.txt,a photo,3", "file", "not an image"),
    ("sub,a photo,3", "file", "not an image"),
])
def test_bad_manifest_row(base, tmp_path, row, column, words):
    msg = _import_error(base, tmp_path, row)
    assert "line 3" in msg
    assert f"column '{column}'" in msg
    assert words in msg


def test_absolute_path_is_refused(base, tmp_path):
    msg = _import_error(base, tmp_path, f"{base / 'ok2.png'},a photo,3")
    assert "line 3" in msg and "column 'file'" in msg and "absolute" in msg


def test_missing_column(base, tmp_path):
    (base / "manifest.csv").write_text("file,caption\nok.png,a nurse\n", encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        generate_run(tmp_path / "run", model=f"folder:{base}", probes=None, progress=False)
    msg = str(info.value)
    assert str(base / "manifest.csv") in msg and "missing column" in msg and "prompt" in msg


def test_line_numbers_count_physical_lines(base, tmp_path):
    (base / "manifest.csv").write_text(
        'file,prompt,seed\nok.png,"a photo,\nof a nurse",1\nok2.png,a photo,x\n',
        encoding="utf-8")
    with pytest.raises(ManifestError, match="line 4, column 'seed'"):
        read_manifest(base)


def test_empty_and_missing_manifest(base, tmp_path):
    (base / "manifest.csv").write_text("file,prompt,seed\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(base)
    (base / "manifest.csv").unlink()
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(base)


def test_bad_folder_spec(tmp_path):
    with pytest.raises(ManifestError, match="needs a folder"):
        make_generator("folder:")
    with pytest.raises(ManifestError, match="not a folder"):
        make_generator(f"folder:{tmp_path / 'nope'}")
    assert issubclass(ManifestError, AuditError)


@pytest.mark.parametrize("alias", ["./ok.png", "sub/../ok.png"])
def test_same_file_under_two_spellings_is_refused(base, tmp_path, alias):
    (base / "sub").mkdir()
    msg = _import_error(base, tmp_path, f"{alias},a photo,3")
    assert "line 3" in msg and "listed twice" in msg


def _bad_images(root: Path) -> None:
    """Files that do not decode, between two good ones (manifest lines 2 to 7)."""
    (root / "fake.png").write_text("this is not an image\n")
    (root / "empty.jpg").write_bytes(b"")
    data = (root / "ok.png").read_bytes()
    (root / "trunc.png").write_bytes(data[: len(data) // 2])
    Image.new("L", (20, 20)).save(root / "bomb.png")  # 400 px > 2 x the test's limit
    (root / "manifest.csv").write_text(
        "file,prompt\nok.png,a\nfake.png,b\nempty.jpg,c\ntrunc.png,d\nbomb.png,a\n"
        "ok2.png,e\n", encoding="utf-8")


def test_unreadable_images_are_failed_samples(base, tmp_path, monkeypatch):
    """Each bad file fails its own sample, named with its manifest line; the rest import."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # bomb.png is a decompression bomb
    _bad_images(base)
    out = tmp_path / "run"
    summary = generate_run(out, model=f"folder:{base}", probes=None, progress=False,
                           batch_size=2)
    assert (summary.planned, summary.generated, summary.failed) == (6, 2, 4)
    with RunStore.open(out) as store:  # lock released
        samples = store.samples_table().set_index("source_file")
    assert samples.loc["ok.png", "status"] == samples.loc["ok2.png", "status"] == "done"
    for name, line, words in [("fake.png", 3, "cannot identify"), ("empty.jpg", 4, ""),
                              ("trunc.png", 5, ""), ("bomb.png", 6, "DecompressionBomb")]:
        assert samples.loc[name, "status"] == "failed"
        error = samples.loc[name, "error"]
        assert f"{base / name} (manifest.csv, line {line}): cannot read image" in error
        assert words in error


def test_failed_import_completes_after_fixing_or_removing_the_files(base, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    _bad_images(base)
    out = tmp_path / "run"
    argv = ["generate", "--model", f"folder:{base}", "--out", str(out), "--no-progress"]
    assert main(argv) == 3
    assert "2 samples generated, 4 failed" in capsys.readouterr().out
    assert main(argv) == 3  # the same command retries them; still broken
    with RunStore.open_readonly(out) as store:
        before = store.samples_table().set_index("source_file")
    assert set(before["attempts"][before["status"] == "failed"]) == {2}
    # Fix one file, remove two others with their rows, leave a row for a file in place.
    Image.new("RGB", (3, 3), (1, 2, 3)).save(base / "fake.png", format="PNG")
    for name in ("empty.jpg", "bomb.png"):
        (base / name).unlink()
    (base / "manifest.csv").write_text(
        "file,prompt\nok.png,a\nfake.png,b\ntrunc.png,d\nok2.png,e\n", encoding="utf-8")
    (base / "trunc.png").write_bytes((base / "ok.png").read_bytes())  # re-exported whole
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "2 samples generated, 0 failed, 2 already done, 4 planned" in captured.out
    with RunStore.open_readonly(out) as store:
        assert store.status_counts() == {"done": 4}
        after = store.samples_table().set_index("source_file")
        prompts = set(store.prompts_table()["prompt_id"])
        assert store.verify() == []
    assert sorted(after.index) == ["fake.png", "ok.png", "ok2.png", "trunc.png"]
    # Samples kept their ids; the prompt whose only row went ("c") left with it.
    for name in after.index:
        assert after.loc[name, "sample_id"] == before.loc[name, "sample_id"]
    assert _pid("c") not in prompts and _pid("a") in prompts  # "a" still has ok.png
    assert main(argv) == 0
    assert "nothing to generate" in capsys.readouterr().out


def test_removed_rows_are_dropped_with_a_warning(base, tmp_path, caplog):
    (base / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (base / "manifest.csv").write_text("file,prompt\nok.png,a\nbroken.png,b\n",
                                       encoding="utf-8")
    out = tmp_path / "run"
    assert generate_run(out, model=f"folder:{base}", probes=None, progress=False).failed == 1
    (base / "manifest.csv").write_text("file,prompt\nok.png,a\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="imagen_audit"):
        summary = generate_run(out, model=f"folder:{base}", probes=None, progress=False)
    assert summary.complete and (summary.planned, summary.generated) == (1, 0)
    assert any("1 planned samples dropped" in r.getMessage() and "'broken.png'" in
               r.getMessage() for r in caplog.records)


def test_removed_row_of_an_imported_image_is_refused(base, tmp_path):
    """Imported images are never dropped silently: the message says what to do."""
    (base / "manifest.csv").write_text("file,prompt\nok.png,a\nok2.png,b\n",
                                       encoding="utf-8")
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{base}", probes=None, progress=False)
    (base / "manifest.csv").write_text("file,prompt\nok.png,a\n", encoding="utf-8")
    with pytest.raises(RunStoreError) as info:
        generate_run(out, model=f"folder:{base}", probes=None, progress=False)
    msg = str(info.value)
    assert "'ok2.png'" in msg and "row is gone" in msg and "new --out" in msg
    with RunStore.open_readonly(out) as store:
        assert store.status_counts() == {"done": 2}


def test_another_folder_is_refused_before_the_plan_changes(base, tmp_path):
    (base / "broken.png").write_bytes(b"")
    (base / "manifest.csv").write_text("file,prompt\nok.png,a\nbroken.png,b\n",
                                       encoding="utf-8")
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{base}", probes=None, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (2, 2)).save(other / "ok.png")
    (other / "manifest.csv").write_text("file,prompt\nok.png,a\n", encoding="utf-8")
    with pytest.raises(RunStoreError, match="other generator settings"):
        generate_run(out, model=f"folder:{other}", probes=None, progress=False)
    with RunStore.open_readonly(out) as store:
        assert store.status_counts() == {"done": 1, "failed": 1}


def test_inserted_row_keeps_the_samples_already_planned(folder, tmp_path):
    """A sample belongs to its file, not to its place among the prompt's rows."""
    out = tmp_path / "run"
    generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    with RunStore.open_readonly(out) as store:
        before = store.samples_table()[["source_file", "sample_id"]]
    Image.new("RGB", (2, 2), (4, 5, 6)).save(folder / "e.png")
    text = (folder / "manifest.csv").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    lines.insert(1, "e.png,a photo of a nurse,7\n")  # before a.png, the same prompt
    (folder / "manifest.csv").write_text("".join(lines), encoding="utf-8")
    summary = generate_run(out, model=f"folder:{folder}", probes=None, progress=False)
    assert (summary.planned, summary.added_to_plan, summary.generated) == (5, 1, 1)
    with RunStore.open_readonly(out) as store:
        after = store.samples_table().set_index("source_file")
    for src, sid in before.itertuples(index=False):
        assert after.loc[src, "sample_id"] == sid
    assert after.loc["e.png", "sample_index"] == 3


# --------------------------------------------------------------------------- through the CLI
def test_cli_import_good_and_bad_manifest(folder, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    argv = ["generate", "--model", f"folder:{folder}", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "4 samples generated, 0 failed" in capsys.readouterr().out
    assert main(argv) == 0
    assert "nothing to generate" in capsys.readouterr().out

    (folder / "manifest.csv").write_text("file,prompt,seed\na.png,x,notanumber\n",
                                         encoding="utf-8")
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="imagen_audit"):
        assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(folder / "manifest.csv") in m and "line 2" in m and "'seed'" in m
               for m in errors), errors


# --------------------------------------------------------------------------- bit depth
def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    """A 16-bit grey PNG used to come in as a white square (convert("RGB") clips at 255)."""
    root = tmp_path / "in"
    root.mkdir()
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(ramp).save(root / "grey16.png")
    with Image.open(root / "grey16.png") as im:
        assert im.mode in ("I;16", "I")  # what Pillow makes of it, old or new
    _write_manifest(root, [{"file": "grey16.png", "prompt": "a ramp"}])
    out = tmp_path / "run"
    summary = generate_run(out, model=f"folder:{root}", probes=None, progress=False)
    assert summary.generated == 1
    with RunStore.open_readonly(out) as store:
        stored = read_png(store.image_path(store.images_table()["path"].iloc[0]))
    expected = np.rint(ramp / 257.0).astype(np.uint8)
    assert stored.shape == (48, 64, 3)
    for channel in range(3):
        np.testing.assert_array_equal(stored[..., channel], expected)
    assert stored.min() == 0 and stored.max() == 255
    assert abs(float(stored.mean()) - 127.5) < 1.0  # follows the ramp, not white


def test_high_bit_depth_modes():
    from imagen_audit.store.images import pil_to_rgb8

    ints = np.array([[0, 257, 65535]], dtype=np.int32)
    np.testing.assert_array_equal(pil_to_rgb8(Image.fromarray(ints, "I"))[..., 0], [[0, 1, 255]])
    floats = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(pil_to_rgb8(Image.fromarray(floats, "F"))[..., 1],
                                  [[0, 128, 255]])
    with pytest.raises(ValueError, match=r"mode I\b.*70000"):
        pil_to_rgb8(Image.fromarray(np.array([[0, 70000]], dtype=np.int32), "I"))
    with pytest.raises(ValueError, match=r"mode F.*2\.5"):
        pil_to_rgb8(Image.fromarray(np.array([[0.0, 2.5]], dtype=np.float32), "F"))
    # 8-bit modes are untouched: the same bytes as convert("RGB").
    rgb = Image.fromarray(np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "RGB")
    for im in (rgb, rgb.convert("L"), rgb.convert("RGBA"), rgb.convert("P")):
        np.testing.assert_array_equal(pil_to_rgb8(im), np.asarray(im.convert("RGB")))
