"""Runner overhead: the tiny cascade through imagen-audit's runner vs a plain diffusers loop.

Both arms load the same three saved pipelines, use the same seeds, steps, guidance and noise
levels, and write every stage's PNG; the runner also writes atomically, fsyncs, records
provenance in SQLite and shares text embeddings. Goal: ratio (runner / plain) <= 1.05.

    python bench/bench_runner_overhead.py [--prompts 3] [--samples 2] [--stages 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def plain_loop(root: Path, prompts: list[tuple[str, int]], stages: int, out: Path) -> float:
    import torch
    from diffusers import IFPipeline, IFSuperResolutionPipeline, StableDiffusionUpscalePipeline

    from imagen_audit.generate.tiny import TINY_DEFAULTS

    steps, guidance, noise = (TINY_DEFAULTS["steps"], TINY_DEFAULTS["guidance"],
                              TINY_DEFAULTS["noise_levels"])
    start = time.perf_counter()
    p1 = IFPipeline.from_pretrained(root / "stage_1", local_files_only=True,
                                    safety_checker=None, watermarker=None,
                                    feature_extractor=None, requires_safety_checker=False)
    p2 = IFSuperResolutionPipeline.from_pretrained(
        root / "stage_2", local_files_only=True, text_encoder=None, tokenizer=None,
        safety_checker=None, watermarker=None, feature_extractor=None,
        requires_safety_checker=False)
    p3 = StableDiffusionUpscalePipeline.from_pretrained(root / "stage_3", local_files_only=True)
    for p in (p1, p2, p3):
        p.set_progress_bar_config(disable=True)
    out.mkdir(parents=True, exist_ok=True)
    for i, (prompt, seed) in enumerate(prompts):
        def gen(s: int = seed) -> torch.Generator:
            return torch.Generator("cpu").manual_seed(s)

        pe, ne = p1.encode_prompt(prompt, clean_caption=False)
        im1 = p1(prompt_embeds=pe, negative_prompt_embeds=ne, num_inference_steps=steps[0],
                 guidance_scale=guidance[0], generator=gen()).images[0]
        im1.save(out / f"{i}-1.png")
        if stages >= 2:
            im2 = p2(image=im1, prompt_embeds=pe, negative_prompt_embeds=ne,
                     num_inference_steps=steps[1], guidance_scale=guidance[1],
                     noise_level=noise[0], generator=gen()).images[0]
            im2.save(out / f"{i}-2.png")
        if stages >= 3:
            im3 = p3(prompt=prompt, image=im2, num_inference_steps=steps[2],
                     guidance_scale=guidance[2], noise_level=noise[1],
                     generator=gen()).images[0]
            im3.save(out / f"{i}-3.png")
    return time.perf_counter() - start


def runner(n_prompts: int, samples: int, stages: int, out: Path) -> float:
    from imagen_audit.generate import GeneratorOptions
    from imagen_audit.generate.runner import generate_run

    start = time.perf_counter()
    generate_run(out, model="tiny-cascade", probes="occupations", limit_prompts=n_prompts,
                 samples_per_prompt=samples, options=GeneratorOptions(num_stages=stages),
                 batch_size=8, progress=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--stages", type=int, default=3, choices=(1, 2, 3))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch
    from diffusers.utils import logging as dlog

    from imagen_audit.generate.tiny import ensure_tiny_cascade
    from imagen_audit.probes import load_probes
    from imagen_audit.store.run_store import RunStore

    dlog.set_verbosity_error()
    root = ensure_tiny_cascade()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Same prompts and seeds in both arms: take them from a runner plan.
        warm = tmp / "warm"
        runner(1, 1, args.stages, warm)  # warm-up (lazy torch init) for both arms
        plan_dir = tmp / "plan"
        probes = load_probes("occupations").limit(args.prompts)
        with RunStore.open(plan_dir) as store:
            store.add_prompts(probes.prompts)
            store.plan_probe_samples(probes.prompts, args.samples, 0)
            pairs = [(s.prompt, s.seed) for page in store.iter_pending(10_000) for s in page]
        plain_loop(root, pairs[:1], args.stages, tmp / "plain-warm")
        t_run, t_plain = [], []
        for r in range(args.repeats):  # interleaved, best of N
            t_plain.append(plain_loop(root, pairs, args.stages, tmp / f"plain{r}"))
            t_run.append(runner(args.prompts, args.samples, args.stages, tmp / f"run{r}"))
    n = len(pairs)
    best_run, best_plain = min(t_run), min(t_plain)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"tiny cascade, {args.stages} stages, {n} samples ({args.prompts} prompts x "
          f"{args.samples}), best of {args.repeats}")
    print(f"plain diffusers loop : {best_plain:7.2f} s  ({n / best_plain:.3f} samples/s)")
    print(f"imagen-audit runner  : {best_run:7.2f} s  ({n / best_run:.3f} samples/s)")
    print(f"ratio runner/plain   : {best_run / best_plain:.3f}  (goal <= 1.05)")
    print(f"peak RSS             : {rss:.0f} MiB")


if __name__ == "__main__":
    main()
