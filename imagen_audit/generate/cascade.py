"""The Imagen-style cascade through diffusers: T5 → 64 px → 256 px → 1024 px.

Stage I is DeepFloyd IF's base model (``IFPipeline``), stage II its text-conditioned
super-resolution (``IFSuperResolutionPipeline``), stage III the x4 upscaler
(``StableDiffusionUpscalePipeline``, which conditions on its own CLIP text encoder).

Design points an auditor relies on:

* Every stage's output is kept. Each stage reads the *stored* (uint8) image of the stage
  before, so any stage can be re-created from the record and the previous PNG.
* One seed per sample. Each stage draws its noise from ``torch.Generator('cpu')`` seeded
  with the sample's seed, one generator per sample, so a sample's pixels do not depend on
  the batch it shares, and the same noise is drawn on CPU or GPU.
* Prompt embeddings are computed once per unique prompt and shared by stages I and II
  (one T5), and once per unique prompt for stage III's CLIP encoder.
* The pipelines' own safety checker and watermarker are not loaded: an audit measures the
  model's raw output; safety filters are evaluated separately (``imagen_audit.filters``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from imagen_audit.errors import ModelSpecError
from imagen_audit.generate.base import GeneratorOptions, register, uint8_batch
from imagen_audit.store.records import PlannedSample, SampleResult, StageSpec

log = logging.getLogger(__name__)

IF_STAGE_I = "DeepFloyd/IF-I-XL-v1.0"
IF_STAGE_II = "DeepFloyd/IF-II-L-v1.0"
X4_UPSCALER = "stabilityai/stable-diffusion-x4-upscaler"
STAGE_NAMES = ("base_64", "sr_256", "sr_1024")


@dataclass(frozen=True)
class CascadeConfig:
    """Settings that determine the cascade's pixels (bound to a run on first use)."""

    stage_models: tuple[str, str, str] = (IF_STAGE_I, IF_STAGE_II, X4_UPSCALER)
    num_stages: int = 3
    steps: tuple[int, int, int] = (100, 50, 75)
    guidance: tuple[float, float, float] = (7.0, 4.0, 9.0)
    noise_levels: tuple[int, int] = (250, 100)  # stage II, stage III
    negative_prompt: str = ""
    dtype: str = "float32"
    variant: str | None = None
    revisions: tuple[str | None, str | None, str | None] = (None, None, None)
    model_digest: str | None = None  # weights digest, when known (the tiny cascade)
    # Samples per pipeline call. 1 (the default) makes every image independent of batch
    # composition to the last bit; larger values are faster on GPUs, but batched kernels
    # round differently (~1e-6), so pixels then depend on which samples share a call.
    micro_batch: int = 1
    # Execution settings: do not change the math, so not part of the run binding.
    device: str = field(default="cpu", compare=False)
    cpu_offload: bool = field(default=False, compare=False)
    local_files_only: bool = field(default=False, compare=False)
    embedding_cache_size: int = field(default=256, compare=False)
    cpu_threads: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.num_stages not in (1, 2, 3):
            raise ModelSpecError(f"--stages must be 1, 2 or 3 (got {self.num_stages})")
        if self.micro_batch < 1:
            raise ModelSpecError(f"--micro-batch must be at least 1 (got {self.micro_batch})")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ModelSpecError(f"--dtype must be float32, float16 or bfloat16 ({self.dtype})")

    def binding(self) -> dict[str, Any]:
        """The settings a resumed run must match."""
        out = asdict(self)
        for f in fields(self):
            if not f.compare:  # execution settings: they do not change the pixels
                out.pop(f.name)
        out["stage_models"] = list(self.stage_models[: self.num_stages])
        return out

    def with_options(self, opts: GeneratorOptions) -> CascadeConfig:
        """Overlay command-line options on these defaults (per-stage lists may be short)."""

        def overlay(base: tuple, new: tuple | None) -> tuple:
            if not new:
                return base
            if len(new) > len(base):
                raise ModelSpecError(f"got {len(new)} per-stage values, the cascade has "
                                     f"{len(base)} ({new})")
            return tuple(new) + base[len(new):]

        models = self.stage_models
        if opts.stage_models:
            models = tuple(m or d for m, d in
                           zip(overlay(models, opts.stage_models), models, strict=True))
        return replace(
            self, stage_models=models,
            num_stages=opts.num_stages or self.num_stages,
            steps=overlay(self.steps, opts.steps),
            guidance=overlay(self.guidance, opts.guidance),
            noise_levels=overlay(self.noise_levels, opts.noise_levels),
            negative_prompt=opts.negative_prompt, dtype=opts.dtype, variant=opts.variant,
            micro_batch=opts.micro_batch, cpu_threads=opts.cpu_threads,
            device=opts.device, cpu_offload=opts.cpu_offload,
            local_files_only=opts.local_files_only or self.local_files_only)


class EmbeddingCache:
    """Prompt → embedding, bounded (LRU), counting how many prompts were actually encoded.

    The runner feeds samples in plan order (all samples of a prompt together), so a small
    cache already means each prompt is encoded once per run while memory stays flat.
    """

    def __init__(self, encode: Callable[[list[str]], Any], maxsize: int) -> None:
        self._encode = encode
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.maxsize = maxsize
        self.encoded = 0

    def get(self, prompts: Sequence[str]) -> list[Any]:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._items))
        if missing:
            for p, emb in zip(missing, self._encode(missing), strict=True):
                self._items[p] = emb
            self.encoded += len(missing)
        out = []
        for p in prompts:
            self._items.move_to_end(p)
            out.append(self._items[p])
        while len(self._items) > max(self.maxsize, len(set(prompts))):
            self._items.popitem(last=False)
        return out


class ImagenCascade:
    """Generator for Imagen-style cascades (DeepFloyd IF I + II, x4 upscaler)."""

    name = "imagen-cascade"

    def __init__(self, config: CascadeConfig, *, notice: str | None = None) -> None:
        self.cfg = config
        self.notice = notice
        self._pipes: list[Any] | None = None
        self._t5_cache: EmbeddingCache | None = None
        self._clip_cache: EmbeddingCache | None = None
        self._negatives: dict[int, Any] = {}

    # ------------------------------------------------------------------ interface
    def stages(self) -> list[StageSpec]:
        sizes = (64, 256, 1024)
        return [StageSpec(i + 1, STAGE_NAMES[i], sizes[i], sizes[i])
                for i in range(self.cfg.num_stages)]

    def config(self) -> dict[str, Any]:
        return {"generator": self.name, **self.cfg.binding()}

    def provenance(self) -> dict[str, Any]:
        """Per-sample provenance: settings plus the scheduler of every stage."""
        pipes = self._load()
        record = self.config()
        record["schedulers"] = [
            {"class": type(p.scheduler).__name__, "config": dict(p.scheduler.config)}
            for p in pipes]
        record["device"] = self.cfg.device
        record["torch_threads"] = _torch_threads()
        record["cpu_offload"] = self.cfg.cpu_offload
        record["seeding"] = ("each stage: torch.Generator('cpu').manual_seed(seed), one "
                             "generator per sample")
        record["stage_input"] = "stored uint8 image of the previous stage"
        if self.notice:
            record["notice"] = self.notice
        return record

    def generate(self, batch: Sequence[PlannedSample]) -> Iterator[SampleResult]:
        if not batch:
            return
        self._load()
        provenance = self.provenance()
        step = self.cfg.micro_batch
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            for sample, images in zip(chunk, self._run_chunk(chunk), strict=True):
                yield SampleResult(sample.sample_id, images, provenance)

    def _run_chunk(self, chunk: Sequence[PlannedSample]) -> list[dict[int, Any]]:
        """Run the stages on one pipeline batch; returns stage → uint8 image per sample."""
        import torch

        pipes = self._load()
        prompts = [s.prompt for s in chunk]
        seeds = [s.seed if s.seed is not None else 0 for s in chunk]

        def generators() -> list[torch.Generator]:
            return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]

        with torch.inference_mode():
            t5 = torch.cat(self._t5_cache.get(prompts))
            t5_neg = self._negative(0).expand_as(t5)
            s1 = pipes[0](prompt_embeds=t5, negative_prompt_embeds=t5_neg,
                          num_inference_steps=self.cfg.steps[0],
                          guidance_scale=self.cfg.guidance[0], generator=generators(),
                          output_type="np").images
            results = [{1: img} for img in uint8_batch(s1)]
            if self.cfg.num_stages >= 2:
                s2 = pipes[1](image=[_pil(r[1]) for r in results], prompt_embeds=t5,
                              negative_prompt_embeds=t5_neg,
                              num_inference_steps=self.cfg.steps[1],
                              guidance_scale=self.cfg.guidance[1],
                              noise_level=self.cfg.noise_levels[0], generator=generators(),
                              output_type="np").images
                for r, img in zip(results, uint8_batch(s2), strict=True):
                    r[2] = img
            if self.cfg.num_stages >= 3:
                clip = torch.cat(self._clip_cache.get(prompts))
                s3 = pipes[2](image=[_pil(r[2]) for r in results], prompt_embeds=clip,
                              negative_prompt_embeds=self._negative(2).expand_as(clip),
                              num_inference_steps=self.cfg.steps[2],
                              guidance_scale=self.cfg.guidance[2],
                              noise_level=self.cfg.noise_levels[1], generator=generators(),
                              output_type="np").images
                for r, img in zip(results, uint8_batch(s3), strict=True):
                    r[3] = img
        return results

    def close(self) -> None:
        self._pipes = None
        self._t5_cache = self._clip_cache = None
        self._negatives.clear()

    # ------------------------------------------------------------------ internals
    @property
    def text_encoder_calls(self) -> int:
        """How many prompts the T5 encoder has embedded (for tests and logs)."""
        return self._t5_cache.encoded if self._t5_cache else 0

    def _negative(self, stage_index: int) -> Any:
        if stage_index not in self._negatives:
            cache = self._t5_cache if stage_index == 0 else self._clip_cache
            self._negatives[stage_index] = cache.get([self.cfg.negative_prompt])[0]
        return self._negatives[stage_index]

    def _load(self) -> list[Any]:
        if self._pipes is not None:
            return self._pipes
        import torch
        from diffusers import (
            IFPipeline,
            IFSuperResolutionPipeline,
            StableDiffusionUpscalePipeline,
        )

        cfg = self.cfg
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        dtype = getattr(torch, cfg.dtype)
        common: dict[str, Any] = {"dtype": dtype, "local_files_only": cfg.local_files_only}
        if cfg.variant:
            common["variant"] = cfg.variant
        no_checks = {"safety_checker": None, "feature_extractor": None, "watermarker": None}
        specs = [
            (IFPipeline, {**no_checks, "requires_safety_checker": False}),
            (IFSuperResolutionPipeline, {**no_checks, "requires_safety_checker": False,
                                         "text_encoder": None, "tokenizer": None}),
            (StableDiffusionUpscalePipeline, {"safety_checker": None, "feature_extractor": None,
                                              "watermarker": None}),
        ]
        pipes = []
        for i in range(cfg.num_stages):
            cls, extra = specs[i]
            model = cfg.stage_models[i]
            log.info("loading stage %d (%s) from %s", i + 1, cls.__name__, model)
            try:
                pipe = cls.from_pretrained(model, revision=cfg.revisions[i], **common, **extra)
            except (OSError, ValueError) as exc:
                raise ModelSpecError(
                    f"cannot load stage {i + 1} ({cls.__name__}) from {model!r}: {exc}. "
                    "Give a local folder or make sure the weights are in the Hugging Face "
                    "cache (this machine may be offline)") from exc
            if cfg.cpu_offload:
                pipe.enable_model_cpu_offload()
            else:
                pipe.to(cfg.device)
            pipe.set_progress_bar_config(disable=True)
            pipes.append(pipe)

        def t5_encode(texts: list[str]) -> list[Any]:
            emb, _ = pipes[0].encode_prompt(texts, do_classifier_free_guidance=False,
                                            device=pipes[0]._execution_device,
                                            clean_caption=False)
            return list(emb.split(1))

        self._t5_cache = EmbeddingCache(t5_encode, cfg.embedding_cache_size)
        if cfg.num_stages >= 3:
            def clip_encode(texts: list[str]) -> list[Any]:
                emb, _ = pipes[2].encode_prompt(texts, pipes[2]._execution_device, 1, False)
                return list(emb.split(1))

            self._clip_cache = EmbeddingCache(clip_encode, cfg.embedding_cache_size)
        self._pipes = pipes
        return pipes


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _pil(pixels: Any) -> Any:
    from PIL import Image

    return Image.fromarray(pixels, "RGB")


def parse_stage_models(argument: str) -> tuple[str | None, ...] | None:
    """``imagen-cascade:I,II,III`` → per-stage model ids or folders (empty keeps default)."""
    if not argument:
        return None
    return tuple(part.strip() or None for part in argument.split(","))


@register("imagen-cascade")
def _make(argument: str, opts: GeneratorOptions) -> ImagenCascade:
    models = parse_stage_models(argument)
    if models:
        opts = replace(opts, stage_models=models)
    return ImagenCascade(CascadeConfig().with_options(opts))


__all__ = ["CascadeConfig", "EmbeddingCache", "ImagenCascade"]
