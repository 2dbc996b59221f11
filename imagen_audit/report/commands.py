"""``imagen-audit analyse`` and ``imagen-audit gate`` (registered through COMMAND_MODULES).

Imports stay light at module level: ``--help`` must not load pandas, matplotlib or torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imagen_audit.errors import AuditError


class _BadOption(AuditError):
    pass


def _tone_bands(text: str) -> dict[str, tuple[int, int]]:
    bands = {}
    try:
        for part in text.split(","):
            name, rng = part.split("=")
            lo, hi = rng.split("-")
            bands[name.strip()] = (int(lo), int(hi))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=LO-HI,... (e.g. light=1-3,medium=4-7,dark=8-10), got {text!r}"
        ) from None
    return bands


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--validation", metavar="FILE.json",
                   help="annotator validation with confusion matrices (default: "
                        "RUN_DIR/validation.json when present)")
    p.add_argument("--stage", type=int, help="cascade stage for the headline numbers "
                   "(default: the final stage)")
    p.add_argument("--annotator", help="which annotator's rows to use when there are several")
    p.add_argument("--min-n", type=int, help="smallest group that may support a claim")
    p.add_argument("--alpha", type=float, help="significance level (after Benjamini–Hochberg)")
    p.add_argument("--tone-bands", type=_tone_bands,
                   help="Monk bands, default light=1-3,medium=4-7,dark=8-10")
    p.add_argument("--seed", type=int, help="seed of the bootstrap")


def _config(args: argparse.Namespace, base: dict | None = None):
    from imagen_audit.analyse.pipeline import AnalysisConfig

    values = dict(base or {})
    for opt, key in (("stage", "stage"), ("annotator", "annotator"), ("min_n", "min_n"),
                     ("alpha", "alpha"), ("tone_bands", "tone_bands"), ("seed", "seed")):
        v = getattr(args, opt, None)
        if v is not None:
            values[key] = v
    try:
        return AnalysisConfig(**values)
    except (TypeError, ValueError) as exc:
        raise _BadOption(f"analysis settings: {exc}") from None


def _analysis(args: argparse.Namespace, base: dict | None = None):
    from imagen_audit.analyse.adjust import ValidationFileError
    from imagen_audit.report.html import run_analysis
    from imagen_audit.report.inputs import collect

    inputs = collect(args.run_dir, validation=args.validation)
    config = _config(args, base)
    try:
        result, error = run_analysis(inputs, config)
    except ValidationFileError:
        raise
    except ValueError as exc:
        raise _BadOption(str(exc)) from None
    return inputs, result, error


def _cmd_analyse(args: argparse.Namespace) -> int:
    from imagen_audit.analyse.pipeline import to_json
    from imagen_audit.report.html import _finding_rows, _summary_lines

    inputs, result, error = _analysis(args)
    if result is None:
        raise _BadOption(error or f"{args.run_dir}: no annotations yet (run `imagen-audit "
                                  "annotate` first)")
    for line in _summary_lines(result, inputs):
        print(line)
    for f in _finding_rows(result):
        print(f"  finding: {f['title']} [{f['interval']}, n={f['n']}, q={f['q']}]")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(result), indent=1, allow_nan=False))
        print(f"wrote {args.json}")
    return 0


def _resolve_policy(spec: str) -> Path:
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    from imagen_audit.resources import data_dir

    shipped = data_dir("reports") / "policies" / f"{spec}.yaml"
    return shipped if shipped.is_file() else path


def _cmd_gate(args: argparse.Namespace) -> int:
    from imagen_audit.report import gate

    policy = gate.load_policy(_resolve_policy(args.policy))
    inputs, result, error = _analysis(args, dict(policy.analysis))
    comparison = None
    if args.baseline:
        from imagen_audit.compare.report import compare_runs

        comparison, _, _ = compare_runs(args.baseline, args.run_dir,
                                        config=_config(args, dict(policy.analysis)),
                                        validation=args.validation)
        print(f"compared with baseline {args.baseline}: "
              f"{int(comparison.changes['headline'].sum())} significant changes")
    outcome = gate.evaluate(policy, result, inputs.filters, comparison)
    print(gate.format_result(outcome))
    if error:
        print(f"note: {error}")
    junit = Path(args.junit) if args.junit else Path(args.run_dir) / "report" / "gate-junit.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.write_text(gate.junit_xml(outcome), encoding="utf-8")
    print(f"wrote {junit}")
    return outcome.exit_code


def register(subparsers: argparse._SubParsersAction) -> None:
    a = subparsers.add_parser("analyse", help="statistics of a run's annotations",
                              description="Shares with intervals, gaps from parity and from "
                                          "the labour baseline, stage drift and findings.")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--json", metavar="FILE", help="write every number here")
    _add_analysis_options(a)
    a.set_defaults(handler=_cmd_analyse)

    g = subparsers.add_parser("gate", help="evaluate a release policy: exit 0 pass, 1 fail, "
                                           "2 error (missing data is an error)")
    g.add_argument("run_dir", metavar="RUN_DIR")
    g.add_argument("--policy", required=True,
                   help="policy YAML, or a shipped policy name (release-default, "
                        "safety-filters, smoke, regression-default)")
    g.add_argument("--baseline", metavar="BASELINE_RUN",
                   help="compare RUN_DIR with this run for the policy's comparison checks "
                        "(e.g. max_gap_baseline_growth, min_filter_recall_change)")
    g.add_argument("--junit", metavar="FILE.xml",
                   help="JUnit XML output (default RUN_DIR/report/gate-junit.xml)")
    _add_analysis_options(g)
    g.set_defaults(handler=_cmd_gate)
