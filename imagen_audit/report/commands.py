"""``imagen-audit analyse`` and ``imagen-audit gate`` (registered through COMMAND_MODULES).

Imports stay light at module level: ``--help`` must not load pandas, matplotlib or torch.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from imagen_audit.errors import AuditError

log = logging.getLogger(__name__)


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


class GateOutputError(AuditError):
    """The gate's JUnit XML cannot be written (a folder, a full disk): the gate ran, but CI
    would read a missing or stale report, so this is exit 2, not the gate's outcome."""


def resolve_policy(spec: str) -> Path:
    """The file ``--policy SPEC`` names, by the rule every shipped kind shares
    (:func:`imagen_audit.resources.resolve_shipped`): a plain name (no folder part, no
    ``.yaml``) that names a shipped policy is the shipped policy, even where a file or folder of
    that name lies here (a warning says so: ``./NAME`` reads the local one), so a checkout
    cannot silently swap a release policy. Anything else is the user's path.
    """
    from imagen_audit.report.gate import PolicyError
    from imagen_audit.resources import UnknownShippedName, resolve_shipped

    try:
        return resolve_shipped(spec, "reports/policies", "gate policy")
    except UnknownShippedName as exc:
        raise PolicyError(f"{spec}: no such policy file and no shipped policy of that name; "
                          f"choose one of {exc.names} or give a path to a policy file") from None


def write_junit(path: Path, xml: str) -> None:
    """Write the JUnit report: atomically (a full disk leaves the old file whole, never a
    truncated one); a device such as ``/dev/null`` is written in place (it cannot be renamed
    over). Any failure is a :class:`GateOutputError` naming the file."""
    try:
        if path.is_dir():
            raise IsADirectoryError("it is a folder")
        if path.exists() and not path.is_file():
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(xml)
        else:
            from imagen_audit.files import write_atomic

            write_atomic(path, xml)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GateOutputError(f"{path}: cannot write the gate's JUnit XML ({reason}); "
                              "give --junit a writable file path") from None


def _junit_target(run_dir: str | Path, junit: str | Path | None) -> Path:
    return Path(junit) if junit else Path(run_dir) / "report" / "gate-junit.xml"


def _report_broken_gate(run_dir: str | Path, junit: str | Path | None, policy: str,
                        exc: Exception) -> None:
    """After a policy or data error, replace the JUnit with one holding an ``<error>``, so
    neither an explicit ``--junit`` nor the default ``RUN_DIR/report/gate-junit.xml`` is left
    claiming an earlier run's pass. The default is written only inside an existing run
    folder (a mistyped RUN_DIR gets no ``report/`` folder)."""
    from imagen_audit.report import gate

    target = _junit_target(run_dir, junit)
    if not junit:
        from imagen_audit.store.run_store import DB_NAME

        root = Path(run_dir)
        if not (root.is_dir() and ((root / DB_NAME).is_file() or target.parent.is_dir())):
            return
    try:
        write_junit(target, gate.error_junit_xml(policy, str(exc)))
    except GateOutputError as again:
        log.error("%s", again)
        return
    print(f"wrote {target} (gate error)")


def run_gate(run_dir: str | Path, policy: str, *, junit: str | Path | None = None,
             baseline: str | None = None, validation: str | None = None,
             options: argparse.Namespace | None = None):
    """Evaluate ``policy`` (a path or a shipped name) on ``run_dir``, print the outcome and
    write the JUnit XML; returns the :class:`~imagen_audit.report.gate.GateResult` (its
    ``exit_code`` is the gate's). A bad policy, an unreadable run or an unwritable JUnit raise
    :class:`AuditError` (exit 2) after the JUnit has been replaced by one that says so."""
    from imagen_audit.report import gate

    args = argparse.Namespace(**vars(options or argparse.Namespace()))
    args.run_dir, args.validation = run_dir, validation
    policy_name = policy
    try:
        loaded = gate.load_policy(resolve_policy(policy))
        policy_name = loaded.name
        inputs, result, error = _analysis(args, dict(loaded.analysis))
        comparison = None
        if baseline:
            from imagen_audit.compare.report import compare_runs

            comparison, _, _ = compare_runs(baseline, run_dir,
                                            config=_config(args, dict(loaded.analysis)),
                                            validation=validation)
            print(f"compared with baseline {gate.console_safe(baseline)}: "
                  f"{int(comparison.changes['headline'].sum())} significant changes")
        outcome = gate.evaluate(loaded, result, inputs.filters, comparison)
    except Exception as exc:  # AuditError (exit 2) or a bug: either way no stale pass
        _report_broken_gate(run_dir, junit, policy_name, exc)
        raise
    print(gate.format_result(outcome))
    if error:
        print(f"note: {gate.console_safe(error)}")
    target = _junit_target(run_dir, junit)
    write_junit(target, gate.junit_xml(outcome))
    print(f"wrote {gate.console_safe(target)}")
    return outcome


def _cmd_gate(args: argparse.Namespace) -> int:
    return run_gate(args.run_dir, args.policy, junit=args.junit, baseline=args.baseline,
                    validation=args.validation, options=args).exit_code


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
