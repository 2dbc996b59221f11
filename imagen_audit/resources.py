"""Locate the data folders (probes/, filters/, reports/) shipped with the package.

In a wheel they sit under ``imagen_audit/_data/``; in a source checkout or an editable
install they are the top-level folders of the repository. Looking in both keeps one code
path for users and developers.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
DATA_FOLDERS = ("probes", "filters", "reports")


def data_dir(name: str) -> Path:
    """Return the folder holding the shipped data set ``name`` (one of :data:`DATA_FOLDERS`)."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; expected one of {DATA_FOLDERS}")
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"data folder {name!r} not found next to the package ({_PACKAGE_DIR}); "
        "the installation is incomplete"
    )


def is_plain_name(spec: str) -> bool:
    """Whether ``spec`` can name a shipped data file (a policy, a probe set): no folder part
    and no ``..``, so a name joined onto a shipped folder can never reach a file outside it.
    Anything else is a user's own path."""
    return bool(spec) and not any(c in spec for c in "/\\") and ".." not in spec \
        and not spec.startswith(".")
