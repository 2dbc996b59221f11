"""``diffusers:PATH``: any text-to-image pipeline, on a tiny Stable Diffusion saved locally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagen_audit.generate import GeneratorOptions, make_generator
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore
from imagen_audit.store.records import PlannedSample


def get_dummy_components() -> dict:
    """Tiny Stable Diffusion components (32 px images), diffusers' own test recipe, smaller."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from imagen_audit.generate.tiny import tiny_clip_tokenizer

    torch.manual_seed(0)
    tokenizer = tiny_clip_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(8, 8), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=8)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        max_position_embeddings=77))
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": DDIMScheduler(clip_sample=False), "safety_checker": None,
            "feature_extractor": None, "image_encoder": None}


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import StableDiffusionPipeline

    path = tmp_path_factory.mktemp("tiny-sd")
    StableDiffusionPipeline(**get_dummy_components(), requires_safety_checker=False
                            ).save_pretrained(path)
    return path


def test_any_pipeline_from_a_folder_is_deterministic(tiny_sd: Path) -> None:
    opts = GeneratorOptions(steps=(2,), local_files_only=True)
    batch = [PlannedSample("a", "pa", "a photo of a baker", 0, 5, 0),
             PlannedSample("b", "pb", "a photo of a welder", 0, 6, 1)]
    gen = make_generator(f"diffusers:{tiny_sd}", opts)
    first = [r.images[1] for r in gen.generate(batch)]
    alone = next(iter(make_generator(f"diffusers:{tiny_sd}", opts).generate(batch[1:])))
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert np.array_equal(first[1], alone.images[1])
    assert not np.array_equal(first[0], first[1])
    assert gen.provenance()["pipeline_class"] == "StableDiffusionPipeline"


def test_any_pipeline_through_the_runner(tiny_sd: Path, tmp_path: Path) -> None:
    summary = generate_run(tmp_path / "run", model=f"diffusers:{tiny_sd}", limit_prompts=2,
                           samples_per_prompt=2, options=GeneratorOptions(steps=(2,)),
                           progress=False)
    assert summary.generated == 4
    with RunStore.open_readonly(tmp_path / "run") as store:
        images = store.images_table()
        assert list(images["stage_name"].unique()) == ["final"]
        assert store.verify() == []


def test_missing_pipeline_gives_a_clear_error(tmp_path: Path) -> None:
    from imagen_audit.errors import ModelSpecError

    gen = make_generator(f"diffusers:{tmp_path / 'nope'}", GeneratorOptions(local_files_only=True))
    with pytest.raises(ModelSpecError, match="cannot load diffusers pipeline"):
        list(gen.generate([PlannedSample("a", "pa", "x", 0, 1, 0)]))
