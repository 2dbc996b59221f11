"""Where a run's image files live: the run folder (default) or any fsspec URL.

Generating on a cluster, workers on other machines cannot write into the driver's run
folder; with ``--image-store s3://bucket/audit-1`` (or any fsspec URL: ``gs://``, ``az://``,
``file:///shared/...``) they write the PNGs themselves and send the driver only the image
records, which the driver commits. The SQLite database always stays in the run folder.

Writes are atomic on every backend: a local file is written to a temporary name, flushed
and renamed; an object store PUT is atomic by nature. Relative image paths are the same
whatever the root, and paths that would leave the root are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from imagen_audit.store import images as imgio
from imagen_audit.store.records import ImageRecord, SampleResult, StageSpec


def _checked(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"image path {rel!r} must be relative and stay inside the image root")
    return str(p)


@dataclass
class ImageStorage:
    """Image files of one run. ``url`` None means the run folder itself."""

    run_root: Path
    url: str | None = None
    _fs: Any = field(default=None, init=False, repr=False, compare=False)
    _base: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.run_root = Path(self.run_root)
        if self.url is not None and "://" not in self.url:
            self.url = str(Path(self.url).resolve())  # a plain folder path

    def __getstate__(self) -> dict[str, Any]:  # picklable for Ray workers: no live fs
        return {"run_root": self.run_root, "url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run_root"], state["url"])

    # ------------------------------------------------------------------ backends
    @property
    def local_root(self) -> Path | None:
        """The folder images live in when it is on this machine's file system."""
        if self.url is None:
            return self.run_root
        if "://" not in self.url:
            return Path(self.url)
        if self.url.startswith("file://"):
            return Path(self.url[len("file://"):])
        return None

    def _remote(self) -> tuple[Any, str]:
        if self._fs is None:
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(self.url)
        return self._fs, self._base.rstrip("/")

    # ------------------------------------------------------------------ I/O
    def write(self, rel: str, data: bytes) -> None:
        rel = _checked(rel)
        root = self.local_root
        if root is not None:
            imgio.write_bytes_atomic(root / rel, data)
            return
        fs, base = self._remote()
        fs.pipe_file(f"{base}/{rel}", data)

    def read(self, rel: str) -> bytes:
        rel = _checked(rel)
        root = self.local_root
        if root is not None:
            return imgio.safe_join(root, rel).read_bytes()
        fs, base = self._remote()
        return fs.cat_file(f"{base}/{rel}")

    def local_path(self, rel: str) -> Path:
        """A file on this machine holding the image (a cached copy for remote roots)."""
        root = self.local_root
        if root is not None:
            return imgio.safe_join(root, _checked(rel))
        cached = self._cached(rel)
        if not _complete_copy(cached):
            imgio.write_bytes_atomic(cached, self.read(rel))
        return cached

    def drop_cached(self, rel: str) -> None:
        """Forget the local copy of a remote image that a reader found unreadable, so the
        next read fetches it again instead of failing on the same bad copy forever."""
        if self.local_root is None:
            self._cached(rel).unlink(missing_ok=True)

    def _cached(self, rel: str) -> Path:
        return self.run_root / ".image-cache" / _checked(rel)

    def uri(self, rel: str) -> str:
        root = self.local_root
        if root is not None and (self.url is None or "://" not in self.url):
            return str(imgio.safe_join(root, _checked(rel)))
        return f"{self.url.rstrip('/')}/{_checked(rel)}"

    def remove_stale_temporaries(self) -> int:
        root = self.local_root
        return imgio.remove_stale_temporaries(root / "images") if root is not None else 0


_PNG_START = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _complete_copy(path: Path) -> bool:
    """Whether a cached copy can be used: present and, for a PNG (every image the store
    writes), opening with the signature and closing with the IEND chunk, so a truncated copy
    is fetched again. Reads 8 + 12 bytes, not the image."""
    try:
        with open(path, "rb") as fh:
            if path.suffix.lower() != ".png":
                return True
            head = fh.read(8)
            fh.seek(0, 2)
            if fh.tell() < 8 + len(_PNG_END):
                return False
            fh.seek(-len(_PNG_END), 2)
            return head == _PNG_START and fh.read() == _PNG_END
    except OSError:
        return False


@dataclass(frozen=True)
class StoredSample:
    """A sample whose images are already written: only the records go to the driver."""

    sample_id: str
    records: tuple[ImageRecord, ...]
    provenance: dict[str, Any]
    environment: dict[str, Any] | None = None  # of the process that generated it


def image_relpath(sample_id: str, stage: int) -> str:
    return f"images/stage{stage}/{sample_id[:2]}/{sample_id}.png"


def write_sample(storage: ImageStorage, result: SampleResult,
                 stages: dict[int, StageSpec]) -> StoredSample:
    """Encode and write a sample's images; return the records the store commits."""
    records = []
    for stage, pixels in sorted(result.images.items()):
        if stage not in stages:
            from imagen_audit.errors import RunStoreError

            raise RunStoreError(f"generator returned unregistered stage {stage}")
        arr = imgio.to_uint8_rgb(pixels)
        rel = image_relpath(result.sample_id, stage)
        storage.write(rel, imgio.encode_png(arr))
        records.append(ImageRecord(
            image_id=f"{result.sample_id}-s{stage}", sample_id=result.sample_id, stage=stage,
            stage_name=stages[stage].name, width=arr.shape[1], height=arr.shape[0], path=rel,
            pixel_sha256=imgio.pixel_digest(arr)))
    from imagen_audit.provenance import environment

    return StoredSample(result.sample_id, tuple(records), dict(result.provenance),
                        environment())



__all__ = ["ImageStorage", "StoredSample", "image_relpath", "write_sample"]
