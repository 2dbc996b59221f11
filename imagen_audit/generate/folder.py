"""Import images that someone else generated, so they can be audited like our own.

The folder holds the images and a ``manifest.csv`` with columns ``file`` and ``prompt``
(optional: ``seed``, ``prompt_id``, ``family``, ``template_id``, ``occupation_id``,
``identity_id``, ``identity_axis``; the last ones link images to our probe sets). The
manifest and the folder are untrusted: every row is checked, files must stay inside the
folder, and each error names the manifest line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagen_audit.documents import read_text
from imagen_audit.errors import ManifestError
from imagen_audit.generate.base import GeneratorOptions, register
from imagen_audit.probes import Prompt
from imagen_audit.store.images import read_png, safe_join
from imagen_audit.store.records import (
    PlannedSample,
    SampleFailure,
    SampleResult,
    StageSpec,
)

MANIFEST = "manifest.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
_OPTIONAL = ("prompt_id", "family", "template_id", "occupation_id", "identity_id",
             "identity_axis")


@dataclass(frozen=True)
class ManifestRow:
    line: int
    file: str
    prompt: str
    seed: int | None
    attrs: dict[str, str]


def read_manifest(folder: Path) -> list[ManifestRow]:
    """Parse and check ``folder/manifest.csv``; errors name the file, line and column."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (a CSV with columns file, prompt "
                            "and optional seed)")
    rows: list[ManifestRow] = []
    seen: set[Path] = set()
    text = read_text(path, lambda message, _: ManifestError(f"{path}: {message}"), "manifest")
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "prompt"} - set(reader.fieldnames or [])
        if missing:
            raise ManifestError(f"{path}: missing column(s) {sorted(missing)}")
        for row in reader:
            line = reader.line_num
            where = f"{path}, line {line}"
            file = (row.get("file") or "").strip()
            prompt = (row.get("prompt") or "").strip()
            if not file:
                raise ManifestError(f"{where}, column 'file': empty")
            if not prompt:
                raise ManifestError(f"{where}, column 'prompt': empty")
            try:
                target = safe_join(folder, file)
            except ValueError as exc:
                raise ManifestError(f"{where}, column 'file': refused: {exc}") from None
            if target.suffix.lower() not in IMAGE_SUFFIXES:
                raise ManifestError(f"{where}, column 'file': {file!r} is not an image "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            if not target.is_file():
                raise ManifestError(f"{where}, column 'file': {file!r} not found (put the file "
                                    "back, or remove its row)")
            if target in seen:  # by resolved path: "a.png" and "./a.png" are one file
                raise ManifestError(f"{where}, column 'file': {file!r} listed twice")
            seen.add(target)
            seed_text = (row.get("seed") or "").strip()
            try:
                seed = int(seed_text) if seed_text else None
            except ValueError:
                raise ManifestError(f"{where}, column 'seed': {seed_text!r} is not an integer"
                                    ) from None
            attrs = {k: row[k].strip() for k in _OPTIONAL if (row.get(k) or "").strip()}
            rows.append(ManifestRow(line, file, prompt, seed, attrs))
    if not rows:
        raise ManifestError(f"{path}: no rows")
    return rows


class FolderImporter:
    """A one-stage 'generator' that reads images from a folder listed in its manifest."""

    name = "folder"

    def __init__(self, folder: str) -> None:
        if not folder:
            raise ManifestError("--model folder:PATH needs a folder")
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ManifestError(f"{folder}: not a folder")
        self.rows = read_manifest(self.folder)

    # Self-planning: the plan comes from the manifest, not from probe files.
    def prompts(self) -> list[Prompt]:
        out: dict[str, Prompt] = {}
        for r in self.rows:
            pid = self._prompt_id(r)
            prev = out.get(pid)
            if prev is not None and prev.prompt != r.prompt:
                raise ManifestError(f"{self.folder / MANIFEST}, line {r.line}: prompt_id "
                                    f"{pid!r} already used for another prompt")
            out.setdefault(pid, Prompt(
                prompt_id=pid, prompt=r.prompt, family=r.attrs.get("family", "imported"),
                template_id=r.attrs.get("template_id", "manifest"),
                occupation_id=r.attrs.get("occupation_id"),
                identity_id=r.attrs.get("identity_id"),
                identity_axis=r.attrs.get("identity_axis")))
        return list(out.values())

    def sample_rows(self) -> list[tuple[str, int, int | None, str]]:
        counts: dict[str, int] = {}
        rows = []
        for r in self.rows:
            pid = self._prompt_id(r)
            index = counts.get(pid, 0)
            counts[pid] = index + 1
            rows.append((pid, index, r.seed, r.file))
        return rows

    @staticmethod
    def _prompt_id(row: ManifestRow) -> str:
        return row.attrs.get("prompt_id") or \
            "imported/" + hashlib.sha256(row.prompt.encode()).hexdigest()[:12]

    def stages(self) -> list[StageSpec]:
        return [StageSpec(1, "imported")]

    def config(self) -> dict[str, Any]:
        return {"generator": self.name, "folder": str(self.folder)}

    def generate(self, batch: Sequence[PlannedSample]
                 ) -> Iterator[SampleResult | SampleFailure]:
        """Read each sample's file; one that does not decode is a failed sample, not a stop.

        The files are untrusted: empty, truncated, not an image, a decompression bomb, a
        bit depth with no known white point. Any of these fails that sample alone, with
        the file and its manifest line in the message; the run goes on, and the same
        command retries it once the file is fixed (or drops it once its row is removed).
        """
        prov = {**self.config(), "note": "images imported as given; seeds from the manifest"}
        lines = {r.file: r.line for r in self.rows}
        for s in batch:
            file = s.source_file or ""
            line = lines.get(file)
            where = f"{self.folder / file} ({MANIFEST}" + \
                (f", line {line})" if line is not None else ")")
            try:
                pixels = read_png(safe_join(self.folder, file))
            except Exception as exc:  # any decoder failure fails this file alone
                yield SampleFailure(s.sample_id, f"{where}: cannot read image "
                                                 f"({type(exc).__name__}: {exc})")
                continue
            yield SampleResult(s.sample_id, {1: pixels}, prov)

    def close(self) -> None:
        pass


@register("folder")
def _make(argument: str, opts: GeneratorOptions) -> FolderImporter:
    return FolderImporter(argument)
