"""bench/bench_cascade.py: the real-size configs match the published sizes, and the bench
runs end to end on the tiny cascade (two micro-batch arms, per-stage timings, JSON)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "bench_cascade.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cascade", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_cascade", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "published", "tolerance"), [
    ("t5_encoder", 4.76e9, 0.02),
    ("stage1_unet", 4.3e9, 0.06),
    ("stage2_unet", 1.2e9, 0.06),
    ("x4_unet", 4.73e8, 0.02),
])
def test_real_size_param_counts(bench: ModuleType, name: str, published: float,
                                tolerance: float) -> None:
    counts = _param_counts(bench)
    assert set(counts) == {"t5_encoder", "stage1_unet", "stage2_unet", "x4_unet"}
    assert abs(counts[name] / published - 1) <= tolerance, (name, counts[name])


_COUNTS: dict[str, int] = {}


def _param_counts(bench: ModuleType) -> dict[str, int]:
    if not _COUNTS:  # built on the meta device once: no memory, well under a second
        _COUNTS.update(bench.param_counts())
    return _COUNTS


def test_bench_runs_on_tiny_cascade(bench: ModuleType, tiny_cascade_dir: Path,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    # The session's tiny cascade (cache_root() is $IMAGEN_AUDIT_CACHE/tiny-cascade-v1).
    monkeypatch.setenv("IMAGEN_AUDIT_CACHE", str(tiny_cascade_dir.parent))
    out = tmp_path / "out.json"
    threads = torch.get_num_threads()
    try:  # one thread: the tiny models run fastest so, and it holds on a busy machine
        rc = bench.main(["--size", "tiny", "--prompts", "1", "--samples", "1",
                         "--stages", "2", "--steps", "2,2", "--micro-batch", "1,2",
                         "--cpu-threads", "1", "--json", str(out),
                         "--workdir", str(tmp_path / "w")])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    results = json.loads(out.read_text())
    assert results["finished"] is True
    assert results["config"]["stage_folders"][0] == str(tiny_cascade_dir / "stage_1")
    arms = results["arms"]
    assert [a["micro_batch"] for a in arms] == [1, 2]
    for arm in arms:
        assert arm["samples"] == 1 and arm["complete"]
        assert set(arm["stages"]) == {"1", "2"}
        for stage in ("1", "2"):
            assert arm["stages"][stage]["seconds"] > 0
            assert arm["stages"][stage]["images"] == 1
        assert arm["load_s"] > 0
        assert arm["total_s"] >= arm["load_s"] + sum(s["seconds"] for s in
                                                     arm["stages"].values())
    assert "warmup" in results
    assert (tmp_path / "w" / "run-mb2").is_dir()


def test_stage_timer_restores_the_pipelines(bench: ModuleType) -> None:
    from diffusers import IFPipeline, IFSuperResolutionPipeline, StableDiffusionUpscalePipeline

    from imagen_audit.generate.cascade import ImagenCascade

    classes = (IFPipeline, IFSuperResolutionPipeline, StableDiffusionUpscalePipeline)
    before = [cls.__dict__["__call__"] for cls in classes]
    load = ImagenCascade.__dict__["_load"]
    with bench.StageTimer("cpu"):
        assert IFPipeline.__dict__["__call__"] is not before[0]
    assert [cls.__dict__["__call__"] for cls in classes] == before
    assert ImagenCascade.__dict__["_load"] is load


def test_real_size_path_builds_saves_and_reuses(bench: ModuleType, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``--size real`` flow (build, save, record, reuse) with the real-size builders
    swapped for the tiny ones: the real sizes need a GPU."""
    import torch

    from imagen_audit.generate import tiny

    for i in (1, 2, 3):
        build = getattr(tiny, f"stage{i}_components")
        monkeypatch.setattr(bench, f"real_stage{i}_components",
                            lambda device, dtype, build=build: build())
    out = tmp_path / "out.json"
    argv = ["--size", "real", "--prompts", "1", "--stages", "1", "--steps", "2",
            "--cpu-threads", "1", "--no-warmup", "--json", str(out),
            "--workdir", str(tmp_path / "w")]
    threads = torch.get_num_threads()
    try:
        assert bench.main(argv) == 0
        first = json.loads(out.read_text())
        assert bench.main(argv) == 0
        second = json.loads(out.read_text())
    finally:
        torch.set_num_threads(threads)
    assert [b["stage"] for b in first["build"]] == [1, 2, 3]
    assert not any(b["reused"] for b in first["build"])
    assert first["build"][0]["params"]["unet"] > 0 and first["build"][0]["save_s"] > 0
    assert all(b["reused"] for b in second["build"])
    assert first["param_counts"]["t5_encoder"] > 4e9
    assert second["arms"][0]["samples"] == 1 and second["arms"][0]["stages"]["1"]["seconds"] > 0
