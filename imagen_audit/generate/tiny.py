"""The embedded default: the real cascade code on tiny, randomly initialised components.

``tiny-cascade`` builds a T5 encoder, IF stage I and II UNets, and an x4-upscaler UNet,
VAE and CLIP encoder from small configs (seeded, so every machine builds the same weights),
saves them with ``save_pretrained`` into a cache folder and loads them back through
``from_pretrained(local_files_only=True)``: the exact loading and generation path of
``imagen-cascade``, offline and in seconds on a CPU.

**Its images are noise.** It exists to exercise and demonstrate the pipeline, never to
say anything about a real model; the CLI, the provenance and the report all say so.

The builders here double as the ``get_dummy_components`` of the test suite.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

from imagen_audit.generate.base import GeneratorOptions, register
from imagen_audit.generate.cascade import CascadeConfig, ImagenCascade

log = logging.getLogger(__name__)

TINY_VERSION = "1"
NOTICE = ("tiny-cascade: randomly initialised demo models; the images are noise and say "
          "nothing about any real model")
TINY_DEFAULTS = {"steps": (4, 3, 3), "guidance": (7.0, 4.0, 9.0), "noise_levels": (250, 100)}
_SEED = 0


def cache_root() -> Path:
    """Where built tiny models live (``$IMAGEN_AUDIT_CACHE`` or ``~/.cache/imagen-audit``)."""
    env = os.environ.get("IMAGEN_AUDIT_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "imagen-audit"
    return base / f"tiny-cascade-v{TINY_VERSION}"


# ---------------------------------------------------------------------- tokenizers
def tiny_t5_tokenizer() -> Any:
    """A character-level T5 (unigram) tokenizer: covers any ASCII text, no spm file."""
    from transformers import T5Tokenizer

    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + ".,'-!?:;()\"&/"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + c, -3.0) for c in chars] + [(c, -4.0) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_clip_tokenizer() -> Any:
    """A byte-level CLIP BPE tokenizer with no merges (each character one token)."""
    from transformers import CLIPTokenizer

    byte_chars = [chr(c) for c in range(33, 127)]
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in byte_chars:
        vocab.setdefault(c, len(vocab))
    for c in byte_chars:
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77,
                         pad_token="<|endoftext|>")


# ---------------------------------------------------------------------- schedulers
def if_schedulers() -> dict[str, Any]:
    """The sampler of IF stages I and II (DeepFloyd's settings: cosine schedule, learned
    variance, dynamic thresholding); shared with the real-size builders of the benchmarks."""
    from diffusers import DDPMScheduler

    return {"scheduler": DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001,
        beta_end=0.02, thresholding=True, dynamic_thresholding_ratio=0.95,
        sample_max_value=1.0, prediction_type="epsilon", variance_type="learned_range")}


def if_noising_scheduler() -> Any:
    """Stage II's scheduler for noising its low-resolution input."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         beta_start=0.0001, beta_end=0.02)


def x4_schedulers() -> dict[str, Any]:
    """The x4 upscaler's schedulers and noise-level bound (its published settings)."""
    from diffusers import DDIMScheduler, DDPMScheduler

    return {"low_res_scheduler": DDPMScheduler(num_train_timesteps=1000),
            "scheduler": DDIMScheduler(prediction_type="v_prediction", num_train_timesteps=1000),
            "max_noise_level": 350}


# ---------------------------------------------------------------------- components
def stage1_components() -> dict[str, Any]:
    """Dummy components for ``IFPipeline`` at 64×64 (cf. diffusers' IF test scaffolding)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(_SEED)
    tokenizer = tiny_t5_tokenizer()
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    unet = UNet2DConditionModel(
        sample_size=64, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        in_channels=3, out_channels=6, cross_attention_dim=32, encoder_hid_dim=32,
        attention_head_dim=8, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
        act_fn="gelu", norm_num_groups=8)
    return {"tokenizer": tokenizer, "text_encoder": text_encoder, "unet": unet,
            **if_schedulers(), "safety_checker": None, "feature_extractor": None,
            "watermarker": None}


def stage2_components() -> dict[str, Any]:
    """Dummy components for ``IFSuperResolutionPipeline`` 64 → 256 (attention only at the
    lowest resolution, 32×32: attention at higher resolutions costs seconds to tens of GB)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(_SEED + 1)
    unet = UNet2DConditionModel(
        sample_size=256, layers_per_block=1, block_out_channels=(8, 16, 16, 32),
        down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D",
                          "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D",
                        "ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"),
        in_channels=6, out_channels=6, cross_attention_dim=32, encoder_hid_dim=32,
        attention_head_dim=8, addition_embed_type="text", addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift",
        act_fn="gelu", class_embed_type="timestep", mid_block_scale_factor=1.414,
        time_embedding_act_fn="gelu", time_embedding_dim=32, norm_num_groups=8)
    return {"tokenizer": None, "text_encoder": None, "unet": unet, **if_schedulers(),
            "image_noising_scheduler": if_noising_scheduler(), "safety_checker": None,
            "feature_extractor": None, "watermarker": None}


def stage3_components() -> dict[str, Any]:
    """Dummy components for ``StableDiffusionUpscalePipeline`` 256 → 1024 (its own CLIP
    text encoder; attention only in the lowest-resolution block (32×32 latents) and none in
    the VAE, whose mid-block attention would span 256×256 latents)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(_SEED + 2)
    tokenizer = tiny_clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        max_position_embeddings=77, hidden_act="gelu", projection_dim=32))
    unet = UNet2DConditionModel(
        sample_size=256, layers_per_block=1, block_out_channels=(8, 8, 16, 16), in_channels=7,
        out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, use_linear_projection=True,
        num_class_embeds=351, norm_num_groups=8)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=8, scaling_factor=0.08333, mid_block_add_attention=False)
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            **x4_schedulers(), "safety_checker": None, "feature_extractor": None,
            "watermarker": None}


def build_tiny_cascade(target: Path) -> Path:
    """Build the three tiny pipelines and ``save_pretrained`` them under ``target``.

    Built in a temporary folder and renamed into place, so a half-built cache is never used.
    """
    from diffusers import IFPipeline, IFSuperResolutionPipeline, StableDiffusionUpscalePipeline

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        IFPipeline(**stage1_components(), requires_safety_checker=False).save_pretrained(
            tmp / "stage_1")
        IFSuperResolutionPipeline(**stage2_components(), requires_safety_checker=False
                                  ).save_pretrained(tmp / "stage_2")
        StableDiffusionUpscalePipeline(**stage3_components()).save_pretrained(tmp / "stage_3")
        (tmp / "DIGEST").write_text(_folder_digest(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process built it first
            if not (target / "DIGEST").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "DIGEST"):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def ensure_tiny_cascade(root: Path | None = None) -> Path:
    """The folder holding the tiny cascade, built on first use."""
    root = root or cache_root()
    if not (root / "DIGEST").is_file():
        log.info("building the tiny cascade in %s (first use)", root)
        build_tiny_cascade(root)
    return root


@register("tiny-cascade")
def _make(argument: str, opts: GeneratorOptions) -> ImagenCascade:
    root = ensure_tiny_cascade(Path(argument) if argument else None)
    base = CascadeConfig(
        stage_models=tuple(str(root / f"stage_{i}") for i in (1, 2, 3)),
        model_digest=(root / "DIGEST").read_text().strip(),
        local_files_only=True, **TINY_DEFAULTS)
    if opts.stage_models:
        raise ValueError("tiny-cascade has fixed stage models; use imagen-cascade to choose")
    gen = ImagenCascade(base.with_options(opts), notice=NOTICE)
    gen.name = "tiny-cascade"
    return gen
