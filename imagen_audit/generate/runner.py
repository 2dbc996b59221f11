"""Drive a generator over a run's plan: batches in, committed samples out, resumable.

The runner pulls pending samples from the store page by page (so memory stays flat however
large the plan), hands each page to the generator and commits every sample as soon as its
images are on disk. Killing it at any point loses at most the samples in flight; running
the same command again finishes exactly the planned set.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from tqdm.auto import tqdm

from imagen_audit.errors import AuditError
from imagen_audit.generate.base import Generator, GeneratorOptions, make_generator
from imagen_audit.generate.executors import (
    Executor,
    GeneratorSpec,
    LocalExecutor,
    ShardFailure,
    make_executor,
)
from imagen_audit.generate.mitigations import Mitigation
from imagen_audit.probes import ProbeSet, Prompt
from imagen_audit.store.records import ImageRecord, SampleFailure
from imagen_audit.store.run_store import PlanSummary, RunStore
from imagen_audit.store.storage import StoredSample, write_sample

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILED_BATCHES = 3
WRITER_THREADS = 2
MAX_PENDING_WRITES = 4  # samples whose images are being encoded (bounds memory)


@runtime_checkable
class SelfPlanning(Protocol):
    """A generator whose plan comes from its own source (e.g. a folder's manifest)."""

    def prompts(self) -> Sequence[Prompt]: ...

    def sample_rows(self) -> Sequence[tuple[str, int, int | None, str | None]]: ...


@dataclass(frozen=True)
class RunSummary:
    """Outcome of one ``generate`` call on a run folder."""

    planned: int
    added_to_plan: int
    already_done: int
    generated: int
    failed: int
    seconds: float
    generator: str
    notice: str | None = None
    annotated: int | None = None  # images annotated while generating, when asked

    @property
    def complete(self) -> bool:
        return self.already_done + self.generated == self.planned


def plan_run(store: RunStore, generator: Generator, probes: ProbeSet | None = None,
             samples_per_prompt: int = 1, base_seed: int = 0,
             mitigation: Mitigation | None = None) -> PlanSummary:
    """Write the plan into the store (idempotent: the same arguments add nothing)."""
    mitigation = mitigation or Mitigation()
    store.bind_config("mitigation", mitigation.describe())
    if isinstance(generator, SelfPlanning):
        if mitigation.active:
            raise AuditError("imported images cannot be mitigated: drop --prompt-template "
                             "and --augment-identity with --model folder:")
        # The source is checked before the plan follows its manifest: importing another
        # folder into this run must be refused before it drops anything.
        store.bind_config("generator", generator.config())
        store.add_prompts(generator.prompts())
        rows = generator.sample_rows()
        if all(source is not None for *_, source in rows):
            plan = store.plan_imported_samples(
                [(prompt_id, seed, source) for prompt_id, _, seed, source in rows
                 if source is not None])
            if plan.dropped:
                shown = ", ".join(repr(f) for f in plan.dropped[:5])
                more = f" and {len(plan.dropped) - 5} more" if len(plan.dropped) > 5 else ""
                log.warning("%d planned samples dropped, their manifest rows are gone: %s%s",
                            len(plan.dropped), shown, more)
            return plan
        return store.plan_samples(rows)
    if probes is None:
        raise AuditError(f"generator {generator.name!r} needs probe prompts (--probes)")
    store.add_prompts(probes.prompts, probes.occupations)
    if mitigation.augment_axes and not mitigation.occupation_terms:
        mitigation = replace(mitigation,
                             occupation_terms={o.id: o.term for o in probes.occupations})
    return store.plan_probe_samples(probes.prompts, samples_per_prompt, base_seed,
                                    mitigation.rewrite if mitigation.active else None)


def run_generation(store: RunStore, generator: Generator, *, batch_size: int = 8,
                   progress: bool = True, plan: PlanSummary | None = None,
                   executor: Executor | None = None,
                   on_commit: Callable[[list[ImageRecord]], None] | None = None
                   ) -> RunSummary:
    """Generate every planned sample that is not done yet and commit it to the store.

    ``executor`` decides where shards run (default: this process, with ``generator``);
    whatever runs them, the driver commits each sample as its result arrives and hands its
    image records to ``on_commit`` (e.g. an annotation pipeline).
    """
    if batch_size < 1:
        raise AuditError("--batch-size must be at least 1")
    start = time.perf_counter()
    store.register_stages(generator.stages())
    store.bind_config("generator", generator.config())
    counts = store.status_counts()
    total, done = sum(counts.values()), counts.get("done", 0)
    notice = getattr(generator, "notice", None)
    if notice:
        log.warning("%s", notice)
    if done == total:
        log.info("nothing to generate: all %d planned samples in %s are already done",
                 total, store.root)
        return RunSummary(total, plan.added if plan else 0, done, 0, 0,
                          time.perf_counter() - start, generator.name, notice)
    executor = executor or LocalExecutor(generator)
    log.info("%d of %d planned samples to generate (%d already done), executor %s",
             total - done, total, done, executor.name)
    generated = failed = consecutive_failures = 0
    bar = tqdm(total=total - done, unit="sample", desc="generate", disable=not progress)
    # PNG encoding and writing overlap with generating the next sample (zlib releases the
    # GIL); the store commits each sample in plan order once its files are on disk.
    stages = {s.stage: s for s in generator.stages()}
    writes: deque[Future[StoredSample]] = deque()

    def commit(stored: StoredSample) -> None:
        nonlocal generated, consecutive_failures
        records = store.commit_stored(stored)
        if on_commit is not None:
            on_commit(records)
        generated += 1
        consecutive_failures = 0
        bar.update()

    def drain(keep: int) -> None:
        while len(writes) > keep or (writes and writes[0].done()):
            commit(writes.popleft().result())

    def stop_cleanly() -> None:
        # Stopping on an error: samples whose images are on disk are still committed.
        while writes:
            try:
                commit(writes.popleft().result())
            except Exception as exc:  # the error being raised matters more
                log.error("a sample could not be stored while stopping: %s", exc)

    try:
        with ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="png-writer") as pool:
            outcomes = executor.run(store.iter_pending(batch_size))
            while True:
                try:
                    outcome = next(outcomes, None)
                except BaseException:
                    stop_cleanly()
                    raise
                if outcome is None:
                    break
                if isinstance(outcome, ShardFailure):
                    store.mark_failed(outcome.sample_ids, outcome.error)
                    failed += len(outcome.sample_ids)
                    bar.update(len(outcome.sample_ids))
                    consecutive_failures += 1
                    log.error("%d samples failed (%s); recorded, the run goes on",
                              len(outcome.sample_ids), outcome.error)
                    if consecutive_failures >= MAX_CONSECUTIVE_FAILED_BATCHES:
                        stop_cleanly()
                        raise AuditError(
                            f"{consecutive_failures} batches in a row failed (last error: "
                            f"{outcome.error}); stopping. Fix the cause and run the same "
                            "command again to resume")
                elif isinstance(outcome, SampleFailure):
                    # One bad input (an unreadable imported file): record it and go on. It
                    # does not count towards stopping: the samples after it are unaffected.
                    store.mark_failed([outcome.sample_id], outcome.error)
                    failed += 1
                    bar.update()
                    log.error("failed: %s; recorded, the run goes on", outcome.error)
                elif isinstance(outcome, StoredSample):  # a worker already wrote the images
                    drain(0)
                    commit(outcome)
                else:
                    store.check_pending(outcome.sample_id)
                    writes.append(pool.submit(write_sample, store.storage, outcome, stages))
                drain(MAX_PENDING_WRITES)
            drain(0)
    finally:
        bar.close()
    summary = RunSummary(total, plan.added if plan else 0, done, generated, failed,
                         time.perf_counter() - start, generator.name, notice)
    log.info("generated %d samples in %.1f s (%d failed); %s", generated, summary.seconds,
             failed, "run complete" if summary.complete else "run incomplete")
    return summary


def generate_run(out: Any, *, model: str = "tiny-cascade", probes: str | ProbeSet | None =
                 "occupations", limit_prompts: int | None = None, samples_per_prompt: int = 1,
                 seed: int = 0, batch_size: int = 8, options: GeneratorOptions | None = None,
                 progress: bool = True, executor: str = "local",
                 ray_options: dict[str, Any] | None = None,
                 mitigation: Mitigation | None = None,
                 image_store: str | None = None, annotate: Any = None,
                 annotate_workers: int = 1) -> RunSummary:
    """Plan and generate a run in ``out`` (the Python twin of ``imagen-audit generate``).

    ``executor`` is ``local`` or ``ray``; ``ray_options`` go to
    :class:`~imagen_audit.generate.executors.RayExecutor` (``address``, ``workers``, ...).
    ``image_store`` (an fsspec URL) keeps the images outside the run folder; with the Ray
    executor, workers then write them directly. ``annotate`` (an ``AnnotatorSpec``)
    annotates images while generation goes on, on ``annotate_workers`` CPU workers.
    """
    from imagen_audit.probes import load_probes

    options = options or GeneratorOptions()
    probe_set = None
    if probes is not None and not model.startswith("folder:"):
        # Probe files first: a typo there fails before any model is built or loaded.
        probe_set = probes if isinstance(probes, ProbeSet) else load_probes(probes)
        probe_set = probe_set.limit(limit_prompts)
    generator = make_generator(model, options)
    runner: Executor | None = None
    try:
        with RunStore.open(out, image_store=image_store) as store:
            plan = plan_run(store, generator, probe_set, samples_per_prompt, seed, mitigation)
            log.info("plan: %d samples (%d new)", plan.total, plan.added)
            if executor != "local" and plan.done < plan.total:
                extra = dict(ray_options or {})
                if executor == "ray" and store.storage.url is not None:
                    extra.update(storage=store.storage, stages=generator.stages())
                runner = make_executor(executor, GeneratorSpec(model, options), **extra)
            if annotate is None:
                return run_generation(store, generator, batch_size=batch_size,
                                      progress=progress, plan=plan, executor=runner)
            from imagen_audit.annotate.pipeline import AnnotationPipeline

            pipeline = AnnotationPipeline(store, annotate,
                                          executor=executor if runner else "local",
                                          workers=annotate_workers)
            try:
                summary = run_generation(store, generator, batch_size=batch_size,
                                         progress=progress, plan=plan, executor=runner,
                                         on_commit=pipeline.submit)
                done = pipeline.finish()
            finally:
                pipeline.close()
            log.info("annotated %d images while generating (%d faces, %d failed)",
                     done.annotated, done.faces, done.failed)
            return replace(summary, annotated=done.annotated)
    finally:
        if runner is not None:
            runner.close()
        generator.close()
