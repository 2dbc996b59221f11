"""The cascade on tiny random components: determinism, batch independence, shared text
embeddings and the full three-stage path (64 → 256 → 1024)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagen_audit.generate import GeneratorOptions, make_generator
from imagen_audit.generate.cascade import CascadeConfig, EmbeddingCache, ImagenCascade
from imagen_audit.generate.runner import generate_run
from imagen_audit.store import RunStore
from imagen_audit.store.images import read_png
from imagen_audit.store.records import PlannedSample

FAST = GeneratorOptions(num_stages=2, steps=(2, 1))


def _sample(prompt: str, seed: int, order: int = 0) -> PlannedSample:
    return PlannedSample(f"s{order}", f"p{order}", prompt, 0, seed, order)


def _images(gen, batch) -> list[dict[int, np.ndarray]]:
    return [dict(r.images) for r in gen.generate(batch)]


def test_same_seed_same_pixels_across_generator_instances(tiny_cascade_dir: Path) -> None:
    a = _images(make_generator("tiny-cascade", FAST), [_sample("a photo of a nurse", 7)])[0]
    b = _images(make_generator("tiny-cascade", FAST), [_sample("a photo of a nurse", 7)])[0]
    c = _images(make_generator("tiny-cascade", FAST), [_sample("a photo of a nurse", 8)])[0]
    assert set(a) == {1, 2}
    assert a[1].shape == (64, 64, 3) and a[2].shape == (256, 256, 3)
    for stage in a:
        assert np.array_equal(a[stage], b[stage])
        assert not np.array_equal(a[stage], c[stage])


def test_image_does_not_depend_on_batch(tiny_cascade_dir: Path) -> None:
    gen = make_generator("tiny-cascade", FAST)
    target = _sample("a photo of the face of a carpenter", 11, 0)
    alone = _images(gen, [target])[0]
    # Different batch size and different neighbours, target in second position.
    others = [_sample("a candid photo of a cashier", 3, 1), target,
              _sample("a portrait photo of a judge", 5, 2)]
    shared = _images(make_generator("tiny-cascade", FAST), others)[1]
    for stage in alone:
        assert np.array_equal(alone[stage], shared[stage]), f"stage {stage} differs"


def test_text_encoder_runs_once_per_unique_prompt(tiny_cascade_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[str] = []
    original = EmbeddingCache.__init__

    def counting_init(self, encode, maxsize):  # wrap the encoder the cascade installs
        def spy(texts):
            encoded.extend(texts)
            return encode(texts)

        original(self, spy, maxsize)

    monkeypatch.setattr(EmbeddingCache, "__init__", counting_init)
    # Count real forward passes of the T5 encoder too, not just cache misses.
    sequences = []
    from transformers import T5EncoderModel

    real_forward = T5EncoderModel.forward

    def forward(self, input_ids=None, *args, **kwargs):
        sequences.append(int(input_ids.shape[0]))
        return real_forward(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(T5EncoderModel, "forward", forward)
    summary = generate_run(tmp_path / "run", model="tiny-cascade", probes="occupations",
                           limit_prompts=2, samples_per_prompt=3, batch_size=2,
                           options=FAST, progress=False)
    assert summary.generated == 6
    # Two unique prompts plus the (empty) negative prompt, each embedded exactly once and
    # shared by stages I and II (stage II has no text encoder of its own).
    assert sorted(encoded) == sorted(["", *{p for p in _prompts(tmp_path / "run")}])
    assert len(encoded) == 3
    assert sum(sequences) == 3


def _prompts(run: Path) -> set[str]:
    with RunStore.open_readonly(run) as store:
        return set(store.prompts_table()["prompt"])


def test_embedding_cache_is_bounded() -> None:
    calls = []
    cache = EmbeddingCache(lambda xs: (calls.extend(xs), [x.upper() for x in xs])[1], maxsize=2)
    assert cache.get(["a", "b", "a"]) == ["A", "B", "A"]
    cache.get(["c"])
    cache.get(["d"])
    assert len(cache._items) == 2
    assert calls == ["a", "b", "c", "d"]
    assert cache.encoded == 4


def test_three_stage_cascade_writes_every_stage(tiny_cascade_dir: Path, tmp_path: Path) -> None:
    opts = GeneratorOptions(steps=(1, 1, 1))
    summary = generate_run(tmp_path / "run", model="tiny-cascade", limit_prompts=1,
                           samples_per_prompt=1, options=opts, progress=False)
    assert summary.complete and summary.generated == 1
    with RunStore.open_readonly(tmp_path / "run") as store:
        images = store.images_table()
        assert list(images["stage_name"]) == ["base_64", "sr_256", "sr_1024"]
        assert list(images["width"]) == [64, 256, 1024]
        for rel in images["path"]:
            assert read_png(store.image_path(rel)).shape[0] in (64, 256, 1024)
        prov = store.provenance_records()[int(images["provenance_id"].iloc[0])]
        gen = prov["generator"]
        assert gen["generator"] == "tiny-cascade"
        assert gen["steps"] == [1, 1, 1] and gen["noise_levels"] == [250, 100]
        assert [s["class"] for s in gen["schedulers"]] == ["DDPMScheduler", "DDPMScheduler",
                                                           "DDIMScheduler"]
        assert "noise" in gen["notice"]
        assert prov["environment"]["packages"]["diffusers"]
        assert store.verify() == []


def test_resume_with_other_settings_is_refused(tiny_cascade_dir: Path, tmp_path: Path) -> None:
    from imagen_audit.errors import RunStoreError

    generate_run(tmp_path / "run", limit_prompts=1, options=FAST, progress=False)
    with pytest.raises(RunStoreError, match="steps"):
        generate_run(tmp_path / "run", limit_prompts=1, progress=False,
                     options=GeneratorOptions(num_stages=2, steps=(3, 1)))


def test_cascade_config_overlays_and_validates() -> None:
    from imagen_audit.errors import ModelSpecError

    cfg = CascadeConfig().with_options(GeneratorOptions(steps=(20,), num_stages=2,
                                                        stage_models=(None, "/models/ii")))
    assert cfg.steps == (20, 50, 75)
    assert cfg.stage_models[1] == "/models/ii"
    assert cfg.binding()["stage_models"] == ["DeepFloyd/IF-I-XL-v1.0", "/models/ii"]
    assert "device" not in cfg.binding()
    with pytest.raises(ModelSpecError):
        CascadeConfig(num_stages=4)
    with pytest.raises(ModelSpecError):
        CascadeConfig().with_options(GeneratorOptions(steps=(1, 2, 3, 4)))


def test_imagen_cascade_defaults_and_offline_error() -> None:
    from imagen_audit.errors import ModelSpecError

    gen = make_generator("imagen-cascade", GeneratorOptions(local_files_only=True))
    assert isinstance(gen, ImagenCascade)
    assert gen.cfg.stage_models == ("DeepFloyd/IF-I-XL-v1.0", "DeepFloyd/IF-II-L-v1.0",
                                    "stabilityai/stable-diffusion-x4-upscaler")
    assert [s.width for s in gen.stages()] == [64, 256, 1024]
    with pytest.raises(ModelSpecError, match="IF-I-XL"):
        list(gen.generate([_sample("x", 1)]))
