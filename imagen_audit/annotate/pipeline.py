"""Annotate images while generation is still going (a pipeline), on CPU workers.

Generation is GPU-bound and annotation CPU-bound, so on a cluster they should overlap: as
the driver commits a sample, its images are sent to annotation workers (CPU processes
locally, CPU actors on Ray), and finished annotations are committed by the same driver
between generation results. The run store keeps one writer, and annotation stays
resumable: images generated earlier but not yet annotated are queued first, and whatever
is still in flight when the process dies is simply annotated by the next run.

Workers receive the encoded PNG bytes read through the run's image storage, so they need
no access to the run folder.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from imagen_audit.store.records import ImageRecord
from imagen_audit.store.run_store import RunStore

log = logging.getLogger(__name__)

_WORKER: Any = None


def _init(spec: Any) -> None:
    global _WORKER
    _WORKER = spec.build()


def annotate_encoded(annotator: Any, batch: Sequence[tuple[str, bytes]]
                     ) -> list[tuple[str, Any]]:
    """Decode and annotate ``(image_id, png bytes)`` pairs; unreadable ones carry an error."""
    from imagen_audit.annotate.base import load_image

    images: list[Any] = []
    for _, data in batch:
        try:
            images.append(load_image(io.BytesIO(data)))
        except Exception as exc:  # recorded per image; the batch goes on
            images.append(exc)
    return list(zip([k for k, _ in batch], annotator.annotate(images), strict=True))


def _work(batch: Sequence[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    return annotate_encoded(_WORKER, batch)


class _AnnotatorActor:
    def __init__(self, spec: Any) -> None:
        self.annotator = spec.build()

    def annotate(self, batch: Sequence[tuple[str, bytes]]) -> list[tuple[str, Any]]:
        return annotate_encoded(self.annotator, batch)


@dataclass
class PipelineSummary:
    annotator: str
    annotated: int = 0
    failed: int = 0
    faces: int = 0


class AnnotationPipeline:
    """Queue images as they are committed; commit their annotations as they finish."""

    def __init__(self, store: RunStore, spec: Any, *, executor: str = "local",
                 workers: int = 1, batch_size: int = 8,
                 stages: Sequence[int] | None = None) -> None:
        self.store = store
        self.spec = spec
        self.stages = set(stages) if stages else None
        self.batch_size = batch_size
        self.summary = PipelineSummary(spec.key)
        local = spec.build()  # fails early (missing weights) and gives the full config
        try:
            store.register_annotator(spec.key, local.config())
        finally:
            local.close()
        self._batch: list[tuple[str, bytes]] = []
        self._pending: deque[Any] = deque()
        self._max_pending = 2 * max(workers, 1)
        if executor == "ray":
            import ray

            actor = ray.remote(_AnnotatorActor).options(num_cpus=1, num_gpus=0)
            self._actors = [actor.remote(spec) for _ in range(max(workers, 1))]
            self._next = 0
            self._pool = None
        else:
            self._actors = []
            self._pool = ProcessPoolExecutor(max(workers, 1), mp_context=mp.get_context("spawn"),
                                             initializer=_init, initargs=(spec,))
        # Images generated earlier (an interrupted run) but never annotated go first.
        for page in store.iter_images_to_annotate(spec.key, 256, sorted(self.stages or [])
                                                  or None):
            for image_id, rel in page:
                self._add(image_id, store.storage.read(rel))

    def submit(self, records: Sequence[ImageRecord]) -> None:
        """Queue a just-committed sample's images (those of the selected stages)."""
        for r in records:
            if self.stages is None or r.stage in self.stages:
                self._add(r.image_id, self.store.storage.read(r.path))
        self.poll()

    def _add(self, image_id: str, data: bytes) -> None:
        self._batch.append((image_id, data))
        if len(self._batch) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self._pool is not None:
            self._pending.append(self._pool.submit(_work, batch))
        else:
            actor = self._actors[self._next % len(self._actors)]
            self._next += 1
            self._pending.append(actor.annotate.remote(batch))
        while len(self._pending) > self._max_pending:  # bounded memory: wait for the oldest
            self._commit(self._pending.popleft())

    def poll(self) -> None:
        """Commit every annotation batch that has finished (never blocks)."""
        while self._pending and self._done(self._pending[0]):
            self._commit(self._pending.popleft())

    def _done(self, handle: Any) -> bool:
        if isinstance(handle, Future):
            return handle.done()
        import ray

        ready, _ = ray.wait([handle], timeout=0)
        return bool(ready)

    def _commit(self, handle: Any) -> None:
        from imagen_audit.annotate.runner import face_rows

        if isinstance(handle, Future):
            results = handle.result()
        else:
            import ray

            results = ray.get(handle)
        for image_id, ann in results:
            self.store.commit_image_annotation(image_id, self.spec.key, face_rows(ann),
                                               error=ann.error, seconds=ann.seconds)
            if ann.error:
                self.summary.failed += 1
            else:
                self.summary.annotated += 1
                self.summary.faces += ann.n_faces

    def finish(self) -> PipelineSummary:
        """Annotate what is left and commit everything."""
        self._flush()
        while self._pending:
            self._commit(self._pending.popleft())
        self.close()
        return self.summary

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._actors:
            import ray

            for actor in self._actors:
                ray.kill(actor)
            self._actors = []
