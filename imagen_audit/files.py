"""Atomic file writes: a result file is either absent or complete, never half-written.

Every writer in the toolkit (images, exports, reports, validation records, filter results)
goes through here: the data is written to a hidden temporary name in the same folder,
flushed to disk and renamed over the final name, so a process killed at any instant leaves
nothing that a later stage could read as whole. Leftover temporaries match ``*.tmp-*``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """The hidden temporary name used while ``path`` is being written."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``path``.

    For writers that want a file name (``DataFrame.to_parquet``, ``savefig``); on error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write text (UTF-8) or bytes to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    return path
