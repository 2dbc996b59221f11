"""What a reviewer needs to re-create an image: the software that made it.

Generators describe their own settings (model ids, revisions, scheduler, steps, guidance,
noise levels, dtype); this module adds the environment, computed once per process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = ("imagen-audit", "torch", "diffusers", "transformers", "accelerate",
                    "numpy", "pillow", "safetensors")


@functools.cache
def environment() -> dict[str, Any]:
    """Package versions, Python, platform and the toolkit's git revision (if a checkout)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"packages": versions, "python": platform.python_version(),
            "platform": platform.platform(), "git_revision": git_revision()}


def git_revision() -> str | None:
    """The git commit of the toolkit's source tree, with ``+dirty`` for local changes."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "imagen_audit"], capture_output=True, text=True, timeout=5,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def canonical_json(record: Mapping[str, Any]) -> str:
    """Stable JSON (sorted keys) so equal records have equal digests."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def digest(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()
