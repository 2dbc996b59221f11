"""Validate annotators against human labels on a labelled folder of face images.

``imagen-audit validate-annotators --labels LABELS.csv [--images DIR] --out DIR
[--run RUN_DIR]`` annotates every listed file, compares one face of each image with its
labels (``--face central``, the default: the face nearest the image centre among faces at
least a quarter the size of the largest, since labelled face crops such as FairFace's are
centred on the labelled person and often show others beside them; ``--face largest``: the
rule the analysis applies to generated images) and writes ``DIR/validation.json`` (and
``DIR/predictions.csv``, one row per file); with ``--run`` the JSON is also stored as
``RUN_DIR/validation/validation.json`` (atomically) for the analysis.

Labels CSV: column ``file`` (relative to ``--images``, default the CSV's folder), a
perceived-gender column (``perceived_gender`` or ``gender``: female/male, woman/man, f/m),
an optional Monk tone column (``monk_tone`` or ``perceived_monk_tone``: 1–10; a file
without tone labels, like the FairFace sample, is accepted) and an optional group column
(``--group``, default ``race_label`` or ``group`` when present).

validation.json (``schema`` = ``imagen-audit/validation/1``)::

    schema, created_at, labels_file, images_dir, annotator (name), annotator_config,
    gender_threshold, tone_threshold, group_column, n_files, n_unreadable,
    errors:   [{file, error}]                      # unreadable files (not counted below)
    gender: {
      true_labels:      ["female", "male"]          # confusion-matrix rows
      predicted_labels: ["female", "male", "unknown", "no_face"]   # columns
      overall, groups: {GROUP: ...}  each a block:
        n                 readable images with a gender label
        face_found_rate   share of them with at least one face
        confusion         counts [true][predicted] in the orders above
        accuracy          correct / decided (female or male predicted)
        accuracy_all      correct / faces found (unknown counts as wrong)
        coverage          decided / faces found
        kappa             Cohen's kappa on the decided images (null if undefined)
        rates             P(predicted | true, face found): {true: {predicted: p}} over
                          female/male/unknown, the misclassification matrix for
                          adjusted shares
        calibration       {ece, bins: [{lo, hi, n, confidence, accuracy}]}: reliability
                          of the probability of the likelier label over all faces found
                          (decided or not), 10 bins from 0.5 to 1; ECE = Σ n_b/N ·
                          |accuracy_b − confidence_b|
    }
      by_tone_band: {light, medium, dark: ...} the same blocks by the annotator's own
                    Monk estimate of the largest face (faces whose tone abstained and
                    images without a face are in no band); the analysis corrects shares
                    per tone band with these
    preset:  the annotator preset (fast/accurate) or null
    cross_fitted: null, or {n, model} when some labelled images were in the training set
             of the annotator's trained parts (their SHA-256 is in the model file): each
             of them was scored by the cross-validation fold model that never saw it, so
             every figure is out-of-fold (5-fold cross-validated)
    tone: null when no tone labels, else {
      overall, groups: {n, mae (Monk steps), exact, within_1, abstained (share),
                        kappa_quadratic, confusion (10×10, true rows, predicted columns)}
    }
    ita_by_group: {GROUP: {n, median_ita, median_monk, abstained, mean_ita, sd_ita,
                           quantiles: {p10, p25, p50, p75, p90}}}  # descriptive only
    ita_auc: {GROUP_A: {GROUP_B: P(ITA_A > ITA_B)}}  # Mann-Whitney AUC per pair of groups,
             (faces with a tone estimate); how well ITA separates groups when there are
             no tone labels (race labels are not skin tones: a coarse check only)
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.base import AnnotatorSpec, ImageAnnotation
from imagen_audit.documents import read_text
from imagen_audit.errors import AuditError

SCHEMA = "imagen-audit/validation/1"
ECE_BINS = 10
#: Bands of the annotator's own Monk estimate (the analysis' default tone bands): gender
#: confusion matrices per band are what the analysis can use on generated images, which
#: have no race labels.
TONE_BANDS = {"light": (1, 3), "medium": (4, 7), "dark": (8, 10)}
TRUE = ("female", "male")
PRED = ("female", "male", "unknown", "no_face")
_GENDER_WORDS = {"female": "female", "woman": "female", "f": "female", "w": "female",
                 "male": "male", "man": "male", "m": "male"}


def cohen_kappa(a: Sequence[Any], b: Sequence[Any], weights: str | None = None,
                labels: Sequence[Any] | None = None) -> float | None:
    """Cohen's kappa of two raters (``weights``: None, 'linear' or 'quadratic')."""
    labels = list(labels) if labels is not None else sorted(set(a) | set(b))
    if len(a) == 0:
        return None
    idx = {v: i for i, v in enumerate(labels)}
    k = len(labels)
    m = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        m[idx[x], idx[y]] += 1
    n = m.sum()
    expected = np.outer(m.sum(1), m.sum(0)) / n
    if weights is None:
        w = 1.0 - np.eye(k)
    else:
        d = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
        w = d / max(k - 1, 1) if weights == "linear" else (d / max(k - 1, 1)) ** 2
    denom = (w * expected).sum()
    if denom == 0:
        return None
    return float(1.0 - (w * m).sum() / denom)


def read_labels(path: Path, images_dir: Path, group: str | None = None
                ) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Rows ``{file, path, gender, tone, group}``; errors name the file, line and column."""
    if not path.is_file():
        raise AuditError(f"{path}: labels file not found")
    text = read_text(path, lambda message, _: AuditError(f"{path}: {message}"), "labels file")
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "file" not in cols:
            raise AuditError(f"{path}: needs a 'file' column (has {cols})")
        gcol = next((c for c in ("perceived_gender", "gender") if c in cols), None)
        tcol = next((c for c in ("monk_tone", "perceived_monk_tone") if c in cols), None)
        if gcol is None and tcol is None:
            raise AuditError(f"{path}: needs a perceived-gender column (perceived_gender or "
                             f"gender) or a Monk tone column (monk_tone); has {cols}")
        if group is None:
            group = next((c for c in ("race_label", "group") if c in cols), None)
        elif group not in cols:
            raise AuditError(f"{path}: group column {group!r} not found (has {cols})")
        rows = []
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            file = (row.get("file") or "").strip()
            if not file:
                raise AuditError(f"{where}, column 'file': empty")
            gender = None
            if gcol and (row.get(gcol) or "").strip():
                gender = _GENDER_WORDS.get(row[gcol].strip().lower())
                if gender is None:
                    raise AuditError(f"{where}, column {gcol!r}: {row[gcol]!r} is not "
                                     "female/male")
            tone = None
            if tcol and (row.get(tcol) or "").strip():
                try:
                    tone = int(row[tcol])
                except ValueError:
                    tone = -1
                if not 1 <= tone <= 10:
                    raise AuditError(f"{where}, column {tcol!r}: {row[tcol]!r} is not 1–10")
            target = (images_dir / file).resolve()
            if images_dir.resolve() not in target.parents:
                raise AuditError(f"{where}, column 'file': {file!r} leaves {images_dir}")
            rows.append({"file": file, "path": target, "gender": gender, "tone": tone,
                         "group": (row.get(group) or "").strip() if group else None})
    if not rows:
        raise AuditError(f"{path}: no rows")
    return rows, group, tcol is not None


def _largest(ann: ImageAnnotation) -> Any:
    if not ann.faces:
        return None
    return max(ann.faces, key=lambda f: (f.face.box[2] - f.face.box[0])
               * (f.face.box[3] - f.face.box[1]))


FACE_CHOICES = ("central", "largest")


def _central(ann: ImageAnnotation) -> Any:
    """The face nearest the image centre (among faces at least a quarter the size of the
    largest): labelled face crops are centred on the person the label is about."""
    if not ann.faces:
        return None
    area = {id(f): (f.face.box[2] - f.face.box[0]) * (f.face.box[3] - f.face.box[1])
            for f in ann.faces}
    big = max(area.values())
    cx, cy = (ann.width or 0) / 2.0, (ann.height or 0) / 2.0
    scale = float(max(ann.width or 1, ann.height or 1))

    def distance(f: Any) -> float:
        x = (f.face.box[0] + f.face.box[2]) / 2.0
        y = (f.face.box[1] + f.face.box[3]) / 2.0
        return float(np.hypot(x - cx, y - cy)) / scale

    return min((f for f in ann.faces if area[id(f)] >= big / 4.0),
               key=lambda f: (distance(f), -area[id(f)]))


def prediction_rows(rows: list[dict[str, Any]], anns: list[ImageAnnotation],
                    face_choice: str = "central") -> list[dict[str, Any]]:
    out = []
    pick = _central if face_choice == "central" else _largest
    for row, ann in zip(rows, anns, strict=True):
        face = pick(ann)
        out.append({
            "file": row["file"], "group": row["group"], "true_gender": row["gender"],
            "true_monk": row["tone"], "error": ann.error, "n_faces": None if ann.error
            else ann.n_faces,
            "pred_gender": None if ann.error else ("no_face" if face is None
                                                   else face.gender.label),
            "p_female": face.gender.p_female if face else None,
            "gender_probability": face.gender.probability if face else None,
            "pred_monk": face.tone.monk_tone if face else None,
            "ita": face.tone.ita if face else None,
            "tone_confidence": face.tone.confidence if face else None})
    return out


def gender_block(preds: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [p for p in preds if p["error"] is None and p["true_gender"] is not None]
    conf = np.zeros((len(TRUE), len(PRED)), dtype=int)
    for p in rows:
        conf[TRUE.index(p["true_gender"]), PRED.index(p["pred_gender"])] += 1
    found = int(conf[:, :3].sum())
    decided = int(conf[:, :2].sum())
    correct = int(conf[0, 0] + conf[1, 1])
    dec = [p for p in rows if p["pred_gender"] in TRUE]
    rates = {}
    for i, t in enumerate(TRUE):
        total = conf[i, :3].sum()
        rates[t] = {c: (float(conf[i, j] / total) if total else None)
                    for j, c in enumerate(PRED[:3])}
    return {"n": len(rows), "face_found_rate": found / len(rows) if rows else None,
            "confusion": conf.tolist(), "accuracy": correct / decided if decided else None,
            "accuracy_all": correct / found if found else None,
            "coverage": decided / found if found else None,
            "kappa": cohen_kappa([p["true_gender"] for p in dec],
                                 [p["pred_gender"] for p in dec], labels=TRUE),
            "rates": rates, "calibration": calibration(rows)}


def calibration(rows: list[dict[str, Any]], n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Reliability table and expected calibration error of the likelier label's probability
    over faces found with a label (abstentions included: calibration is about p)."""
    scored = [p for p in rows if p.get("p_female") is not None
              and p["pred_gender"] not in (None, "no_face")]
    if not scored:
        return {"ece": None, "n": 0, "bins": []}
    pf = np.array([float(p["p_female"]) for p in scored])
    truth = np.array([p["true_gender"] == "female" for p in scored])
    conf = np.maximum(pf, 1 - pf)
    correct = (pf >= 0.5) == truth
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                     "confidence": float(conf[m].mean()) if m.any() else None,
                     "accuracy": float(correct[m].mean()) if m.any() else None})
    return {"ece": float(ece), "n": len(scored), "bins": bins}


def auc(a: Sequence[float], b: Sequence[float]) -> float | None:
    """P(X_a > X_b) + ½ P(X_a = X_b): the Mann-Whitney AUC of a against b."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([x, y]))
    return float((ranks[:len(x)].sum() - len(x) * (len(x) + 1) / 2) / (len(x) * len(y)))


def tone_block(preds: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [p for p in preds if p["error"] is None and p["true_monk"] is not None
            and p["pred_gender"] != "no_face"]
    scored = [p for p in rows if p["pred_monk"] is not None]
    conf = np.zeros((10, 10), dtype=int)
    for p in scored:
        conf[p["true_monk"] - 1, p["pred_monk"] - 1] += 1
    err = np.array([abs(p["pred_monk"] - p["true_monk"]) for p in scored], dtype=float)
    return {"n": len(rows), "abstained": 1 - len(scored) / len(rows) if rows else None,
            "mae": float(err.mean()) if len(err) else None,
            "exact": float((err == 0).mean()) if len(err) else None,
            "within_1": float((err <= 1).mean()) if len(err) else None,
            "kappa_quadratic": cohen_kappa([p["true_monk"] for p in scored],
                                           [p["pred_monk"] for p in scored], "quadratic",
                                           labels=range(1, 11)),
            "confusion": conf.tolist()}


def summarise(preds: list[dict[str, Any]], has_tone: bool) -> dict[str, Any]:
    groups = sorted({p["group"] for p in preds if p["group"]})
    by = {g: [p for p in preds if p["group"] == g] for g in groups}
    bands = {b: [p for p in preds if p.get("pred_monk") is not None
                 and lo <= p["pred_monk"] <= hi] for b, (lo, hi) in TONE_BANDS.items()}
    out: dict[str, Any] = {
        "gender": {"true_labels": list(TRUE), "predicted_labels": list(PRED),
                   "overall": gender_block(preds),
                   "groups": {g: gender_block(v) for g, v in by.items()},
                   "by_tone_band": {b: gender_block(v) for b, v in bands.items() if v}},
        "tone": None, "ita_by_group": {}}
    if has_tone:
        out["tone"] = {"overall": tone_block(preds),
                       "groups": {g: tone_block(v) for g, v in by.items()}}
    for g, v in by.items():
        faces = [p for p in v if p["pred_gender"] not in (None, "no_face")]
        itas = [p["ita"] for p in faces if p["ita"] is not None]
        monks = [p["pred_monk"] for p in faces if p["pred_monk"] is not None]
        toned = [p["ita"] for p in faces if p["pred_monk"] is not None]
        q = np.percentile(toned, [10, 25, 50, 75, 90]) if toned else [None] * 5
        out["ita_by_group"][g] = {
            "n": len(faces), "median_ita": float(np.median(itas)) if itas else None,
            "median_monk": float(np.median(monks)) if monks else None,
            "abstained": 1 - len(monks) / len(faces) if faces else None,
            "mean_ita": float(np.mean(toned)) if toned else None,
            "sd_ita": float(np.std(toned, ddof=1)) if len(toned) > 1 else None,
            "quantiles": {f"p{k}": (None if v is None else float(v))
                          for k, v in zip((10, 25, 50, 75, 90), q, strict=True)}}
    toned_by = {g: [p["ita"] for p in v if p["pred_gender"] not in (None, "no_face")
                    and p["pred_monk"] is not None] for g, v in by.items()}
    out["ita_auc"] = {a: {b: auc(toned_by[a], toned_by[b]) for b in groups if b != a}
                      for a in groups}
    return out


def validate_annotators(labels: str | Path, *, images: str | Path | None = None,
                        spec: AnnotatorSpec | None = None, out: str | Path | None = None,
                        run: str | Path | None = None, group: str | None = None,
                        batch_size: int = 16, workers: int | None = None,
                        face_choice: str = "central",
                        progress: bool = False) -> dict[str, Any]:
    """Annotate a labelled folder and compare with its labels; returns the JSON record."""
    from tqdm.auto import tqdm

    from imagen_audit.annotate.runner import iter_annotations

    spec = spec or AnnotatorSpec()
    labels = Path(labels)
    images_dir = Path(images) if images else labels.parent
    rows, group_col, has_tone = read_labels(labels, images_dir, group)
    anns: list[ImageAnnotation] = [ImageAnnotation()] * len(rows)
    plan, cross = cross_fit_plan(spec, [r["path"] for r in rows])
    annotator = spec.build()
    try:
        config = annotator.config()
        with tqdm(total=len(rows), unit="image", desc="validate", disable=not progress) as bar:
            for part_spec, idx in plan:
                own = annotator if part_spec == spec else None
                for i, ann in iter_annotations(((i, rows[i]["path"]) for i in idx), part_spec,
                                               batch_size=batch_size, workers=workers,
                                               annotator=own):
                    anns[i] = ann
                    bar.update()
    finally:
        annotator.close()
    if face_choice not in FACE_CHOICES:
        raise AuditError(f"face choice must be one of {FACE_CHOICES}, got {face_choice!r}")
    preds = prediction_rows(rows, anns, face_choice)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "labels_file": str(labels.resolve()), "images_dir": str(images_dir.resolve()),
        "annotator": spec.key, "annotator_config": config, "preset": spec.preset,
        "cross_fitted": cross,
        "gender_threshold": spec.gender_threshold, "tone_threshold": spec.tone_threshold,
        "face_choice": face_choice,
        "group_column": group_col, "n_files": len(rows),
        "n_unreadable": sum(1 for p in preds if p["error"]),
        "errors": [{"file": p["file"], "error": p["error"]} for p in preds if p["error"]],
        **summarise(preds, has_tone)}
    record = json.loads(json.dumps(record, default=_plain))  # plain JSON types only
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _atomic_write(out / "validation.json", json.dumps(record, indent=2, sort_keys=True))
        import pandas as pd

        frame = pd.DataFrame(preds)
        tmp = out / f".predictions.csv.tmp-{os.getpid()}"
        frame.to_csv(tmp, index=False)
        os.replace(tmp, out / "predictions.csv")
    if run is not None:
        from imagen_audit.store import RunStore

        with RunStore.open(run, create=False) as store:
            store.save_validation(record)
    return record


def trained_files(spec: AnnotatorSpec) -> tuple[dict[str, int], str | None]:
    """SHA-256 → fold of the images the spec's trained parts were fitted on (if any)."""
    opts = dict(spec.gender_options)
    trained = spec.gender == "dlib-ensemble" or (spec.gender == "dlib-onnx"
                                                 and opts.get("calibrated"))
    if not trained or opts.get("fold") is not None:
        return {}, None
    from imagen_audit.annotate.gender.ensemble import DEFAULT_HEAD, load_head

    head = opts.get("head")
    data = load_head(str(head) if head else None)
    return dict(data["training_data"].get("files", {})), str(head or DEFAULT_HEAD.name)


def cross_fit_plan(spec: AnnotatorSpec, paths: Sequence[Path]
                   ) -> tuple[list[tuple[AnnotatorSpec, list[int]]], dict[str, Any] | None]:
    """Which spec annotates which image: the fold model for training images, else ``spec``."""
    files, model = trained_files(spec)
    if not files:
        return [(spec, list(range(len(paths))))], None
    from dataclasses import replace

    from imagen_audit.annotate.train import sha256_file

    by_fold: dict[int | None, list[int]] = {}
    for i, path in enumerate(paths):
        try:
            fold = files.get(sha256_file(path))
        except OSError:
            fold = None  # unreadable: recorded as an error by the annotator
        by_fold.setdefault(fold, []).append(i)
    plan = [(spec if fold is None else
             replace(spec, gender_options={**dict(spec.gender_options), "fold": fold}), idx)
            for fold, idx in sorted(by_fold.items(), key=lambda kv: (kv[0] is not None,
                                                                      kv[0] or 0))]
    n = sum(len(idx) for fold, idx in by_fold.items() if fold is not None)
    return plan, ({"n": n, "model": model} if n else None)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def format_table(record: dict[str, Any], seconds_per_image: float | None = None) -> str:
    """A plain-text table of the validation figures, overall and per group: face-found rate,
    coverage, accuracy, ECE, ITA median, then confusion matrices and ITA AUCs per pair."""
    def fmt(v: Any, pct: bool = True) -> str:
        if v is None:
            return "-"
        return f"{100 * v:.1f}%" if pct else f"{v:.2f}"

    head = (f"annotator {record['annotator']}"
            + (f" (preset {record['preset']})" if record.get("preset") else "")
            + f", gender threshold {record['gender_threshold']}")
    if seconds_per_image is not None:
        head += f", {1000 * seconds_per_image:.0f} ms/image"
    lines = [head]
    if record.get("cross_fitted"):
        cf = record["cross_fitted"]
        lines.append(f"{cf['n']} images were in the training set of {cf['model']}: each was "
                     "scored by the fold model that never saw it (5-fold cross-validated)")
    lines.append(f"{'group':<16}{'n':>5}{'faces':>8}{'cover':>8}{'acc':>8}{'acc_all':>9}"
                 f"{'ECE':>7}{'kappa':>7}{'med ITA':>9}{'med Monk':>9}")
    g = record["gender"]
    blocks = [("overall", g["overall"]), *g["groups"].items()]
    for name, block in blocks:
        ita = record["ita_by_group"].get(name, {})
        ece = (block.get("calibration") or {}).get("ece")
        lines.append(f"{name:<16}{block['n']:>5}{fmt(block['face_found_rate']):>8}"
                     f"{fmt(block['coverage']):>8}{fmt(block['accuracy']):>8}"
                     f"{fmt(block['accuracy_all']):>9}{fmt(ece, False):>7}"
                     f"{fmt(block['kappa'], False):>7}"
                     f"{fmt(ita.get('median_ita'), False):>9}"
                     f"{fmt(ita.get('median_monk'), False):>9}")
    lines.append("confusion (rows true female/male; columns female/male/unknown/no_face):")
    for name, block in blocks:
        lines.append(f"  {name:<16}{block['confusion']}")
    cal = g["overall"].get("calibration") or {}
    if cal.get("bins"):
        lines.append("reliability (overall): " + "  ".join(
            f"[{b['lo']:.2f},{b['hi']:.2f}] n={b['n']} acc={fmt(b['accuracy'])}"
            for b in cal["bins"] if b["n"]))
    aucs = record.get("ita_auc") or {}
    if aucs:
        groups = list(aucs)
        lines.append("ITA AUC, P(ITA row > ITA column):")
        lines.append(" " * 16 + "".join(f"{c[:8]:>9}" for c in groups))
        for a in groups:
            lines.append(f"{a:<16}" + "".join(
                f"{'':>9}" if a == b else f"{fmt(aucs[a].get(b), False):>9}" for b in groups))
    if record.get("tone"):
        t = record["tone"]["overall"]
        lines.append(f"tone: n={t['n']} MAE={fmt(t['mae'], False)} Monk steps, "
                     f"exact={fmt(t['exact'])}, within 1={fmt(t['within_1'])}, "
                     f"abstained={fmt(t['abstained'])}")
    if record["n_unreadable"]:
        lines.append(f"{record['n_unreadable']} unreadable files (see errors)")
    return "\n".join(lines)
