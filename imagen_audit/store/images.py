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


_MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def pil_to_rgb8(im: Image.Image) -> np.ndarray:
    """A PIL image as HxWx3 uint8 RGB, with high-bit-depth greys scaled rather than clipped.

    ``convert("RGB")`` clips a 16-bit grey (``I;16``, or ``I`` as older Pillow opens 16-bit
    PNGs) at 255, so an imported 16-bit picture became a white square that every annotator
    and filter then scored. Those are scaled by their bit depth (65535 -> 255, rounded);
    a float image (``F``) must hold values in [0, 1]. An ``I``/``F`` image whose white point
    cannot be known (values outside those ranges) is refused with a ValueError naming the
    mode and range, never guessed. Every other mode goes through ``convert("RGB")`` as
    before, so 8-bit images come out byte-identical.
    """
    if im.mode in _MODES_16BIT or im.mode in ("I", "F"):
        arr = np.asarray(im)
        if arr.size == 0:
            raise ValueError(f"empty {im.mode} image")
        lo, hi = arr.min(), arr.max()
        if im.mode == "F":
            if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
                raise ValueError(f"32-bit float image (mode F) with values from {lo} to {hi}; "
                                 "only values in [0, 1] have a known white point: save it "
                                 "with 8 or 16 bits per channel")
            grey = np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
        else:
            if lo < 0 or hi > 65535:
                raise ValueError(f"32-bit integer image (mode {im.mode}) with values from "
                                 f"{lo} to {hi}; only 16-bit values (0 to 65535) have a "
                                 "known white point: save it with 8 or 16 bits per channel")
            # Round to the nearest 8-bit level: 257 * k maps exactly to k.
            grey = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def to_uint8_rgb(image: object) -> np.ndarray:
    """Convert a PIL image or an HxWx3 array (uint8, or float in [0, 1]) to uint8 RGB."""
    if isinstance(image, Image.Image):
        return pil_to_rgb8(image)
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
        return pil_to_rgb8(im)


def read_png(path: Path) -> np.ndarray:
    """Read an image as HxWx3 uint8 (fully decoded, so truncation is detected).

    Stored PNGs are 8-bit RGB already; imported files may hold 16-bit greys, which are
    scaled (see :func:`pil_to_rgb8`).
    """
    with Image.open(path) as im:
        im.load()
        return pil_to_rgb8(im)


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
