"""The ``imagen-audit`` command line: parse options, build objects, call the library.

Exit codes: 0 success; 1 a check ran and failed (gate, verify); 2 bad input or state
(the message names the file, line or field); 3 the run finished but some samples failed
(recorded in the store; the same command retries them); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from imagen_audit import __version__
from imagen_audit.errors import AuditError

log = logging.getLogger("imagen_audit")

EXIT_OK, EXIT_FAILED_CHECK, EXIT_ERROR, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _csv_of(kind: type) -> object:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagen-audit",
        description="Audit text-to-image models for social bias and safety. Attributes the "
                    "toolkit estimates are perceived attributes of generated images, never "
                    "identities.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="plan and generate (or resume) a run",
                       description="Plan samples from probe prompts and generate their images "
                                   "through every cascade stage into a run folder. Resumable: "
                                   "run the same command again after an interruption.")
    g.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    g.add_argument("--model", default="tiny-cascade",
                   help="tiny-cascade (embedded default; its images are noise), imagen-cascade"
                        "[:STAGE_I,STAGE_II,STAGE_III], diffusers:ID_OR_PATH or folder:PATH")
    g.add_argument("--probes", default="occupations",
                   help="shipped probe set(s) or YAML path(s), comma-separated")
    g.add_argument("--limit-prompts", type=_positive, metavar="N",
                   help="use only the first N prompts")
    g.add_argument("--samples-per-prompt", type=_positive, default=1, metavar="K")
    g.add_argument("--seed", type=int, default=0, help="base seed; each sample's seed is "
                   "derived from it, the prompt id and the sample index")
    g.add_argument("--batch-size", type=_positive, default=8,
                   help="samples per step (text embeddings shared, one commit each)")
    g.add_argument("--micro-batch", type=_positive, default=1,
                   help="samples per pipeline call; 1 keeps every image independent of batch "
                        "composition to the last bit")
    g.add_argument("--stages", type=int, choices=(1, 2, 3),
                   help="cascade stages to run: 1 (64 px), 2 (256 px) or 3 (1024 px)")
    g.add_argument("--steps", type=_csv_of(int), help="inference steps per stage, e.g. 50,25,25")
    g.add_argument("--guidance", type=_csv_of(float), help="guidance scale per stage")
    g.add_argument("--noise-level", type=_csv_of(int),
                   help="noise level of the super-resolution stages (II,III)")
    g.add_argument("--negative-prompt", default="", help="mitigation: a negative prompt")
    g.add_argument("--prompt-template", metavar="TEXT",
                   help='mitigation: wrap every prompt, e.g. "a diverse photo, {prompt}"')
    g.add_argument("--augment-identity", type=_csv_of(str), metavar="AXES",
                   help="mitigation: per sample, add an identity descriptor drawn uniformly "
                        "from these identity axes (e.g. gender,ethnicity), as DALL-E 2 did")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    g.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    g.add_argument("--variant", help="weights variant, e.g. fp16")
    g.add_argument("--cpu-offload", action="store_true", help="enable_model_cpu_offload()")
    g.add_argument("--local-files-only", action="store_true",
                   help="never contact the model hub")
    g.add_argument("--cpu-threads", type=_positive,
                   help="torch threads on CPU; pixels depend on it, so keep it fixed across "
                        "resumes and executors")
    g.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="where shards run: this process, or a Ray cluster (one generator "
                        "per worker)")
    g.add_argument("--ray-address", help="Ray cluster address (default: start a local one, "
                   "or use RAY_ADDRESS)")
    g.add_argument("--ray-workers", type=_positive,
                   help="generator workers (default: one per GPU, or per CPU without GPUs)")
    g.add_argument("--image-store", metavar="URL",
                   help="keep images at this fsspec URL or folder instead of RUN_DIR/images "
                        "(with --executor ray, workers write there directly)")
    g.add_argument("--annotate", action="store_true",
                   help="annotate images while generating (default annotator, CPU workers; "
                        "`imagen-audit annotate` offers every annotator option)")
    g.add_argument("--annotate-workers", type=_positive, default=1,
                   help="CPU workers (processes, or Ray actors) for --annotate")
    g.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("export", help="export a run's images or samples to CSV/Parquet")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--out", required=True, metavar="FILE", help="FILE.csv or FILE.parquet")
    e.add_argument("--table", default="images", choices=("images", "samples"))
    e.add_argument("--spreadsheet-safe", action="store_true",
                   help="CSV only: write text cells that start with = + - @ (a prompt, say) "
                        "with a leading apostrophe, so a spreadsheet shows them as text "
                        "instead of running them as formulas")

    s = sub.add_parser("status", help="summarise a run; --verify checks every image file")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--verify", action="store_true",
                   help="decode every image and compare its pixels with the recorded digest")

    p = sub.add_parser("probes", help="list shipped probe sets or expand one to CSV")
    p.add_argument("name", nargs="?", help="probe set name or YAML path")
    p.add_argument("--out", metavar="FILE.csv", help="write the expanded prompts here")

    pl = sub.add_parser("plan", help="samples per prompt needed to detect a gap",
                        description="Sample sizes for one run against parity or a baseline "
                                    "share, and for a two-run comparison, with the GPU time "
                                    "they imply.")
    pl.add_argument("--min-detectable-gap", type=float, required=True, metavar="GAP",
                    help="smallest change of a share to detect, e.g. 0.1")
    pl.add_argument("--power", type=float, default=0.8)
    pl.add_argument("--alpha", type=float, default=0.05)
    pl.add_argument("--baseline-share", type=float, default=0.5, metavar="P",
                    help="reference share (0.5 = parity, or an occupation's baseline)")
    pl.add_argument("--face-rate", type=float, default=1.0,
                    help="share of images with a usable face (from a pilot run)")
    pl.add_argument("--coverage", type=float, default=1.0,
                    help="share of faces the annotator does not abstain on")
    pl.add_argument("--prompts", type=_positive, default=1, help="prompts in the audit")
    pl.add_argument("--images-per-second", type=float,
                    help="generation speed (samples per second) for the GPU-time estimate")
    pl.add_argument("--run", metavar="RUN_DIR",
                    help="take the generation speed from this run's timestamps")

    ru = sub.add_parser("run", help="the whole audit from a config: generate, annotate, "
                                    "report (and gate)",
                        description="Chain generate → annotate → report (→ gate) from a run "
                                    "config (a YAML path or a shipped name such as 'demo'). "
                                    "Every stage resumes: run the same command again after "
                                    "an interruption.")
    ru.add_argument("config", metavar="CONFIG", help="CONFIG.yaml or a shipped config name")
    ru.add_argument("--out", metavar="RUN_DIR", help="run folder (overrides the config's)")
    ru.add_argument("--no-progress", action="store_true")

    r = sub.add_parser("report", help="write RUN_DIR/report/index.html")
    r.add_argument("run_dir", metavar="RUN_DIR")

    for name, handler in COMMANDS.items():
        sub.choices[name].set_defaults(handler=handler)
    # Stages that bring their own subcommands (annotate, analyse, filters, gate, ...).
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # Third-party libraries: warnings only, and no progress bars of their own.
    for name in ("diffusers", "transformers", "accelerate", "huggingface_hub", "PIL"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _quiet_libraries() -> None:
    try:
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def _cmd_generate(args: argparse.Namespace) -> int:
    from imagen_audit.generate import GeneratorOptions
    from imagen_audit.generate.runner import generate_run

    _quiet_libraries()
    opts = GeneratorOptions(
        device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload,
        variant=args.variant, num_stages=args.stages, steps=args.steps,
        guidance=args.guidance, noise_levels=args.noise_level,
        negative_prompt=args.negative_prompt, local_files_only=args.local_files_only,
        micro_batch=args.micro_batch, cpu_threads=args.cpu_threads)
    ray_options = {"address": args.ray_address, "workers": args.ray_workers}
    from imagen_audit.generate.mitigations import Mitigation

    mitigation = Mitigation.build(args.prompt_template, args.augment_identity or ())
    summary = generate_run(
        args.out, model=args.model, probes=args.probes, limit_prompts=args.limit_prompts,
        samples_per_prompt=args.samples_per_prompt, seed=args.seed,
        batch_size=args.batch_size, options=opts, progress=not args.no_progress,
        executor=args.executor, ray_options=ray_options, mitigation=mitigation,
        image_store=args.image_store, annotate=_default_annotator() if args.annotate else None,
        annotate_workers=args.annotate_workers)
    if summary.generated == 0 and summary.failed == 0:
        print(f"nothing to generate: all {summary.planned} planned samples are done "
              f"({args.out})")
    else:
        print(f"{summary.generated} samples generated, {summary.failed} failed, "
              f"{summary.already_done} already done, {summary.planned} planned ({args.out})")
    if summary.annotated is not None:
        print(f"{summary.annotated} images annotated while generating")
    if summary.notice:
        print(f"NOTE: {summary.notice}")
    if summary.failed:
        print("some samples failed (see `imagen-audit status`); run the same command again "
              "to retry them", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _default_annotator() -> object:
    from imagen_audit.annotate.base import AnnotatorSpec

    return AnnotatorSpec()


def _cmd_export(args: argparse.Namespace) -> int:
    from imagen_audit.store import RunStore
    from imagen_audit.store.export import export_table

    with RunStore.open_readonly(args.run_dir) as store:
        frame = export_table(store, args.out, args.table,
                             spreadsheet_safe=args.spreadsheet_safe)
    print(f"wrote {len(frame)} {args.table} rows to {args.out}")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from imagen_audit.store import RunStore

    with RunStore.open_readonly(args.run_dir) as store:
        counts = store.status_counts()
        stages = store.stages()
        images = store.images_table()
        print(f"run {args.run_dir}: {sum(counts.values())} samples planned; " + ", ".join(
            f"{k} {v}" for k, v in sorted(counts.items())))
        for st in stages:
            n = int((images["stage"] == st.stage).sum())
            print(f"  stage {st.stage} ({st.name}): {n} images")
        failed = store.samples_table().query("status == 'failed'")
        for _, row in failed.head(10).iterrows():
            print(f"  failed: {row.prompt_id} #{row.sample_index}: {row.error}")
        if args.verify:
            problems = store.verify()
            for problem in problems:
                print(f"  problem: {problem}")
            print(f"verify: {len(images)} images checked, {len(problems)} problem(s)")
            return EXIT_FAILED_CHECK if problems else EXIT_OK
    return EXIT_OK


def _cmd_probes(args: argparse.Namespace) -> int:
    from imagen_audit.probes import load_probes
    from imagen_audit.resources import data_dir

    if not args.name:
        for path in sorted(data_dir("probes").glob("*.yaml")):
            print(f"{path.stem}: {len(load_probes(str(path)))} prompts")
        return EXIT_OK
    probe_set = load_probes(args.name)
    if args.out:
        import pandas as pd

        pd.DataFrame([{**p.__dict__, "controls": dict(p.controls)} for p in probe_set.prompts]
                     ).to_csv(args.out, index=False)
        print(f"wrote {len(probe_set)} prompts to {args.out}")
    else:
        for p in probe_set.prompts:
            print(f"{p.prompt_id}\t{p.prompt}")
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from imagen_audit.analyse.power import one_sample_plan, two_sample_plan

    kwargs = {"alpha": args.alpha, "power": args.power, "p0": args.baseline_share,
              "face_rate": args.face_rate, "coverage": args.coverage}
    try:
        single = one_sample_plan(args.min_detectable_gap, **kwargs)
        double = two_sample_plan(args.min_detectable_gap, **kwargs)
    except ValueError as exc:
        raise AuditError(f"plan: {exc}") from exc
    rate = args.images_per_second
    if args.run:
        rate = _run_rate(args.run)
    print(f"to detect a gap of {args.min_detectable_gap:+.3f} from a share of "
          f"{args.baseline_share:.3f} (alpha {args.alpha}, power {args.power}, "
          f"{single.usable_per_sample:.2f} usable estimates per sample):")
    for plan, what, runs in ((single, "samples per prompt (one run vs the reference)", 1),
                             (double, "samples per prompt in each run (two-run comparison)",
                              2)):
        line = f"  {plan.samples_per_prompt} {what}"
        if rate:
            line += (f"; {args.prompts} prompts: "
                     f"{plan.gpu_hours(args.prompts, rate, runs):.1f} GPU hours at "
                     f"{rate:.3g} samples/s")
        print(line)
    return EXIT_OK


def _run_rate(run_dir: str) -> float:
    """Samples per second of a run, from the spread of its samples' finish times."""
    import pandas as pd

    from imagen_audit.store import RunStore

    with RunStore.open_readonly(run_dir) as store:
        done = store.samples_table().query("status == 'done'")
    times = pd.to_datetime(done["finished_at"])
    span = (times.max() - times.min()).total_seconds() if len(times) > 1 else 0
    if span <= 0:
        raise AuditError(f"{run_dir}: too few finished samples to measure a generation speed; "
                         "give --images-per-second")
    return (len(times) - 1) / span


def _cmd_run(args: argparse.Namespace) -> int:
    from imagen_audit.audit_run import load_config, run_audit

    _quiet_libraries()
    return run_audit(load_config(args.config, args.out), progress=not args.no_progress)


def _cmd_report(args: argparse.Namespace) -> int:
    from imagen_audit.report.html import write_report

    path = write_report(args.run_dir)
    print(f"wrote {path}")
    return EXIT_OK


COMMANDS = {"generate": _cmd_generate, "export": _cmd_export, "status": _cmd_status,
            "probes": _cmd_probes, "plan": _cmd_plan, "run": _cmd_run,
            "report": _cmd_report}

# Each module has ``register(subparsers)``, which adds its subcommands and sets
# ``handler`` (a function of the parsed args returning an exit code) on each. Modules must
# not import torch or other heavy libraries at import time: ``--help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = ("imagen_audit.report.commands",
                                     "imagen_audit.annotate.commands",
                                     "imagen_audit.filters.commands",
                                     "imagen_audit.compare.commands")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        return args.handler(args)
    except AuditError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; finished work is kept (committed samples, annotations, scores):"
                  " run the same command to resume")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
