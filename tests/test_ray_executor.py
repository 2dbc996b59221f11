"""The Ray executor on a local 2-CPU cluster: same samples and pixels as the local executor,
and a killed worker loses nothing but time."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from imagen_audit.generate import GeneratorOptions, make_generator  # noqa: E402
from imagen_audit.generate.executors import GeneratorSpec, RayExecutor  # noqa: E402
from imagen_audit.generate.runner import generate_run, plan_run, run_generation  # noqa: E402
from imagen_audit.probes import load_probes  # noqa: E402
from imagen_audit.store import RunStore  # noqa: E402

# One CPU thread per worker and locally: CPU kernels reduce in thread-dependent order.
OPTS = GeneratorOptions(num_stages=2, steps=(2, 1), cpu_threads=1)


@pytest.fixture(scope="module")
def cluster(tiny_cascade_dir: Path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {
                 k: os.environ[k] for k in ("IMAGEN_AUDIT_CACHE", "HF_HUB_OFFLINE")}})
    yield
    ray.shutdown()


def _table(run: Path) -> pd.DataFrame:
    with RunStore.open_readonly(run) as store:
        assert set(store.samples_table()["status"]) == {"done"}
        return store.images_table()[["sample_id", "prompt_id", "seed", "stage",
                                     "pixel_sha256"]].sort_values(["sample_id", "stage"]
                                                                  ).reset_index(drop=True)


def test_ray_gives_the_same_samples_and_pixels_as_local(cluster, tmp_path: Path) -> None:
    common = {"limit_prompts": 3, "samples_per_prompt": 2, "options": OPTS, "batch_size": 2,
              "progress": False}
    local = generate_run(tmp_path / "local", **common)
    remote = generate_run(tmp_path / "ray", executor="ray", ray_options={"workers": 2},
                          **common)
    assert local.generated == remote.generated == 6
    pd.testing.assert_frame_equal(_table(tmp_path / "local"), _table(tmp_path / "ray"))


def test_killed_worker_still_ends_with_the_complete_plan(cluster, tmp_path: Path,
                                                         monkeypatch) -> None:
    run = tmp_path / "run"
    executor = RayExecutor(GeneratorSpec("tiny-cascade", OPTS), workers=2)
    pids = [ray.get(actor.pid.remote()) for actor in executor.actors]
    commits = {"n": 0}
    original = RunStore.commit_stored

    def commit_then_kill(self, stored):
        out = original(self, stored)
        commits["n"] += 1
        if commits["n"] == 1:  # mid-run: kill a worker that has shards in flight
            busy = max(range(len(pids)), key=executor.load.__getitem__)
            assert executor.load[busy] > 0
            os.kill(pids[busy], signal.SIGKILL)
        return out

    monkeypatch.setattr(RunStore, "commit_stored", commit_then_kill)
    generator = make_generator("tiny-cascade", OPTS)
    probes = load_probes("occupations").limit(4)
    try:
        with RunStore.open(run) as store:
            plan_run(store, generator, probes, samples_per_prompt=2)
            summary = run_generation(store, generator, batch_size=1, progress=False,
                                     executor=executor)
            assert store.verify() == []
    finally:
        executor.close()
    assert executor.replaced_workers >= 1
    assert summary.generated == 8 and summary.failed == 0
    table = _table(run)
    assert table["sample_id"].nunique() == 8 and len(table) == 16


def test_workers_write_images_to_a_shared_image_store(cluster, tmp_path: Path) -> None:
    shared = tmp_path / "shared-images"
    common = {"limit_prompts": 2, "samples_per_prompt": 2, "options": OPTS, "batch_size": 1,
              "progress": False}
    generate_run(tmp_path / "local", **common)
    generate_run(tmp_path / "ray", executor="ray", ray_options={"workers": 2},
                 image_store=f"file://{shared}", **common)
    assert not (tmp_path / "ray" / "images").exists()
    assert len(list(shared.rglob("*.png"))) == 8
    pd.testing.assert_frame_equal(_table(tmp_path / "local"), _table(tmp_path / "ray"))
    with RunStore.open_readonly(tmp_path / "ray") as store:
        assert store.verify() == []
        prov = next(iter(store.provenance_records().values()))
        assert prov["environment"]["packages"]["torch"]  # recorded by the worker


def test_annotation_runs_on_ray_cpu_workers_while_generating(cluster, tmp_path: Path) -> None:
    from imagen_audit.annotate.base import AnnotatorSpec

    summary = generate_run(tmp_path / "run", executor="ray", ray_options={"workers": 1},
                           limit_prompts=2, samples_per_prompt=1, options=OPTS,
                           progress=False, annotate=AnnotatorSpec(), annotate_workers=1)
    assert summary.generated == 2 and summary.annotated == 4  # two stages each
    with RunStore.open_readonly(tmp_path / "run") as store:
        table = store.annotations_table()
        assert len(table) == 4 and set(table["n_faces"]) == {0}  # noise: no faces


def test_annotate_command_on_ray(cluster, tmp_path: Path) -> None:
    from imagen_audit.cli import main

    generate_run(tmp_path / "run", limit_prompts=2, samples_per_prompt=1, options=OPTS,
                 progress=False)
    assert main(["annotate", str(tmp_path / "run"), "--preset", "fast", "--executor", "ray",
                 "--workers", "2", "--no-progress"]) == 0
    with RunStore.open_readonly(tmp_path / "run") as store:
        assert len(store.annotations_table()) == 4
