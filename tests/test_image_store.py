"""Images outside the run folder: any fsspec URL (here fsspec's in-memory object store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit.errors import RunStoreError
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore
from imagen_audit.store.export import export_table
from imagen_audit.store.storage import ImageStorage


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    rows = ["file,prompt,seed"]
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), np.uint8)).save(src / f"{i}.png")
        rows.append(f"{i}.png,a photo of person {i},{i}")
    (src / "manifest.csv").write_text("\n".join(rows) + "\n")
    return src


def test_run_with_an_object_store_for_images(source: Path, tmp_path: Path) -> None:
    import fsspec

    url = f"memory://imagen-audit-test/{tmp_path.name}"
    run = tmp_path / "run"
    summary = generate_run(run, model=f"folder:{source}", probes=None, progress=False,
                           image_store=url)
    assert summary.generated == 3
    assert not (run / "images").exists()  # nothing written into the run folder
    fs = fsspec.filesystem("memory")
    assert len(fs.find(f"/imagen-audit-test/{tmp_path.name}")) == 3
    with RunStore.open_readonly(run) as store:
        assert store.verify() == []
        images = store.images_table()
        first = images.iloc[0]
        src = np.asarray(Image.open(source / "0.png").convert("RGB"))
        assert np.array_equal(store.read_image(first["path"]), src)
        local = store.image_path(first["path"])  # a cached local copy, for annotators
        assert local.is_file() and local.is_relative_to(run)
        out = export_table(store, tmp_path / "images.csv")
        assert out["file"].str.startswith(url).all()
        assert len(pd.read_csv(tmp_path / "images.csv")) == 3
    # The report embeds thumbnails read from the image store, not from the run folder.
    from imagen_audit.report.html import write_report

    html = write_report(run).read_text()
    assert html.count('src="data:image/png;base64,') >= 3
    # A run's image store is fixed when it is created.
    with pytest.raises(RunStoreError, match="images of this run live in"):
        RunStore.open(run, image_store=str(tmp_path / "elsewhere"))
    with RunStore.open(run) as store:  # no --image-store: the recorded one is used
        assert store.storage.url == url


def test_paths_cannot_leave_the_image_root(tmp_path: Path) -> None:
    storage = ImageStorage(tmp_path, "memory://bucket/x")
    for bad in ("../x.png", "/abs.png", "a/../../x.png"):
        with pytest.raises(ValueError):
            storage.write(bad, b"data")


def test_a_bad_cached_copy_of_a_remote_image_is_fetched_again(source: Path,
                                                              tmp_path: Path) -> None:
    """A truncated copy under .image-cache is noticed (no IEND chunk) and fetched again; a
    copy a reader found unreadable for another reason is dropped on request. Either used to
    be reused until someone cleared the cache by hand."""
    url = f"memory://imagen-audit-test/{tmp_path.name}-cache"
    run = tmp_path / "run"
    generate_run(run, model=f"folder:{source}", probes=None, progress=False, image_store=url)
    with RunStore.open_readonly(run) as store:
        rel = store.images_table().iloc[0]["path"]
        whole = store.image_path(rel).read_bytes()
        store.image_path(rel).write_bytes(whole[: len(whole) // 2])  # truncated
        assert store.image_path(rel).read_bytes() == whole
        store.image_path(rel).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40
                                          + whole[-12:])  # complete-looking, garbage inside
        assert store.image_path(rel).read_bytes() != whole  # looks whole: kept
        store.drop_cached_image(rel)
        assert store.image_path(rel).read_bytes() == whole
    local = tmp_path / "local"
    generate_run(local, model=f"folder:{source}", probes=None, progress=False)
    with RunStore.open_readonly(local) as store:
        rel = store.images_table().iloc[0]["path"]
        store.drop_cached_image(rel)  # a local store's image is the image: never removed
        assert store.image_path(rel).is_file()
