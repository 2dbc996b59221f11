"""SQLite schema of a run folder and its migrations.

The database is the run's source of truth: a sample counts as generated only when its row
says ``done``, and that row is written in the same transaction as its image rows, after
the PNG files are safely on disk. The ``migrations`` table lets later versions of the
toolkit migrate old runs forward and refuse runs written by newer versions.
"""

from __future__ import annotations

import sqlite3

# Named migrations, applied in this order and recorded in the ``migrations`` table. Append,
# never edit or reorder: a database records which ones it has, so features that land
# independently (annotations, filter scores, ...) each add their own tables.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_runs", """
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
    """),
    # Perceived attributes (issue 3): one row per (image, annotator), done or failed, and
    # one row per detected face. An image with no face has its image row and no face rows.
    ("0002_annotations", """
    CREATE TABLE annotators (
        annotator  TEXT PRIMARY KEY,
        config     TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE image_annotations (
        image_id     TEXT NOT NULL REFERENCES images(image_id),
        annotator    TEXT NOT NULL REFERENCES annotators(annotator),
        status       TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        n_faces      INTEGER,
        error        TEXT,
        seconds      REAL,
        attempts     INTEGER NOT NULL DEFAULT 1,
        annotated_at TEXT NOT NULL,
        PRIMARY KEY (image_id, annotator)
    );
    CREATE INDEX image_annotations_annotator ON image_annotations(annotator, status);
    CREATE TABLE face_annotations (
        image_id           TEXT NOT NULL,
        annotator          TEXT NOT NULL,
        face_index         INTEGER NOT NULL,
        box_left           REAL NOT NULL,
        box_top            REAL NOT NULL,
        box_right          REAL NOT NULL,
        box_bottom         REAL NOT NULL,
        detection_score    REAL,
        landmarks          TEXT,
        perceived_gender   TEXT CHECK (perceived_gender IN ('female', 'male', 'unknown')),
        gender_probability REAL CHECK (gender_probability BETWEEN 0 AND 1),
        p_female           REAL CHECK (p_female BETWEEN 0 AND 1),
        monk_tone          INTEGER CHECK (monk_tone BETWEEN 1 AND 10),
        ita                REAL,
        ita_category       TEXT CHECK (ita_category IN ('very_light', 'light',
                           'intermediate', 'tan', 'brown', 'dark')),
        tone_confidence    REAL CHECK (tone_confidence BETWEEN 0 AND 1),
        skin_pixels        INTEGER,
        skin_l             REAL,
        skin_a             REAL,
        skin_b             REAL,
        PRIMARY KEY (image_id, annotator, face_index),
        FOREIGN KEY (image_id, annotator)
            REFERENCES image_annotations(image_id, annotator) ON DELETE CASCADE
    );
    """),
    # Output-image filters (issue 5): one row per (image, filter) with the filter's score,
    # decision at its threshold, category and detected classes (JSON).
    ("0003_image_filters", """
    CREATE TABLE image_filter_scores (
        image_id  TEXT NOT NULL REFERENCES images(image_id),
        filter    TEXT NOT NULL,
        score     REAL NOT NULL CHECK (score BETWEEN 0 AND 1),
        decision  TEXT NOT NULL CHECK (decision IN ('block', 'allow')),
        category  TEXT,
        threshold REAL,
        details   TEXT NOT NULL DEFAULT '{}',
        scored_at TEXT NOT NULL,
        PRIMARY KEY (image_id, filter)
    );
    CREATE INDEX image_filter_scores_filter ON image_filter_scores(filter, decision);
    """),
    # Mitigations (issue 8): the prompt actually sent to the model, when a mitigation (a
    # prompt template, identity-descriptor augmentation) rewrote the probe prompt.
    ("0004_effective_prompts", """
    ALTER TABLE samples ADD COLUMN effective_prompt TEXT;
    """),
)


SCHEMA_VERSION = len(MIGRATIONS)


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations this database has (empty for a new database)."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='migrations'").fetchone()
    if not has_table:
        return []
    return [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY applied_order")]


def current_version(conn: sqlite3.Connection) -> int:
    """How many migrations the database has (0 for an empty one)."""
    return len(applied_migrations(conn))


def check_known(conn: sqlite3.Connection, where: object) -> list[str]:
    """Refuse a database written by a newer imagen-audit (it has migrations we don't know)."""
    from imagen_audit.errors import RunStoreError

    applied = applied_migrations(conn)
    known = [name for name, _ in MIGRATIONS]
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise RunStoreError(
            f"{where}: written by a newer imagen-audit (unknown schema parts {unknown}); "
            "upgrade imagen-audit")
    return applied


def migrate(conn: sqlite3.Connection, where: object = "run database") -> list[str]:
    """Apply the migrations the database lacks; returns the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, "
                 "applied_order INTEGER NOT NULL, applied_at TEXT NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP)")
    applied = set(check_known(conn, where))
    done = []
    for order, (name, sql) in enumerate(MIGRATIONS):
        if name in applied:
            continue
        # One transaction per migration: a crash leaves the previous state intact.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO migrations(name, applied_order) "
            f"VALUES ('{name}', {order});\nCOMMIT;")
        done.append(name)
    return done
