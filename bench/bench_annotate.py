"""Benchmark the default annotator (dlib-hog faces + skin tone + dlib-onnx gender).

Prints images per second at 512 and 1024 px with 1 worker and with one worker per core,
files read from disk (PNG) as in a run, with peak memory; then the validation table on
../shared/data/fairface-sample when it is present. Goal: ≥ 20 images/s at 512 px on a
2-core CPU. Usage: python bench/bench_annotate.py [--images 200]
"""

from __future__ import annotations

import argparse
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


def bench(paths: list[Path], workers: int, batch_size: int) -> tuple[float, int]:
    spec = AnnotatorSpec()
    start = time.perf_counter()
    faces = sum(a.n_faces for _, a in iter_annotations(
        ((p.name, p) for p in paths), spec, batch_size=batch_size, workers=workers))
    return time.perf_counter() - start, faces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    cores = default_workers()
    print(f"default annotator {AnnotatorSpec().key}, {cores} cores, {args.images} images "
          f"per size, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (512, 1024):
            paths = make_images(Path(tmp), size, args.images)
            for workers in sorted({1, cores}):
                seconds, faces = bench(paths, workers, args.batch_size)
                me, kids = peak_mb()
                print(f"{size:>5} px  workers={workers}: {len(paths) / seconds:6.1f} images/s "
                      f"({1000 * seconds / len(paths):5.1f} ms/image, {faces} faces); peak RSS "
                      f"parent {me:.0f} MB, largest worker {kids:.0f} MB")
    labels = SHARED / "fairface-sample" / "labels.csv"
    if labels.is_file():
        from imagen_audit.annotate.validate import format_table, validate_annotators

        start = time.perf_counter()
        record = validate_annotators(labels, workers=cores)
        print(f"\nfairface-sample ({record['n_files']} images, {time.perf_counter() - start:.1f}"
              f" s), gender threshold {record['gender_threshold']}:")
        print(format_table(record))
        g = record["gender"]["overall"]
        print("confusion (rows true female/male; columns female/male/unknown/no_face):",
              g["confusion"])
    else:
        print(f"\n{labels} not found: validation table skipped")


if __name__ == "__main__":
    main()
