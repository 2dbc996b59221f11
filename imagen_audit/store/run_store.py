"""The run store API: plan rows in; samples, images and status out as tables.

Writers (generate, later annotate) open the store with :meth:`RunStore.open` and hold the
folder's lock; readers (export, analysis, report) use :meth:`RunStore.open_readonly` and
never block a running writer (SQLite WAL).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from imagen_audit.errors import RunLockedError, RunStoreError
from imagen_audit.files import write_atomic
from imagen_audit.probes import BASELINE_KEYS, Occupation, Prompt, sample_seed
from imagen_audit.provenance import canonical_json, digest, environment
from imagen_audit.store import images as imgio
from imagen_audit.store.lock import RunLock
from imagen_audit.store.records import ImageRecord, PlannedSample, SampleResult, StageSpec
from imagen_audit.store.schema import migrate
from imagen_audit.store.storage import ImageStorage, StoredSample, image_relpath, write_sample

DB_NAME = "run.sqlite"
FILTERS_DIR = "filters"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_sample_id(prompt_id: str, sample_index: int) -> str:
    """Stable, file-name-safe id of a sample (a prompt id and its sample index)."""
    return hashlib.sha256(f"{prompt_id}\0{sample_index}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class PlanSummary:
    """What planning did: how many samples the run holds and how many were new.

    ``dropped`` names the source files of imported samples taken out of the plan because
    their manifest rows are gone (never one that was imported already).
    """

    total: int
    added: int
    done: int
    dropped: tuple[str, ...] = ()


def evaluation_folder_name(name: str) -> str:
    """A policy's name as a folder name: letters, digits, '.', '_' and '-' only, never hidden
    and never empty."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip(".-")
    return safe or "policy"


def filter_result_paths(root: str | Path) -> list[Path]:
    """Every JSON file under ``ROOT/filters/`` (filter evaluations and summaries), leaving
    out hidden folders: an evaluation being written or replaced (:meth:`RunStore.
    save_filter_files`). Also for a results folder without a run store."""
    folder = Path(root) / FILTERS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.json")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def require_run_folder(root: str | Path, flag: str = "") -> Path:
    """``root`` as a Path if it holds a run store, else a RunStoreError naming it (prefixed
    with the option, e.g. ``--run``). Every step after generation checks this before opening
    a run, and before long work that would otherwise be lost."""
    root = Path(root)
    if not (root / DB_NAME).is_file():
        raise RunStoreError(f"{flag + ' ' if flag else ''}{root} is not a run folder "
                            f"(no {DB_NAME})")
    return root


class RunStore:
    """One run folder. Use as a context manager; writers hold the folder's lock."""

    def __init__(self, root: Path, conn: sqlite3.Connection, lock: RunLock | None) -> None:
        self.root = root
        self._conn = conn
        self._lock = lock
        self.storage = ImageStorage(root, self.get_meta("image_root"))

    @staticmethod
    def _bind_image_root(conn: sqlite3.Connection, root: Path,
                         image_store: str | None) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key='image_root'").fetchone()
        if row is None:
            url = ImageStorage(root, image_store).url
            conn.execute("INSERT INTO meta VALUES ('image_root', ?)", (json.dumps(url),))
            return url
        current = json.loads(row[0])
        if image_store is not None and ImageStorage(root, image_store).url != current:
            raise RunStoreError(f"{root}: images of this run live in {current or 'the run folder'}"
                                f", not {image_store}; drop --image-store or use a new --out")
        return current

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, root: str | Path, image_store: str | None = None, *,
             create: bool = True) -> RunStore:
        """Open (creating if needed) a run folder for writing; fails if another process has it.

        ``image_store`` (an fsspec URL or folder) puts the image files outside the run folder,
        where workers on other machines can write them; it is fixed when the run is created.
        Only generation creates runs: every later step passes ``create=False``, so a mistyped
        folder is an error instead of a new empty run reported as a success.
        """
        root = Path(root) if create else require_run_folder(root)
        if root.exists() and not root.is_dir():
            raise RunStoreError(f"{root} exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        lock = RunLock(root).acquire()
        conn = None
        try:
            conn = sqlite3.connect(root / DB_NAME, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, root / DB_NAME)
            if not conn.execute("SELECT 1 FROM meta WHERE key='created_at'").fetchone():
                conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (json.dumps(_now()),))
            image_root = cls._bind_image_root(conn, root, image_store)
            ImageStorage(root, image_root).remove_stale_temporaries()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            lock.release()
            if isinstance(exc, sqlite3.DatabaseError):
                raise RunStoreError(f"{root / DB_NAME}: not a usable run database ({exc})"
                                    ) from exc
            raise
        return cls(root, conn, lock)

    @classmethod
    def open_readonly(cls, root: str | Path) -> RunStore:
        """Open an existing run for reading only (no lock; safe while a writer runs)."""
        root = require_run_folder(root)
        db = root / DB_NAME
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None,
                                   timeout=30)
            from imagen_audit.store.schema import MIGRATIONS, check_known

            applied = check_known(conn, db)
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"{db}: not a usable run database ({exc})") from exc
        missing = [name for name, _ in MIGRATIONS if name not in applied]
        if missing:
            # Made by an older imagen-audit: migrate it now unless a writer holds it.
            conn.close()
            try:
                cls.open(root).close()
            except RunLockedError as exc:
                raise RunStoreError(f"{db}: needs schema parts {missing}, and another process "
                                    f"is writing it ({exc}); try again when it is done"
                                    ) from None
            return cls.open_readonly(root)
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

    def plan_samples(self, rows: Iterable[tuple[Any, ...]]) -> PlanSummary:
        """Add samples ``(prompt_id, sample_index, seed, source_file[, effective_prompt])``.

        ``effective_prompt`` is the text sent to the model when a mitigation rewrote the
        probe prompt (None: the prompt itself). Samples already planned must match.
        Idempotent: planning the same rows again adds nothing, so the same command resumes.
        """
        added = 0
        with self._tx() as conn:
            next_order = conn.execute(
                "SELECT COALESCE(MAX(plan_order), -1) + 1 FROM samples").fetchone()[0]
            for prompt_id, index, seed, source, *rest in rows:
                effective = rest[0] if rest else None
                sid = make_sample_id(prompt_id, index)
                row = conn.execute("SELECT seed, source_file, effective_prompt FROM samples"
                                   " WHERE sample_id=?", (sid,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO samples(sample_id, prompt_id, sample_index, seed, plan_order,"
                        " source_file, effective_prompt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (sid, prompt_id, index, seed, next_order, source, effective))
                    next_order += 1
                    added += 1
                elif tuple(row) != (seed, source, effective):
                    raise RunStoreError(
                        f"{self.root}: sample {index} of prompt {prompt_id!r} was planned with "
                        f"seed {row[0]} / file {row[1]!r} / prompt sent {row[2]!r}, now {seed} / "
                        f"{source!r} / {effective!r}; write to a new --out folder")
        counts = self.status_counts()
        return PlanSummary(total=sum(counts.values()), added=added, done=counts.get("done", 0))

    def plan_imported_samples(self, rows: Sequence[tuple[str, int | None, str]]
                              ) -> PlanSummary:
        """Bring an import's plan in line with its manifest: rows ``(prompt_id, seed, file)``.

        The manifest is the source of truth, re-read on every run, so a user can fix an
        import by editing it. A sample belongs to its file: a row whose file is planned
        with the same prompt and seed keeps its sample wherever the row now stands. A new
        row gets the next sample index of its prompt, in manifest order (a first import
        numbers rows exactly as before). A planned sample whose row is gone, or now gives
        another prompt or seed, is dropped while nothing of it is stored (status planned or
        failed; a new row for the file is planned afresh). One already imported (done) is
        never dropped or changed: that is refused, naming the files, so nothing imported is
        lost silently. Idempotent: the same manifest adds and drops nothing.
        """
        root = self.root
        dropped: list[str] = []
        added = 0
        with self._tx() as conn:
            planned = conn.execute(
                "SELECT source_file, sample_id, prompt_id, sample_index, seed, status"
                " FROM samples WHERE source_file IS NOT NULL").fetchall()
            # Indices are never handed out twice in one planning, even after a drop.
            next_index: dict[str, int] = dict(conn.execute(
                "SELECT prompt_id, MAX(sample_index) + 1 FROM samples GROUP BY prompt_id"))
            wanted = {source: (prompt_id, seed) for prompt_id, seed, source in rows}
            unchanged: set[str] = set()
            stale: list[tuple[str, str, str]] = []  # (sample_id, prompt_id, source)
            refused: list[str] = []
            for source, sid, prompt_id, index, seed, status in planned:
                now = wanted.get(source)
                if now == (prompt_id, seed):
                    unchanged.add(source)
                elif status != "done":
                    stale.append((sid, prompt_id, source))
                else:
                    change = ("its row is gone from the manifest" if now is None else
                              f"the manifest now gives prompt {now[0]!r}, seed {now[1]}")
                    refused.append(f"{source!r} (imported as sample {index} of prompt "
                                   f"{prompt_id!r}, seed {seed}): {change}")
            if refused:
                more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
                raise RunStoreError(
                    f"{root}: the manifest no longer matches images this run imported: "
                    + "; ".join(refused[:5]) + more + ". Imported images stay as recorded: "
                    "restore those rows, or import into a new --out folder")
            for sid, _, source in stale:
                # Planned or failed: no image of it is recorded, so nothing is lost.
                conn.execute("DELETE FROM samples WHERE sample_id=? AND status != 'done'",
                             (sid,))
                if source not in wanted:
                    dropped.append(source)
            order = conn.execute(
                "SELECT COALESCE(MAX(plan_order), -1) + 1 FROM samples").fetchone()[0]
            for prompt_id, seed, source in rows:
                if source in unchanged:
                    continue
                index = next_index.get(prompt_id, 0)
                next_index[prompt_id] = index + 1
                conn.execute(
                    "INSERT INTO samples(sample_id, prompt_id, sample_index, seed, plan_order,"
                    " source_file) VALUES (?, ?, ?, ?, ?, ?)",
                    (make_sample_id(prompt_id, index), prompt_id, index, seed, order, source))
                order += 1
                added += 1
            # A prompt whose rows were all removed leaves the run with them.
            for prompt_id in {p for _, p, _ in stale}:
                conn.execute("DELETE FROM prompts WHERE prompt_id=? AND NOT EXISTS"
                             " (SELECT 1 FROM samples WHERE prompt_id=?)",
                             (prompt_id, prompt_id))
        counts = self.status_counts()
        return PlanSummary(total=sum(counts.values()), added=added, done=counts.get("done", 0),
                           dropped=tuple(dropped))

    def plan_probe_samples(self, prompts: Sequence[Prompt], samples_per_prompt: int,
                           base_seed: int,
                           rewrite: Callable[[Prompt, int, int], str | None] | None = None
                           ) -> PlanSummary:
        """Plan ``samples_per_prompt`` samples per prompt, seeds derived from ``base_seed``.

        ``rewrite(prompt, sample_index, seed)`` gives the text to send instead of the probe
        prompt (a mitigation), or None to send it unchanged.
        """
        if samples_per_prompt < 1:
            raise RunStoreError("--samples-per-prompt must be at least 1")

        def rows() -> Iterator[tuple[Any, ...]]:
            for p in prompts:
                for k in range(samples_per_prompt):
                    seed = sample_seed(base_seed, p.prompt_id, k)
                    yield p.prompt_id, k, seed, None, rewrite(p, k, seed) if rewrite else None

        return self.plan_samples(rows())

    # ------------------------------------------------------------------ work
    def status_counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT status, COUNT(*) FROM samples GROUP BY status"))

    def iter_pending(self, page_size: int = 64) -> Iterator[list[PlannedSample]]:
        """Pages of samples not yet done, in plan order, read lazily (memory stays flat)."""
        last = -1
        while True:
            rows = self._conn.execute(
                "SELECT s.sample_id, s.prompt_id, COALESCE(s.effective_prompt, p.prompt),"
                " s.sample_index, s.seed, s.plan_order,"
                " s.source_file FROM samples s JOIN prompts p USING (prompt_id)"
                " WHERE s.status != 'done' AND s.plan_order > ? ORDER BY s.plan_order LIMIT ?",
                (last, page_size)).fetchall()
            if not rows:
                return
            last = rows[-1][5]
            yield [PlannedSample(*r) for r in rows]

    def image_relpath(self, sample_id: str, stage: int) -> str:
        return image_relpath(sample_id, stage)

    def check_pending(self, sample_id: str) -> None:
        """Refuse a sample that is unknown or done, or a read-only store."""
        if self._lock is None:
            raise RunStoreError("this run store was opened read-only")
        row = self._conn.execute("SELECT status FROM samples WHERE sample_id=?",
                                 (sample_id,)).fetchone()
        if row is None or row[0] == "done":
            # Refuse before touching any file: a done sample's images stay as recorded.
            raise RunStoreError(f"sample {sample_id} is unknown or already done")

    def commit_sample(self, result: SampleResult) -> list[ImageRecord]:
        """Store a generated sample: PNGs first (atomically), then one DB transaction.

        A crash before the transaction leaves the sample 'planned'; the next run regenerates
        it and overwrites the same files with the same pixels.
        """
        self.check_pending(result.sample_id)
        stored = write_sample(self.storage, result, {s.stage: s for s in self.stages()})
        return self.commit_stored(stored)

    def commit_stored(self, stored: StoredSample) -> list[ImageRecord]:
        """Commit a sample whose images a worker already wrote to this run's image store."""
        self.check_pending(stored.sample_id)
        stages = {s.stage: s.name for s in self.stages()}
        for r in stored.records:
            if r.sample_id != stored.sample_id or stages.get(r.stage) != r.stage_name:
                raise RunStoreError(f"image record {r.image_id} does not match sample "
                                    f"{stored.sample_id} and this run's stages")
        record = {"generator": dict(stored.provenance),
                  "environment": stored.environment or environment()}
        with self._tx() as conn:
            dig = digest(record)
            conn.execute("INSERT OR IGNORE INTO provenance(digest, record) VALUES (?, ?)",
                         (dig, canonical_json(record)))
            prov_id = conn.execute("SELECT provenance_id FROM provenance WHERE digest=?",
                                   (dig,)).fetchone()[0]
            now = _now()
            for r in stored.records:
                conn.execute(
                    "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.image_id, r.sample_id, r.stage, r.width, r.height, r.path,
                     r.pixel_sha256, now))
            cur = conn.execute(
                "UPDATE samples SET status='done', error=NULL, attempts=attempts+1,"
                " provenance_id=?, finished_at=? WHERE sample_id=? AND status != 'done'",
                (prov_id, now, stored.sample_id))
            if cur.rowcount != 1:
                raise RunStoreError(f"sample {stored.sample_id} is unknown or already done")
        return list(stored.records)

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
            " s.seed, COALESCE(s.effective_prompt, p.prompt) AS effective_prompt,"
            " s.source_file, s.status, s.attempts, s.error, s.provenance_id,"
            " s.finished_at FROM samples s JOIN prompts p USING (prompt_id)"
            " ORDER BY s.plan_order")

    def images_table(self) -> pd.DataFrame:
        """One row per image (a sample at a stage) with its sample's prompt and seed."""
        return self._frame(
            "SELECT i.image_id, i.sample_id, s.prompt_id, p.prompt, p.family, p.template_id,"
            " p.occupation_id, p.identity_id, p.identity_axis, s.sample_index, s.seed,"
            " COALESCE(s.effective_prompt, p.prompt) AS effective_prompt,"
            " i.stage, st.name AS stage_name, i.width, i.height, i.path, i.pixel_sha256,"
            " s.provenance_id FROM images i JOIN samples s USING (sample_id)"
            " JOIN prompts p USING (prompt_id) JOIN stages st ON st.stage = i.stage"
            " ORDER BY s.plan_order, i.stage")

    def provenance_records(self) -> dict[int, dict[str, Any]]:
        return {pid: json.loads(rec) for pid, rec in
                self._conn.execute("SELECT provenance_id, record FROM provenance")}

    def image_path(self, relpath: str) -> Path:
        """A local file holding a stored image (refuses paths that leave the image root;
        for a remote image store, a cached copy under ``RUN_DIR/.image-cache``)."""
        return self.storage.local_path(relpath)

    def drop_cached_image(self, relpath: str) -> None:
        """Forget the local copy of a remote image found unreadable (see :meth:`image_path`):
        the next read fetches it again. Nothing happens for a local image store."""
        self.storage.drop_cached(relpath)

    def image_uri(self, relpath: str) -> str:
        """Where a stored image lives: a local path, or a URL for a remote image store."""
        return self.storage.uri(relpath)

    def read_image(self, relpath: str) -> Any:
        """A stored image as HxWx3 uint8 pixels (from any image store)."""
        return imgio.decode_png(self.storage.read(relpath))

    def verify(self) -> list[str]:
        """Check every indexed image: file present, decodes, pixels match the stored digest."""
        problems = []
        for rel, sha in self._conn.execute("SELECT path, pixel_sha256 FROM images"):
            try:
                pixels = self.read_image(rel)
            except (OSError, SyntaxError, ValueError) as exc:
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

    # ------------------------------------------------------------------ annotations (issue 3)
    _FACE_COLUMNS = ("face_index", "box_left", "box_top", "box_right", "box_bottom",
                     "detection_score", "landmarks", "perceived_gender", "gender_probability",
                     "p_female", "monk_tone", "ita", "ita_category", "tone_confidence",
                     "skin_pixels", "skin_l", "skin_a", "skin_b")

    def register_annotator(self, annotator: str, config: Mapping[str, Any]) -> None:
        """Record an annotator's configuration on first use; refuse another one under its name."""
        new = canonical_json(config)
        with self._tx() as conn:
            row = conn.execute("SELECT config FROM annotators WHERE annotator=?",
                               (annotator,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO annotators VALUES (?, ?, ?)", (annotator, new, _now()))
            elif row[0] != new:
                old = json.loads(row[0])
                diffs = sorted(k for k in set(old) | set(config)
                               if canonical_json({"v": old.get(k)})
                               != canonical_json({"v": config.get(k)}))
                raise RunStoreError(
                    f"{self.root}: annotator {annotator!r} was run with other settings "
                    f"({', '.join(diffs[:6])} differ); use the same settings to resume, or "
                    "give this configuration another name (--name)")

    def annotators(self) -> dict[str, dict[str, Any]]:
        return {name: json.loads(cfg) for name, cfg in
                self._conn.execute("SELECT annotator, config FROM annotators ORDER BY annotator")}

    def _pending_sql(self, stages: Sequence[int] | None, retry_failed: bool) -> tuple[str, list]:
        done = "('done')" if retry_failed else "('done', 'failed')"
        sql = (" FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_annotations a WHERE"
               f" a.image_id = i.image_id AND a.annotator = ? AND a.status IN {done})")
        params: list[Any] = []
        if stages:
            sql += f" AND i.stage IN ({', '.join('?' * len(stages))})"
            params.extend(int(s) for s in stages)
        return sql, params

    def count_images_to_annotate(self, annotator: str, stages: Sequence[int] | None = None,
                                 retry_failed: bool = True) -> int:
        sql, params = self._pending_sql(stages, retry_failed)
        return self._conn.execute("SELECT COUNT(*)" + sql, [annotator, *params]).fetchone()[0]

    def iter_images_to_annotate(self, annotator: str, page_size: int = 64,
                                stages: Sequence[int] | None = None, retry_failed: bool = True
                                ) -> Iterator[list[tuple[str, str]]]:
        """Pages of ``(image_id, relative path)`` not yet annotated by ``annotator``; read
        them with ``storage.read`` (any image store) or ``image_path`` (a local file).

        Read lazily by image id (a page is fetched only when the one before is consumed), so
        commits made meanwhile never shift a page and memory stays flat.
        """
        sql, params = self._pending_sql(stages, retry_failed)
        last = ""
        while True:
            rows = self._conn.execute(
                "SELECT i.image_id, i.path" + sql + " AND i.image_id > ? ORDER BY i.image_id"
                " LIMIT ?", [annotator, *params, last, page_size]).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [(image_id, rel) for image_id, rel in rows]

    def commit_image_annotation(self, image_id: str, annotator: str,
                                faces: Sequence[Mapping[str, Any]] = (), *,
                                error: str | None = None, seconds: float | None = None) -> None:
        """Store one image's annotations in one transaction (replacing earlier ones).

        ``faces`` holds one mapping per detected face with the ``face_annotations`` columns
        (``face_index``, ``box_*``, ``perceived_gender``, ...); empty for an image without a
        face. With ``error`` the image is recorded as failed (and retried by the next run).
        """
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM annotators WHERE annotator=?",
                            (annotator,)).fetchone() is None:
                raise RunStoreError(f"annotator {annotator!r} is not registered in {self.root}")
            row = conn.execute("SELECT attempts FROM image_annotations WHERE image_id=? AND"
                               " annotator=?", (image_id, annotator)).fetchone()
            conn.execute("DELETE FROM image_annotations WHERE image_id=? AND annotator=?",
                         (image_id, annotator))
            conn.execute(
                "INSERT INTO image_annotations(image_id, annotator, status, n_faces, error,"
                " seconds, attempts, annotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, annotator, "failed" if error else "done",
                 None if error else len(faces), error[:2000] if error else None, seconds,
                 (row[0] + 1) if row else 1, _now()))
            if error:
                return
            cols = self._FACE_COLUMNS
            conn.executemany(
                f"INSERT INTO face_annotations(image_id, annotator, {', '.join(cols)}) VALUES"
                f" (?, ?, {', '.join('?' * len(cols))})",
                [(image_id, annotator,
                  *[json.dumps(f.get(c)) if c == "landmarks" and f.get(c) is not None
                    else f.get(c) for c in cols]) for f in faces])

    def annotation_status_table(self, annotator: str | None = None) -> pd.DataFrame:
        """One row per (image, annotator): status, n_faces, error, seconds, attempts."""
        where, params = ("WHERE annotator = ?", [annotator]) if annotator else ("", [])
        return self._frame(f"SELECT * FROM image_annotations {where} ORDER BY image_id,"
                           " annotator", params)

    def annotations_table(self, annotator: str | None = None) -> pd.DataFrame:
        """One row per detected face plus one per annotated image with no face.

        Joined with the image's sample and prompt columns. Face columns (``face_index``,
        box, ``perceived_gender``, ``monk_tone``, ...) are null on no-face rows. Only images
        whose annotation succeeded are listed (see :meth:`annotation_status_table`).
        """
        where, params = ("AND a.annotator = ?", [annotator]) if annotator else ("", [])
        frame = self._frame(
            "SELECT i.image_id, i.sample_id, s.prompt_id, p.prompt, p.family, p.template_id,"
            " p.occupation_id, p.identity_id, p.identity_axis, p.controls, s.sample_index,"
            " s.seed, COALESCE(s.effective_prompt, p.prompt) AS effective_prompt,"
            " i.stage, st.name AS stage_name, i.path, a.annotator, a.n_faces,"
            " f.face_index, f.box_left, f.box_top, f.box_right, f.box_bottom,"
            " f.detection_score, f.perceived_gender, f.gender_probability, f.p_female,"
            " f.monk_tone, f.ita, f.ita_category, f.tone_confidence, f.skin_pixels,"
            " f.skin_l, f.skin_a, f.skin_b, f.landmarks"
            " FROM image_annotations a JOIN images i USING (image_id)"
            " JOIN samples s ON s.sample_id = i.sample_id JOIN prompts p USING (prompt_id)"
            " JOIN stages st ON st.stage = i.stage"
            " LEFT JOIN face_annotations f ON f.image_id = a.image_id"
            " AND f.annotator = a.annotator"
            f" WHERE a.status = 'done' {where}"
            " ORDER BY a.annotator, s.plan_order, i.stage, f.face_index", params)
        for col in ("n_faces", "face_index", "monk_tone", "skin_pixels"):
            frame[col] = frame[col].astype("Int64")
        return frame

    def save_validation(self, record: Mapping[str, Any],
                        name: str = "validation.json") -> Path:
        """Write an annotator validation record as ``RUN_DIR/validation/NAME``, atomically."""

        if self._lock is None:
            raise RunStoreError("this run store was opened read-only")
        if "/" in name or "\\" in name or name.startswith("."):
            raise RunStoreError(f"bad validation file name {name!r}")
        return write_atomic(self.root / "validation" / name,
                            json.dumps(record, indent=2, sort_keys=True, allow_nan=False))

    def validation_records(self) -> dict[str, dict[str, Any]]:
        """Validation records stored under ``RUN_DIR/validation/`` by file name."""
        folder = self.root / "validation"
        if not folder.is_dir():
            return {}
        return {p.name: json.loads(p.read_text(encoding="utf-8"))
                for p in sorted(folder.glob("*.json"))}

    # ------------------------------------------------------------------ prompt-filter evaluations
    def save_filter_files(self, files: Mapping[str, bytes], evaluation: str | None = None
                          ) -> tuple[list[Path], bool]:
        """Write a prompt-filter evaluation's files; returns their paths and whether an earlier
        evaluation of the same name was replaced.

        With ``evaluation`` (a policy's name) the files go to ``RUN_DIR/filters/<name>/`` as a
        whole: written into a hidden folder first, then swapped in by renames, so a reader
        (and an interrupted re-evaluation) never sees one evaluation's JSON beside another's
        tables. Evaluations of different policies sit side by side. Without it (the layout
        before session 28) the files go to ``RUN_DIR/filters/`` one by one, JSON last."""
        import shutil

        if self._lock is None:
            raise RunStoreError("this run store was opened read-only")
        for name in files:
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise RunStoreError(f"bad filter result file name {name!r}")
        folder = self.root / FILTERS_DIR
        if evaluation is None:
            return [write_atomic(folder / name, data) for name, data in files.items()], False
        target = folder / evaluation_folder_name(evaluation)
        incoming = folder / f".incoming-{os.getpid()}"
        replaced = folder / f".replaced-{os.getpid()}-{target.name}"
        for stale in (incoming, replaced):
            shutil.rmtree(stale, ignore_errors=True)
        incoming.mkdir(parents=True)
        try:
            for name, data in files.items():
                write_atomic(incoming / name, data)
            existed = target.exists()
            if existed:
                os.replace(target, replaced)
            os.replace(incoming, target)
        except BaseException:
            if replaced.exists() and not target.exists():
                os.replace(replaced, target)  # put the earlier evaluation back
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        shutil.rmtree(replaced, ignore_errors=True)
        return [target / name for name in files], existed

    def filter_result_files(self) -> list[Path]:
        """Every JSON file under ``RUN_DIR/filters/`` (:func:`filter_result_paths`)."""
        return filter_result_paths(self.root)

    # ------------------------------------------------------------------ image filters (issue 5)
    def images_pending_filter(self, filter_name: str,
                              stages: Sequence[int] | None = None) -> pd.DataFrame:
        """Images (``image_id``, ``sample_id``, ``stage``, ``path``) the output-image filter
        ``filter_name`` has not scored yet, in plan order."""
        sql = ("SELECT i.image_id, i.sample_id, i.stage, i.path FROM images i"
               " JOIN samples s USING (sample_id) WHERE NOT EXISTS (SELECT 1 FROM"
               " image_filter_scores f WHERE f.image_id = i.image_id AND f.filter = ?)")
        params: list[Any] = [filter_name]
        if stages:
            sql += f" AND i.stage IN ({', '.join('?' * len(stages))})"
            params.extend(int(s) for s in stages)
        return self._frame(sql + " ORDER BY s.plan_order, i.stage", params)

    def commit_image_filter_scores(
            self, filter_name: str,
            rows: Iterable[tuple[str, float, str, str | None, Mapping[str, Any], float | None]]
    ) -> int:
        """Store ``(image_id, score, decision, category, details, threshold)`` rows of one
        filter in one transaction (re-scoring an image replaces its row)."""
        now = _now()
        values = [(iid, filter_name, float(score), decision, category,
                   json.dumps(dict(details), sort_keys=True, allow_nan=False), threshold, now)
                  for iid, score, decision, category, details, threshold in rows]
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO image_filter_scores(image_id, filter, score,"
                             " decision, category, details, threshold, scored_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
        return len(values)

    def redecide_image_filter_scores(self, filter_name: str, threshold: float,
                                     category: str | None) -> int:
        """Decide ``filter_name``'s stored scores again at ``threshold`` (``block`` from it up,
        ``category`` for blocked images), for the rows decided at another threshold; returns
        how many. A scan at a new threshold then leaves no verdict made at the old one."""
        with _Transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE image_filter_scores SET"
                " decision = CASE WHEN score >= ? THEN 'block' ELSE 'allow' END,"
                " category = CASE WHEN score >= ? THEN COALESCE(category, ?) ELSE NULL END,"
                " threshold = ? WHERE filter = ? AND (threshold IS NULL OR threshold != ?)",
                (threshold, threshold, category, threshold, filter_name, threshold))
            return int(cur.rowcount)

    def image_filter_thresholds(self, filter_name: str) -> list[float]:
        """The thresholds ``filter_name``'s stored decisions were made at (usually one)."""
        return [float(t) for (t,) in self._conn.execute(
            "SELECT DISTINCT threshold FROM image_filter_scores WHERE filter = ? AND threshold"
            " IS NOT NULL ORDER BY threshold", (filter_name,))]

    def image_filter_scores_table(self, filter_name: str | None = None) -> pd.DataFrame:
        """One row per (image, filter): ``image_id, sample_id, prompt_id, stage, filter, score,
        decision, category, threshold, details`` (JSON text), ``scored_at``."""
        sql = ("SELECT f.image_id, i.sample_id, s.prompt_id, i.stage, f.filter, f.score,"
               " f.decision, f.category, f.threshold, f.details, f.scored_at"
               " FROM image_filter_scores f JOIN images i USING (image_id)"
               " JOIN samples s USING (sample_id)")
        params: list[Any] = []
        if filter_name is not None:
            sql += " WHERE f.filter = ?"
            params.append(filter_name)
        return self._frame(sql + " ORDER BY s.plan_order, i.stage, f.filter", params)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
