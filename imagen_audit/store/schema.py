"""SQLite schema of a run folder and its migrations.

The database is the run's source of truth: a sample counts as generated only when its row
says ``done``, and that row is written in the same transaction as its image rows, after
the PNG files are safely on disk. ``schema_version`` in ``meta`` lets later versions of
the toolkit migrate old runs forward and refuse runs written by newer versions.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

# Migration n brings a database from version n-1 to n. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE prompts (
        prompt_id     TEXT PRIMARY KEY,
        prompt        TEXT NOT NULL,
        family        TEXT,
        template_id   TEXT,
        occupation_id TEXT,
        identity_id   TEXT,
        identity_axis TEXT,
        controls      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE baselines (
        occupation_id      TEXT PRIMARY KEY,
        occupation         TEXT NOT NULL,
        category           TEXT,
        bls_occupation     TEXT,
        employed_thousands INTEGER,
        baseline_women     REAL,
        baseline_white     REAL,
        baseline_black     REAL,
        baseline_asian     REAL,
        baseline_hispanic_or_latino REAL
    );
    CREATE TABLE provenance (
        provenance_id INTEGER PRIMARY KEY,
        digest        TEXT NOT NULL UNIQUE,
        record        TEXT NOT NULL
    );
    CREATE TABLE samples (
        sample_id     TEXT PRIMARY KEY,
        prompt_id     TEXT NOT NULL REFERENCES prompts(prompt_id),
        sample_index  INTEGER NOT NULL,
        seed          INTEGER,
        plan_order    INTEGER NOT NULL UNIQUE,
        source_file   TEXT,
        status        TEXT NOT NULL DEFAULT 'planned'
                      CHECK (status IN ('planned', 'done', 'failed')),
        attempts      INTEGER NOT NULL DEFAULT 0,
        error         TEXT,
        provenance_id INTEGER REFERENCES provenance(provenance_id),
        finished_at   TEXT,
        UNIQUE (prompt_id, sample_index)
    );
    CREATE INDEX samples_status ON samples(status, plan_order);
    CREATE TABLE stages (
        stage  INTEGER PRIMARY KEY,
        name   TEXT NOT NULL,
        width  INTEGER,
        height INTEGER
    );
    CREATE TABLE images (
        image_id     TEXT PRIMARY KEY,
        sample_id    TEXT NOT NULL REFERENCES samples(sample_id),
        stage        INTEGER NOT NULL REFERENCES stages(stage),
        width        INTEGER NOT NULL,
        height       INTEGER NOT NULL,
        path         TEXT NOT NULL UNIQUE,
        pixel_sha256 TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        UNIQUE (sample_id, stage)
    );
    """,
)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0 for an empty one)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to :data:`SCHEMA_VERSION`; returns the version it started at."""
    start = current_version(conn)
    if start > SCHEMA_VERSION:
        from imagen_audit.errors import RunStoreError

        raise RunStoreError(
            f"run database has schema version {start}, newer than this imagen-audit "
            f"understands ({SCHEMA_VERSION}); upgrade imagen-audit")
    for version in range(start + 1, SCHEMA_VERSION + 1):
        # One transaction per migration: a crash leaves the previous version intact.
        conn.executescript(
            "BEGIN IMMEDIATE;\n" + MIGRATIONS[version - 1]
            + "\nINSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', "
            + f"'{version}');\nCOMMIT;")
    return start
