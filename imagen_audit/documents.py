"""Reading the small documents users hand the toolkit: run configs, gate policies, annotator
validation records.

One reader so that every one of them is parsed the same safe way (``yaml.safe_load``, plain
``json``; never anything that builds objects) and fails the same way: an error of the
caller's kind whose message names the file and says whether it is missing or unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_document(path: str | Path, fmt: str, error: Callable[[str], Exception],
                  what: str = "file", *, unique_keys: bool = False) -> Any:
    """The parsed content of the ``fmt`` (``"YAML"`` or ``"JSON"``) file at ``path``.

    Raises ``error(message)``: ``"PATH: no such WHAT"`` when the file is missing,
    ``"PATH: not readable FMT (reason)"`` when it cannot be read or parsed.
    ``unique_keys`` (YAML only) refuses a key given twice in one mapping, naming the field
    and both lines (:mod:`imagen_audit.unique_yaml`): for files whose values decide something,
    where plain YAML's "the last one wins" would hide an edit.
    """
    import yaml

    from imagen_audit import unique_yaml

    path = Path(path)
    parse = {"YAML": unique_yaml.load if unique_keys else yaml.safe_load,
             "JSON": json.loads}[fmt]
    try:
        text = path.read_text(encoding="utf-8")
        return parse(text)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except unique_yaml.DuplicateKeyError as exc:
        field = unique_yaml.field_at(text, exc.again)
        where = f"{path}, field '{field}'" if field else str(path)
        raise error(f"{where}: {exc.describe()}") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise error(f"{path}: not readable {fmt} ({exc})") from None
