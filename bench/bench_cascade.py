"""Cascade throughput: the toolkit's real generation path, timed stage by stage.

Every arm is one ``generate_run`` (plan → run store → ``ImagenCascade`` → diffusers'
``IFPipeline``, ``IFSuperResolutionPipeline`` and ``StableDiffusionUpscalePipeline`` → PNGs
committed to the store), with model ``imagen-cascade:STAGE1,STAGE2,STAGE3`` pointing at
local folders saved with ``save_pretrained``. The stage pipelines' ``__call__``, the
cascade's model loading and the text encoders are timed by wrapping them (here only; the
toolkit is not changed), with ``torch.cuda.synchronize()`` before every clock read on CUDA.

Two sizes of components:

* ``tiny``: the tiny cascade of ``imagen_audit.generate.tiny`` (CPU, seconds).
* ``real``: randomly initialised components at the published sizes of DeepFloyd IF, built
  from configs on the target device and dtype, then saved. The T5-v1.1-XXL encoder
  (4.76B), the x4 upscaler's UNet (473M) and VAE, and the OpenCLIP ViT-H text tower
  (23 layers) follow the published architectures. The published UNet configs of IF stages
  I and II are not available offline, so those two UNets are *sized to the published
  parameter counts* (IF-I-XL 4.3B, IF-II-L 1.2B) with IF's block types; their timings
  are estimates of the real models', not measurements of them. The weights are random:
  the images are noise, only the timings and memory mean anything. In float16 the saved
  weights take ~22 GB of disk; built folders in ``--workdir`` are reused by a rerun.

The first arm is preceded by a short warm-up run (1 sample, 2 steps per stage), so arms
do not pay for CUDA/cuDNN initialisation; each arm still loads its pipelines from disk
(reported apart as ``load``). Figures are logged as they come, printed as a table at the
end, and written to ``--json`` after every phase (atomically), so a run killed at a time
limit still leaves what it measured. The exit status is non-zero if an arm failed or did
not generate every planned sample.

    python bench/bench_cascade.py [--size tiny|real] [--device cpu|cuda]
        [--dtype float32|float16|bfloat16] [--prompts 2] [--samples 1] [--steps 100,50,75]
        [--micro-batch 1,4] [--stages 3] [--workdir DIR] [--json PATH] [--max-seconds N]

    # e.g. on one H100/H200 (builds and saves ~22 GB of float16 weights first):
    python bench/bench_cascade.py --size real --device cuda --dtype float16 \\
        --prompts 2 --samples 1 --micro-batch 1,2 --workdir /tmp/bench-cascade \\
        --json bench-cascade.json --max-seconds 420
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Run from a checkout without installing it: the repository root after any installed copy.
_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.append(_REPO)

log = logging.getLogger("bench_cascade")

REAL_STEPS = (100, 50, 75)  # the cascade's defaults (CascadeConfig.steps)
WARMUP_STEPS = (2, 2, 2)
BUILD_VERSION = "1"  # bump when a real-size config below changes (invalidates reuse)
PUBLISHED = {  # parameter counts the real-size components are built to match
    "t5_encoder": 4.76e9, "stage1_unet": 4.3e9, "stage2_unet": 1.2e9, "x4_unet": 4.73e8}
SIZING_NOTE = ("real-size random weights: T5-v1.1-XXL encoder, x4 upscaler UNet/VAE and "
               "OpenCLIP ViT-H text tower follow the published architectures; the IF stage I "
               "and II UNets are sized to the published parameter counts (exact configs not "
               "available offline). Images are noise; only timings and memory mean anything")
PIPELINES = ("IFPipeline", "IFSuperResolutionPipeline", "StableDiffusionUpscalePipeline")


# ---------------------------------------------------------------------- real-size configs
def t5_config() -> Any:
    """T5-v1.1-XXL, encoder only (4.76B parameters); ids match ``tiny_t5_tokenizer``."""
    from transformers import T5Config

    return T5Config(vocab_size=32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
                    num_layers=24, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                    use_cache=False, dropout_rate=0.1, layer_norm_epsilon=1e-6,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def stage1_unet_config() -> dict[str, Any]:
    """IF-I-XL-sized base UNet, 64 px (4.43B parameters; published: 4.3B)."""
    return dict(
        sample_size=64, layers_per_block=3, block_out_channels=(704, 1408, 2112, 2816),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D",
                          "SimpleCrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "SimpleCrossAttnUpBlock2D",
                        "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        in_channels=3, out_channels=6, attention_head_dim=64, cross_attention_dim=4096,
        encoder_hid_dim=4096, encoder_hid_dim_type="text_proj", addition_embed_type="text",
        addition_embed_type_num_heads=64, cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift", act_fn="gelu")


# Stage II width/depth, chosen so the UNet has ~1.2B parameters (1.225B, +2.1%): five
# levels at 256/128/64/32/16 px, attention (self + cross) at the two lowest.
STAGE2_BLOCK_OUT_CHANNELS = (256, 512, 768, 1024, 1536)
STAGE2_LAYERS_PER_BLOCK = 3


def stage2_unet_config() -> dict[str, Any]:
    """IF-II-L-sized super-resolution UNet, 64 → 256 px (1.23B parameters; published 1.2B)."""
    width = STAGE2_BLOCK_OUT_CHANNELS
    return dict(
        sample_size=256, layers_per_block=STAGE2_LAYERS_PER_BLOCK, block_out_channels=width,
        down_block_types=("ResnetDownsampleBlock2D",) * 3 + ("SimpleCrossAttnDownBlock2D",) * 2,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 2 + ("ResnetUpsampleBlock2D",) * 3,
        in_channels=6, out_channels=6, cross_attention_dim=width[-1], encoder_hid_dim=4096,
        encoder_hid_dim_type="text_proj", attention_head_dim=64, addition_embed_type="text",
        addition_embed_type_num_heads=64, cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift", act_fn="gelu", class_embed_type="timestep",
        mid_block_scale_factor=1.414, time_embedding_act_fn="gelu")


def x4_unet_config() -> dict[str, Any]:
    """The x4 upscaler's UNet (published architecture, 473M parameters)."""
    return dict(
        sample_size=128, in_channels=7, out_channels=4, block_out_channels=(256, 512, 512, 1024),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                        "UpBlock2D"),
        attention_head_dim=8, cross_attention_dim=1024, num_class_embeds=1000,
        only_cross_attention=[True, True, True, False], use_linear_projection=True)


def x4_vae_config() -> dict[str, Any]:
    """The x4 upscaler's VAE (published architecture, mid-block attention kept)."""
    return dict(block_out_channels=(128, 256, 512), in_channels=3, out_channels=3,
                latent_channels=4, layers_per_block=2,
                down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3, scaling_factor=0.08333)


def clip_config() -> Any:
    """OpenCLIP ViT-H text tower as the x4 upscaler uses it (23 layers, 1024 wide)."""
    from transformers import CLIPTextConfig

    # Token ids match tiny_clip_tokenizer(): <|startoftext|> 0, <|endoftext|> 1 (also pad).
    return CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                          num_attention_heads=16, num_hidden_layers=23,
                          max_position_embeddings=77, hidden_act="gelu", projection_dim=1024,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1)


@contextlib.contextmanager
def building_on(device: str, dtype: Any) -> Iterator[None]:
    """Create modules directly on ``device`` in ``dtype`` (no fp32 CPU copy first)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def real_stage1_components(device: str, dtype: Any) -> dict[str, Any]:
    """``IFPipeline`` components: T5-v1.1-XXL encoder and the IF-I-XL-sized UNet."""
    from diffusers import UNet2DConditionModel
    from transformers import T5EncoderModel

    from imagen_audit.generate.tiny import if_schedulers, tiny_t5_tokenizer

    tokenizer = tiny_t5_tokenizer()
    config = t5_config()
    assert config.vocab_size >= len(tokenizer)
    with building_on(device, dtype):
        text_encoder = T5EncoderModel(config)
        unet = UNet2DConditionModel(**stage1_unet_config())
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "unet": unet,
            **if_schedulers(), "safety_checker": None, "feature_extractor": None,
            "watermarker": None}


def real_stage2_components(device: str, dtype: Any) -> dict[str, Any]:
    """``IFSuperResolutionPipeline`` components: the IF-II-L-sized UNet (T5 shared)."""
    from diffusers import UNet2DConditionModel

    from imagen_audit.generate.tiny import if_noising_scheduler, if_schedulers

    with building_on(device, dtype):
        unet = UNet2DConditionModel(**stage2_unet_config())
    return {"tokenizer": None, "text_encoder": None, "unet": unet, **if_schedulers(),
            "image_noising_scheduler": if_noising_scheduler(), "safety_checker": None,
            "feature_extractor": None, "watermarker": None}


def real_stage3_components(device: str, dtype: Any) -> dict[str, Any]:
    """``StableDiffusionUpscalePipeline`` components: x4 UNet, VAE, ViT-H text tower."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from imagen_audit.generate.tiny import tiny_clip_tokenizer, x4_schedulers

    tokenizer = tiny_clip_tokenizer()
    config = clip_config()
    assert config.vocab_size >= len(tokenizer)
    with building_on(device, dtype):
        text_encoder = CLIPTextModel(config)
        unet = UNet2DConditionModel(**x4_unet_config())
        vae = AutoencoderKL(**x4_vae_config())
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            **x4_schedulers(), "safety_checker": None, "feature_extractor": None,
            "watermarker": None}


def _n_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def param_counts() -> dict[str, int]:
    """Parameter counts of the real-size T5 encoder and UNets, built on ``meta`` (no memory)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import T5EncoderModel

    with building_on("meta", torch.float16):
        return {"t5_encoder": _n_params(T5EncoderModel(t5_config())),
                "stage1_unet": _n_params(UNet2DConditionModel(**stage1_unet_config())),
                "stage2_unet": _n_params(UNet2DConditionModel(**stage2_unet_config())),
                "x4_unet": _n_params(UNet2DConditionModel(**x4_unet_config()))}


# ---------------------------------------------------------------------- building
def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def build_real_cascade(root: Path, device: str, dtype_name: str,
                       record: Callable[[dict[str, Any]], None]) -> list[Path]:
    """Build, save and free the three real-size pipelines one at a time under ``root``.

    Each stage is saved to a temporary folder and renamed into place, so a folder that
    exists is complete and is reused (a rerun after a time limit skips the build).
    ``record`` receives each stage's figures as soon as they are known.
    """
    import torch
    from diffusers import IFPipeline, IFSuperResolutionPipeline, StableDiffusionUpscalePipeline

    dtype = getattr(torch, dtype_name)
    stages = [
        (IFPipeline, real_stage1_components, {"requires_safety_checker": False}),
        (IFSuperResolutionPipeline, real_stage2_components, {"requires_safety_checker": False}),
        (StableDiffusionUpscalePipeline, real_stage3_components, {}),
    ]
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for i, (cls, components, extra) in enumerate(stages, start=1):
        folder = root / f"stage_{i}"
        folders.append(folder)
        if (folder / "model_index.json").is_file():
            log.info("stage %d: reusing %s", i, folder)
            record({"stage": i, "pipeline": cls.__name__, "reused": True})
            continue
        log.info("building stage %d (%s) on %s in %s...", i, cls.__name__, device, dtype_name)
        torch.manual_seed(i)
        _sync(device)
        start = time.perf_counter()
        comps = components(device, dtype)
        _sync(device)
        built = time.perf_counter()
        params = {name: _n_params(m) for name, m in comps.items()
                  if isinstance(m, torch.nn.Module)}
        log.info("stage %d built in %.1f s: %s", i, built - start,
                 ", ".join(f"{k} {v / 1e6:,.0f}M" for k, v in params.items()))
        tmp = Path(tempfile.mkdtemp(prefix=f".stage_{i}-", dir=root))
        try:
            cls(**comps, **extra).save_pretrained(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        saved = time.perf_counter()
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        log.info("stage %d saved in %.1f s (%.2f GB)", i, saved - built, size / 1e9)
        record({"stage": i, "pipeline": cls.__name__, "reused": False, "params": params,
                "build_s": built - start, "save_s": saved - built, "disk_gb": size / 1e9})
        del comps
        _free(device)
    return folders


# ---------------------------------------------------------------------- timing
class StageTimer:
    """Patch (at class level) the stage pipelines' ``__call__``, their ``encode_prompt`` and
    ``ImagenCascade._load`` with timers; restored on exit."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.stage_s = [0.0, 0.0, 0.0]
        self.images = [0, 0, 0]
        self.calls = [0, 0, 0]
        self.nonfinite = [0, 0, 0]  # output values that are NaN/inf (random fp16 overflow)
        self.values = [0, 0, 0]
        self.load_s = 0.0
        self.text_s = 0.0
        self._depth = 0
        self._saved: list[tuple[type, str, Any]] = []

    def _clock(self) -> float:
        _sync(self.device)
        return time.perf_counter()

    def _patch(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[name]
        self._saved.append((cls, name, original))
        setattr(cls, name, make(original))

    def __enter__(self) -> StageTimer:
        import numpy as np
        from diffusers import (
            IFPipeline,
            IFSuperResolutionPipeline,
            StableDiffusionUpscalePipeline,
        )

        from imagen_audit.generate.cascade import ImagenCascade

        timer = self

        def stage_call(index: int) -> Callable[[Any], Any]:
            def make(original: Any) -> Any:
                def timed(pipe: Any, *args: Any, **kwargs: Any) -> Any:
                    timer._depth += 1
                    try:
                        start = timer._clock()
                        out = original(pipe, *args, **kwargs)
                        timer.stage_s[index] += timer._clock() - start
                    finally:
                        timer._depth -= 1
                    images = getattr(out, "images", None)
                    timer.calls[index] += 1
                    if images is not None:
                        timer.images[index] += len(images)
                        if isinstance(images, np.ndarray) and images.dtype.kind == "f":
                            timer.nonfinite[index] += int((~np.isfinite(images)).sum())
                            timer.values[index] += images.size
                    return out
                return timed
            return make

        def encode(original: Any) -> Any:
            def timed(pipe: Any, *args: Any, **kwargs: Any) -> Any:
                if timer._depth:  # inside a stage call: counted there
                    return original(pipe, *args, **kwargs)
                start = timer._clock()
                out = original(pipe, *args, **kwargs)
                timer.text_s += timer._clock() - start
                return out
            return timed

        def load(original: Any) -> Any:
            def timed(cascade: Any) -> Any:
                if cascade._pipes is not None:
                    return original(cascade)
                start = timer._clock()
                out = original(cascade)
                timer.load_s += timer._clock() - start
                return out
            return timed

        for i, cls in enumerate((IFPipeline, IFSuperResolutionPipeline,
                                 StableDiffusionUpscalePipeline)):
            self._patch(cls, "__call__", stage_call(i))
        self._patch(IFPipeline, "encode_prompt", encode)
        self._patch(StableDiffusionUpscalePipeline, "encode_prompt", encode)
        self._patch(ImagenCascade, "_load", load)
        return self

    def __exit__(self, *exc: object) -> None:
        for cls, name, original in reversed(self._saved):
            setattr(cls, name, original)
        self._saved.clear()


class PeakMemory:
    """Peak GPU memory allocated (CUDA) or peak resident set size (CPU) over a block."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak_gib: float | None = None
        self.kind = "gpu_allocated" if device.startswith("cuda") else "rss"

    def __enter__(self) -> PeakMemory:
        if self.kind == "gpu_allocated":
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            with contextlib.suppress(OSError):  # Linux: reset VmHWM to the current RSS
                Path("/proc/self/clear_refs").write_text("5")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kind == "gpu_allocated":
            import torch

            self.peak_gib = torch.cuda.max_memory_allocated() / 2**30
        else:
            self.peak_gib = _peak_rss_kib() / 2**20


def _peak_rss_kib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ---------------------------------------------------------------------- arms
def run_arm(out: Path, folders: Sequence[Path], *, device: str, dtype: str,
            steps: tuple[int, ...], stages: int, prompts: int, samples: int,
            micro_batch: int, cpu_threads: int | None = None) -> dict[str, Any]:
    """One timed ``generate_run`` into ``out`` (removed first: a leftover run would resume)."""
    from imagen_audit.generate import GeneratorOptions
    from imagen_audit.generate.runner import generate_run

    shutil.rmtree(out, ignore_errors=True)
    model = "imagen-cascade:" + ",".join(str(f) for f in folders)
    options = GeneratorOptions(device=device, dtype=dtype, local_files_only=True,
                               steps=tuple(steps), num_stages=stages, micro_batch=micro_batch,
                               cpu_threads=cpu_threads)
    _free(device)
    with PeakMemory(device) as memory, StageTimer(device) as timer:
        start = timer._clock()
        summary = generate_run(out, model=model, probes="occupations", limit_prompts=prompts,
                               samples_per_prompt=samples, options=options,
                               batch_size=max(8, micro_batch), progress=False)
        total = timer._clock() - start
    _free(device)
    n = summary.generated
    stage_figures = {}
    for i in range(stages):
        imgs = timer.images[i]
        stage_figures[str(i + 1)] = {
            "seconds": timer.stage_s[i], "images": imgs, "calls": timer.calls[i],
            "s_per_image": timer.stage_s[i] / imgs if imgs else None,
            "nonfinite_fraction": (timer.nonfinite[i] / timer.values[i]
                                   if timer.values[i] else None)}
    generating = total - timer.load_s
    return {
        "micro_batch": micro_batch, "samples": n, "planned": summary.planned,
        "complete": summary.complete and summary.generated == summary.planned,
        "failed": summary.failed, "total_s": total, "load_s": timer.load_s,
        "text_encode_s": timer.text_s, "stages": stage_figures,
        "other_s": total - timer.load_s - timer.text_s - sum(timer.stage_s),
        "samples_per_s": n / total if total else None,
        "samples_per_s_excl_load": n / generating if generating > 0 else None,
        "peak_memory_gib": memory.peak_gib, "peak_memory_kind": memory.kind,
        "torch_threads": _torch_threads(), "run_summary": asdict(summary)}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------------- output
def _write_json(path: Path | None, results: dict[str, Any]) -> None:
    if path is None:
        return
    from imagen_audit.files import write_atomic

    write_atomic(path, json.dumps(results, indent=2, default=str))


def machine_info(device: str) -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    info: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(device_name=torch.cuda.get_device_name(torch.device(device)),
                    gpu_memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["device_name"] = f"CPU ({info['cpu']}, {info['cpus']} cores)"
    return info


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: dict[str, Any]) -> None:
    m, cfg = results["machine"], results["config"]
    print(f"machine : {m['device_name']} | torch {m['torch']} | diffusers {m['diffusers']} "
          f"| transformers {m['transformers']}")
    print(f"cascade : {cfg['size']} components, {cfg['dtype']}, {cfg['stages']} stages, steps "
          f"{'/'.join(map(str, cfg['steps']))}, {cfg['prompts']} prompts x {cfg['samples']} "
          f"samples")
    if cfg["size"] == "real":
        print(f"note    : {SIZING_NOTE}")
        counts = results.get("param_counts", {})
        print("params  : " + ", ".join(f"{k} {v / 1e9:.3f}B" for k, v in counts.items()))
        for b in results.get("build", []):
            if b.get("reused"):
                print(f"build   : stage {b['stage']} reused from the work dir")
            else:
                print(f"build   : stage {b['stage']} {b['pipeline']}: build {b['build_s']:.1f} s,"
                      f" save {b['save_s']:.1f} s, {b['disk_gb']:.2f} GB")
    if "warmup" in results:
        warm_steps = "/".join(map(str, WARMUP_STEPS[: cfg["stages"]]))
        print(f"warm-up : {results['warmup']['total_s']:.1f} s (1 sample, steps {warm_steps}, "
              f"load {results['warmup']['load_s']:.1f} s)")
    stages = cfg["stages"]
    head = (f"{'mb':>3} {'samples':>7} {'total s':>8} {'load s':>7} {'text s':>7} "
            + " ".join(f"{f's{i} s/img':>9}" for i in range(1, stages + 1))
            + f" {'other s':>8} {'samples/s':>9} {'excl load':>9} {'peak GiB':>8}")
    print(head)
    for arm in results["arms"]:
        if "error" in arm:
            print(f"{arm['micro_batch']:>3} failed: {arm['error']}")
            continue
        if arm.get("skipped"):
            print(f"{arm['micro_batch']:>3} skipped: {arm['skipped']}")
            continue
        per_stage = " ".join(f"{_fmt(arm['stages'][str(i)]['s_per_image'], '.3f'):>9}"
                             for i in range(1, stages + 1))
        print(f"{arm['micro_batch']:>3} {arm['samples']:>7} {arm['total_s']:>8.2f} "
              f"{arm['load_s']:>7.2f} {arm['text_encode_s']:>7.2f} {per_stage} "
              f"{arm['other_s']:>8.2f} {_fmt(arm['samples_per_s'], '.3f'):>9} "
              f"{_fmt(arm['samples_per_s_excl_load'], '.3f'):>9} "
              f"{_fmt(arm['peak_memory_gib']):>8}")
    peak = "GPU memory allocated" if cfg["device"].startswith("cuda") else "process RSS"
    print(f"(s/img: seconds in the stage's pipeline call per image; text: prompt encoding "
          f"outside the stage calls; other: total - load - text - stages (planning, PNG "
          f"encoding, store writes); peak: {peak})")


# ---------------------------------------------------------------------- main
def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("tiny", "real"), default="tiny")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1, help="samples per prompt")
    ap.add_argument("--steps", type=_int_list, default=None,
                    help="steps per stage (default: tiny 4,3,3; real 100,50,75)")
    ap.add_argument("--micro-batch", type=_int_list, default=(1,),
                    help="comma list: one timed arm per value")
    ap.add_argument("--stages", type=int, choices=(1, 2, 3), default=3)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="stage folders and run folders (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write figures here (each phase)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="skip an arm that would start after this many seconds, or (judging "
                         "by the previous arm) end after them")
    ap.add_argument("--cpu-threads", type=int, default=None,
                    help="torch threads on CPU (GeneratorOptions.cpu_threads; process-wide)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up run")
    ap.add_argument("--verbose", action="store_true", help="also log imagen_audit's INFO")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    if not args.verbose:
        logging.getLogger("imagen_audit").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    import torch
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    from imagen_audit.generate.tiny import TINY_DEFAULTS, ensure_tiny_cascade

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log.error("--device %s but CUDA is not available", args.device)
        return 2
    steps = args.steps or (TINY_DEFAULTS["steps"] if args.size == "tiny" else REAL_STEPS)
    steps = tuple(steps)[: args.stages]
    if len(steps) < args.stages:
        log.error("--steps gives %d values for %d stages", len(steps), args.stages)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine_info(args.device),
        "config": {"size": args.size, "device": args.device, "dtype": args.dtype,
                   "prompts": args.prompts, "samples": args.samples,
                   "samples_total": args.prompts * args.samples, "steps": list(steps),
                   "stages": args.stages, "micro_batches": list(args.micro_batch),
                   "probes": "occupations", "workdir": str(workdir),
                   "max_seconds": args.max_seconds, "cpu_threads": args.cpu_threads},
        "build": [], "arms": [], "finished": False}
    if args.size == "real":
        results["config"]["note"] = SIZING_NOTE
        results["config"]["stage2_unet"] = {"block_out_channels": STAGE2_BLOCK_OUT_CHANNELS,
                                            "layers_per_block": STAGE2_LAYERS_PER_BLOCK}
    failed = False
    try:
        # 1. The stage folders.
        if args.size == "tiny":
            root = ensure_tiny_cascade()
            folders = [root / f"stage_{i}" for i in (1, 2, 3)]
        else:
            results["param_counts"] = param_counts()
            _write_json(args.json, results)

            def record(item: dict[str, Any]) -> None:
                results["build"].append(item)
                _write_json(args.json, results)

            root = workdir / f"real-v{BUILD_VERSION}-{args.dtype}"
            start = time.perf_counter()
            folders = build_real_cascade(root, args.device, args.dtype, record)
            results["build_total_s"] = time.perf_counter() - start
        results["config"]["stage_folders"] = [str(f) for f in folders]
        _write_json(args.json, results)

        # 2. Warm-up (CUDA context, cuDNN/cuBLAS autotuning, lazy imports, page cache).
        common = dict(device=args.device, dtype=args.dtype, stages=args.stages,
                      cpu_threads=args.cpu_threads)
        if not args.no_warmup:
            log.info("warm-up run (1 sample, %s steps)...",
                     "/".join(map(str, WARMUP_STEPS[: args.stages])))
            warm = run_arm(workdir / "warm", folders, steps=WARMUP_STEPS[: args.stages],
                           prompts=1, samples=1, micro_batch=1, **common)
            results["warmup"] = warm
            log.info("warm-up done in %.1f s (load %.1f s)", warm["total_s"], warm["load_s"])
            _write_json(args.json, results)

        # 3. The timed arms.
        last_arm_s: float | None = None
        for mb in args.micro_batch:
            elapsed = time.perf_counter() - t0
            if args.max_seconds is not None and (
                    elapsed >= args.max_seconds
                    or (last_arm_s is not None and elapsed + last_arm_s > args.max_seconds)):
                reason = (f"time budget: {elapsed:.0f} s elapsed"
                          + (f", previous arm took {last_arm_s:.0f} s" if last_arm_s else "")
                          + f", --max-seconds {args.max_seconds:.0f}")
                log.warning("skipping arm mb=%d (%s)", mb, reason)
                results["arms"].append({"micro_batch": mb, "skipped": reason})
                _write_json(args.json, results)
                continue
            log.info("arm mb=%d: %d samples, steps %s...", mb, args.prompts * args.samples,
                     "/".join(map(str, steps)))
            try:
                arm = run_arm(workdir / f"run-mb{mb}", folders, steps=steps,
                              prompts=args.prompts, samples=args.samples, micro_batch=mb,
                              **common)
            except Exception as exc:  # e.g. out of memory: record it, try the next arm
                log.exception("arm mb=%d failed", mb)
                results["arms"].append({"micro_batch": mb, "error": repr(exc)[:2000]})
                failed = True
                _free(args.device)
                _write_json(args.json, results)
                continue
            last_arm_s = arm["total_s"]
            per_stage = ", ".join(f"stage {k} {_fmt(v['s_per_image'], '.3f')} s/img"
                                  for k, v in arm["stages"].items())
            log.info("arm mb=%d done in %.1f s (load %.1f s; %s; %.3f samples/s)", mb,
                     arm["total_s"], arm["load_s"], per_stage, arm["samples_per_s"] or 0)
            if not arm["complete"]:
                log.error("arm mb=%d incomplete: %d of %d planned samples generated "
                          "(%d failed)", mb, arm["samples"], arm["planned"], arm["failed"])
                failed = True
            results["arms"].append(arm)
            _write_json(args.json, results)
        results["finished"] = True
        results["elapsed_s"] = time.perf_counter() - t0
        _write_json(args.json, results)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    if not any("samples" in arm for arm in results["arms"]):
        log.error("no arm ran to completion")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
