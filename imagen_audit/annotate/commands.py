"""CLI: ``imagen-audit annotate`` and ``imagen-audit validate-annotators``."""

from __future__ import annotations

import argparse
from typing import Any

from imagen_audit.annotate.base import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_GENDER_THRESHOLD,
    AnnotatorSpec,
)
from imagen_audit.annotate.skin_tone import DEFAULT_TONE_THRESHOLD

EXIT_OK, EXIT_PARTIAL = 0, 3


def _add_annotator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", default="dlib-hog", help="face detector (dlib-hog)")
    p.add_argument("--gender", default="dlib-onnx",
                   help="perceived-gender backend: dlib-onnx (default, offline), deepface, clip")
    p.add_argument("--gender-threshold", type=float, default=DEFAULT_GENDER_THRESHOLD,
                   help="below this probability the label is 'unknown' (0.5-1)")
    p.add_argument("--tone-threshold", type=float, default=DEFAULT_TONE_THRESHOLD,
                   help="below this confidence the skin tone abstains (0-1)")
    p.add_argument("--detect-size", type=int, default=DEFAULT_DETECT_SIZE,
                   help="images are resized to this longer side before detection")
    p.add_argument("--upsample", type=int, default=0, choices=(0, 1, 2),
                   help="dlib-hog: upsample to find smaller faces (slower)")
    p.add_argument("--clip-model", help="clip: a hub id in the local cache or a folder")
    p.add_argument("--clip-labels", help="clip: 'female=a photo of a woman|...;male=...'")
    p.add_argument("--allow-download", action="store_true",
                   help="clip: let transformers download the model")
    p.add_argument("--gender-weights", help="deepface: path of gender_model_weights.onnx")
    p.add_argument("--name", help="the annotator's name in the store (default DETECTOR+GENDER)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, help="worker processes (default: the CPU cores)")
    p.add_argument("--no-progress", action="store_true")


def spec_from_args(args: argparse.Namespace) -> AnnotatorSpec:
    gender_options: dict[str, Any] = {}
    if args.gender == "clip":
        from imagen_audit.annotate.gender.clip import DEFAULT_MODEL, parse_labels

        gender_options["model"] = args.clip_model or DEFAULT_MODEL
        if args.clip_labels:
            gender_options["labels"] = parse_labels(args.clip_labels)
        gender_options["local_files_only"] = not args.allow_download
    if args.gender == "deepface" and args.gender_weights:
        gender_options["weights"] = args.gender_weights
    detector_options = {"upsample": args.upsample} if args.upsample else {}
    return AnnotatorSpec(detector=args.detector, gender=args.gender,
                         gender_threshold=args.gender_threshold,
                         tone_threshold=args.tone_threshold, detect_size=args.detect_size,
                         detector_options=detector_options, gender_options=gender_options,
                         name=args.name)


def _cmd_annotate(args: argparse.Namespace) -> int:
    from imagen_audit.annotate.runner import annotate_run

    spec = spec_from_args(args)
    if args.from_folder:
        from imagen_audit.generate.runner import generate_run

        generate_run(args.run_dir, model=f"folder:{args.from_folder}", probes=None,
                     progress=not args.no_progress)
    summary = annotate_run(args.run_dir, spec, stages=args.stages, batch_size=args.batch_size,
                           workers=args.workers, progress=not args.no_progress)
    if summary.to_annotate == 0:
        print(f"nothing to annotate: every image of {args.run_dir} is annotated by "
              f"{summary.annotator}")
        return EXIT_OK
    print(f"{summary.annotated} images annotated ({summary.faces} faces), {summary.failed} "
          f"failed, by {summary.annotator} in {summary.seconds:.1f} s ({args.run_dir})")
    if summary.failed:
        print("some images could not be annotated (recorded with their errors); run the same "
              "command again to retry them")
        return EXIT_PARTIAL
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from imagen_audit.annotate.validate import format_table, validate_annotators

    record = validate_annotators(args.labels, images=args.images, spec=spec_from_args(args),
                                 out=args.out, run=args.run, group=args.group,
                                 batch_size=args.batch_size, workers=args.workers,
                                 progress=not args.no_progress)
    print(format_table(record))
    if args.out:
        print(f"wrote {args.out}/validation.json and {args.out}/predictions.csv")
    if args.run:
        print(f"stored in {args.run}/validation/validation.json")
    return EXIT_OK


def _stages(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected stage numbers like 1,2 got {text!r}"
                                         ) from None


def register(sub: Any) -> None:
    a = sub.add_parser(
        "annotate", help="detect faces, estimate perceived skin tone and gender (resumable)",
        description="Annotate every image of a run that this annotator has not done yet: "
                    "faces, perceived skin tone (Monk, ITA) and perceived gender, each with "
                    "a probability; below the thresholds the estimate is 'unknown'. "
                    "Perceived attributes of images, never identities.")
    a.add_argument("run_dir", metavar="RUN_DIR")
    a.add_argument("--from-folder", metavar="PATH",
                   help="first import PATH (a folder with manifest.csv) into RUN_DIR")
    a.add_argument("--stages", type=_stages, help="only these stages, e.g. 2,3")
    _add_annotator_options(a)
    a.set_defaults(handler=_cmd_annotate)

    v = sub.add_parser(
        "validate-annotators", help="compare annotations with human labels on labelled faces",
        description="Annotate a labelled folder of face images and report face-found rate, "
                    "accuracy, confusion matrix and Cohen's kappa for perceived gender and "
                    "MAE in Monk steps for tone, overall and per group.")
    v.add_argument("--labels", required=True, metavar="LABELS.csv",
                   help="columns: file, perceived_gender and/or monk_tone, optional group")
    v.add_argument("--images", metavar="DIR", help="image folder (default: the CSV's folder)")
    v.add_argument("--group", help="group column (default race_label or group if present)")
    v.add_argument("--out", metavar="DIR", help="write validation.json and predictions.csv")
    v.add_argument("--run", metavar="RUN_DIR",
                   help="also store validation.json under RUN_DIR/validation/")
    _add_annotator_options(v)
    v.set_defaults(handler=_cmd_validate)
