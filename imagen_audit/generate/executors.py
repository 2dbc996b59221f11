"""Executors decide *where* shards of the plan run, never *what* they compute.

The runner hands an executor a stream of shards (pages of pending samples, in plan order)
and commits what comes back. ``local`` runs them in this process; ``ray`` runs them on a
Ray cluster, one generator per worker (models loaded once per worker, not per task),
with the results committed by the driver as they arrive. Because a sample's pixels depend
only on its prompt, seed and settings (see ``cascade.py``), both give the same images,
provided each worker runs torch with the same number of CPU threads as the local run
(``GeneratorOptions.cpu_threads``; CPU kernels reduce in thread-dependent order).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from imagen_audit.errors import AuditError
from imagen_audit.generate.base import Generator, GeneratorOptions, make_generator
from imagen_audit.store.records import PlannedSample, SampleFailure, SampleResult, StageSpec
from imagen_audit.store.storage import ImageStorage, StoredSample, write_sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorSpec:
    """A picklable recipe for a generator, so any process can build the same one."""

    model: str
    options: GeneratorOptions

    def build(self) -> Generator:
        return make_generator(self.model, self.options)


@dataclass(frozen=True)
class ShardFailure:
    """Samples of a shard that could not be generated, with the last error."""

    sample_ids: tuple[str, ...]
    error: str
    attempts: int


Outcome = SampleResult | StoredSample | SampleFailure | ShardFailure


class Executor(Protocol):
    """Runs shards; yields each sample's result (or a shard's failure) as it arrives."""

    name: str

    def run(self, shards: Iterable[Sequence[PlannedSample]]) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Shards run one after another in this process, results streamed sample by sample."""

    name = "local"

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def run(self, shards: Iterable[Sequence[PlannedSample]]) -> Iterator[Outcome]:
        for shard in shards:
            done: set[str] = set()
            try:
                for result in self.generator.generate(shard):
                    done.add(result.sample_id)
                    yield result
            except AuditError:
                raise
            except Exception as exc:  # a model failure: report it, keep going
                yield ShardFailure(tuple(s.sample_id for s in shard if s.sample_id not in done),
                                   f"{type(exc).__name__}: {exc}", 1)

    def close(self) -> None:
        self.generator.close()


class RayExecutor:
    """Shards on a Ray cluster: one long-lived generator actor per worker slot.

    A worker that dies (node lost, process killed, out of memory) loses only its in-flight
    shard: the actor is replaced and the shard resubmitted. A shard whose generation raises
    is retried up to ``max_attempts`` times, then reported as failed with its error.
    """

    name = "ray"

    def __init__(self, spec: GeneratorSpec, *, address: str | None = None,
                 workers: int | None = None, gpus_per_worker: float | None = None,
                 cpus_per_worker: float = 1, max_attempts: int = 3,
                 in_flight_per_worker: int = 2, storage: ImageStorage | None = None,
                 stages: Sequence[StageSpec] = ()) -> None:
        """``storage`` (a run's remote image store) makes workers write the PNGs themselves
        and return only image records; without it, pixels travel back to the driver."""
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is an optional extra
            raise AuditError("--executor ray needs Ray: pip install 'imagen-audit[ray]'") from exc
        self._ray = ray
        self.spec = spec
        self.max_attempts = max_attempts
        self._started_here = False
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, include_dashboard=False,
                     configure_logging=False)
            self._started_here = True
        resources = ray.cluster_resources()
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if spec.options.device.startswith("cuda") else 0.0
        if workers is None:
            workers = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker \
                else int(resources.get("CPU", 1) // cpus_per_worker)
        if workers < 1:
            raise AuditError(f"the Ray cluster has no room for a worker ({resources})")
        self.workers = workers
        self._actor_options = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker,
                               "max_restarts": 0}
        self._actor_cls = ray.remote(_GeneratorActor)
        self._writer = (storage, {s.stage: s for s in stages}) if storage is not None else None
        self.actors: list[Any] = [self._new_actor() for _ in range(workers)]
        self.in_flight_per_worker = in_flight_per_worker
        self.replaced_workers = 0

    def _new_actor(self) -> Any:
        return self._actor_cls.options(**self._actor_options).remote(self.spec, self._writer)

    def run(self, shards: Iterable[Sequence[PlannedSample]]) -> Iterator[Outcome]:
        ray = self._ray
        pending_shards = iter(shards)
        queue: deque[tuple[tuple[PlannedSample, ...], int]] = deque()  # (shard, attempts)
        running: dict[Any, tuple[int, tuple[PlannedSample, ...], int]] = {}
        self.load = load = [0] * len(self.actors)  # shards in flight per worker
        exhausted = False

        def refill() -> None:
            nonlocal exhausted
            capacity = self.in_flight_per_worker * len(self.actors)
            while len(running) < capacity:
                if not queue and not exhausted:
                    nxt = next(pending_shards, None)
                    if nxt is None:
                        exhausted = True
                    else:
                        queue.append((tuple(nxt), 0))
                if not queue:
                    return
                shard, attempts = queue.popleft()
                slot = min(range(len(self.actors)), key=load.__getitem__)
                ref = self.actors[slot].generate.remote(list(shard))
                running[ref] = (slot, shard, attempts)
                load[slot] += 1

        refill()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            slot, shard, attempts = running.pop(ref)
            load[slot] -= 1
            try:
                results = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as exc:
                # The worker died: replace it (once per death) and run the shard again.
                if not _actor_alive(ray, self.actors[slot]):
                    log.warning("Ray worker %d died (%s); starting a new one", slot,
                                type(exc).__name__)
                    self.actors[slot] = self._new_actor()
                    self.replaced_workers += 1
                    for other, (s, sh, at) in list(running.items()):
                        if s == slot:  # its other in-flight shards died with it
                            running.pop(other)
                            load[slot] -= 1
                            queue.appendleft((sh, at))
                queue.appendleft((shard, attempts))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                if isinstance(cause, AuditError):
                    raise cause from None
                attempts += 1
                if attempts >= self.max_attempts:
                    yield ShardFailure(tuple(s.sample_id for s in shard),
                                       f"{type(cause).__name__}: {cause}", attempts)
                else:
                    log.warning("shard failed (%s); retry %d of %d", cause, attempts,
                                self.max_attempts - 1)
                    queue.append((shard, attempts))
            else:
                yield from results
            refill()

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._started_here:
            self._ray.shutdown()


class _GeneratorActor:
    """Holds one generator for the life of a Ray worker (models loaded once)."""

    def __init__(self, spec: GeneratorSpec,
                 writer: tuple[ImageStorage, dict[int, StageSpec]] | None = None) -> None:
        self.generator = spec.build()
        self.writer = writer

    def generate(self, shard: list[PlannedSample]
                 ) -> list[SampleResult | StoredSample | SampleFailure]:
        results = list(self.generator.generate(shard))
        if self.writer is None:
            return results
        storage, stages = self.writer
        return [write_sample(storage, r, stages) if isinstance(r, SampleResult) else r
                for r in results]

    def pid(self) -> int:
        import os

        return os.getpid()


def _actor_alive(ray: Any, actor: Any) -> bool:
    try:
        ray.get(actor.pid.remote(), timeout=30)
        return True
    except Exception:  # any failure to answer means it is gone
        return False


def make_executor(name: str, spec: GeneratorSpec, **ray_options: Any) -> Executor:
    """``local`` or ``ray`` (with ``address``, ``workers`` ... passed to :class:`RayExecutor`)."""
    if name == "local":
        return LocalExecutor(spec.build())
    if name == "ray":
        return RayExecutor(spec, **ray_options)
    raise AuditError(f"unknown --executor {name!r}; choose local or ray")
