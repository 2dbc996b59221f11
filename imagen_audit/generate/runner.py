"""Drive a generator over a run's plan: batches in, committed samples out, resumable.

The runner pulls pending samples from the store page by page (so memory stays flat however
large the plan), hands each page to the generator and commits every sample as soon as its
images are on disk. Killing it at any point loses at most the samples in flight; running
the same command again finishes exactly the planned set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tqdm.auto import tqdm

from imagen_audit.errors import AuditError, RunStoreError
from imagen_audit.generate.base import Generator
from imagen_audit.probes import ProbeSet, Prompt
from imagen_audit.store.run_store import PlanSummary, RunStore

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILED_BATCHES = 3


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

    @property
    def complete(self) -> bool:
        return self.already_done + self.generated == self.planned


def plan_run(store: RunStore, generator: Generator, probes: ProbeSet | None = None,
             samples_per_prompt: int = 1, base_seed: int = 0) -> PlanSummary:
    """Write the plan into the store (idempotent: the same arguments add nothing)."""
    if isinstance(generator, SelfPlanning):
        store.add_prompts(generator.prompts())
        return store.plan_samples(generator.sample_rows())
    if probes is None:
        raise AuditError(f"generator {generator.name!r} needs probe prompts (--probes)")
    store.add_prompts(probes.prompts, probes.occupations)
    return store.plan_probe_samples(probes.prompts, samples_per_prompt, base_seed)


def run_generation(store: RunStore, generator: Generator, *, batch_size: int = 8,
                   progress: bool = True, plan: PlanSummary | None = None) -> RunSummary:
    """Generate every planned sample that is not done yet and commit it to the store."""
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
    log.info("%d of %d planned samples to generate (%d already done)", total - done, total, done)
    generated = failed = consecutive_failures = 0
    bar = tqdm(total=total - done, unit="sample", desc="generate", disable=not progress)
    try:
        for page in store.iter_pending(batch_size):
            committed: set[str] = set()
            try:
                for result in generator.generate(page):
                    store.commit_sample(result)
                    committed.add(result.sample_id)
                    generated += 1
                    bar.update()
                consecutive_failures = 0
            except (AuditError, RunStoreError):
                raise
            except Exception as exc:  # a model failure: record it, keep the rest of the run
                lost = [s.sample_id for s in page if s.sample_id not in committed]
                store.mark_failed(lost, f"{type(exc).__name__}: {exc}")
                failed += len(lost)
                bar.update(len(lost))
                consecutive_failures += 1
                log.error("%d samples failed (%s: %s); recorded, the run goes on",
                          len(lost), type(exc).__name__, exc)
                if consecutive_failures >= MAX_CONSECUTIVE_FAILED_BATCHES:
                    raise AuditError(
                        f"{consecutive_failures} batches in a row failed (last error: "
                        f"{type(exc).__name__}: {exc}); stopping. Fix the cause and run the "
                        "same command again to resume") from exc
    finally:
        bar.close()
    summary = RunSummary(total, plan.added if plan else 0, done, generated, failed,
                         time.perf_counter() - start, generator.name, notice)
    log.info("generated %d samples in %.1f s (%d failed); %s", generated, summary.seconds,
             failed, "run complete" if summary.complete else "run incomplete")
    return summary


def generate_run(out: Any, *, model: str = "tiny-cascade", probes: str | ProbeSet | None =
                 "occupations", limit_prompts: int | None = None, samples_per_prompt: int = 1,
                 seed: int = 0, batch_size: int = 8, options: Any = None,
                 progress: bool = True) -> RunSummary:
    """Plan and generate a run in ``out`` (the Python twin of ``imagen-audit generate``)."""
    from imagen_audit.generate.base import make_generator
    from imagen_audit.probes import load_probes

    probe_set = None
    if probes is not None and not model.startswith("folder:"):
        # Probe files first: a typo there fails before any model is built or loaded.
        probe_set = probes if isinstance(probes, ProbeSet) else load_probes(probes)
        probe_set = probe_set.limit(limit_prompts)
    generator = make_generator(model, options)
    try:
        with RunStore.open(out) as store:
            plan = plan_run(store, generator, probe_set, samples_per_prompt, seed)
            log.info("plan: %d samples (%d new)", plan.total, plan.added)
            return run_generation(store, generator, batch_size=batch_size, progress=progress,
                                  plan=plan)
    finally:
        generator.close()
