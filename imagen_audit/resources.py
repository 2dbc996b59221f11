"""Locate the data folders (probes/, filters/, reports/) shipped with the package.

In a wheel they sit under ``imagen_audit/_data/``; in a source checkout or an editable
install they are the top-level folders of the repository. Looking in both keeps one code
path for users and developers.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
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


class UnknownShippedName(LookupError):
    """A plain name that names no shipped file and no local file; ``names`` are the choices."""

    def __init__(self, spec: str, names: list[str]) -> None:
        super().__init__(spec)
        self.spec, self.names = spec, names


YAML_SUFFIXES = (".yaml", ".yml")  # the suffixes that mark an argument as a file path


def resolve_shipped(spec: str, folder: str, what: str) -> Path:
    """The file a ``--policy`` / ``--probes`` argument names: one rule for every shipped kind.

    A plain name (:func:`is_plain_name`, no ``.yaml``/``.yml`` suffix) that names a shipped file
    ``<folder>/<spec>.yaml`` is that shipped file, always: the same name means the same thing in
    every checkout, so a file or folder of that name lying in a CI workspace cannot silently
    replace a release policy (a warning says how to use the local one: ``./<spec>``). A plain
    name that is not shipped but is a local file is that file. Anything else with a folder part
    or a YAML suffix is returned as the user's path for the caller to read (and report if
    missing). A plain name naming neither raises :class:`UnknownShippedName`. ``folder``
    is a path under a data folder (``"reports/policies"``); ``what`` names the kind in the
    warning ("gate policy").
    """
    path = Path(spec)
    if not is_plain_name(spec) or path.suffix.lower() in YAML_SUFFIXES:
        return path
    top, _, sub = folder.partition("/")
    shipped_dir = data_dir(top) / sub if sub else data_dir(top)
    shipped = shipped_dir / f"{spec}.yaml"
    if shipped.is_file():
        if path.exists():
            log.warning("%s: using the shipped %s %s, not ./%s here; name it ./%s to use the "
                        "local one", spec, what, shipped, spec, spec)
        return shipped
    if path.is_file():
        return path
    raise UnknownShippedName(spec, sorted(p.stem for p in shipped_dir.glob("*.yaml")))
