"""Errors that the CLI maps to exit codes.

Every error a user can cause names what to fix: the file, the entry, the field. The CLI
turns :class:`AuditError` into exit code 2 ("could not run"), keeping 1 for a gate that
ran and failed.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class for errors caused by input or state the user can fix."""

    exit_code = 2


class ProbeFileError(AuditError):
    """A probe file is missing, unreadable or does not match the schema."""

    def __init__(self, path: object, message: str, *, entry: str | None = None,
                 field: str | None = None) -> None:
        where = str(path)
        if entry is not None:
            where += f", entry {entry}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.entry = entry
        self.field = field


class ManifestError(AuditError):
    """A folder-import manifest is invalid (bad row, missing file, path leaving the folder)."""


class RunStoreError(AuditError):
    """The run folder cannot be used as asked (wrong plan, newer schema, corrupt state)."""


class RunLockedError(RunStoreError):
    """Another process holds the run folder."""


class ModelSpecError(AuditError):
    """A --model value names no known generator or cannot be loaded."""
