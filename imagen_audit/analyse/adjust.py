"""Misclassification-adjusted shares from annotator confusion matrices.

A classifier that calls 10 % of women "male" makes every occupation look more male than
the model draws it. With a confusion matrix from labelled validation data
(``C[i, j]`` = count of true class i predicted as j), the observed label shares ``q`` are
``q = M^T p`` with ``M`` the row-normalised matrix (``M[i, j] = P(pred j | true i)``), so
the true shares are estimated by solving that system for ``p`` on the probability simplex
(least squares, then clipped and renormalised; for two classes this is the Rogan–Gladen
estimator). Where a matrix exists per group (e.g. per tone band), each group's observed
counts are corrected with its own matrix and the corrected counts summed.

The interval accounts for both sources of error: the observed counts are resampled
(multinomial) *and* each confusion row is resampled from its validation counts, so a
small validation set gives a wide interval.

Only :func:`load_validation` knows the file layout. Two are accepted:

- the one ``imagen-audit validate-annotators`` writes (``validation.json``, schema
  ``imagen-audit/validation/1``)::

    {"gender": {"true_labels": ["female", "male"],
                "predicted_labels": ["female", "male", "unknown", "no_face"],
                "overall": {"confusion": [[80, 10, 6, 4], [5, 85, 5, 5]]},
                "groups": {"GROUP": {"confusion": ...}, ...}}}

- a square one: ``{"gender": {"labels": [...], "overall": {"confusion": [[..]]},
  "by_group": {...}}}``.

``validate-annotators`` also writes ``gender.by_tone_band`` (blocks per band of the
annotator's own Monk estimate); they are read as groups too, so units are corrected with
their tone band's matrix.

Rows are the true (human) labels, columns the predicted ones. Predicted columns that are
not a true label (``unknown``, ``no_face``) are abstentions: the rates are
``P(pred j | true i)`` over *all* predictions, and only the decided columns enter the
system, so a classifier that abstains more on one class is accounted for. Group matrices
are used when their group names are values of the unit column given as ``group_column``
(e.g. tone bands); others (e.g. validation groups by a dataset's race label) are shown in
the validation report but not used here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit.documents import read_document
from imagen_audit.errors import AuditError


class ValidationFileError(AuditError):
    """The annotator validation file does not match the expected layout."""


@dataclass(frozen=True)
class ConfusionSet:
    """Confusion matrices of one attribute: overall and, optionally, per group."""

    attribute: str
    labels: tuple[str, ...]          # true labels (rows)
    overall: np.ndarray              # counts, rows true labels, columns ``predicted``
    by_group: Mapping[str, np.ndarray] = field(default_factory=dict)
    predicted: tuple[str, ...] = ()  # predicted labels (columns); default = labels

    def decided(self) -> np.ndarray:
        """Column indices of predictions that are one of the true labels."""
        pred = self.predicted or self.labels
        return np.array([pred.index(lab) for lab in self.labels])

    def matrix(self, group: str | None = None) -> np.ndarray:
        if group is not None and group in self.by_group:
            return self.by_group[group]
        return self.overall


def _matrix(raw: Any, n: int, where: str, n_pred: int | None = None) -> np.ndarray:
    try:
        m = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise ValidationFileError(f"{where}: confusion is not a numeric matrix") from None
    shape = (n, n_pred or n)
    if m.shape != shape:
        raise ValidationFileError(f"{where}: confusion has shape {m.shape}, expected {shape} "
                                  "(rows true labels, columns predicted labels)")
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValidationFileError(f"{where}: confusion has negative or non-finite counts")
    if np.any(m.sum(axis=1) == 0):
        raise ValidationFileError(f"{where}: a true label has no validation examples")
    return m


def load_validation(source: str | Path | Mapping[str, Any]) -> dict[str, ConfusionSet]:
    """Read confusion matrices from a validation file (path) or an already-parsed dict."""
    name = "validation"
    if not isinstance(source, Mapping):
        name = str(source)
        source = read_document(source, "JSON", ValidationFileError)
    if not isinstance(source, Mapping):
        raise ValidationFileError(f"{name}: expected an object of attributes")
    out = {}
    for attribute, spec in source.items():
        if not isinstance(spec, Mapping) or not ({"labels", "true_labels"} & set(spec)):
            continue  # other keys (metadata, tone summaries, ...) are not used here
        where = f"{name}, attribute '{attribute}'"
        labels = tuple(str(x) for x in spec.get("true_labels", spec.get("labels")) or ())
        predicted = tuple(str(x) for x in spec.get("predicted_labels") or labels)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValidationFileError(f"{where}, field 'labels': need ≥ 2 distinct labels")
        missing = [lab for lab in labels if lab not in predicted]
        if missing:
            raise ValidationFileError(f"{where}, field 'predicted_labels': lacks {missing}")
        overall = spec.get("overall")
        if not isinstance(overall, Mapping) or "confusion" not in overall:
            raise ValidationFileError(f"{where}, field 'overall': missing 'confusion'")
        by_group = {}
        groups = spec.get("by_group", spec.get("groups")) or {}
        if not isinstance(groups, Mapping):
            raise ValidationFileError(f"{where}, field 'groups': expected an object")
        if isinstance(spec.get("by_tone_band"), Mapping):  # validate-annotators: per band
            groups = {**groups, **spec["by_tone_band"]}
        for group, gspec in groups.items():
            if not isinstance(gspec, Mapping) or "confusion" not in gspec:
                raise ValidationFileError(f"{where}, group '{group}': missing 'confusion'")
            try:
                by_group[str(group)] = _matrix(gspec["confusion"], len(labels),
                                               f"{where}, group '{group}'", len(predicted))
            except ValidationFileError:
                if "groups" in spec:  # a validation group too small to have every label
                    continue
                raise
        out[str(attribute)] = ConfusionSet(
            str(attribute), labels, _matrix(overall["confusion"], len(labels),
                                            f"{where}, field 'overall'", len(predicted)),
            by_group, predicted)
    return out


def correct_counts(observed: np.ndarray, confusion: np.ndarray,
                   decided: np.ndarray | None = None) -> np.ndarray:
    """Estimated true counts from observed (decided) label counts and a confusion matrix.

    ``confusion`` is (K, P) counts, true rows, predicted columns; ``decided`` the K column
    indices of the predictions that are labels (default: all, P == K). Works on the last
    axis, so ``observed`` may be (K,) or (B, K) and ``confusion`` (K, P) or (B, K, P).
    """
    obs = np.asarray(observed, dtype=float)
    c = np.asarray(confusion, dtype=float)
    m = c / c.sum(axis=-1, keepdims=True)  # P(pred j | true i), over all predictions
    if decided is not None:
        m = m[..., decided]
    total = obs.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(total > 0, obs / total, 0.0)
    mt = np.swapaxes(m, -1, -2)
    p = (np.linalg.pinv(mt) @ q[..., None])[..., 0]
    p = np.clip(p, 0.0, None)
    s = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(s > 0, p / s, q)
    return p * total


def adjusted_shares(units: pd.DataFrame, column: str, confusion: ConfusionSet, *,
                    by: str | None = None, group_column: str | None = None,
                    alpha: float = 0.05, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Observed and adjusted shares of each label of ``column``, overall or per ``by`` group.

    ``group_column`` (e.g. ``tone_band``) picks, for each unit, the confusion matrix of its
    group when the validation has one (the overall matrix otherwise). Units whose label is
    not among the confusion labels (abstentions) are left out. Returns one row per
    (group, label): ``observed``, ``adjusted``, ``lo``, ``hi``, ``n``.
    """
    labels = list(confusion.labels)
    decided = confusion.decided()
    rng = np.random.default_rng(seed)
    data = units[units[column].isin(labels)]
    groups = [("(all)", data)] if by is None else [(str(k), v) for k, v in
                                                  data.groupby(by, sort=True)]
    rows = []
    for key, part in groups:
        cells = ([(None, part)] if group_column is None else
                 [(str(k), v) for k, v in part.groupby(group_column, dropna=False)])
        n = len(part)
        observed = np.array([(part[column] == lab).sum() for lab in labels], float)
        adjusted = np.zeros(len(labels))
        reps = np.zeros((n_boot, len(labels)))
        for cell, sub in cells:
            cm = confusion.matrix(cell if cell in confusion.by_group else None)
            counts = np.array([(sub[column] == lab).sum() for lab in labels], float)
            adjusted += correct_counts(counts, cm, decided)
            if counts.sum() == 0:
                continue
            sim_obs = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot)
            sim_cm = np.stack([rng.multinomial(int(r.sum()), r / r.sum(), size=n_boot)
                               for r in cm], axis=1)  # (B, K, K)
            reps += correct_counts(sim_obs, sim_cm, decided)
        with np.errstate(invalid="ignore", divide="ignore"):
            adj_share = adjusted / adjusted.sum()
            rep_share = reps / reps.sum(axis=1, keepdims=True)
        lo, hi = np.nanquantile(rep_share, [alpha / 2, 1 - alpha / 2], axis=0) if n else \
            (np.full(len(labels), np.nan),) * 2
        for j, lab in enumerate(labels):
            rows.append({"group": key, "label": lab, "n": n,
                         "observed": observed[j] / n if n else np.nan,
                         "adjusted": adj_share[j] if n else np.nan,
                         "lo": lo[j], "hi": hi[j]})
    return pd.DataFrame(rows, columns=["group", "label", "n", "observed", "adjusted", "lo",
                                       "hi"])
