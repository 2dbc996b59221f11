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
from imagen_audit.registry import Registry
from imagen_audit.store.records import PlannedSample, SampleFailure, SampleResult, StageSpec


@runtime_checkable
class Generator(Protocol):
    """What every image source implements (diffusion cascades, any pipeline, a folder)."""

    name: str

    def stages(self) -> Sequence[StageSpec]:
        """The stages whose images each sample gets, in cascade order."""

    def config(self) -> Mapping[str, Any]:
        """Everything that changes the pixels; a resumed run must present the same config."""

    def generate(self, batch: Sequence[PlannedSample]
                 ) -> Iterator[SampleResult | SampleFailure]:
        """Yield one result per sample of the batch, in order.

        Each sample's pixels must depend only on its own prompt and seed, never on batch
        size or on the other samples in the batch. A sample that cannot be made for a
        reason of its own (an unreadable imported file) is yielded as a SampleFailure,
        so the others still are; an exception fails the rest of the shard.
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
GENERATORS: Registry[Factory] = Registry("generator (--model)", {
    "tiny-cascade": "imagen_audit.generate.tiny",
    "imagen-cascade": "imagen_audit.generate.cascade",
    "diffusers": "imagen_audit.generate.diffusers_any",
    "folder": "imagen_audit.generate.folder",
}, ModelSpecError)
register = GENERATORS.register


def available() -> list[str]:
    return GENERATORS.names()


def make_generator(spec: str, options: GeneratorOptions | None = None) -> Generator:
    """Build the generator named by ``spec``: ``tiny-cascade``, ``imagen-cascade``,
    ``diffusers:ID_OR_PATH`` or ``folder:PATH``."""
    name, _, argument = spec.partition(":")
    return GENERATORS.get(name)(argument, options or GeneratorOptions())


def uint8_batch(images: Any) -> list[Any]:
    """Pipeline ``output_type='np'`` floats in [0, 1] → list of HxWx3 uint8 arrays."""
    from imagen_audit.store.images import to_uint8_rgb

    return [to_uint8_rgb(img) for img in images]
