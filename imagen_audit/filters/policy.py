"""Policies: which prompt-filter backends run, their thresholds, and how their scores combine.

A policy is a YAML file (``filters/*.yaml``, or any file a user names; UTF-8, read with a
``yaml.SafeLoader`` that also refuses a key given twice)::

    schema_version: 1
    name: default
    description: free text
    combine: any            # any: block when any backend reaches its threshold
                            # weighted: block when sum(weight * score) / sum(weight) >= threshold
    threshold: 0.5          # only for combine: weighted
    backends:
      - name: blocklist     # a registered backend (blocklist, profanity, embedding, detoxify)
        threshold: 0.9      # in [0, 1]; required for combine: any
        weight: 1.0         # >= 0; used by combine: weighted (default 1)
        options:            # passed to the backend; relative paths: beside this file
          wordlists: wordlists

Every problem is reported with the file and the field (``backends[1].threshold``): a file that
is not UTF-8, a key given twice in one mapping, a relative option path that leaves the policy's
folder, and options a backend refuses when it is built.

The combined score is one number in [0, 1] with the decision at 0.5, so one threshold sweep
and one ROC curve describe the whole policy. For ``any``, each backend's score ``s`` with
threshold ``t`` is mapped piecewise-linearly so that ``t`` lands on 0.5 (``s/(2t)`` below,
``0.5 + (s-t)/(2(1-t))`` above) and the combined score is the largest of them: the policy
blocks exactly when some backend reaches its threshold. For ``weighted`` the weighted mean
is shifted the same way around the policy's threshold. A blocked prompt's category is that
of the backend with the highest mapped score that names one; an allowed prompt has none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from imagen_audit.documents import parse_yaml, read_text
from imagen_audit.filters.base import (
    FilterError,
    FilterResult,
    PolicyError,
    PromptFilter,
    available,
    make_filter,
)
from imagen_audit.resources import YAML_SUFFIXES

SCHEMA_VERSION = 1
COMBINE = ("any", "weighted")
_TOP_FIELDS = {"schema_version", "name", "description", "combine", "threshold", "backends"}
_BACKEND_FIELDS = {"name", "threshold", "weight", "options"}
_PATH_OPTIONS = {"wordlists", "model", "checkpoint", "huggingface_config_path",
                 "identity_lexicon", "figurative_lexicon"}


@dataclass(frozen=True)
class BackendSpec:
    name: str
    threshold: float | None = None
    weight: float = 1.0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A policy's verdict on one prompt."""

    score: float
    decision: str            # "block" | "allow"
    category: str | None
    scores: Mapping[str, float]
    explanation: str = ""    # what the backends saw (:func:`explain`)


def _num(path: object, value: Any, fld: str, lo: float = 0.0, hi: float | None = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(path, f"must be a number, got {value!r}", field=fld)
    v = float(value)
    if not (v >= lo and (hi is None or v <= hi)):
        raise PolicyError(path, f"must be in [{lo}, {hi if hi is not None else 'inf'}], "
                                f"got {value!r}", field=fld)
    return v


def _inside(base: Path, rel: str) -> bool:
    """Whether the relative path ``rel`` stays in the folder ``base``.

    Checked on the written path (``..`` folded lexically) so that a symlink the policy's author
    put beside the policy (``models -> /data/models``) keeps working; when ``rel`` has a ``..``
    the resolved path must stay inside too, so ``link/../x`` cannot climb out through a link.
    """
    root = os.path.normpath(base.absolute())
    lexical = os.path.normpath(os.path.join(root, rel))
    try:
        if os.path.commonpath([root, lexical]) != root:
            return False
    except ValueError:  # another drive (Windows "D:x"): not inside
        return False
    if ".." in Path(rel).parts:
        real_root = base.resolve()
        real = (base / rel).resolve()
        return real == real_root or real_root in real.parents
    return True


def _resolve(base: Path, value: Any, path: object = "<policy>", fld: str = "options") -> Any:
    """A path option (or a list of them, e.g. an ensemble's models) made absolute against the
    policy's folder; anything else is left for the backend to refuse.

    A relative path must stay in the policy's folder: it is written to travel with the policy
    (shipped data, a tuned copy beside its word lists), so ``wordlists: ../../../../etc`` is
    a mistake or an attempt to read files the policy's reader never chose. An absolute path
    stays allowed: the author named that place explicitly, and ``save`` writes one for data
    outside the policy's folder.
    """
    if isinstance(value, list):
        return [_resolve(base, v, path, f"{fld}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and not Path(value).is_absolute():
        if not _inside(base, value):
            raise PolicyError(path, f"relative path {value!r} leaves the policy's folder "
                                    f"({base.absolute()}); keep data beside the policy or "
                                    "give an absolute path", field=fld)
        return str((base / value).resolve())
    return value


def _locate(spec: str | Path) -> Path:
    """The file that ``Policy.load(spec)`` reads, by the rule every shipped kind shares
    (:func:`imagen_audit.resources.resolve_shipped`): a plain name (``default``) is the shipped
    policy ``filters/<name>.yaml``; an existing file is read whatever its suffix
    (``tuned/bl.txt``, ``mine.YAML``); anything else with a folder part is the user's path and
    must exist. Only plain names are looked up in the shipped folder, so ``../../tmp/x/evil``
    cannot load ``/tmp/x/evil.yaml``.
    """
    from imagen_audit.resources import UnknownShippedName, data_dir, resolve_shipped

    try:
        path = resolve_shipped(str(spec), "filters", "prompt-filter policy")
    except UnknownShippedName as exc:
        raise PolicyError(spec, f"no shipped policy of that name; choose one of {exc.names} "
                                "or give a path to a policy file") from None
    if path.is_file() or path.suffix.lower() in YAML_SUFFIXES:
        return path  # a missing .yaml path is reported by the read ("cannot read")
    names = sorted(p.stem for p in data_dir("filters").glob("*.yaml"))
    raise PolicyError(spec, "no such policy file (a shipped policy is named by a plain name, "
                            f"one of {names})")


def _to_scores(s: Any, t: float) -> np.ndarray:
    """Backend scores mapped piecewise-linearly so that threshold ``t`` lands on 0.5 (the
    policy's one decision point), as an array: ``filters tune`` re-decides thousands of
    prompts per candidate threshold."""
    s = np.asarray(s, float)
    if t <= 0.0:
        return np.where(s > 0, 1.0, 0.5)
    if t >= 1.0:
        return 0.5 * s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s < t, s / (2 * t), 0.5 + (s - t) / (2 * (1 - t)))


def explain(results: Mapping[str, FilterResult]) -> str:
    """What the backends saw in one prompt, for the people who tune a policy: the word list's
    strongest term (and whether it deferred), and the classifier's rewrites with the score
    before each ("phrase read as ..."), so an allowed prompt says why it passed. Empty when no
    backend reports anything beyond its score."""
    parts = []
    for name, r in results.items():
        d = r.details or {}
        matches = d.get("matches") or []
        if matches:
            top = matches[0]
            parts.append(f"{name}: {top['term']!r} ({top['category']}, weight "
                         f"{top['weight']:g})" + (f", deferred: {d['deferred']}"
                                                  if d.get("deferred") else ""))
        if "figurative_rewrite" in d:
            parts.append(f"{name}: phrase read as {d['figurative_rewrite']!r} (score "
                         f"{d['score_before_figurative']:.2f} before)")
        if "format_rewrite" in d:
            parts.append(f"{name}: read as {d['format_rewrite']!r} (score "
                         f"{d['score_before_format']:.2f} before)")
        if "identity_rewrite" in d:
            parts.append(f"{name}: identity-neutral {d['identity_rewrite']!r} (score "
                         f"{d['score_before_identity']:.2f} before)")
        if "read_chars" in d:
            parts.append(f"{name}: read the {d['read_chars']} characters")
    return "; ".join(parts)


class Policy:
    """A validated policy; builds its backends lazily on first use."""

    def __init__(self, name: str, backends: Sequence[BackendSpec], combine: str = "any",
                 threshold: float | None = None, description: str = "",
                 source: str | Path | None = None) -> None:
        self.name, self.combine, self.threshold = name, combine, threshold
        self.backends = tuple(backends)
        self.description = description
        self.source = Path(source) if source else None
        self._filters: dict[str, PromptFilter] = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, spec: str | Path) -> Policy:
        """A shipped policy by name (``default``) or a path to a policy file (any suffix).

        Every failure is a :class:`PolicyError` naming the file: unreadable, not UTF-8, not
        YAML, a key given twice, or invalid (:meth:`from_dict`).
        """
        path = _locate(spec)

        def error(message: str, fld: str | None) -> PolicyError:
            return PolicyError(path, message, field=fld)

        text = read_text(path, error, "policy file")
        return cls.from_dict(parse_yaml(text, error, unique_keys=True), path, base=path.parent)

    @classmethod
    def from_dict(cls, doc: Any, path: str | Path = "<policy>", *,
                  base: Path | None = None) -> Policy:
        """A validated policy from a parsed document; ``path`` names it in errors and
        ``base`` is the folder its relative option paths are read from (by default the
        folder of a ``.yaml``/``.yml`` path, else the working folder)."""
        if not isinstance(doc, dict):
            raise PolicyError(path, "a policy must be a mapping")
        unknown = sorted(set(doc) - _TOP_FIELDS)
        if unknown:
            raise PolicyError(path, f"unknown field (allowed: {sorted(_TOP_FIELDS)})",
                              field=unknown[0])
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise PolicyError(path, f"must be {SCHEMA_VERSION}", field="schema_version")
        name = doc.get("name", Path(str(path)).stem)
        if not isinstance(name, str) or not name:
            raise PolicyError(path, "must be a non-empty string", field="name")
        combine = doc.get("combine", "any")
        if combine not in COMBINE:
            raise PolicyError(path, f"must be one of {list(COMBINE)}, got {combine!r}",
                              field="combine")
        threshold = None
        if combine == "weighted":
            if "threshold" not in doc:
                raise PolicyError(path, "required when combine is 'weighted'", field="threshold")
            threshold = _num(path, doc["threshold"], "threshold")
        elif "threshold" in doc:
            raise PolicyError(path, "only for combine: weighted (set each backend's threshold)",
                              field="threshold")
        raw = doc.get("backends")
        if not isinstance(raw, list) or not raw:
            raise PolicyError(path, "must be a non-empty list", field="backends")
        known = available()
        if base is None:
            base = Path(str(path)).parent if Path(str(path)).suffix.lower() in YAML_SUFFIXES \
                else Path(".")
        specs, seen = [], set()
        for i, b in enumerate(raw):
            where = f"backends[{i}]"
            if not isinstance(b, dict):
                raise PolicyError(path, "must be a mapping", field=where)
            bad = sorted(set(b) - _BACKEND_FIELDS)
            if bad:
                raise PolicyError(path, f"unknown field (allowed: {sorted(_BACKEND_FIELDS)})",
                                  field=f"{where}.{bad[0]}")
            bname = b.get("name")
            if bname not in known:
                raise PolicyError(path, f"unknown backend {bname!r}; available: {known}",
                                  field=f"{where}.name")
            if bname in seen:
                raise PolicyError(path, f"backend {bname!r} listed twice", field=f"{where}.name")
            seen.add(bname)
            bt = None
            if "threshold" in b:
                bt = _num(path, b["threshold"], f"{where}.threshold")
            elif combine == "any":
                raise PolicyError(path, "required when combine is 'any'",
                                  field=f"{where}.threshold")
            weight = _num(path, b.get("weight", 1.0), f"{where}.weight", 0.0, None)
            opts = b.get("options") or {}
            if not isinstance(opts, dict):
                raise PolicyError(path, "must be a mapping", field=f"{where}.options")
            opts = {k: (_resolve(base, v, path, f"{where}.options.{k}")
                        if k in _PATH_OPTIONS else v)
                    for k, v in opts.items()}
            specs.append(BackendSpec(bname, bt, weight, opts))
        if combine == "weighted" and sum(s.weight for s in specs) <= 0:
            raise PolicyError(path, "at least one weight must be positive", field="backends")
        return cls(name, specs, combine, threshold, str(doc.get("description", "")), path)

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        def rel(v: Any) -> Any:
            if isinstance(v, list):
                return [rel(x) for x in v]
            if relative_to is None or not isinstance(v, str):
                return v
            # Relative only below the policy's own folder; elsewhere (shipped data, another
            # tree) absolute, so the file still works after being moved.
            try:
                return str(Path(v).resolve().relative_to(relative_to))
            except ValueError:
                return v

        doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "name": self.name,
                               "description": self.description, "combine": self.combine}
        if self.threshold is not None:
            doc["threshold"] = round(float(self.threshold), 6)
        doc["backends"] = []
        for b in self.backends:
            entry: dict[str, Any] = {"name": b.name}
            if b.threshold is not None:
                entry["threshold"] = round(float(b.threshold), 6)
            if self.combine == "weighted":
                entry["weight"] = b.weight
            if b.options:
                entry["options"] = {k: (rel(v) if k in _PATH_OPTIONS else v)
                                    for k, v in b.options.items()}
            doc["backends"].append(entry)
        return doc

    def save(self, path: str | Path) -> Path:
        """Write the policy as YAML (atomically, through a uniquely named temporary file that
        a failure removes); paths relative to its folder."""
        from imagen_audit.files import write_atomic

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(p, yaml.safe_dump(self.to_dict(p.parent.resolve()),
                                              sort_keys=False))

    def with_thresholds(self, thresholds: Mapping[str, float], *, name: str | None = None,
                        combined: float | None = None, description: str | None = None
                        ) -> Policy:
        """A copy with new backend thresholds (and, for weighted, a new policy threshold)."""
        specs = [replace(b, threshold=float(thresholds.get(b.name, b.threshold)))
                 if b.threshold is not None or b.name in thresholds else b
                 for b in self.backends]
        out = Policy(name or self.name, specs, self.combine,
                     combined if combined is not None else self.threshold,
                     self.description if description is None else description, self.source)
        out._filters = self._filters  # same backends, no reload
        return out

    def with_options(self, name: str, options: Mapping[str, Any]) -> Policy:
        """A copy in which backend ``name`` has ``options`` (``filters tune`` writing a
        backend's ``non_english`` pair). That backend is built again on first use, so its
        scores follow the new options; the others are shared."""
        if name not in {b.name for b in self.backends}:
            raise FilterError(f"policy {self.name!r} has no backend {name!r}")
        specs = [replace(b, options=dict(options)) if b.name == name else b
                 for b in self.backends]
        out = Policy(self.name, specs, self.combine, self.threshold, self.description,
                     self.source)
        out._filters = {k: v for k, v in self._filters.items() if k != name}
        return out

    # ------------------------------------------------------------------ scoring
    def backend(self, name: str) -> PromptFilter:
        """The backend ``name``, built on first use.

        A backend checks its own options only when it is built, which can be long after
        loading; its error (a bad ``defer``, an unknown option, a missing model file) is
        re-raised naming the policy file and ``backends[i].options``, its message kept.
        """
        if name not in self._filters:
            i, spec = next((i, b) for i, b in enumerate(self.backends) if b.name == name)
            try:
                self._filters[name] = make_filter(name, **dict(spec.options))
            except PolicyError:
                raise
            except (FilterError, TypeError, ValueError) as exc:
                raise PolicyError(self.source or "<policy>", str(exc),
                                  field=f"backends[{i}].options") from exc
        return self._filters[name]

    def backend_results(self, prompts: Sequence[str]) -> dict[str, list[FilterResult]]:
        """Each backend's raw results; wall time per backend accumulates in ``timings``."""
        out = {}
        for b in self.backends:
            f = self.backend(b.name)
            t0 = time.perf_counter()
            out[b.name] = f.score(list(prompts))
            self.timings[b.name] = self.timings.get(b.name, 0.0) + time.perf_counter() - t0
        return out

    def combine_scores(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """Combined scores in [0, 1] (decision at 0.5) from per-backend score arrays."""
        if self.combine == "any":
            cols = [_to_scores(raw[b.name], b.threshold)  # type: ignore[arg-type]
                    for b in self.backends]
            return np.max(np.stack(cols), axis=0) if cols else np.zeros(0)
        total = sum(b.weight for b in self.backends)
        mean = sum(b.weight * np.asarray(raw[b.name], float) for b in self.backends) / total
        return _to_scores(mean, self.threshold)  # type: ignore[arg-type]

    def decide_frame(self, results: Mapping[str, list[FilterResult]]) -> pd.DataFrame:
        raw = {k: np.array([r.score for r in v], float) for k, v in results.items()}
        combined = self.combine_scores(raw)
        # Each backend's score on the combined scale picks the category of a blocked prompt.
        mapped = {b.name: _to_scores(raw[b.name], (b.threshold if self.combine == "any"
                                                   else self.threshold))  # type: ignore[arg-type]
                  for b in self.backends}
        rows = []
        for i, s in enumerate(combined):
            cat = None
            best = -1.0
            for b in self.backends:
                r = results[b.name][i]
                val = mapped[b.name][i]
                if r.category and val > best:
                    best, cat = val, r.category
            # A category names why a prompt is blocked; an allowed prompt has none.
            row = {"score": float(s), "decision": "block" if s >= 0.5 else "allow",
                   "category": cat if s >= 0.5 else None}
            for b in self.backends:
                row[f"score_{b.name}"] = float(raw[b.name][i])
            row["explanation"] = explain({b.name: results[b.name][i] for b in self.backends})
            rows.append(row)
        return pd.DataFrame(rows, columns=["score", "decision", "category"]
                            + [f"score_{b.name}" for b in self.backends] + ["explanation"])

    def score_frame(self, prompts: Sequence[str], batch_size: int = 512) -> pd.DataFrame:
        """Per prompt: ``score``, ``decision``, ``category`` and ``score_<backend>``."""
        frames = []
        for i in range(0, len(prompts), batch_size):
            frames.append(self.decide_frame(self.backend_results(prompts[i:i + batch_size])))
        if not frames:
            return self.decide_frame({b.name: [] for b in self.backends})
        return pd.concat(frames, ignore_index=True)

    def check(self, prompts: Sequence[str]) -> list[Decision]:
        df = self.score_frame(prompts)
        return [Decision(float(r["score"]), r["decision"], r["category"],
                         {b.name: float(r[f"score_{b.name}"]) for b in self.backends},
                         r["explanation"])
                for r in df.to_dict("records")]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": str(self.source) if self.source else None,
                **self.to_dict(),
                "backend_details": {b.name: self.backend(b.name).describe()
                                    for b in self.backends}}
