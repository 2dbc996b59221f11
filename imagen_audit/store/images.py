"""Atomic image files: a PNG is either absent or complete, never half-written.

Each file is written to a temporary name in the same folder, flushed to disk and renamed
over the final name, so a process killed at any instant leaves no truncated PNG that a
later stage could read as whole.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from imagen_audit.files import TMP_MARK, write_atomic


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of the image's shape and raw RGB bytes: equal digests mean identical pixels."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def to_uint8_rgb(image: object) -> np.ndarray:
    """Convert a PIL image or an HxWx3 array (uint8, or float in [0, 1]) to uint8 RGB."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    # The same rounding diffusers' numpy_to_pil uses.
    return (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 uint8 image (fixed settings, so the same pixels, same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(
        buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically: temp file in the same folder, fsync, rename."""
    write_atomic(path, data)


def write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` (HxWx3 uint8) as a PNG at ``path`` atomically (temp file + rename)."""
    write_bytes_atomic(path, encode_png(pixels))


def decode_png(data: bytes) -> np.ndarray:
    """Decode image bytes fully to HxWx3 uint8 (truncated data raises)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_png(path: Path) -> np.ndarray:
    """Read a stored image back as HxWx3 uint8 (fully decoded, so truncation is detected)."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def remove_stale_temporaries(root: Path) -> int:
    """Delete temp files left by a killed writer; returns how many were removed."""
    removed = 0
    if root.is_dir():
        for tmp in root.rglob(f"*{TMP_MARK}*"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def safe_join(root: Path, relative: str) -> Path:
    """Join ``relative`` under ``root``, refusing absolute paths and paths that leave it."""
    rel = Path(relative)
    if rel.is_absolute() or relative.startswith(("/", "\\")):
        raise ValueError(f"absolute path {relative!r} is not allowed")
    root_resolved = root.resolve()
    target = (root_resolved / rel).resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise ValueError(f"path {relative!r} leaves the folder {root}")
    return target
