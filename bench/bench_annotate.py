"""Benchmark the annotator presets (``fast`` and ``accurate``) for speed and accuracy.

Prints images per second at 512 and 1024 px with 1 worker and with one worker per core,
files read from disk (PNG) as in a run, with peak memory, for each preset; then, when
../shared/data/fairface-sample is present, the validation table of each preset (face-found
rate, coverage, accuracy, ECE per race label, confusion matrices, reliability table, ITA
AUC per pair of groups) with its time per image. Images the presets' trained parts were
fitted on are scored out-of-fold (5-fold cross-validated figures), see validate.py.
Ends with a summary: each preset's time per 512-px image (1 worker) and per FairFace image.
Goal: ``fast`` ≥ 20 images/s at 512 px on a 2-core CPU.
Usage: python bench/bench_annotate.py [--images 200] [--presets fast,accurate] [--no-speed]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imagen_audit.annotate.base import AnnotatorSpec
from imagen_audit.annotate.runner import default_workers, iter_annotations

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _photo() -> np.ndarray:
    try:
        from skimage import data

        return data.astronaut()
    except ImportError:  # a synthetic face-free image: times detection on an empty scene
        return np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)


def make_images(folder: Path, size: int, n: int) -> list[Path]:
    base = Image.fromarray(_photo()).resize((size, size), Image.BICUBIC)
    paths = []
    for i in range(n):
        im = base if i % 2 == 0 else base.transpose(Image.FLIP_LEFT_RIGHT)
        im = im.rotate((i % 7) - 3)  # every image different (no cache effects)
        path = folder / f"{size}_{i:04d}.png"
        im.save(path, compress_level=1)
        paths.append(path)
    return paths


def peak_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def bench(spec: AnnotatorSpec, paths: list[Path], workers: int, batch_size: int
          ) -> tuple[float, int]:
    start = time.perf_counter()
    faces = sum(a.n_faces for _, a in iter_annotations(
        ((p.name, p) for p in paths), spec, batch_size=batch_size, workers=workers))
    return time.perf_counter() - start, faces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--presets", default="fast,accurate")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    cores = default_workers()
    presets = [p for p in args.presets.split(",") if p]
    load = os.getloadavg()
    print(f"{cores} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{args.images} images per size, batch {args.batch_size}")
    timings: dict[tuple[str, int, int], float] = {}  # (preset, size, workers) -> s/image
    if not args.no_speed:
        with tempfile.TemporaryDirectory() as tmp:
            for size in (512, 1024):
                paths = make_images(Path(tmp), size, args.images)
                for preset in presets:
                    spec = AnnotatorSpec.from_preset(preset)
                    for workers in sorted({1, cores}):
                        seconds, faces = bench(spec, paths, workers, args.batch_size)
                        timings[(preset, size, workers)] = seconds / len(paths)
                        me, kids = peak_mb()
                        print(f"{preset:>9} {size:>5} px  workers={workers}: "
                              f"{len(paths) / seconds:6.1f} images/s "
                              f"({1000 * seconds / len(paths):6.1f} ms/image, {faces} faces); "
                              f"peak RSS parent {me:.0f} MB, largest worker {kids:.0f} MB")
    labels = SHARED / "fairface-sample" / "labels.csv"
    fairface: dict[str, float] = {}  # preset -> seconds per image per core
    if labels.is_file():
        fairface = validation_tables(labels, presets, cores)
    else:
        print(f"\n{labels} not found: validation tables skipped")
    print("\nsummary:")
    for preset in presets:
        line = f"{preset:>9}:"
        if (preset, 512, 1) in timings:
            t = timings[(preset, 512, 1)]
            line += f" {1000 * t:.0f} ms per 512 px image, 1 worker ({1 / t:.1f} images/s"
            line += ", goal >= 20)" if preset == "fast" else ")"
        if preset in fairface:
            line += (f"; {1000 * fairface[preset]:.0f} ms per FairFace image per core with "
                     f"{cores} workers (448 px, detector fallbacks and start-up included)")
        print(line)


def validation_tables(labels: Path, presets: list[str], cores: int) -> dict[str, float]:
    """Print each preset's validation table; returns its seconds per image per core."""
    from imagen_audit.annotate.validate import format_table, validate_annotators

    out = {}
    for preset in presets:
        start = time.perf_counter()
        record = validate_annotators(labels, spec=AnnotatorSpec.from_preset(preset),
                                     workers=cores)
        seconds = time.perf_counter() - start
        print(f"\nfairface-sample, preset {preset} ({record['n_files']} images in "
              f"{seconds:.1f} s with {cores} workers, "
              f"{1000 * seconds * cores / record['n_files']:.0f} ms per image per core):")
        print(format_table(record))
        out[preset] = seconds * cores / record["n_files"]
    return out


if __name__ == "__main__":
    main()
