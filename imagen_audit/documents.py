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
                  what: str = "file") -> Any:
    """The parsed content of the ``fmt`` (``"YAML"`` or ``"JSON"``) file at ``path``.

    Raises ``error(message)``: ``"PATH: no such WHAT"`` when the file is missing,
    ``"PATH: not readable FMT (reason)"`` when it cannot be read or parsed.
    """
    import yaml

    path = Path(path)
    parse = {"YAML": yaml.safe_load, "JSON": json.loads}[fmt]
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise error(f"{path}: not readable {fmt} ({exc})") from None
