"""One writer per run folder.

Two processes generating into the same folder would plan and commit over each other. The
writer holds an exclusive, non-blocking ``flock`` on ``RUN_DIR/.lock`` for its whole life;
the kernel releases it when the process dies (even on SIGKILL), so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from imagen_audit.errors import RunLockedError


class RunLock:
    """Exclusive lock on a run folder, held until :meth:`release` or process exit."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._fh = None

    def acquire(self) -> RunLock:
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the lock
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunLockedError(
                f"run folder {self.path.parent} is in use by {holder}; wait for it to finish "
                "or stop it (its work is kept and resumes on the next run)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
