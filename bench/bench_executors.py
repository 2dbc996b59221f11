"""Local vs Ray executor on this machine: wall time, overhead ratio, identical pixels.

Both arms generate the same plan with the tiny cascade and one torch thread per worker
(pixels depend on the thread count on CPU). The Ray arm starts a local cluster with
``--workers`` CPU workers; on a machine with N cores, N workers should beat one local
process, so the ratio shows the overhead net of parallelism.

    python bench/bench_executors.py [--prompts 4] [--samples 2] [--workers 2] [--stages 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stages", type=int, default=2, choices=(1, 2, 3))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    from imagen_audit.generate import GeneratorOptions
    from imagen_audit.generate.runner import generate_run
    from imagen_audit.generate.tiny import ensure_tiny_cascade
    from imagen_audit.store import RunStore

    ensure_tiny_cascade()
    opts = GeneratorOptions(num_stages=args.stages, cpu_threads=1)
    common = {"limit_prompts": args.prompts, "samples_per_prompt": args.samples,
              "options": opts, "batch_size": 2, "progress": False}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_run(tmp / "warm", limit_prompts=1, options=opts, progress=False)
        t0 = time.perf_counter()
        generate_run(tmp / "local", **common)
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate_run(tmp / "ray", executor="ray", ray_options={"workers": args.workers},
                     **common)
        t_ray = time.perf_counter() - t0
        ray.shutdown()
        same = all(
            RunStore.open_readonly(tmp / r).images_table()[["image_id", "pixel_sha256"]]
            .sort_values("image_id").reset_index(drop=True)
            .equals(RunStore.open_readonly(tmp / "local").images_table()[
                ["image_id", "pixel_sha256"]].sort_values("image_id").reset_index(drop=True))
            for r in ("ray",))
    n = args.prompts * args.samples
    print(f"machine: {os.cpu_count()} CPUs; tiny cascade, {args.stages} stages, {n} samples, "
          "1 torch thread per worker")
    print(f"local executor        : {t_local:7.2f} s ({n / t_local:.3f} samples/s)")
    print(f"ray cluster start     : {t_start:7.2f} s")
    print(f"ray executor, {args.workers} workers: {t_ray:7.2f} s ({n / t_ray:.3f} samples/s, "
          "incl. model load per worker)")
    print(f"ratio ray/local       : {t_ray / t_local:.3f}")
    print(f"identical pixels      : {same}")


if __name__ == "__main__":
    main()
