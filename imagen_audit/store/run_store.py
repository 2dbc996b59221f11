"""The run store API: plan rows in; samples, images and status out as tables.

Writers (generate, later annotate) open the store with :meth:`RunStore.open` and hold the
folder's lock; readers (export, analysis, report) use :meth:`RunStore.open_readonly` and
never block a running writer (SQLite WAL).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from imagen_audit.errors import RunStoreError
from imagen_audit.probes import BASELINE_KEYS, Occupation, Prompt, sample_seed
from imagen_audit.provenance import canonical_json, digest, environment
from imagen_audit.store import images as imgio
from imagen_audit.store.lock import RunLock
from imagen_audit.store.records import ImageRecord, PlannedSample, SampleResult, StageSpec
from imagen_audit.store.schema import migrate

DB_NAME = "run.sqlite"
IMAGES_DIR = "images"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_sample_id(prompt_id: str, sample_index: int) -> str:
    """Stable, file-name-safe id of a sample (a prompt id and its sample index)."""
    return hashlib.sha256(f"{prompt_id}\0{sample_index}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class PlanSummary:
    """What planning did: how many samples the run holds and how many were new."""

    total: int
    added: int
    done: int


class RunStore:
    """One run folder. Use as a context manager; writers hold the folder's lock."""

    def __init__(self, root: Path, conn: sqlite3.Connection, lock: RunLock | None) -> None:
        self.root = root
        self._conn = conn
        self._lock = lock

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root: str | Path) -> RunStore:
        """Open (creating if needed) a run folder for writing; fails if another process has it."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise RunStoreError(f"{root} exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        lock = RunLock(root).acquire()
        try:
            conn = sqlite3.connect(root / DB_NAME, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
            if not conn.execute("SELECT 1 FROM meta WHERE key='created_at'").fetchone():
                conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (_now(),))
            imgio.remove_stale_temporaries(root / IMAGES_DIR)
        except sqlite3.DatabaseError as exc:
            lock.release()
            raise RunStoreError(f"{root / DB_NAME}: not a usable run database ({exc})") from exc
        except BaseException:
            lock.release()
            raise
        return cls(root, conn, lock)

    @classmethod
    def open_readonly(cls, root: str | Path) -> RunStore:
        """Open an existing run for reading only (no lock; safe while a writer runs)."""
        root = Path(root)
        db = root / DB_NAME
        if not db.is_file():
            raise RunStoreError(f"{root} is not a run folder (no {DB_NAME})")
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                                   timeout=30)
            from imagen_audit.store.schema import SCHEMA_VERSION, current_version

            version = current_version(conn)
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"{db}: not a usable run database ({exc})") from exc
        if version != SCHEMA_VERSION:
            raise RunStoreError(f"{db}: schema version {version}, this imagen-audit reads "
                                f"{SCHEMA_VERSION}; open it once for writing to migrate it")
        return cls(root, conn, None)

    def close(self) -> None:
        self._conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        if self._lock is None:
            raise RunStoreError("this run store was opened read-only")
        return _Transaction(self._conn)

    # ------------------------------------------------------------------ metadata
    def get_meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def bind_config(self, key: str, value: Mapping[str, Any]) -> None:
        """Record a run-wide setting on first use; refuse a different one later.

        A resumed run must make images the same way as the interrupted one, or the run
        would mix two models under one name.
        """
        with self._tx() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            new = canonical_json(value)
            if row is None:
                conn.execute("INSERT INTO meta VALUES (?, ?)", (key, new))
                return
            if row[0] != new:
                old = json.loads(row[0])
                diffs = sorted(k for k in set(old) | set(value)
                               if canonical_json({"v": old.get(k)})
                               != canonical_json({"v": value.get(k)}))
                details = "; ".join(f"{k}: run has {old.get(k)!r}, asked {value.get(k)!r}"
                                    for k in diffs[:6])
                raise RunStoreError(
                    f"{self.root} was started with other {key} settings ({details}); resume "
                    "with the original settings or write to a new --out folder")

    def register_stages(self, stages: Sequence[StageSpec]) -> None:
        with self._tx() as conn:
            for s in stages:
                row = conn.execute("SELECT name FROM stages WHERE stage=?", (s.stage,)).fetchone()
                if row is None:
                    conn.execute("INSERT INTO stages VALUES (?, ?, ?, ?)",
                                 (s.stage, s.name, s.width, s.height))
                elif row[0] != s.name:
                    raise RunStoreError(f"{self.root}: stage {s.stage} is {row[0]!r} in this "
                                        f"run, the generator calls it {s.name!r}")

    def stages(self) -> list[StageSpec]:
        return [StageSpec(*r) for r in
                self._conn.execute("SELECT stage, name, width, height FROM stages ORDER BY stage")]

    # ------------------------------------------------------------------ planning
    def add_prompts(self, prompts: Iterable[Prompt],
                    occupations: Iterable[Occupation] = ()) -> None:
        """Record prompts (and the baselines of the occupations they refer to)."""
        with self._tx() as conn:
            for p in prompts:
                row = conn.execute("SELECT prompt FROM prompts WHERE prompt_id=?",
                                   (p.prompt_id,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO prompts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (p.prompt_id, p.prompt, p.family, p.template_id, p.occupation_id,
                         p.identity_id, p.identity_axis, canonical_json(dict(p.controls))))
                elif row[0] != p.prompt:
                    raise RunStoreError(
                        f"{self.root}: prompt {p.prompt_id!r} reads {row[0]!r} in this run but "
                        f"{p.prompt!r} now (probe file edited?); write to a new --out folder")
            for o in occupations:
                conn.execute(
                    "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (o.id, o.term, o.category, o.bls_occupation, o.employed_thousands,
                     *[o.baseline.get(k) for k in BASELINE_KEYS]))

    def plan_samples(self, rows: Iterable[tuple[str, int, int | None, str | None]]) -> PlanSummary:
        """Add samples ``(prompt_id, sample_index, seed, source_file)``; existing ones must match.

        Idempotent: planning the same rows again adds nothing, so the same command resumes.
        """
        added = 0
        with self._tx() as conn:
            next_order = conn.execute(
                "SELECT COALESCE(MAX(plan_order), -1) + 1 FROM samples").fetchone()[0]
            for prompt_id, index, seed, source in rows:
                sid = make_sample_id(prompt_id, index)
                row = conn.execute("SELECT seed, source_file FROM samples WHERE sample_id=?",
                                   (sid,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO samples(sample_id, prompt_id, sample_index, seed, plan_order,"
                        " source_file) VALUES (?, ?, ?, ?, ?, ?)",
                        (sid, prompt_id, index, seed, next_order, source))
                    next_order += 1
                    added += 1
                elif (row[0], row[1]) != (seed, source):
                    raise RunStoreError(
                        f"{self.root}: sample {index} of prompt {prompt_id!r} was planned with "
                        f"seed {row[0]} / file {row[1]!r}, now {seed} / {source!r}; write to a "
                        "new --out folder")
        counts = self.status_counts()
        return PlanSummary(total=sum(counts.values()), added=added, done=counts.get("done", 0))

    def plan_probe_samples(self, prompts: Sequence[Prompt], samples_per_prompt: int,
                           base_seed: int) -> PlanSummary:
        """Plan ``samples_per_prompt`` samples per prompt, seeds derived from ``base_seed``."""
        if samples_per_prompt < 1:
            raise RunStoreError("--samples-per-prompt must be at least 1")
        return self.plan_samples(
            (p.prompt_id, k, sample_seed(base_seed, p.prompt_id, k), None)
            for p in prompts for k in range(samples_per_prompt))

    # ------------------------------------------------------------------ work
    def status_counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT status, COUNT(*) FROM samples GROUP BY status"))

    def iter_pending(self, page_size: int = 64) -> Iterator[list[PlannedSample]]:
        """Pages of samples not yet done, in plan order, read lazily (memory stays flat)."""
        last = -1
        while True:
            rows = self._conn.execute(
                "SELECT s.sample_id, s.prompt_id, p.prompt, s.sample_index, s.seed, s.plan_order,"
                " s.source_file FROM samples s JOIN prompts p USING (prompt_id)"
                " WHERE s.status != 'done' AND s.plan_order > ? ORDER BY s.plan_order LIMIT ?",
                (last, page_size)).fetchall()
            if not rows:
                return
            last = rows[-1][5]
            yield [PlannedSample(*r) for r in rows]

    def image_relpath(self, sample_id: str, stage: int) -> str:
        return f"{IMAGES_DIR}/stage{stage}/{sample_id[:2]}/{sample_id}.png"

    def commit_sample(self, result: SampleResult) -> list[ImageRecord]:
        """Store a generated sample: PNGs first (atomically), then one DB transaction.

        A crash before the transaction leaves the sample 'planned'; the next run regenerates
        it and overwrites the same files with the same pixels.
        """
        stages = {s.stage: s for s in self.stages()}
        records = []
        for stage, pixels in sorted(result.images.items()):
            if stage not in stages:
                raise RunStoreError(f"generator returned unregistered stage {stage}")
            arr = imgio.to_uint8_rgb(pixels)
            rel = self.image_relpath(result.sample_id, stage)
            imgio.write_png_atomic(self.root / rel, arr)
            records.append(ImageRecord(
                image_id=f"{result.sample_id}-s{stage}", sample_id=result.sample_id, stage=stage,
                stage_name=stages[stage].name, width=arr.shape[1], height=arr.shape[0],
                path=rel, pixel_sha256=imgio.pixel_digest(arr)))
        record = {"generator": dict(result.provenance), "environment": environment()}
        with self._tx() as conn:
            dig = digest(record)
            conn.execute("INSERT OR IGNORE INTO provenance(digest, record) VALUES (?, ?)",
                         (dig, canonical_json(record)))
            prov_id = conn.execute("SELECT provenance_id FROM provenance WHERE digest=?",
                                   (dig,)).fetchone()[0]
            now = _now()
            for r in records:
                conn.execute(
                    "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.image_id, r.sample_id, r.stage, r.width, r.height, r.path,
                     r.pixel_sha256, now))
            cur = conn.execute(
                "UPDATE samples SET status='done', error=NULL, attempts=attempts+1,"
                " provenance_id=?, finished_at=? WHERE sample_id=? AND status != 'done'",
                (prov_id, now, result.sample_id))
            if cur.rowcount != 1:
                raise RunStoreError(f"sample {result.sample_id} is unknown or already done")
        return records

    def mark_failed(self, sample_ids: Iterable[str], error: str) -> None:
        with self._tx() as conn:
            conn.executemany(
                "UPDATE samples SET status='failed', error=?, attempts=attempts+1,"
                " finished_at=? WHERE sample_id=? AND status != 'done'",
                [(error[:2000], _now(), sid) for sid in sample_ids])

    # ------------------------------------------------------------------ tables
    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self._conn, params=params)

    def prompts_table(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM prompts ORDER BY prompt_id")

    def baselines_table(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM baselines ORDER BY occupation_id")

    def samples_table(self) -> pd.DataFrame:
        """One row per sample with its prompt attributes, status and provenance id."""
        return self._frame(
            "SELECT s.sample_id, s.prompt_id, p.prompt, p.family, p.template_id,"
            " p.occupation_id, p.identity_id, p.identity_axis, p.controls, s.sample_index,"
            " s.seed, s.source_file, s.status, s.attempts, s.error, s.provenance_id,"
            " s.finished_at FROM samples s JOIN prompts p USING (prompt_id)"
            " ORDER BY s.plan_order")

    def images_table(self) -> pd.DataFrame:
        """One row per image (a sample at a stage) with its sample's prompt and seed."""
        return self._frame(
            "SELECT i.image_id, i.sample_id, s.prompt_id, p.prompt, p.family, p.template_id,"
            " p.occupation_id, p.identity_id, p.identity_axis, s.sample_index, s.seed,"
            " i.stage, st.name AS stage_name, i.width, i.height, i.path, i.pixel_sha256,"
            " s.provenance_id FROM images i JOIN samples s USING (sample_id)"
            " JOIN prompts p USING (prompt_id) JOIN stages st ON st.stage = i.stage"
            " ORDER BY s.plan_order, i.stage")

    def provenance_records(self) -> dict[int, dict[str, Any]]:
        return {pid: json.loads(rec) for pid, rec in
                self._conn.execute("SELECT provenance_id, record FROM provenance")}

    def image_path(self, relpath: str) -> Path:
        """Absolute path of a stored image (refuses paths that leave the run folder)."""
        return imgio.safe_join(self.root, relpath)

    def verify(self) -> list[str]:
        """Check every indexed image: file present, decodes, pixels match the stored digest."""
        problems = []
        for rel, sha in self._conn.execute("SELECT path, pixel_sha256 FROM images"):
            path = self.image_path(rel)
            try:
                pixels = imgio.read_png(path)
            except (OSError, SyntaxError) as exc:
                problems.append(f"{rel}: unreadable ({exc})")
                continue
            if imgio.pixel_digest(pixels) != sha:
                problems.append(f"{rel}: pixels differ from the recorded digest")
        done_without_images = self._conn.execute(
            "SELECT COUNT(*) FROM samples s WHERE status='done' AND NOT EXISTS"
            " (SELECT 1 FROM images i WHERE i.sample_id = s.sample_id)").fetchone()[0]
        if done_without_images:
            problems.append(f"{done_without_images} samples are done but have no images")
        return problems


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
