"""Any diffusers text-to-image pipeline (hub id or local folder), as a one-stage generator.

Loaded with ``AutoPipelineForText2Image``; every sample gets its own seeded CPU
``torch.Generator``, so its pixels do not depend on the batch it shares.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from imagen_audit.errors import ModelSpecError
from imagen_audit.generate.base import GeneratorOptions, register, uint8_batch
from imagen_audit.store.records import PlannedSample, SampleResult, StageSpec

log = logging.getLogger(__name__)


class DiffusersText2Image:
    """Generator for any pipeline ``AutoPipelineForText2Image`` can load."""

    name = "diffusers"

    def __init__(self, model: str, opts: GeneratorOptions) -> None:
        if not model:
            raise ModelSpecError("--model diffusers:ID_OR_PATH needs a model id or folder")
        if opts.num_stages not in (None, 1):
            raise ModelSpecError("a diffusers pipeline has one stage; drop --stages")
        self.model = model
        self.opts = opts
        self._pipe: Any = None

    def stages(self) -> list[StageSpec]:
        return [StageSpec(1, "final")]

    def config(self) -> dict[str, Any]:
        o = self.opts
        return {"generator": self.name, "model": self.model, "dtype": o.dtype,
                "variant": o.variant, "micro_batch": o.micro_batch, "steps": list(o.steps or []),
                "guidance": list(o.guidance or []), "negative_prompt": o.negative_prompt}

    def _load(self) -> Any:
        if self._pipe is None:
            import torch
            from diffusers import AutoPipelineForText2Image

            if self.opts.cpu_threads:
                torch.set_num_threads(self.opts.cpu_threads)
            kwargs: dict[str, Any] = {"dtype": getattr(torch, self.opts.dtype),
                                      "local_files_only": self.opts.local_files_only}
            if self.opts.variant:
                kwargs["variant"] = self.opts.variant
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(self.model, **kwargs)
            except (OSError, ValueError) as exc:
                raise ModelSpecError(f"cannot load diffusers pipeline {self.model!r}: {exc}. "
                                     "Give a local folder or a cached hub id") from exc
            if self.opts.cpu_offload:
                pipe.enable_model_cpu_offload()
            else:
                pipe.to(self.opts.device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
        return self._pipe

    def provenance(self) -> dict[str, Any]:
        import torch

        pipe = self._load()
        return {**self.config(), "pipeline_class": type(pipe).__name__,
                "scheduler": {"class": type(pipe.scheduler).__name__,
                              "config": dict(pipe.scheduler.config)},
                "device": self.opts.device, "cpu_offload": self.opts.cpu_offload,
                "torch_threads": torch.get_num_threads(),
                "seeding": "torch.Generator('cpu').manual_seed(seed), one per sample"}

    def generate(self, batch: Sequence[PlannedSample]) -> Iterator[SampleResult]:
        import torch

        pipe = self._load()
        provenance = self.provenance()
        kwargs: dict[str, Any] = {"output_type": "np"}
        if self.opts.steps:
            kwargs["num_inference_steps"] = self.opts.steps[0]
        if self.opts.guidance:
            kwargs["guidance_scale"] = self.opts.guidance[0]
        step = self.opts.micro_batch
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            gens = [torch.Generator("cpu").manual_seed(int(s.seed or 0)) for s in chunk]
            if self.opts.negative_prompt:
                kwargs["negative_prompt"] = [self.opts.negative_prompt] * len(chunk)
            with torch.inference_mode():
                images = pipe(prompt=[s.prompt for s in chunk], generator=gens, **kwargs).images
            for sample, img in zip(chunk, uint8_batch(images), strict=True):
                yield SampleResult(sample.sample_id, {1: img}, provenance)

    def close(self) -> None:
        self._pipe = None


@register("diffusers")
def _make(argument: str, opts: GeneratorOptions) -> DiffusersText2Image:
    return DiffusersText2Image(argument, opts)
