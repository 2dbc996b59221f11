"""CLI: ``imagen-audit annotate`` and ``imagen-audit validate-annotators``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from imagen_audit.annotate.base import (
    DEFAULT_DETECT_SIZE,
    DEFAULT_PRESET,
    PRESETS,
    AnnotatorSpec,
)
from imagen_audit.annotate.skin_tone import DEFAULT_TONE_THRESHOLD

EXIT_OK, EXIT_PARTIAL = 0, 3


def _add_annotator_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help="accurate (default: detector cascade + calibrated gender ensemble) "
                        "or fast (dlib HOG + calibrated ONNX gender, >= 20 images/s); the "
                        "options below override the preset's")
    p.add_argument("--detector", help="face detector: dlib-hog, dlib-cascade, dlib-cnn")
    p.add_argument("--gender", help="perceived-gender backend: dlib-ensemble, dlib-onnx "
                                    "(offline), deepface, clip")
    p.add_argument("--gender-threshold", type=float,
                   help="below this probability the label is 'unknown' (0.5-1; default: "
                        "the preset's)")
    p.add_argument("--tone-threshold", type=float, default=DEFAULT_TONE_THRESHOLD,
                   help="below this confidence the skin tone abstains (0-1)")
    p.add_argument("--white-balance", default="none",
                   choices=("none", "grey-world", "exposure", "exposure+grey-world", "sclera"),
                   help="skin tone: correct the illuminant (grey-world on the pixels outside "
                        "the face) and/or the exposure (image-wide, or 'sclera': from the "
                        "face's own eye whites) first; opt-in, see the README for the "
                        "measured effect")
    p.add_argument("--tone-landmarks", type=int, choices=(5, 68), default=5,
                   help="skin tone: measure the skin inside the face outline from 68-point "
                        "landmarks (opt-in, the better ITA; the model's training data, iBUG "
                        "300-W, excludes commercial use)")
    p.add_argument("--detect-size", type=int, default=DEFAULT_DETECT_SIZE,
                   help="images are resized to this longer side before detection")
    p.add_argument("--upsample", type=int, default=0, choices=(0, 1, 2),
                   help="dlib-hog, dlib-cascade: upsample to find smaller faces (slower)")
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
    preset = dict(PRESETS[args.preset])
    gender = args.gender or preset["gender"]
    detector = args.detector or preset["detector"]
    gender_options: dict[str, Any] = (dict(preset["gender_options"])
                                      if gender == preset["gender"] else {})
    detector_options: dict[str, Any] = (dict(preset["detector_options"])
                                        if detector == preset["detector"] else {})
    if args.gender == "clip":
        from imagen_audit.annotate.gender.clip import DEFAULT_MODEL, parse_labels

        gender_options["model"] = args.clip_model or DEFAULT_MODEL
        if args.clip_labels:
            gender_options["labels"] = parse_labels(args.clip_labels)
        gender_options["local_files_only"] = not args.allow_download
    if args.gender == "deepface" and args.gender_weights:
        gender_options["weights"] = args.gender_weights
    if args.upsample:
        detector_options["upsample"] = args.upsample
    threshold = (args.gender_threshold if args.gender_threshold is not None
                 else preset["gender_threshold"])
    tone_options: dict[str, Any] = {}
    if args.white_balance != "none":
        tone_options["white_balance"] = args.white_balance
    if args.tone_landmarks != 5:
        tone_options["landmarks"] = args.tone_landmarks
    spec = AnnotatorSpec(detector=detector, gender=gender, gender_threshold=threshold,
                         tone_threshold=args.tone_threshold, detect_size=args.detect_size,
                         detector_options=detector_options, gender_options=gender_options,
                         name=args.name, tone_options=tone_options)
    # Still the preset (same parts and options)? Then say so; else it is a custom annotator.
    same = all(getattr(spec, k) == v for k, v in preset.items() if k != "gender_threshold")
    return replace(spec, preset=args.preset) if same else spec


def _cmd_annotate(args: argparse.Namespace) -> int:
    from imagen_audit.annotate.runner import annotate_run

    spec = spec_from_args(args)
    if args.from_folder:
        from imagen_audit.generate.runner import generate_run

        generate_run(args.run_dir, model=f"folder:{args.from_folder}", probes=None,
                     progress=not args.no_progress)
    summary = annotate_run(args.run_dir, spec, stages=args.stages, batch_size=args.batch_size,
                           workers=args.workers, progress=not args.no_progress,
                           executor=args.executor, ray_address=args.ray_address)
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
                                 progress=not args.no_progress, face_choice=args.face)
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
    a.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="annotate in local worker processes or on a Ray cluster's CPU workers")
    a.add_argument("--ray-address", help="Ray cluster address (default: start a local one)")
    a.set_defaults(handler=_cmd_annotate)

    v = sub.add_parser(
        "validate-annotators", help="compare annotations with human labels on labelled faces",
        description="Annotate a labelled folder of face images and report, overall and per "
                    "group: face-found rate, coverage, accuracy, confusion matrix, Cohen's "
                    "kappa and calibration (reliability table, ECE) for perceived gender; "
                    "MAE in Monk steps for tone labels, else the ITA distribution per group "
                    "and its AUC per pair of groups. Images the annotator's trained parts "
                    "were fitted on are scored out-of-fold (cross-validated).")
    v.add_argument("--labels", required=True, metavar="LABELS.csv",
                   help="columns: file, perceived_gender and/or monk_tone, optional group")
    v.add_argument("--images", metavar="DIR", help="image folder (default: the CSV's folder)")
    v.add_argument("--group", help="group column (default race_label or group if present)")
    v.add_argument("--face", choices=("central", "largest"), default="central",
                   help="which face of a labelled image the label is about: the one nearest "
                        "the centre (default; labelled crops are centred on their subject) "
                        "or the largest")
    v.add_argument("--out", metavar="DIR", help="write validation.json and predictions.csv")
    v.add_argument("--run", metavar="RUN_DIR",
                   help="also store validation.json under RUN_DIR/validation/")
    _add_annotator_options(v)
    v.set_defaults(handler=_cmd_validate)
