"""Annotate a run store, resumably: only images the annotator has not done, a progress bar.

Images are read and annotated in batches by worker processes (each builds its own
annotator once from the picklable :class:`AnnotatorSpec`, with one thread each, so the
cores are used in parallel); only paths go to a worker and only small records come back.
At most ``2 × workers`` batches are in flight, so memory is bounded by the batch size, not
the run size. The parent commits every image in its own transaction as soon as its batch
returns: killing the process loses at most the batches in flight, and running the same
command again annotates exactly the images still missing (failed ones are retried).

A file that cannot be read (corrupt, truncated, not an image, too large) is recorded as
failed with its error; the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from imagen_audit.annotate.base import Annotator, AnnotatorSpec, ImageAnnotation, load_image
from imagen_audit.store.run_store import RunStore

log = logging.getLogger(__name__)

_WORKER: Annotator | None = None


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(spec: AnnotatorSpec) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER = spec.build()


def _read(path: Path) -> Any:
    try:
        return load_image(path)
    except Exception as exc:  # recorded per file, the batch goes on
        return exc


def annotate_paths(annotator: Annotator, paths: Sequence[Path]) -> list[ImageAnnotation]:
    """Read and annotate a batch of files; unreadable files come back with ``error`` set."""
    images = [_read(p) for p in paths]
    try:
        return annotator.annotate(images)
    except Exception as exc:  # a model failure on the batch: retry one by one
        if len(paths) == 1:
            return [ImageAnnotation(error=f"{type(exc).__name__}: {exc}"[:2000])]
        return [annotate_paths(annotator, [p])[0] for p in paths]


def _work(batch: list[tuple[Any, Path]]) -> list[tuple[Any, ImageAnnotation]]:
    assert _WORKER is not None
    return list(zip([k for k, _ in batch], annotate_paths(_WORKER, [p for _, p in batch]),
                    strict=True))


def iter_annotations(items: Iterable[tuple[Any, Path]], spec: AnnotatorSpec, *,
                     batch_size: int = 16, workers: int | None = None,
                     annotator: Annotator | None = None
                     ) -> Iterator[tuple[Any, ImageAnnotation]]:
    """Annotate ``(key, path)`` items in batches, in parallel; yields ``(key, annotation)``.

    ``workers`` ≤ 1 runs in this process (with ``annotator`` if given). Results come back
    in input order.
    """
    workers = default_workers() if workers is None else workers

    def batches() -> Iterator[list[tuple[Any, Path]]]:
        batch: list[tuple[Any, Path]] = []
        for item in items:
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    if workers <= 1:
        own = annotator or spec.build()
        try:
            for batch in batches():
                yield from _work_with(own, batch)
        finally:
            if annotator is None:
                own.close()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn: no fork after torch/onnxruntime threads started. A worker that cannot start
    # breaks the pool (BrokenProcessPool) instead of being respawned forever.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(spec,)) as pool:
        pending: deque = deque()
        try:
            for batch in batches():
                pending.append(pool.submit(_work, batch))
                while len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _work_with(annotator: Annotator, batch: list[tuple[Any, Path]]
               ) -> list[tuple[Any, ImageAnnotation]]:
    return list(zip([k for k, _ in batch], annotate_paths(annotator, [p for _, p in batch]),
                    strict=True))


def face_rows(annotation: ImageAnnotation) -> list[dict[str, Any]]:
    """The ``face_annotations`` columns of each face of an image."""
    rows = []
    for fa in annotation.faces:
        left, top, right, bottom = fa.face.box
        g, t = fa.gender, fa.tone
        rows.append({
            "face_index": fa.face_index, "box_left": left, "box_top": top,
            "box_right": right, "box_bottom": bottom, "detection_score": fa.face.score,
            "landmarks": [list(p) for p in fa.face.landmarks] if fa.face.landmarks else None,
            "perceived_gender": g.label if g else None,
            "gender_probability": g.probability if g else None,
            "p_female": g.p_female if g else None, "monk_tone": t.monk_tone, "ita": t.ita,
            "ita_category": t.ita_category, "tone_confidence": t.confidence,
            "skin_pixels": t.skin_pixels,
            "skin_l": t.lab[0] if t.lab else None, "skin_a": t.lab[1] if t.lab else None,
            "skin_b": t.lab[2] if t.lab else None})
    return rows


@dataclass(frozen=True)
class AnnotateSummary:
    annotator: str
    to_annotate: int
    annotated: int
    failed: int
    faces: int
    seconds: float


def annotate_run(run_dir: str | Path, spec: AnnotatorSpec | None = None, *,
                 stages: Sequence[int] | None = None, batch_size: int = 16,
                 workers: int | None = None, progress: bool = True,
                 retry_failed: bool = True, executor: str = "local",
                 ray_address: str | None = None) -> AnnotateSummary:
    """Annotate every image of ``run_dir`` that ``spec``'s annotator has not done yet.

    ``executor="ray"`` annotates on CPU actors of a Ray cluster (``ray_address``, or a local
    one); the driver reads the images and commits the results, as in the local case.
    """
    from imagen_audit.errors import AuditError
    from imagen_audit.store.run_store import require_run_folder

    spec = spec or AnnotatorSpec()
    require_run_folder(run_dir)
    if executor not in ("local", "ray"):
        raise AuditError(f"unknown --executor {executor!r}; choose local or ray")
    start = time.perf_counter()
    if executor == "ray":
        return _annotate_on_ray(run_dir, spec, stages, batch_size, workers, ray_address, start)
    with RunStore.open(run_dir, create=False) as store:
        # Build here first: fails early on missing weights, gives the full config, and a
        # different configuration under the same name is refused even with nothing to do.
        local = spec.build()
        try:
            store.register_annotator(spec.key, local.config())
            todo = store.count_images_to_annotate(spec.key, stages, retry_failed)
            if todo == 0:
                log.info("nothing to annotate: every image of %s is annotated by %s",
                         run_dir, spec.key)
                return AnnotateSummary(spec.key, 0, 0, 0, 0, time.perf_counter() - start)
            workers = default_workers() if workers is None else workers
            workers = min(workers, max(1, -(-todo // batch_size)))
            # Workers get local paths (a remote image store is cached locally first), so
            # only a path crosses to a worker process, not the encoded image.
            items = ((image_id, store.image_path(rel)) for page in
                     store.iter_images_to_annotate(spec.key, max(batch_size, 64), stages,
                                                   retry_failed) for image_id, rel in page)
            annotated = failed = faces = 0
            with tqdm(total=todo, unit="image", desc=f"annotate ({spec.key})",
                      disable=not progress) as bar:
                for image_id, ann in iter_annotations(
                        items, spec, batch_size=batch_size, workers=workers,
                        annotator=local if workers <= 1 else None):
                    store.commit_image_annotation(image_id, spec.key, face_rows(ann),
                                                  error=ann.error, seconds=ann.seconds)
                    if ann.error:
                        failed += 1
                        log.warning("%s: %s", image_id, ann.error)
                    else:
                        annotated += 1
                        faces += ann.n_faces
                    bar.update()
        finally:
            local.close()
    summary = AnnotateSummary(spec.key, todo, annotated, failed, faces,
                              time.perf_counter() - start)
    log.info("annotated %d images (%d faces, %d failed) in %.1f s", annotated, faces, failed,
             summary.seconds)
    return summary


def _annotate_on_ray(run_dir: str | Path, spec: AnnotatorSpec, stages: Sequence[int] | None,
                     batch_size: int, workers: int | None, address: str | None,
                     start: float) -> AnnotateSummary:
    import ray

    from imagen_audit.annotate.pipeline import AnnotationPipeline

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
    try:
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        with RunStore.open(run_dir, create=False) as store:
            todo = store.count_images_to_annotate(spec.key, stages)
            pipeline = AnnotationPipeline(store, spec, executor="ray", workers=workers,
                                          batch_size=batch_size, stages=stages)
            try:
                done = pipeline.finish()
            finally:
                pipeline.close()
    finally:
        if started:
            ray.shutdown()
    summary = AnnotateSummary(spec.key, todo, done.annotated, done.failed, done.faces,
                              time.perf_counter() - start)
    log.info("annotated %d images on Ray (%d faces, %d failed) in %.1f s", done.annotated,
             done.faces, done.failed, summary.seconds)
    return summary
