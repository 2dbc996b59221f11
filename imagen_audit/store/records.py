"""Typed records that cross the boundary between the run store and the stages around it.

Words are kept apart on purpose: a *sample* is one (prompt id, seed) pair; an *image* is
one sample at one cascade stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StageSpec:
    """One output stage of a generator (``stage`` counts from 1 in cascade order)."""

    stage: int
    name: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class PlannedSample:
    """A sample as planned: what to generate, before anything is generated."""

    sample_id: str
    prompt_id: str
    prompt: str
    sample_index: int
    seed: int | None
    plan_order: int
    source_file: str | None = None  # only for imported images (folder generator)


@dataclass
class SampleResult:
    """What a generator returns for one sample: one RGB uint8 array per stage produced.

    ``provenance`` is the generator's record of how the images were made (model ids,
    revisions, scheduler, steps, guidance, noise levels, dtype); the store adds package
    versions and the git revision.
    """

    sample_id: str
    images: Mapping[int, np.ndarray]
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleFailure:
    """One sample a generator could not produce while the others can (e.g. an imported file
    that does not decode): recorded as failed, the run goes on, the next run retries it.

    Unlike a shard failure (a model that raised), it does not count towards stopping the
    run, because it says nothing about the samples after it. ``error`` names the cause
    (for an imported image: the file and its manifest line).
    """

    sample_id: str
    error: str


@dataclass(frozen=True)
class ImageRecord:
    """One stored image: a sample at a stage, as indexed in the store."""

    image_id: str
    sample_id: str
    stage: int
    stage_name: str
    width: int
    height: int
    path: str
    pixel_sha256: str
