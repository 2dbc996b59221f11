"""Reading the small documents users hand the toolkit: probe sets, prompt-filter policies, run
configs, gate policies, annotator validation records.

One reader so that every one of them is parsed the same safe way (``yaml.safe_load``, plain
``json``; never anything that builds objects) and fails the same way: an error of the
caller's kind whose message names the file and says whether it is missing or unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# ``error(message, field)``: the caller's exception for a message that does not name the
# file (the caller's error class or wrapper adds it) and the field it concerns, if any.
ErrorAt = Callable[[str, "str | None"], Exception]


def read_text(path: Path, error: ErrorAt, what: str = "file") -> str:
    """The UTF-8 text of ``path``, or ``error(message, None)``: ``no such WHAT`` when it is
    missing, ``cannot read WHAT (reason)`` when the system refuses it, ``not UTF-8 text (byte,
    offset, line)`` when it was saved in another encoding. Every document the toolkit reads
    (policies, probe sets, run configs, gate policies, folder manifests, label CSVs) fails
    through here, so a user sees the
    same words for the same mistake whichever file it is in."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"no such {what}", None) from None
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})", None) from exc
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, "
                    f"line {line}); save the file as UTF-8", None) from exc


def parse_yaml(text: str, error: ErrorAt, *, unique_keys: bool = False,
               loader: type | None = None) -> Any:
    """The single YAML document in ``text``, read safely (``yaml.SafeLoader`` or ``loader``, a
    subclass of it; never python tags), or ``error(message, field)``: ``not valid YAML
    (where and why)``, or with ``unique_keys`` a key given twice in one mapping, naming the
    field and both lines (:mod:`imagen_audit.unique_yaml`): for files whose values decide
    something, where plain YAML's "the last one wins" would hide an edit."""
    import yaml

    from imagen_audit import unique_yaml

    if unique_keys and loader is not None:
        raise TypeError("parse_yaml: give unique_keys or a loader, not both")
    if loader is not None and not issubclass(loader, yaml.SafeLoader):
        raise TypeError(f"{loader.__name__} is not a yaml.SafeLoader")
    try:
        if unique_keys:
            return unique_yaml.load(text)
        return yaml.load(text, Loader=loader or yaml.SafeLoader)  # a SafeLoader, checked above
    except unique_yaml.DuplicateKeyError as exc:
        raise error(exc.describe(), unique_yaml.field_at(text, exc.again)) from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML: {exc}", None) from None


def read_document(path: str | Path, fmt: str, error: Callable[[str], Exception],
                  what: str = "file", *, unique_keys: bool = False) -> Any:
    """The parsed content of the ``fmt`` (``"YAML"`` or ``"JSON"``) file at ``path``.

    Raises ``error(message)`` with a message that starts with the path (and the field, when
    one is at fault): ``no such WHAT``, ``cannot read WHAT``, ``not UTF-8 text``, ``not valid
    YAML`` or ``not valid JSON`` (:func:`read_text`, :func:`parse_yaml`). ``unique_keys``
    (YAML only) refuses a key given twice in one mapping.
    """
    path = Path(path)

    def at(message: str, field: str | None) -> Exception:
        return error(f"{path}" + (f", field '{field}'" if field else "") + f": {message}")

    text = read_text(path, at, what)
    if fmt == "YAML":
        return parse_yaml(text, at, unique_keys=unique_keys)
    if fmt != "JSON":
        raise ValueError(f"unknown document format {fmt!r}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise at(f"not valid JSON: {exc}", None) from None
