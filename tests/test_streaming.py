"""Memory stays flat as the plan grows: the runner streams pages, it never lists all images."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from imagen_audit.generate.runner import plan_run, run_generation
from imagen_audit.probes import ProbeSet, Prompt
from imagen_audit.store import RunStore
from imagen_audit.store.records import PlannedSample, SampleResult, StageSpec


class NoiseGenerator:
    """A model-free generator: 32×32 noise per sample from its seed (fast, deterministic)."""

    name = "noise"

    def stages(self) -> list[StageSpec]:
        return [StageSpec(1, "noise", 32, 32)]

    def config(self) -> dict:
        return {"generator": self.name}

    def generate(self, batch: Sequence[PlannedSample]) -> Iterator[SampleResult]:
        for s in batch:
            rng = np.random.default_rng(s.seed)
            yield SampleResult(s.sample_id, {1: rng.integers(0, 256, (32, 32, 3), np.uint8)})

    def close(self) -> None:
        pass


def _peak_bytes(root: Path, n_prompts: int, samples: int) -> int:
    probes = ProbeSet("synthetic", tuple(
        Prompt(f"synthetic/p/{i}", f"prompt {i}", "synthetic", "p") for i in range(n_prompts)))
    with RunStore.open(root) as store:
        plan_run(store, NoiseGenerator(), probes, samples_per_prompt=samples)
        tracemalloc.start()
        summary = run_generation(store, NoiseGenerator(), batch_size=16, progress=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert summary.generated == n_prompts * samples
    return peak


def test_peak_memory_does_not_grow_with_the_number_of_samples(tmp_path: Path) -> None:
    small = _peak_bytes(tmp_path / "small", 10, 10)     # 100 samples
    large = _peak_bytes(tmp_path / "large", 50, 16)     # 800 samples
    # 8× the samples; a runner holding every image (3 KB each) would need > 2 MB more.
    assert large < small * 1.5 + 256 * 1024, (small, large)
