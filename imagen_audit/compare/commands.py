"""``imagen-audit compare BASELINE_RUN CANDIDATE_RUN --out DIR`` (via COMMAND_MODULES).

Exit codes: 0 the comparison was written (whatever it found; gating is ``imagen-audit gate
--baseline``), 2 bad input (a run not annotated, nothing in common, a bad option).
Imports stay light at module level: ``--help`` must not load pandas or torch.
"""

from __future__ import annotations

import argparse


def _cmd_compare(args: argparse.Namespace) -> int:
    from imagen_audit.compare.report import compare_runs, summary_lines, write_comparison
    from imagen_audit.report.commands import _config

    config = _config(args)
    result, in0, in1 = compare_runs(args.baseline_run, args.candidate_run, config=config,
                                    n_perm=args.permutations, validation=args.validation)
    for line in summary_lines(result):
        print(line)
    for title, t in (("worse", result.worse()), ("better", result.better()),
                     ("changed", result.changed())):
        for _, r in t.head(10).iterrows():
            group = "" if r["group"] == "(all)" else f"{r['group']}: "
            print(f"  {title}: {r['family']} {group}{r['metric']} {r['baseline']:.3g} → "
                  f"{r['candidate']:.3g} ({r['difference']:+.3g}, q {r['q_all']:.3g})")
    for note in result.notes:
        print(f"note: {note}")
    page = write_comparison(result, in0, in1, args.out)
    print(f"wrote {page} (and compare.json, summary.md, changes.csv)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from imagen_audit.report.commands import _add_analysis_options

    c = subparsers.add_parser(
        "compare", help="compare two annotated runs metric by metric",
        description="For every metric of the analysis (overall, per prompt, occupation, "
                    "identity term, probe family, stage; baseline gaps, drift, filters): "
                    "baseline and candidate values, the difference with a 95%% interval, a "
                    "test of no change (paired by prompt and seed where the runs share "
                    "them) and Benjamini–Hochberg correction. Writes index.html, "
                    "compare.json, summary.md and changes.csv to --out.")
    c.add_argument("baseline_run", metavar="BASELINE_RUN")
    c.add_argument("candidate_run", metavar="CANDIDATE_RUN")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.add_argument("--permutations", type=int, default=999, metavar="N",
                   help="permutations (and bootstrap draws) for distribution statistics")
    _add_analysis_options(c)
    c.set_defaults(handler=_cmd_compare)
