"""Crash safety: SIGKILL mid-run, then the same command completes exactly the planned set."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from imagen_audit.store import RunStore
from imagen_audit.store.images import TMP_MARK

ARGS = ["generate", "--probes", "occupations", "--limit-prompts", "3",
        "--samples-per-prompt", "4", "--model", "tiny-cascade", "--stages", "2",
        "--steps", "2,1", "--batch-size", "3", "--no-progress"]


def _cli(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imagen_audit.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _done(run: Path) -> int:
    db = run / "run.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM samples WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _digests(run: Path) -> pd.DataFrame:
    with RunStore.open_readonly(run) as store:
        return store.images_table()[["sample_id", "stage", "seed", "pixel_sha256"]]


def test_sigkill_then_resume_completes_exactly_the_plan(tmp_path: Path, cli_env) -> None:
    run = tmp_path / "run"
    proc = _cli([*ARGS, "--out", str(run)], cli_env)
    deadline = time.monotonic() + 240
    while _done(run) < 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "generation made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _done(run)
    assert 2 <= killed_at < 12, "the run must be killed mid-way for this test to mean anything"

    # While the killed run left things as they are, a second process may take the folder.
    second = _cli([*ARGS, "--out", str(run)], cli_env)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert f"{12 - killed_at} samples generated" in out

    with RunStore.open_readonly(run) as store:
        samples = store.samples_table()
        assert len(samples) == 12 and samples["sample_id"].is_unique
        assert set(samples["status"]) == {"done"}
        assert store.verify() == []  # every PNG decodes fully, pixels match the record
    assert not list(run.rglob(f"*{TMP_MARK}*"))
    assert len(list((run / "images").rglob("*.png"))) == 24

    third = _cli([*ARGS, "--out", str(run)], cli_env)
    out, _ = third.communicate(timeout=300)
    assert third.returncode == 0
    assert "nothing to generate" in out

    # The interrupted-and-resumed run equals an uninterrupted one, pixel for pixel.
    ref = tmp_path / "ref"
    clean = _cli([*ARGS, "--batch-size", "5", "--out", str(ref)], cli_env)
    out, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0, out
    a = _digests(run).sort_values(["sample_id", "stage"]).reset_index(drop=True)
    b = _digests(ref).sort_values(["sample_id", "stage"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_second_process_gets_a_clear_error(tmp_path: Path, cli_env) -> None:
    run = tmp_path / "run"
    with RunStore.open(run):
        proc = _cli([*ARGS, "--out", str(run)], cli_env)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "in use by pid" in out
    with RunStore.open_readonly(run) as store:  # the store is intact and empty
        assert store.status_counts() == {}
