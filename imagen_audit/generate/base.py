"""The generator interface and the registry that picks a backend by name.

A generator turns planned samples into images, one RGB array per cascade stage it produces.
It does not know about run folders: the runner feeds it batches and commits what it
returns, so every backend gets resumability, locking and provenance for free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from imagen_audit.errors import ModelSpecError
from imagen_audit.store.records import PlannedSample, SampleResult, StageSpec


@runtime_checkable
class Generator(Protocol):
    """What every image source implements (diffusion cascades, any pipeline, a folder)."""

    name: str

    def stages(self) -> Sequence[StageSpec]:
        """The stages whose images each sample gets, in cascade order."""

    def config(self) -> Mapping[str, Any]:
        """Everything that changes the pixels; a resumed run must present the same config."""

    def generate(self, batch: Sequence[PlannedSample]) -> Iterator[SampleResult]:
        """Yield one result per sample of the batch, in order.

        Each sample's pixels must depend only on its own prompt and seed, never on batch
        size or on the other samples in the batch.
        """

    def close(self) -> None:
        """Free models and memory."""


@dataclass(frozen=True)
class GeneratorOptions:
    """Options the CLI passes to any backend; each backend reads the ones it understands."""

    device: str = "cpu"
    dtype: str = "float32"
    cpu_offload: bool = False
    variant: str | None = None
    num_stages: int | None = None
    steps: tuple[int, ...] | None = None
    guidance: tuple[float, ...] | None = None
    noise_levels: tuple[int, ...] | None = None
    negative_prompt: str = ""
    stage_models: tuple[str | None, ...] | None = None
    local_files_only: bool = False
    micro_batch: int = 1
    cpu_threads: int | None = None  # torch intra-op threads on CPU (pixels depend on it)


Factory = Callable[[str, GeneratorOptions], Generator]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Register a generator factory under ``name`` (used as ``--model name[:argument]``)."""

    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def make_generator(spec: str, options: GeneratorOptions | None = None) -> Generator:
    """Build the generator named by ``spec``: ``tiny-cascade``, ``imagen-cascade``,
    ``diffusers:ID_OR_PATH`` or ``folder:PATH``."""
    _load_builtin()
    name, _, argument = spec.partition(":")
    if name not in _REGISTRY:
        raise ModelSpecError(f"unknown --model {spec!r}; expected one of "
                             + ", ".join(f"{n}[:ARG]" for n in sorted(_REGISTRY)))
    return _REGISTRY[name](argument, options or GeneratorOptions())


def _load_builtin() -> None:
    # Importing the backend modules registers them; each imports torch/diffusers lazily.
    from imagen_audit.generate import cascade, diffusers_any, folder, tiny  # noqa: F401


def uint8_batch(images: Any) -> list[Any]:
    """Pipeline ``output_type='np'`` floats in [0, 1] → list of HxWx3 uint8 arrays."""
    from imagen_audit.store.images import to_uint8_rgb

    return [to_uint8_rgb(img) for img in images]
