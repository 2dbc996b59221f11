"""Probe sets: load and validate probe files, expand templates into prompts with stable ids.

A probe file (``probes/*.yaml``) is data, reviewed like code. Loading it is strict: every
problem is reported with the file, the entry and the field, so a reviewer can fix the file
without reading this module. Expansion is deterministic: the same file always gives the
same prompts, in the same order, with the same ids, so runs planned from it can be resumed
and compared.

Prompt ids are readable paths, ``family/template/key[+key]``
(``occupations/face/software_developer``, ``identities/face/woman+software_developer``),
so a number in a report can be traced to its prompt by eye.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagen_audit.documents import parse_yaml, read_text
from imagen_audit.errors import ProbeFileError
from imagen_audit.resources import UnknownShippedName, data_dir, resolve_shipped

SCHEMA_VERSION = 1
BASELINE_KEYS = ("women", "white", "black", "asian", "hispanic_or_latino")
IDENTITY_AXES = ("gender", "ethnicity", "age", "religion", "disability", "sexual_orientation")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Occupation:
    """One occupation with its US labour-force baseline (shares in [0, 1], None = unpublished)."""

    id: str
    term: str
    category: str
    bls_occupation: str
    employed_thousands: int | None
    baseline: Mapping[str, float | None]


@dataclass(frozen=True)
class IdentityTerm:
    """One identity descriptor; ``control`` is what an annotator is expected to perceive."""

    id: str
    axis: str
    person: str
    adjective: str
    control: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """One expanded prompt with the probe attributes it carries into the run store."""

    prompt_id: str
    prompt: str
    family: str
    template_id: str
    occupation_id: str | None = None
    identity_id: str | None = None
    identity_axis: str | None = None
    controls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeSet:
    """Prompts expanded from one or more probe files, plus the occupations they refer to."""

    name: str
    prompts: tuple[Prompt, ...]
    occupations: tuple[Occupation, ...] = ()
    sources: tuple[str, ...] = ()
    digest: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def limit(self, n: int | None) -> ProbeSet:
        """The first ``n`` prompts (file order is template-major, so a small limit still
        spans many occupations)."""
        if n is None or n >= len(self.prompts):
            return self
        if n < 1:
            raise ValueError("--limit-prompts must be at least 1")
        return ProbeSet(self.name, self.prompts[:n], self.occupations, self.sources, self.digest)

    def baselines(self) -> Any:
        """Occupation baselines as a pandas DataFrame (one row per occupation)."""
        import pandas as pd

        rows = [
            {"occupation_id": o.id, "occupation": o.term, "category": o.category,
             "bls_occupation": o.bls_occupation, "employed_thousands": o.employed_thousands,
             **{f"baseline_{k}": o.baseline.get(k) for k in BASELINE_KEYS}}
            for o in self.occupations
        ]
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- YAML with lines
class _LineDict(dict):
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of each mapping, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    pairs = loader.construct_pairs(node, deep=True)
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark) from None
    out = _LineDict(pairs)
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    """The probe file's document with line numbers on its mappings (:class:`_LineLoader`), or
    a :class:`ProbeFileError` in the words every document reader uses
    (:mod:`imagen_audit.documents`): missing, unreadable, not UTF-8, not valid YAML."""
    def error(message: str, fld: str | None) -> ProbeFileError:
        return ProbeFileError(path, message, field=fld)

    return parse_yaml(read_text(Path(path), error, "probe file"), error, loader=_LineLoader)


class _Checker:
    """Field access that fails with the file, entry and field named."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, entry: str | None = None, fld: str | None = None) -> None:
        raise ProbeFileError(self.path, message, entry=entry, field=fld)

    def mapping(self, value: Any, entry: str | None, fld: str | None = None) -> Mapping:
        if not isinstance(value, dict):
            self.fail(f"expected a mapping, got {type(value).__name__}", entry, fld)
        return value

    def seq(self, value: Any, entry: str | None, fld: str) -> list:
        if not isinstance(value, list) or not value:
            self.fail("expected a non-empty list", entry, fld)
        return value

    def text(self, obj: Mapping, fld: str, entry: str | None, *, required: bool = True) -> str:
        value = obj.get(fld)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail("required text is missing or empty", entry, fld)
        return value.strip()

    def ident(self, obj: Mapping, entry: str | None, seen: set[str]) -> str:
        value = self.text(obj, "id", entry)
        if not _ID_RE.match(value):
            self.fail(f"id {value!r} must be lower-case snake_case", entry, "id")
        if value in seen:
            self.fail(f"duplicate id {value!r}", entry, "id")
        seen.add(value)
        return value

    def share(self, obj: Mapping, fld: str, entry: str) -> float | None:
        value = obj.get(fld)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            self.fail(f"must be a share between 0 and 1 (or null), got {value!r}", entry, fld)
        return float(value)

    def header(self, doc: Any, family: str) -> Mapping:
        doc = self.mapping(doc, None)
        version = doc.get("schema_version")
        if version != SCHEMA_VERSION:
            self.fail(f"unsupported schema_version {version!r} (this version reads "
                      f"{SCHEMA_VERSION})", None, "schema_version")
        if doc.get("family") != family:
            self.fail(f"expected family {family!r}, got {doc.get('family')!r}", None, "family")
        return doc

    def templates(self, value: Any, fld: str, allowed: set[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i, raw in enumerate(self.seq(value, None, fld)):
            entry = _entry(fld, i, raw)
            tpl = self.mapping(raw, entry)
            tid = self.ident(tpl, entry, seen)
            text = self.text(tpl, "text", entry)
            try:
                names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            except ValueError as exc:
                self.fail(f"bad template: {exc}", entry, "text")
            unknown = names - allowed
            if unknown:
                self.fail(f"unknown placeholder(s) {sorted(unknown)}; allowed: "
                          f"{sorted(allowed)}", entry, "text")
            try:
                render(text, **{name: "x" for name in allowed - {"a"}})
            except (ValueError, IndexError, KeyError) as exc:
                self.fail(f"bad template: {exc}", entry, "text")
            missing = (allowed - {"a"}) - names
            if missing:
                self.fail(f"template must use {sorted(missing)}", entry, "text")
            out.append((tid, text))
        return out


def _entry(section: str, index: int, raw: Any) -> str:
    label = f"{section}[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        label += f" (id {raw['id']!r})"
    if isinstance(raw, _LineDict):
        label += f" at line {raw.line}"
    return label


# --------------------------------------------------------------------------- text
_AN_EXCEPTIONS = ("uni", "use", "usu", "uti", "eu", "one", "once", "ubi")
_UN_PREFIX = ("unin", "unim", "unid", "unint")  # un- + i…: "an uninsured driver"
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


def indefinite_article(word: str) -> str:
    """'a' or 'an' for the word that follows (vowel sound, acronyms, common exceptions)."""
    w = word.strip("\"'(")
    if not w:
        return "a"
    if w[0].isdigit():  # read as a number: "an 8-year-old", "an 11-year-old", "an 18th"
        digits = re.match(r"\d+", w).group(0)
        return "an" if digits.startswith("8") or digits in ("11", "18") or \
            (len(digits) in (5, 6) and digits[:2] in ("11", "18")) else "a"
    letter_name = len(w) > 1 and (w.isupper() or (w[0].isupper() and w[1] in "-."))
    if letter_name:  # an acronym or a letter name: "an MRI", "an X-ray", "a CEO"
        return "an" if w[0] in "AEFHILMNORSX" else "a"
    lw = w.lower()
    if lw.startswith(_SILENT_H) or lw.startswith(_UN_PREFIX):
        return "an"
    if lw.startswith(_AN_EXCEPTIONS):
        return "a"
    return "an" if lw[0] in "aeiou" else "a"


_ARTICLE_MARK = "\x00A"


def render(template: str, **values: str) -> str:
    """Fill a template; ``{a}`` becomes the article that fits the next word."""
    text = template.format(a=_ARTICLE_MARK, **values)

    def fix(m: re.Match[str]) -> str:
        return f"{indefinite_article(m.group(1))} {m.group(1)}"

    text = re.sub(_ARTICLE_MARK + r"\s+(\S+)", fix, text)
    return " ".join(text.replace(_ARTICLE_MARK, "a").split())


# --------------------------------------------------------------------------- families
def load_occupations(path: Path, doc: Any = None
                     ) -> tuple[list[Occupation], list[tuple[str, str]]]:
    """Parse an occupations probe file into occupations and templates."""
    check = _Checker(path)
    doc = check.header(_read_yaml(path) if doc is None else doc, "occupations")
    src = check.mapping(doc.get("source"), None, "source")
    check.text(src, "name", "source")
    if isinstance(src.get("year"), bool) or not isinstance(src.get("year"), int):
        check.fail("source year must be an integer", "source", "year")
    templates = check.templates(doc.get("templates"), "templates", {"a", "occupation"})
    occupations: list[Occupation] = []
    seen: set[str] = set()
    for i, raw in enumerate(check.seq(doc.get("occupations"), None, "occupations")):
        entry = _entry("occupations", i, raw)
        occ = check.mapping(raw, entry)
        oid = check.ident(occ, entry, seen)
        base = check.mapping(occ.get("baseline"), entry, "baseline")
        baseline = {k: check.share(base, k, entry + ".baseline") for k in BASELINE_KEYS}
        if baseline["women"] is None:
            check.fail("the share of women is required", entry + ".baseline", "women")
        extra = set(base) - set(BASELINE_KEYS)
        if extra:
            check.fail(f"unknown baseline key(s) {sorted(extra)}", entry, "baseline")
        employed = occ.get("employed_thousands")
        if employed is not None and (isinstance(employed, bool) or not isinstance(employed, int)
                                     or employed < 0):
            check.fail("must be a non-negative integer", entry, "employed_thousands")
        occupations.append(Occupation(
            id=oid, term=check.text(occ, "term", entry),
            category=check.text(occ, "category", entry, required=False),
            bls_occupation=check.text(occ, "bls_occupation", entry, required=False),
            employed_thousands=employed, baseline=baseline))
    return occupations, templates


def _load_identities(path: Path, occupations: Mapping[str, Occupation], doc: Any = None
                     ) -> tuple[
        list[IdentityTerm], list[tuple[str, str]], list[tuple[str, str]], list[Occupation]]:
    check = _Checker(path)
    doc = check.header(_read_yaml(path) if doc is None else doc, "identities")
    tpls = check.mapping(doc.get("templates"), None, "templates")
    alone = check.templates(tpls.get("alone"), "templates.alone", {"a", "person"})
    combined = check.templates(tpls.get("with_occupation"), "templates.with_occupation",
                               {"a", "identity", "occupation"})
    combine: list[Occupation] = []
    for i, oid in enumerate(check.seq(doc.get("combine_with_occupations"), None,
                                      "combine_with_occupations")):
        if oid not in occupations:
            check.fail(f"unknown occupation id {oid!r} (not in occupations.yaml)",
                       f"combine_with_occupations[{i}]", "combine_with_occupations")
        combine.append(occupations[oid])
    axes = check.mapping(doc.get("axes"), None, "axes")
    unknown_axes = set(axes) - set(IDENTITY_AXES)
    if unknown_axes:
        check.fail(f"unknown axis/axes {sorted(unknown_axes)}; expected {IDENTITY_AXES}",
                   None, "axes")
    terms: list[IdentityTerm] = []
    seen: set[str] = set()
    for axis in IDENTITY_AXES:
        for i, raw in enumerate(check.seq(axes.get(axis), "axes", axis)):
            entry = _entry(f"axes.{axis}", i, raw)
            t = check.mapping(raw, entry)
            control = t.get("control") or {}
            check.mapping(control, entry, "control")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in control.items()):
                check.fail("control must map attribute names to text values", entry, "control")
            terms.append(IdentityTerm(
                id=check.ident(t, entry, seen), axis=axis,
                person=check.text(t, "person", entry),
                adjective=check.text(t, "adjective", entry), control=dict(control)))
    return terms, alone, combined, combine


def load_identity_terms(path: str | Path | None = None,
                        axes: Sequence[str] | None = None) -> list[IdentityTerm]:
    """Identity terms of an identities probe file (the shipped one by default)."""
    path = Path(path) if path else data_dir("probes") / "identities.yaml"
    occ_path = path.parent / "occupations.yaml"
    occupations = {o.id: o for o in load_occupations(occ_path)[0]} if occ_path.is_file() else {}
    terms = _load_identities(path, occupations)[0]
    if axes:
        unknown = set(axes) - set(IDENTITY_AXES)
        if unknown:
            raise ProbeFileError(path, f"unknown identity axis/axes {sorted(unknown)}; "
                                       f"choose from {IDENTITY_AXES}")
        terms = [t for t in terms if t.axis in axes]
    return terms


def _expand_occupations(occupations: Sequence[Occupation],
                        templates: Sequence[tuple[str, str]]) -> list[Prompt]:
    return [
        Prompt(prompt_id=f"occupations/{tid}/{o.id}", prompt=render(text, occupation=o.term),
               family="occupations", template_id=tid, occupation_id=o.id)
        for tid, text in templates for o in occupations
    ]


def _expand_identities(terms: Sequence[IdentityTerm], alone: Sequence[tuple[str, str]],
                       combined: Sequence[tuple[str, str]],
                       occupations: Sequence[Occupation]) -> list[Prompt]:
    prompts = [
        Prompt(prompt_id=f"identities/{tid}/{t.id}", prompt=render(text, person=t.person),
               family="identities", template_id=tid, identity_id=t.id, identity_axis=t.axis,
               controls=dict(t.control))
        for tid, text in alone for t in terms
    ]
    prompts += [
        Prompt(prompt_id=f"identities/{tid}/{t.id}+{o.id}",
               prompt=render(text, identity=t.adjective, occupation=o.term),
               family="identities", template_id=tid, occupation_id=o.id, identity_id=t.id,
               identity_axis=t.axis, controls=dict(t.control))
        for tid, text in combined for o in occupations for t in terms
    ]
    return prompts


def _resolve(spec: str) -> Path:
    """A shipped probe set by plain name (``occupations``) or the path of a user's file, by
    the rule every shipped kind shares (:func:`imagen_audit.resources.resolve_shipped`).

    Only a plain name (no folder part, no ``..``) is looked up among the shipped sets, so a
    name can never reach a file outside ``probes/``; anything else is the user's own path and
    must exist (whatever the case of its suffix)."""
    try:
        candidate = resolve_shipped(spec, "probes", "probe set")
    except UnknownShippedName as exc:
        raise ProbeFileError(spec, f"no shipped probe set of that name; choose one of "
                                   f"{exc.names} or give a path to a .yaml file") from None
    if not candidate.is_file():
        raise ProbeFileError(candidate, "probe file not found")
    return candidate


def load_probes(specs: str | Iterable[str]) -> ProbeSet:
    """Load one or more probe sets (shipped names or paths, comma-separated) as one ProbeSet.

    An identities file combines its terms with occupations from ``occupations.yaml`` in the
    same folder.
    """
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    paths = [_resolve(s) for s in specs]
    if not paths:
        raise ProbeFileError("--probes", "no probe set given")
    prompts: list[Prompt] = []
    occ_by_id: dict[str, Occupation] = {}
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
        doc = _Checker(path).mapping(_read_yaml(path), None)  # parsed once, checked below
        family = doc.get("family")
        if family == "occupations":
            occs, templates = load_occupations(path, doc)
            occ_by_id.update({o.id: o for o in occs})
            prompts += _expand_occupations(occs, templates)
        elif family == "identities":
            occ_path = path.parent / "occupations.yaml"
            all_occs = {o.id: o for o in load_occupations(occ_path)[0]} if occ_path.is_file() \
                else {}
            terms, alone, combined, combine = _load_identities(path, all_occs, doc)
            occ_by_id.update({o.id: o for o in combine})
            prompts += _expand_identities(terms, alone, combined, combine)
        else:
            raise ProbeFileError(path, f"unknown probe family {family!r}; expected "
                                       "'occupations' or 'identities'", field="family")
    seen: set[str] = set()
    for p in prompts:
        if p.prompt_id in seen:
            raise ProbeFileError(",".join(map(str, paths)), f"prompt id {p.prompt_id!r} occurs "
                                 "twice (the same probe set given twice?)")
        seen.add(p.prompt_id)
    name = "+".join(p.stem for p in paths)
    return ProbeSet(name=name, prompts=tuple(prompts), occupations=tuple(occ_by_id.values()),
                    sources=tuple(str(p) for p in paths), digest=digest.hexdigest())


def sample_seed(base_seed: int, prompt_id: str, index: int) -> int:
    """The seed of sample ``index`` of a prompt: fixed by (base seed, prompt id, index) alone,
    so it does not change when the prompt list is limited, reordered or extended."""
    h = hashlib.sha256(f"{base_seed}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF
