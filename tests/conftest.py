"""Shared test set-up: offline, temporary caches, and the tiny models built once per session.

The tiny cascade is built from configs, saved with ``save_pretrained`` and loaded back with
``from_pretrained(local_files_only=True)``: the real loading path, with no download.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports huggingface_hub/transformers: a missing model must fail at once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="imagen-audit-tests-"))
atexit.register(shutil.rmtree, _SESSION_TMP, ignore_errors=True)
os.environ.setdefault("IMAGEN_AUDIT_CACHE", str(_SESSION_TMP / "cache"))
os.environ.setdefault("MPLCONFIGDIR", str(_SESSION_TMP / "mpl"))
os.environ.setdefault("DEEPFACE_HOME", str(_SESSION_TMP / "deepface"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_cascade_dir() -> Path:
    """The tiny cascade's folder (three saved pipelines), built once per test session."""
    from imagen_audit.generate.tiny import ensure_tiny_cascade

    return ensure_tiny_cascade()


@pytest.fixture
def cli_env(tiny_cascade_dir: Path) -> dict[str, str]:
    """Environment for running the CLI in a subprocess (offline, same model cache)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
