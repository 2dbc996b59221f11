"""The run store: planning, committing, locking, verifying and exporting a run folder."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from imagen_audit import files as files_module
from imagen_audit.errors import AuditError, RunLockedError, RunStoreError
from imagen_audit.probes import Occupation, Prompt, sample_seed
from imagen_audit.store import RunStore, SampleResult, StageSpec
from imagen_audit.store import images as imgio
from imagen_audit.store.export import export_table
from imagen_audit.store.run_store import DB_NAME, make_sample_id
from imagen_audit.store.schema import SCHEMA_VERSION, current_version

STAGES = [StageSpec(1, "base", 8, 8), StageSpec(2, "sr", 16, 16)]


def _prompts(n: int = 4) -> list[Prompt]:
    return [Prompt(prompt_id=f"occupations/face/job{i}", prompt=f"a photo of a job{i}",
                   family="occupations", template_id="face", occupation_id=f"job{i}")
            for i in range(n)]


def _occupation(i: int) -> Occupation:
    return Occupation(id=f"job{i}", term=f"job{i}", category="c", bls_occupation="b",
                      employed_thousands=10 + i,
                      baseline={"women": 0.5, "white": 0.6, "black": None, "asian": 0.1,
                                "hispanic_or_latino": 0.2})


def _pixels(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _result(sample_id: str, rng: np.random.Generator) -> SampleResult:
    return SampleResult(sample_id, {1: _pixels(rng, 8), 2: _pixels(rng, 16)},
                        {"model": "test", "steps": 3})


@pytest.fixture
def store(tmp_path):
    with RunStore.open(tmp_path / "run") as s:
        yield s


@pytest.fixture
def planned(store):
    """A store with 4 prompts x 2 samples planned and two stages registered."""
    store.add_prompts(_prompts(), [_occupation(i) for i in range(4)])
    store.plan_probe_samples(_prompts(), 2, base_seed=11)
    store.register_stages(STAGES)
    return store


def _pending_ids(store: RunStore, page_size: int = 64) -> list[str]:
    return [s.sample_id for page in store.iter_pending(page_size) for s in page]


# --------------------------------------------------------------------------- planning
def test_new_folder_is_created(tmp_path):
    root = tmp_path / "a" / "b" / "run"
    with RunStore.open(root) as s:
        assert (root / DB_NAME).is_file()
        assert s.get_meta("nothing") is None
        assert s.status_counts() == {}


def test_get_meta_created_at(tmp_path):
    """Regression: created_at was stored as bare text, so get_meta() raised JSONDecodeError."""
    with RunStore.open(tmp_path / "run") as s:
        created = s.get_meta("created_at")
    assert isinstance(created, str)
    assert datetime.datetime.fromisoformat(created).tzinfo is not None


def test_open_on_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunStoreError, match="not a folder"):
        RunStore.open(f)


def test_open_on_a_corrupt_database(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / DB_NAME).write_bytes(b"this is not a sqlite database, just some bytes" * 100)
    with pytest.raises(RunStoreError, match="not a usable run database"):
        RunStore.open(root)
    with pytest.raises(RunStoreError, match="not a usable run database"):
        RunStore.open_readonly(root)
    # The failed open released the lock.
    with pytest.raises(RunStoreError) as info:
        RunStore.open(root)
    assert not isinstance(info.value, RunLockedError)


def test_planning_is_idempotent(store):
    prompts = _prompts()
    store.add_prompts(prompts, [_occupation(0)])
    first = store.plan_probe_samples(prompts, 3, base_seed=5)
    assert (first.total, first.added, first.done) == (12, 12, 0)
    table = store.samples_table()
    store.add_prompts(prompts, [_occupation(0)])
    second = store.plan_probe_samples(prompts, 3, base_seed=5)
    assert (second.total, second.added, second.done) == (12, 0, 0)
    pd.testing.assert_frame_equal(store.samples_table(), table)
    assert len(store.prompts_table()) == 4
    assert store.status_counts() == {"planned": 12}


def test_planned_seeds_and_ids(store):
    prompts = _prompts(2)
    store.add_prompts(prompts)
    store.plan_probe_samples(prompts, 2, base_seed=3)
    table = store.samples_table()
    assert list(table["prompt_id"]) == [prompts[0].prompt_id] * 2 + [prompts[1].prompt_id] * 2
    assert list(table["sample_index"]) == [0, 1, 0, 1]
    assert list(table["seed"]) == [sample_seed(3, p.prompt_id, k)
                                   for p in prompts for k in range(2)]
    assert list(table["sample_id"]) == [make_sample_id(p.prompt_id, k)
                                        for p in prompts for k in range(2)]
    assert list(table["status"]) == ["planned"] * 4
    assert list(table["attempts"]) == [0] * 4
    assert list(table["prompt"]) == [prompts[0].prompt] * 2 + [prompts[1].prompt] * 2


def test_extending_a_plan_keeps_earlier_seeds_and_order(store):
    prompts = _prompts(6)
    store.add_prompts(prompts[:3])
    store.plan_probe_samples(prompts[:3], 1, base_seed=9)
    before = store.samples_table()
    store.add_prompts(prompts)
    summary = store.plan_probe_samples(prompts, 1, base_seed=9)
    assert (summary.total, summary.added) == (6, 3)
    after = store.samples_table()
    pd.testing.assert_frame_equal(after.head(3), before)
    assert list(after["prompt_id"]) == [p.prompt_id for p in prompts]


def test_changed_prompt_text_is_refused(store):
    prompts = _prompts(2)
    store.add_prompts(prompts)
    edited = [prompts[0], Prompt(prompts[1].prompt_id, "a photo of someone else",
                                 "occupations", "face")]
    with pytest.raises(RunStoreError) as info:
        store.add_prompts(edited)
    msg = str(info.value)
    assert prompts[1].prompt_id in msg and "a photo of someone else" in msg
    assert store.prompts_table()["prompt"].tolist() == [p.prompt for p in prompts]


def test_changed_seed_is_refused(store):
    prompts = _prompts(2)
    store.add_prompts(prompts)
    store.plan_probe_samples(prompts, 1, base_seed=0)
    with pytest.raises(RunStoreError, match="seed") as info:
        store.plan_probe_samples(prompts, 1, base_seed=1)
    assert prompts[0].prompt_id in str(info.value)
    # Nothing of the refused plan was written (one transaction).
    assert list(store.samples_table()["seed"]) == [sample_seed(0, p.prompt_id, 0)
                                                   for p in prompts]


def test_changed_seed_in_plan_samples_is_refused(store):
    store.add_prompts(_prompts(1))
    pid = _prompts(1)[0].prompt_id
    store.plan_samples([(pid, 0, 42, None)])
    assert store.plan_samples([(pid, 0, 42, None)]).added == 0
    with pytest.raises(RunStoreError, match="42"):
        store.plan_samples([(pid, 0, 43, None)])
    with pytest.raises(RunStoreError):
        store.plan_samples([(pid, 0, 42, "other.png")])


def test_samples_per_prompt_must_be_positive(store):
    store.add_prompts(_prompts(1))
    with pytest.raises(RunStoreError, match="at least 1"):
        store.plan_probe_samples(_prompts(1), 0, base_seed=0)


def test_baselines_are_stored(store):
    store.add_prompts(_prompts(2), [_occupation(0), _occupation(1)])
    table = store.baselines_table()
    assert list(table["occupation_id"]) == ["job0", "job1"]
    assert list(table["employed_thousands"]) == [10, 11]
    assert table["baseline_women"].tolist() == [0.5, 0.5]
    assert table["baseline_black"].isna().all()


def test_prompt_controls_round_trip(store):
    p = Prompt("identities/face/woman", "a photo of a woman", "identities", "face",
               identity_id="woman", identity_axis="gender",
               controls={"perceived_gender": "female"})
    store.add_prompts([p])
    row = store.prompts_table().iloc[0]
    assert json.loads(row["controls"]) == {"perceived_gender": "female"}
    assert row["identity_axis"] == "gender"


# --------------------------------------------------------------------------- config
def test_bind_config(store):
    cfg = {"model": "m", "steps": [50, 25], "guidance": 7.0}
    store.bind_config("generator", cfg)
    store.bind_config("generator", dict(reversed(list(cfg.items()))))  # same, other order
    assert store.get_meta("generator") == cfg
    with pytest.raises(RunStoreError) as info:
        store.bind_config("generator", {**cfg, "steps": [50, 30]})
    msg = str(info.value)
    assert "generator" in msg and "steps" in msg
    assert "[50, 25]" in msg and "[50, 30]" in msg
    assert "guidance" not in msg and "model:" not in msg
    assert store.get_meta("generator") == cfg


def test_bind_config_names_added_and_removed_keys(store):
    store.bind_config("generator", {"a": 1, "b": 2})
    with pytest.raises(RunStoreError) as info:
        store.bind_config("generator", {"a": 1, "c": 3})
    msg = str(info.value)
    assert "b: run has 2, asked None" in msg and "c: run has None, asked 3" in msg
    assert "a:" not in msg


def test_register_stages_conflict(store):
    store.register_stages(STAGES)
    store.register_stages(STAGES)
    assert store.stages() == STAGES
    with pytest.raises(RunStoreError, match=r"'base'.*'other'"):
        store.register_stages([StageSpec(1, "other")])


# --------------------------------------------------------------------------- committing
def test_commit_sample_writes_pngs_and_rows(planned):
    rng = np.random.default_rng(0)
    sample = next(planned.iter_pending())[0]
    result = _result(sample.sample_id, rng)
    records = planned.commit_sample(result)
    assert [r.stage for r in records] == [1, 2]
    images = planned.images_table()
    assert len(images) == 2
    assert list(images["stage_name"]) == ["base", "sr"]
    assert list(images["width"]) == [8, 16] and list(images["height"]) == [8, 16]
    assert set(images["sample_id"]) == {sample.sample_id}
    assert set(images["prompt_id"]) == {sample.prompt_id}
    assert set(images["seed"]) == {sample.seed}
    for (_, row), stage in zip(images.iterrows(), (1, 2), strict=True):
        assert row["path"] == f"images/stage{stage}/{sample.sample_id[:2]}/{sample.sample_id}.png"
        path = planned.image_path(row["path"])
        assert path.is_file() and path.is_relative_to(planned.root.resolve())
        back = imgio.read_png(path)
        np.testing.assert_array_equal(back, result.images[stage])
        assert row["pixel_sha256"] == imgio.pixel_digest(result.images[stage])
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
    samples = planned.samples_table()
    row = samples.set_index("sample_id").loc[sample.sample_id]
    assert row["status"] == "done" and row["attempts"] == 1 and row["error"] is None
    prov = planned.provenance_records()[int(row["provenance_id"])]
    assert prov["generator"] == {"model": "test", "steps": 3}
    assert "packages" in prov["environment"]
    assert planned.status_counts() == {"done": 1, "planned": 7}
    assert planned.verify() == []


def test_identical_provenance_is_stored_once(planned):
    rng = np.random.default_rng(1)
    for s in next(planned.iter_pending(3)):
        planned.commit_sample(_result(s.sample_id, rng))
    assert len(planned.provenance_records()) == 1
    assert planned.samples_table()["provenance_id"].dropna().nunique() == 1


def test_float_images_are_converted(planned):
    sample = next(planned.iter_pending())[0]
    img = np.zeros((8, 8, 3), dtype=np.float32)
    img[0, 0] = [1.0, 0.5, 2.0]
    img[0, 1] = [-1.0, 0.25, 0.999]
    planned.commit_sample(SampleResult(sample.sample_id, {1: img}))
    path = planned.image_path(planned.images_table()["path"].iloc[0])
    back = imgio.read_png(path)
    assert back[0, 0].tolist() == [255, 128, 255]
    assert back[0, 1].tolist() == [0, 64, 255]


def test_committing_twice_is_refused(planned):
    rng = np.random.default_rng(2)
    sample = next(planned.iter_pending())[0]
    planned.commit_sample(_result(sample.sample_id, rng))
    with pytest.raises(RunStoreError, match="already done"):
        planned.commit_sample(_result(sample.sample_id, rng))
    assert planned.status_counts() == {"done": 1, "planned": 7}
    assert len(planned.images_table()) == 2


def test_refused_second_commit_keeps_the_first_images(planned):
    """Regression: the refused commit overwrote the done sample's PNGs before refusing."""
    rng = np.random.default_rng(3)
    sample = next(planned.iter_pending())[0]
    first = _result(sample.sample_id, rng)
    planned.commit_sample(first)
    with pytest.raises(RunStoreError):
        planned.commit_sample(_result(sample.sample_id, rng))
    path = planned.image_path(planned.images_table()["path"].iloc[0])
    np.testing.assert_array_equal(imgio.read_png(path), first.images[1])
    assert planned.verify() == []


def test_unregistered_stage_is_refused(planned):
    sample = next(planned.iter_pending())[0]
    with pytest.raises(RunStoreError, match="unregistered stage 3"):
        planned.commit_sample(SampleResult(sample.sample_id, {3: np.zeros((4, 4, 3), np.uint8)}))
    assert planned.status_counts() == {"planned": 8}


def test_unknown_sample_without_images_is_refused(planned):
    with pytest.raises(RunStoreError, match="unknown or already done"):
        planned.commit_sample(SampleResult("0" * 20, {}))
    assert planned.status_counts() == {"planned": 8}


def test_unknown_sample_is_refused(planned):
    """Regression: an unknown id raised sqlite3.IntegrityError and left orphan PNGs."""
    with pytest.raises(RunStoreError, match="unknown or already done"):
        planned.commit_sample(_result("0" * 20, np.random.default_rng(0)))
    assert planned.images_table().empty
    assert not list((planned.root / "images").rglob("*.png"))


def test_bad_image_shape_is_refused(planned):
    sample = next(planned.iter_pending())[0]
    with pytest.raises(ValueError, match="HxWx3"):
        planned.commit_sample(SampleResult(sample.sample_id, {1: np.zeros((4, 4), np.uint8)}))


# --------------------------------------------------------------------------- pending / failed
def test_iter_pending_pages_in_plan_order(planned):
    plan = planned.samples_table()["sample_id"].tolist()
    pages = list(planned.iter_pending(3))
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [s.sample_id for p in pages for s in p] == plan
    orders = [s.plan_order for p in pages for s in p]
    assert orders == sorted(orders) and len(set(orders)) == 8
    first = pages[0][0]
    assert first.prompt == "a photo of a job0" and first.sample_index == 0
    assert first.seed == sample_seed(11, "occupations/face/job0", 0)
    assert first.source_file is None


def test_iter_pending_skips_done_samples(planned):
    rng = np.random.default_rng(4)
    plan = planned.samples_table()["sample_id"].tolist()
    for sid in (plan[0], plan[3], plan[7]):
        planned.commit_sample(_result(sid, rng))
    expected = [sid for i, sid in enumerate(plan) if i not in (0, 3, 7)]
    assert _pending_ids(planned, 2) == expected
    assert _pending_ids(planned, 100) == expected


def test_iter_pending_while_committing(planned):
    """The runner commits while paging; every sample is seen exactly once."""
    rng = np.random.default_rng(5)
    seen = []
    for page in planned.iter_pending(3):
        for s in page:
            planned.commit_sample(_result(s.sample_id, rng))
            seen.append(s.sample_id)
    assert seen == planned.samples_table()["sample_id"].tolist()
    assert _pending_ids(planned) == []
    assert planned.status_counts() == {"done": 8}
    assert len(planned.images_table()) == 16
    assert planned.verify() == []


def test_mark_failed(planned):
    rng = np.random.default_rng(6)
    plan = planned.samples_table()["sample_id"].tolist()
    planned.commit_sample(_result(plan[0], rng))
    planned.mark_failed([plan[0], plan[1], plan[2]], "RuntimeError: out of memory")
    table = planned.samples_table().set_index("sample_id")
    assert table.loc[plan[0], "status"] == "done"  # a done sample stays done
    for sid in plan[1:3]:
        assert table.loc[sid, "status"] == "failed"
        assert table.loc[sid, "error"] == "RuntimeError: out of memory"
        assert table.loc[sid, "attempts"] == 1
    assert planned.status_counts() == {"done": 1, "failed": 2, "planned": 5}
    assert _pending_ids(planned) == plan[1:]
    # Retrying a failed sample succeeds and clears its error.
    planned.commit_sample(_result(plan[1], rng))
    row = planned.samples_table().set_index("sample_id").loc[plan[1]]
    assert row["status"] == "done" and pd.isna(row["error"]) and row["attempts"] == 2


def test_mark_failed_truncates_long_errors(planned):
    sid = planned.samples_table()["sample_id"].iloc[0]
    planned.mark_failed([sid], "x" * 5000)
    assert len(planned.samples_table()["error"].iloc[0]) == 2000


# --------------------------------------------------------------------------- verify
def _committed_path(store: RunStore) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    sample = next(store.iter_pending())[0]
    result = _result(sample.sample_id, rng)
    store.commit_sample(result)
    rel = store.images_table()["path"].iloc[0]
    return store.image_path(rel), result.images[1]


def test_verify_reports_a_truncated_png(planned):
    path, _ = _committed_path(planned)
    assert planned.verify() == []
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problems = planned.verify()
    assert len(problems) == 1
    rel = planned.images_table()["path"].iloc[0]
    assert problems[0].startswith(rel) and "unreadable" in problems[0]


@pytest.mark.parametrize("damage", ["empty", "deleted", "other_pixels", "garbage"])
def test_verify_reports_other_damage(planned, damage):
    path, pixels = _committed_path(planned)
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "deleted":
        path.unlink()
    elif damage == "other_pixels":
        changed = pixels.copy()
        changed[0, 0, 0] ^= 1
        imgio.write_png_atomic(path, changed)
    else:
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    problems = planned.verify()
    assert len(problems) == 1
    rel = planned.images_table()["path"].iloc[0]
    assert problems[0].startswith(rel)
    if damage == "other_pixels":
        assert "pixels differ" in problems[0]
    else:
        assert "unreadable" in problems[0]


def test_verify_reports_done_samples_without_images(planned):
    sid = planned.samples_table()["sample_id"].iloc[0]
    planned.commit_sample(SampleResult(sid, {}))
    assert planned.verify() == ["1 samples are done but have no images"]


# --------------------------------------------------------------------------- locking
LOCK_PROBE = textwrap.dedent("""
    import sys
    from imagen_audit.store import RunStore
    try:
        store = RunStore.open(sys.argv[1])
    except Exception as exc:
        print(type(exc).__name__)
        print(exc)
    else:
        store.close()
        print("opened")
""")


def _open_in_subprocess(root: Path) -> list[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(root)], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_second_open_in_process_is_refused(tmp_path):
    root = tmp_path / "run"
    first = RunStore.open(root)
    try:
        with pytest.raises(RunLockedError) as info:
            RunStore.open(root)
        assert isinstance(info.value, RunStoreError)
        assert str(root) in str(info.value)
        assert f"pid {os.getpid()}" in str(info.value)
        first.bind_config("generator", {"a": 1})  # the first store still works
    finally:
        first.close()
    with RunStore.open(root) as again:
        assert again.get_meta("generator") == {"a": 1}


def test_second_open_from_another_process_is_refused(tmp_path):
    root = tmp_path / "run"
    first = RunStore.open(root)
    try:
        out = _open_in_subprocess(root)
        assert out[0] == "RunLockedError"
        assert f"pid {os.getpid()}" in out[1]
        # A refused in-process attempt does not release the first store's lock.
        with pytest.raises(RunLockedError):
            RunStore.open(root)
        assert _open_in_subprocess(root)[0] == "RunLockedError"
    finally:
        first.close()
    assert _open_in_subprocess(root) == ["opened"]
    with RunStore.open(root):
        assert _open_in_subprocess(root)[0] == "RunLockedError"


def test_lock_held_by_another_process_blocks_this_one(tmp_path):
    root = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from imagen_audit.store import RunStore; "
         "s = RunStore.open(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunStore.open(root)
    finally:
        holder.stdin.close()  # the holder exits; the kernel releases its lock
        holder.wait(timeout=30)
    with RunStore.open(root) as s:
        assert s.status_counts() == {}


# --------------------------------------------------------------------------- read-only
def test_readonly_while_a_writer_holds_the_lock(planned):
    rng = np.random.default_rng(8)
    sample = next(planned.iter_pending())[0]
    planned.commit_sample(_result(sample.sample_id, rng))
    with RunStore.open_readonly(planned.root) as ro:
        assert ro.status_counts() == {"done": 1, "planned": 7}
        assert len(ro.images_table()) == 2
        assert ro.verify() == []
        with pytest.raises(RunStoreError, match="read-only"):
            ro.bind_config("generator", {"a": 1})
        with pytest.raises(RunStoreError, match="read-only"):
            ro.add_prompts(_prompts(5))
        with pytest.raises(RunStoreError, match="read-only"):
            ro.plan_samples([("occupations/face/job0", 5, 1, None)])
        with pytest.raises(RunStoreError, match="read-only"):
            ro.mark_failed([sample.sample_id], "x")
        with pytest.raises(RunStoreError, match="read-only"):
            ro.register_stages([StageSpec(3, "x")])
        # The writer keeps working while the reader is open.
        second = next(planned.iter_pending())[0]
        planned.commit_sample(_result(second.sample_id, rng))
        assert ro.status_counts() == {"done": 2, "planned": 6}
    assert planned.get_meta("generator") is None


def test_readonly_after_the_writer_closed(tmp_path):
    root = tmp_path / "run"
    with RunStore.open(root) as s:
        s.add_prompts(_prompts(1))
        s.plan_probe_samples(_prompts(1), 2, 0)
    with RunStore.open_readonly(root) as ro:
        assert ro.status_counts() == {"planned": 2}
    # A reader does not hold the lock.
    with RunStore.open_readonly(root), RunStore.open(root) as w:
        assert w.status_counts() == {"planned": 2}


def test_readonly_commit_writes_no_files(planned):
    """Regression: a read-only store wrote (overwrote) PNG files before refusing."""
    rng = np.random.default_rng(9)
    sample = next(planned.iter_pending())[0]
    first = _result(sample.sample_id, rng)
    planned.commit_sample(first)
    with RunStore.open_readonly(planned.root) as ro, pytest.raises(RunStoreError):
        ro.commit_sample(_result(sample.sample_id, rng))
    assert planned.verify() == []


def test_readonly_on_a_missing_run(tmp_path):
    with pytest.raises(RunStoreError, match="not a run folder"):
        RunStore.open_readonly(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="not a run folder"):
        RunStore.open_readonly(tmp_path / "empty")


# --------------------------------------------------------------------------- schema version
def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                        (name,)).fetchone() is not None


def _mark_as_newer(root: Path) -> None:
    """Make the database look written by a future imagen-audit, in either bookkeeping style:
    ``meta.schema_version`` (0.1.0) and/or the named ``migrations`` table."""
    conn = sqlite3.connect(root / DB_NAME)
    with conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        if _has_table(conn, "migrations"):
            conn.execute("INSERT INTO migrations(name, applied_order) "
                         "VALUES ('9999_from_the_future', 9999)")
    conn.close()


def _schema_state(root: Path) -> tuple[int, list]:
    conn = sqlite3.connect(root / DB_NAME)
    try:
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'"))
        return current_version(conn), tables
    finally:
        conn.close()


def test_new_database_is_at_the_current_schema(tmp_path):
    root = tmp_path / "run"
    RunStore.open(root).close()
    version, tables = _schema_state(root)
    assert version == SCHEMA_VERSION >= 1
    assert {"meta", "prompts", "baselines", "provenance", "samples", "stages",
            "images"} <= set(tables)


def test_newer_schema_version_is_refused(tmp_path):
    root = tmp_path / "run"
    RunStore.open(root).close()
    _mark_as_newer(root)
    with pytest.raises(RunStoreError, match="upgrade") as info:
        RunStore.open(root)
    assert not isinstance(info.value, RunLockedError)
    # The refused open released the lock: a second attempt fails the same way.
    with pytest.raises(RunStoreError, match="upgrade"):
        RunStore.open(root)


def test_readonly_newer_schema_says_upgrade(tmp_path):
    """Regression: readers told the user to 'open it for writing to migrate' a newer run."""
    root = tmp_path / "run"
    RunStore.open(root).close()
    _mark_as_newer(root)
    with pytest.raises(RunStoreError, match="upgrade"):
        RunStore.open_readonly(root)


def test_reopening_keeps_data_and_does_not_remigrate(tmp_path):
    root = tmp_path / "run"
    with RunStore.open(root) as s:
        s.add_prompts(_prompts(2))
        s.plan_probe_samples(_prompts(2), 1, 0)
        s.bind_config("generator", {"a": 1})
    state = _schema_state(root)
    conn = sqlite3.connect(root / DB_NAME)
    created = conn.execute("SELECT value FROM meta WHERE key='created_at'").fetchone()[0]
    conn.close()
    with RunStore.open(root) as s:
        assert s.status_counts() == {"planned": 2}
        assert s.get_meta("generator") == {"a": 1}
    assert _schema_state(root) == state
    conn = sqlite3.connect(root / DB_NAME)
    assert conn.execute("SELECT value FROM meta WHERE key='created_at'").fetchone()[0] == created
    conn.close()


# --------------------------------------------------------------------------- files
def test_stale_temporaries_are_removed_on_open(tmp_path):
    root = tmp_path / "run"
    RunStore.open(root).close()
    stale = root / "images" / "stage1" / "ab" / "abc.png.tmp-12345"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a png")
    keep = stale.parent / "abc.png"
    keep.write_bytes(b"kept")
    with RunStore.open(root):
        assert not stale.exists()
        assert keep.read_bytes() == b"kept"


def test_remove_stale_temporaries_counts(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.png.tmp-1", "y.png.tmp-2", "z.png"):
        (tmp_path / name).write_bytes(b"")
    assert imgio.remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["z.png"]
    assert imgio.remove_stale_temporaries(tmp_path / "missing") == 0


def test_write_png_atomic_round_trip(tmp_path):
    pixels = np.random.default_rng(10).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "img.png"
    imgio.write_png_atomic(path, pixels)
    np.testing.assert_array_equal(imgio.read_png(path), pixels)
    assert [p.name for p in path.parent.iterdir()] == ["img.png"]


def test_write_png_atomic_leaves_no_final_file_when_rename_fails(tmp_path, monkeypatch):
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    path = tmp_path / "img.png"

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module.os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        imgio.write_png_atomic(path, pixels)
    assert not path.exists()
    # An existing image is left untouched by a failed rewrite.
    monkeypatch.undo()
    imgio.write_png_atomic(path, pixels)
    monkeypatch.setattr(files_module.os, "replace", boom)
    with pytest.raises(OSError):
        imgio.write_png_atomic(path, np.full((4, 4, 3), 255, dtype=np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(imgio.read_png(path), pixels)
    # Only temporaries are left, and those are cleaned up.
    assert all(imgio.TMP_MARK in p.name for p in tmp_path.iterdir() if p != path)
    imgio.remove_stale_temporaries(tmp_path)
    assert list(tmp_path.iterdir()) == [path]


def test_commit_with_failing_rename_leaves_sample_pending(planned, monkeypatch):
    sample = next(planned.iter_pending())[0]

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(files_module.os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        planned.commit_sample(_result(sample.sample_id, np.random.default_rng(0)))
    monkeypatch.undo()
    assert planned.status_counts() == {"planned": 8}
    assert planned.images_table().empty
    assert not list((planned.root / "images").rglob("*.png"))


def test_safe_join(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert imgio.safe_join(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    assert imgio.safe_join(root, "sub/../a.png") == (root / "a.png").resolve()
    for bad in ("../x", "sub/../../x", "/etc/passwd", "\\windows"):
        with pytest.raises(ValueError):
            imgio.safe_join(root, bad)


def test_safe_join_refuses_symlink_leaving_the_folder(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file.png").symlink_to(outside / "secret.png")
    with pytest.raises(ValueError, match="leaves the folder"):
        imgio.safe_join(root, "link/secret.png")
    with pytest.raises(ValueError, match="leaves the folder"):
        imgio.safe_join(root, "file.png")
    (root / "inner.png").symlink_to(root / "real.png")
    assert imgio.safe_join(root, "inner.png") == (root / "real.png").resolve()


def test_image_path_refuses_escapes(store):
    with pytest.raises(ValueError):
        store.image_path("../run.sqlite")
    with pytest.raises(ValueError):
        store.image_path("/etc/passwd")


# --------------------------------------------------------------------------- export
@pytest.fixture
def done_store(planned):
    rng = np.random.default_rng(11)
    for s in next(planned.iter_pending(3)):
        planned.commit_sample(_result(s.sample_id, rng))
    return planned


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_images(done_store, tmp_path, suffix):
    out = tmp_path / "exports" / f"images{suffix}"
    frame = export_table(done_store, out)
    assert out.is_file()
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(back) == len(frame) == 6
    expected = done_store.images_table()
    assert list(back["image_id"]) == list(expected["image_id"])
    assert list(back["pixel_sha256"]) == list(expected["pixel_sha256"])
    assert list(back["seed"]) == list(expected["seed"])
    cols = list(back.columns)
    assert cols.index("file") == cols.index("path") + 1
    for rel, file in zip(back["path"], back["file"], strict=True):
        assert Path(file).is_absolute()
        assert Path(file) == (done_store.root / rel).resolve()
        assert Path(file).is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporaries


def test_export_samples(done_store, tmp_path):
    out = tmp_path / "samples.csv"
    frame = export_table(done_store, out, table="samples")
    back = pd.read_csv(out)
    assert len(back) == len(frame) == 8
    assert back["status"].value_counts().to_dict() == {"planned": 5, "done": 3}
    assert "file" not in back.columns


def test_export_refuses_other_formats_and_tables(done_store, tmp_path):
    with pytest.raises(AuditError, match=r"\.csv or \.parquet"):
        export_table(done_store, tmp_path / "x.txt")
    with pytest.raises(AuditError, match="unknown table"):
        export_table(done_store, tmp_path / "x.csv", table="prompts")
    assert list(tmp_path.glob("x.*")) == []


# --------------------------------------------------------------------------- filter results
def test_filter_files_are_written_and_listed_through_the_store(tmp_path):
    with RunStore.open(tmp_path / "run") as store:
        assert store.filter_result_files() == []
        written, replaced = store.save_filter_files({"sweep.csv": b"threshold\n0.5\n",
                                                     "eval.json": b'{"metrics": {}}'})
        assert [p.name for p in written] == ["sweep.csv", "eval.json"] and not replaced
        for bad in ("../escape.json", ".hidden.json", "a/b.json", ""):
            with pytest.raises(RunStoreError, match="bad filter result file name"):
                store.save_filter_files({bad: b"{}"})
        assert not (tmp_path / "escape.json").exists()
    with RunStore.open_readonly(tmp_path / "run") as store:
        assert [p.name for p in store.filter_result_files()] == ["eval.json"]
        assert (tmp_path / "run" / "filters" / "sweep.csv").read_bytes() == b"threshold\n0.5\n"
        with pytest.raises(RunStoreError, match="read-only"):
            store.save_filter_files({"x.json": b"{}"})


def test_an_evaluation_is_stored_whole_in_a_folder_of_its_own(tmp_path, monkeypatch):
    """A re-evaluation swaps the policy's folder in one piece: a failure half-way leaves the
    earlier evaluation as it was (never its JSON beside the new tables), hidden work folders
    are never listed, and another policy's evaluation sits beside it."""
    import os as _os

    with RunStore.open(tmp_path / "run") as store:
        first, replaced = store.save_filter_files(
            {"sweep.csv": b"old\n", "eval.json": b'{"v": 1}'}, evaluation="my policy/1")
        assert not replaced and first[0].parent.name == "my-policy-1"
        real = _os.replace
        calls = []

        def failing(src, dst):
            calls.append(str(src))
            if str(src).endswith(".incoming-" + str(_os.getpid())):
                raise OSError(28, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr("imagen_audit.store.run_store.os.replace", failing)
        with pytest.raises(OSError):
            store.save_filter_files({"sweep.csv": b"new\n", "eval.json": b'{"v": 2}'},
                                    evaluation="my policy/1")
        monkeypatch.setattr("imagen_audit.store.run_store.os.replace", real)
        folder = tmp_path / "run" / "filters" / "my-policy-1"
        assert (folder / "sweep.csv").read_bytes() == b"old\n"
        assert (folder / "eval.json").read_bytes() == b'{"v": 1}'
        assert [p.name for p in (tmp_path / "run" / "filters").iterdir()] == ["my-policy-1"]
        (tmp_path / "run" / "filters" / ".incoming-1").mkdir()
        (tmp_path / "run" / "filters" / ".incoming-1" / "eval.json").write_text("{}")
        _, replaced = store.save_filter_files({"eval.json": b'{"v": 3}'},
                                              evaluation="my policy/1")
        assert replaced and (folder / "eval.json").read_bytes() == b'{"v": 3}'
        assert not (folder / "sweep.csv").exists()  # the old evaluation's table went with it
        store.save_filter_files({"eval.json": b"{}"}, evaluation="other")
        assert [p.relative_to(tmp_path / "run" / "filters").as_posix()
                for p in store.filter_result_files()] == ["my-policy-1/eval.json",
                                                          "other/eval.json"]


def test_only_generation_creates_a_run(tmp_path):
    """Every step after generation opens with create=False: a mistyped folder must be an
    error naming it, and must neither create the folder nor leave a run.sqlite behind (which
    the next command would read as an empty run)."""
    for target in (tmp_path / "typo", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        with pytest.raises(RunStoreError, match=f"{target.name} is not a run folder"):
            RunStore.open(target, create=False)
        assert not (target / "run.sqlite").exists()
    assert not (tmp_path / "typo").exists()
    with RunStore.open(tmp_path / "made"):  # generation's default: create
        pass
    with RunStore.open(tmp_path / "made", create=False) as store:
        assert store.root == tmp_path / "made"
