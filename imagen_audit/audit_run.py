"""The whole audit from one config file: generate → annotate → report (→ gate).

``imagen-audit run CONFIG.yaml`` reads a run config (a shipped name such as ``demo``, or a
path), validates it strictly (errors name the file and the key), and chains the stages
through their library functions. Every stage is resumable on its own, so the chain is: run
the same command again after an interruption and each stage picks up where it stopped
(generation completes the plan, annotation only touches new images, the report is rewritten,
the gate is re-evaluated).

Config layout (all sections but ``generate`` optional)::

    schema_version: 1
    out: runs/demo                 # the run folder (``--out`` overrides)
    generate:                      # the options of ``imagen-audit generate``
      model: tiny-cascade
      probes: occupations
      limit_prompts: 6
      samples_per_prompt: 2
      seed: 0
      batch_size: 8
      stages: 3                    # and steps, guidance, noise_levels, negative_prompt,
      prompt_template: null        # device, dtype, variant, cpu_offload, micro_batch,
      augment_identity: []         # cpu_threads, executor, image_store ...
    annotate:                      # AnnotatorSpec fields, plus stages / workers /
      detector: dlib-hog           # while_generating (annotate as images are committed)
      gender: dlib-onnx
    report: {}                     # present (default): write the report
    gate:
      policy: smoke                # a shipped policy name or a YAML path
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from imagen_audit.documents import read_document
from imagen_audit.errors import AuditError
from imagen_audit.resources import UnknownShippedName, resolve_shipped

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SECTIONS = ("schema_version", "out", "generate", "annotate", "report", "gate")
_GENERATE_RUN_KEYS = ("model", "probes", "limit_prompts", "samples_per_prompt", "seed",
                      "batch_size", "executor", "image_store", "prompt_template",
                      "augment_identity", "ray_address", "ray_workers")
_OPTION_ALIASES = {"stages": "num_stages"}
_ANNOTATE_RUN_KEYS = ("stages", "workers", "batch_size", "while_generating")


class RunConfigError(AuditError):
    """A run config is missing, unreadable or invalid."""


@dataclass(frozen=True)
class RunConfig:
    """A validated run config."""

    source: str
    out: Path
    generate: dict[str, Any]
    annotate: dict[str, Any] | None
    report: bool
    gate: dict[str, Any] | None


def resolve(spec: str) -> Path:
    """A path to a YAML file, or the name of a shipped config in ``reports/runs/``, by the
    rule every shipped kind shares (:func:`imagen_audit.resources.resolve_shipped`): only a
    plain name is looked up there, so ``../x`` cannot reach a file outside the folder."""
    try:
        path = resolve_shipped(spec, "reports/runs", "run config")
    except UnknownShippedName as exc:
        raise RunConfigError(f"{spec}: no such run config file or shipped config "
                             f"({exc.names})") from None
    if not path.is_file():
        raise RunConfigError(f"{path}: run config not found")
    return path


def load_config(spec: str, out: str | Path | None = None) -> RunConfig:
    """Read and validate a run config; ``out`` overrides its ``out``."""
    from imagen_audit.generate.base import GeneratorOptions

    path = resolve(spec)
    doc = read_document(path, "YAML", RunConfigError, "run config file")
    if not isinstance(doc, dict):
        raise RunConfigError(f"{path}: expected a mapping with a 'generate' section")
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise RunConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed {SECTIONS}")
    if doc.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise RunConfigError(f"{path}, key 'schema_version': expected {SCHEMA_VERSION}")
    run_dir = out or doc.get("out")
    if not run_dir:
        raise RunConfigError(f"{path}, key 'out': give the run folder here or with --out")
    generate = _section(path, doc, "generate", required=True)
    option_keys = {f.name for f in fields(GeneratorOptions)} | set(_OPTION_ALIASES)
    bad = set(generate) - option_keys - set(_GENERATE_RUN_KEYS)
    if bad:
        raise RunConfigError(f"{path}, section 'generate': unknown key(s) {sorted(bad)}")
    annotate = _section(path, doc, "annotate")
    if annotate is not None:
        from imagen_audit.annotate.base import AnnotatorSpec

        bad = set(annotate) - {f.name for f in fields(AnnotatorSpec)} - set(_ANNOTATE_RUN_KEYS)
        if bad:
            raise RunConfigError(f"{path}, section 'annotate': unknown key(s) {sorted(bad)}")
    gate = _section(path, doc, "gate")
    if gate is not None and not gate.get("policy"):
        raise RunConfigError(f"{path}, section 'gate', key 'policy': required")
    report = doc.get("report", {})
    if report not in (None, False) and not isinstance(report, dict):
        raise RunConfigError(f"{path}, section 'report': a mapping, or false to skip")
    return RunConfig(str(path), Path(run_dir), generate, annotate,
                     report not in (None, False), gate)


def _section(path: Path, doc: dict, name: str, required: bool = False) -> dict | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise RunConfigError(f"{path}: section '{name}' is required")
        return None
    if not isinstance(value, dict):
        raise RunConfigError(f"{path}, section '{name}': expected a mapping")
    return dict(value)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_audit(config: RunConfig, *, progress: bool = True) -> int:
    """Run every configured stage; returns the exit code (the gate's, when there is one)."""
    from imagen_audit.generate.base import GeneratorOptions
    from imagen_audit.generate.mitigations import Mitigation
    from imagen_audit.generate.runner import generate_run

    g = dict(config.generate)
    run_kwargs = {k: g.pop(k) for k in _GENERATE_RUN_KEYS if k in g}
    options = GeneratorOptions(**{_OPTION_ALIASES.get(k, k): _tuple(v) for k, v in g.items()})
    mitigation = Mitigation.build(run_kwargs.pop("prompt_template", None),
                                  run_kwargs.pop("augment_identity", None) or ())
    ray_options = {"address": run_kwargs.pop("ray_address", None),
                   "workers": run_kwargs.pop("ray_workers", None)}
    piped: dict[str, Any] = {}
    if config.annotate and config.annotate.get("while_generating"):
        from imagen_audit.annotate.base import AnnotatorSpec

        spec = {k: v for k, v in config.annotate.items() if k not in _ANNOTATE_RUN_KEYS}
        piped = {"annotate": AnnotatorSpec(**spec),
                 "annotate_workers": int(config.annotate.get("workers") or 1)}
    log.info("run %s: generate", config.out)
    summary = generate_run(config.out, options=options, mitigation=mitigation,
                           ray_options=ray_options, progress=progress, **piped, **run_kwargs)
    if summary.notice:
        print(f"NOTE: {summary.notice}")
    print(f"generate: {summary.generated} new, {summary.already_done} already done, "
          f"{summary.failed} failed, {summary.planned} planned")
    exit_code = 3 if summary.failed else 0
    if config.annotate is not None:
        from imagen_audit.annotate.base import AnnotatorSpec
        from imagen_audit.annotate.runner import annotate_run

        a = dict(config.annotate)
        extra = {k: _tuple(a.pop(k)) for k in _ANNOTATE_RUN_KEYS if k in a}
        extra.pop("while_generating", None)  # leftovers (if any) are annotated here
        log.info("run %s: annotate", config.out)
        ann = annotate_run(config.out, AnnotatorSpec(**a), progress=progress, **extra)
        print(f"annotate ({ann.annotator}): {ann.annotated} images, {ann.faces} faces, "
              f"{ann.failed} failed")
        exit_code = exit_code or (3 if ann.failed else 0)
    if config.report:
        from imagen_audit.report.html import write_report

        print(f"report: {write_report(config.out)}")
    if config.gate is not None:
        from imagen_audit.report.commands import run_gate

        outcome = run_gate(config.out, str(config.gate["policy"]),
                           junit=config.gate.get("junit"))
        return outcome.exit_code
    return exit_code
