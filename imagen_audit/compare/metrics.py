"""Compare two runs metric by metric: :func:`compare`.

For every metric the analysis has (:func:`imagen_audit.analyse.pipeline.metric_set`), overall
and per prompt, occupation, identity term, probe family and cascade stage, plus the
occupations' gaps from the labour baseline, the mean stereotype amplification, the stage
drift and the filter results, one row of the **changes** table holds the baseline value,
the candidate value, the difference (candidate - baseline) with its 95 % interval, the
test of no change and its p-value (see :mod:`imagen_audit.compare.twosample`).

Multiple comparisons, two levels:

- ``q``: Benjamini–Hochberg within the **family** (``bh_family``): one metric across the
  groups of one grouping (e.g. ``share_female`` across occupations), as the analysis corrects
  its own tests. ``significant`` (``q < alpha``) is what a pre-specified question (a gate
  check about occupations, say) should use.
- ``q_all``: Benjamini–Hochberg across **every test of the comparison**. ``headline``
  (``q_all < alpha``) drives the "what got worse / better" summary, so a comparison of two
  runs of the same model lists nothing there with probability at least ``1 - alpha``
  however many metrics and groups it holds.

Groups with fewer than ``min_n`` units in either run are flagged ``small_sample`` and take
no part in either correction. ``direction`` says whether a significant change is ``worse``,
``better`` or only ``changed`` (metrics with no better side, e.g. a skin-tone band share).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from imagen_audit.analyse import stats
from imagen_audit.analyse.baselines import neutral_occupation_units
from imagen_audit.analyse.frame import Distribution, Mean, Rate, Share
from imagen_audit.analyse.pipeline import Analysis, AnalysisConfig, analyse, metric_set
from imagen_audit.compare import pairing, twosample

GROUPINGS = ("prompt_id", "occupation_id", "identity_id", "family")
LIST_ORDER = ("overall", "baselines", "amplification", "occupation_id", "identity_id", "family",
              "stage", "drift", "prompt_filter", "image_filter", "prompt_id")
CHANGE_COLUMNS = ["family", "bh_family", "group", "metric", "baseline", "candidate",
                  "difference", "lo", "hi", "n_baseline", "n_candidate", "n_pairs", "test",
                  "p", "q", "q_all", "small_sample", "significant", "headline", "direction"]

# Which side of a change is worse. "lower"/"higher": of the metric itself; "abs": a signed
# measure growing in size. Shares (perceived female, a tone band) have no better side by
# themselves: their moves are judged in the "baselines" family, against the labour
# baseline and against parity separately (a move can be better by one and worse by the
# other), so they are only "changed".
WORSE_IF = {
    "face_detection_rate": "lower", "gender_abstention_rate": "higher",
    "tone_abstention_rate": "higher", "gender_gap_from_uniform": "higher",
    "tone_gap_from_uniform": "higher", "gender_entropy": "lower", "tone_entropy": "lower",
    "abs_gap_baseline": "higher", "abs_gap_parity": "higher",
    "amplification": "higher", "mean_amplification": "higher", "drift_ita": "abs",
    "drift_share_female": "abs", "recall": "lower", "fpr": "higher", "precision": "lower",
    "f1": "lower", "roc_auc": "lower", "pr_auc": "lower", "flag_rate": "higher",
    "identity_fpr": "higher",
}
FILTER_WORSE_PREFIX = (("recall", "lower"), ("fpr", "higher"), ("false_positive", "higher"),
                       ("precision", "lower"), ("f1", "lower"), ("roc_auc", "lower"),
                       ("pr_auc", "lower"), ("auc", "lower"))


@dataclass
class FilterData:
    """A filter evaluation of one run: per-item decisions (or counts), and scalar metrics."""

    name: str
    kind: str                               # "prompt" or "image"
    rows: pd.DataFrame | None = None        # key, label (1 harmful / 0 benign / NaN), blocked
    scalars: dict[str, float] = field(default_factory=dict)
    source: str = ""


@dataclass
class Comparison:
    config: AnalysisConfig
    stage: int | None
    baseline: Analysis | None  # None: a filter-only comparison (no annotations)
    candidate: Analysis | None
    changes: pd.DataFrame
    pairing: dict[str, Any]
    left_out: dict[str, Any]
    notes: list[str]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stacked: pd.DataFrame | None = None

    @property
    def alpha(self) -> float:
        return self.config.alpha

    def _listed(self, direction: str, headline: bool) -> pd.DataFrame:
        """Significant changes in one direction, largest first. A change that shows in
        several groupings with the very same numbers (the one prompt of an occupation, the
        one family of a run) is listed once, under the broadest grouping."""
        col = "headline" if headline else "significant"
        t = self.changes[self.changes[col] & (self.changes["direction"] == direction)]
        rank = {f: i for i, f in enumerate(LIST_ORDER)}
        t = t.assign(_r=t["family"].map(rank).fillna(len(rank))).sort_values("_r", kind="stable")
        t = t.drop_duplicates(["metric", "baseline", "candidate", "n_baseline", "n_candidate"])
        t = t.drop(columns="_r")
        return t.reindex(t["difference"].abs().sort_values(ascending=False).index)

    def worse(self, headline: bool = True) -> pd.DataFrame:
        return self._listed("worse", headline)

    def better(self, headline: bool = True) -> pd.DataFrame:
        return self._listed("better", headline)

    def changed(self, headline: bool = True) -> pd.DataFrame:
        return self._listed("changed", headline)

    @property
    def no_change(self) -> bool:
        return not bool(self.changes["headline"].any())


# --------------------------------------------------------------------------- metric rows
def _metric_arrays(metric, data: pd.DataFrame) -> dict[str, np.ndarray]:
    if isinstance(metric, Share):
        col = data[metric.column]
        valid = (col.notna() if metric.among is None else col.isin(list(metric.among)))
        return {"hit": ((col == metric.value) & valid).to_numpy(float),
                "valid": valid.to_numpy(float)}
    if isinstance(metric, Rate):
        col = data[metric.column]
        valid = col.notna()
        return {"hit": (col.where(valid, False).astype(bool) & valid).to_numpy(float),
                "valid": valid.to_numpy(float)}
    if isinstance(metric, Mean):
        return {"x": pd.to_numeric(data[metric.column], errors="coerce").to_numpy(float)}
    raise TypeError(type(metric))


def _group_rows(data: pd.DataFrame, key: str | None, family: str, metrics: Mapping[str, Any],
                config: AnalysisConfig, rng: np.random.Generator,
                n_perm: int) -> list[dict[str, Any]]:
    """Rows for every metric of ``data`` by ``key`` (None: overall)."""
    if data.empty:
        return []
    if key is None:
        codes, labels = np.zeros(len(data), np.int64), ["(all)"]
    else:
        codes, uniq = pd.factorize(data[key].astype(str), sort=True)
        labels = list(uniq)
    g = len(labels)
    run = data["run"].to_numpy()
    cluster = data["cluster"].to_numpy()
    rows: list[dict[str, Any]] = []
    dist_by_column: dict[str, list[tuple[str, Distribution]]] = {}
    for name, m in metrics.items():
        if isinstance(m, Distribution):
            dist_by_column.setdefault(m.column, []).append((name, m))
            continue
        arrays = _metric_arrays(m, data)
        if "x" in arrays:
            res = twosample.mean_change(codes, run, cluster, arrays["x"], g, alpha=config.alpha)
            test = "pair-robust z (means)"
        else:
            res = twosample.proportion_change(codes, run, cluster, arrays["hit"],
                                              arrays["valid"], g, alpha=config.alpha)
            test = "pooled two-proportion z, paired where seeds match"
        for i, label in enumerate(labels):
            rows.append({"family": family, "group": label, "metric": name,
                         "baseline": res["value0"][i], "candidate": res["value1"][i],
                         "difference": res["difference"][i], "lo": res["lo"][i],
                         "hi": res["hi"][i], "n_baseline": int(res["n0"][i]),
                         "n_candidate": int(res["n1"][i]), "n_pairs": int(res["n_pairs"][i]),
                         "test": test, "p": res["p"][i]})
    for column, dists in dist_by_column.items():
        cats = list(dists[0][1].categories)
        cat = data[column].map({c: j for j, c in enumerate(cats)}).fillna(-1).to_numpy(int)
        fns = {name: (stats.gap_from_uniform if d.statistic == "gap_from_uniform"
                      else stats.normalised_entropy) for name, d in dists}
        for i, label in enumerate(labels):
            sel = codes == i
            res = twosample.distribution_change(run[sel], cluster[sel], cat[sel], len(cats), fns,
                                                alpha=config.alpha, n_perm=n_perm,
                                                n_boot=n_perm, rng=rng)
            for name, r in res.items():
                rows.append({"family": family, "group": label, "metric": name,
                             "baseline": r["value0"], "candidate": r["value1"],
                             "difference": r["difference"], "lo": r["lo"], "hi": r["hi"],
                             "n_baseline": int(r["n0"]), "n_candidate": int(r["n1"]),
                             "n_pairs": int(r["n_pairs"]),
                             "test": "permutation (pairs swapped), cluster bootstrap interval",
                             "p": r["p"]})
    return rows


def _baseline_rows(occ: list[dict[str, Any]], baselines: pd.DataFrame) -> list[dict[str, Any]]:
    """Occupations' gaps from the labour baseline and from parity, and amplification."""
    if not occ or baselines is None or baselines.empty:
        return []
    base = baselines.drop_duplicates("occupation_id").set_index("occupation_id")["baseline_women"]
    rows = []
    for r in occ:
        if r["metric"] != "share_female" or r["group"] not in base.index:
            continue
        b = float(base.loc[r["group"]])
        if np.isnan(b):
            continue
        p0, lo, hi = r["baseline"], r["lo"], r["hi"]
        common = {k: r[k] for k in ("group", "n_baseline", "n_candidate", "n_pairs", "test",
                                    "p")}
        for metric, ref in (("abs_gap_baseline", b), ("abs_gap_parity", 0.5)):
            gap0 = p0 - ref
            growth = abs(r["candidate"] - ref) - abs(gap0)
            ends = [abs(gap0 + d) - abs(gap0) for d in (lo, hi)]
            if lo < -gap0 < hi:
                ends.append(-abs(gap0))
            rows.append({"family": "baselines", "metric": metric, "baseline": abs(gap0),
                         "candidate": abs(r["candidate"] - ref), "difference": growth,
                         "lo": min(ends), "hi": max(ends), "reference": ref, **common})
        direction = np.sign(b - 0.5)
        if direction != 0:
            rows.append({"family": "baselines", "metric": "amplification",
                         "baseline": (p0 - b) * direction,
                         "candidate": (r["candidate"] - b) * direction,
                         "difference": r["difference"] * direction,
                         "lo": min(lo * direction, hi * direction),
                         "hi": max(lo * direction, hi * direction), "reference": b, **common})
    return rows


def _amplification_row(a: Analysis, b: Analysis, config: AnalysisConfig) -> list[dict]:
    t0, t1 = a.baselines, b.baselines
    if t0.empty or t1.empty:
        return []
    cols = ["occupation_id", "amplification", "small_sample"]
    m = t0[cols].merge(t1[cols], on="occupation_id", suffixes=("_0", "_1"))
    m = m[~m["small_sample_0"].astype(bool) & ~m["small_sample_1"].astype(bool)]
    m = m.dropna(subset=["amplification_0", "amplification_1"])
    if m.empty:
        return []
    d = (m["amplification_1"] - m["amplification_0"]).to_numpy(float)
    _, lo, hi = stats.bootstrap_mean(d, config.n_boot, np.random.default_rng(config.seed),
                                     config.alpha)
    p = (float(sps.ttest_1samp(d, 0.0).pvalue) if len(d) >= 3 and np.ptp(d) > 0
         else (1.0 if np.allclose(d, 0) else np.nan))
    return [{"family": "amplification", "group": f"{len(d)} occupations",
             "metric": "mean_amplification", "baseline": float(m["amplification_0"].mean()),
             "candidate": float(m["amplification_1"].mean()), "difference": float(d.mean()),
             "lo": lo, "hi": hi, "n_baseline": len(d), "n_candidate": len(d),
             "n_pairs": len(d), "test": "t-test over occupations (paired)", "p": p}]


def _drift_rows(a: Analysis, b: Analysis, config: AnalysisConfig) -> list[dict]:
    d0, d1 = a.drift, b.drift
    if d0.empty or d1.empty:
        return []
    keys = ["stage_from", "stage_to", "measure"]
    sel = [(d[(d["group"] == "(all)") & d["measure"].isin(["ita", "share_female"])])
           for d in (d0, d1)]
    m = sel[0].merge(sel[1], on=keys, suffixes=("_0", "_1"))
    z = stats.z_value(config.alpha)
    rows = []
    for r in m.itertuples(index=False):
        se0 = (r.hi_0 - r.lo_0) / (2 * z)
        se1 = (r.hi_1 - r.lo_1) / (2 * z)
        diff = r.value_1 - r.value_0
        se = float(np.hypot(se0, se1))
        p = (np.nan if np.isnan(se) else 1.0 if abs(diff) < 1e-12
             else float(2 * special.ndtr(-abs(diff) / se)) if se > 0 else 0.0)
        small = min(r.n_pairs_0, r.n_pairs_1) < config.min_n
        rows.append({"family": "drift", "group": f"stage {r.stage_from}→{r.stage_to}",
                     "metric": f"drift_{r.measure}", "baseline": r.value_0,
                     "candidate": r.value_1, "difference": diff, "lo": diff - z * se,
                     "hi": diff + z * se, "n_baseline": int(r.n_pairs_0),
                     "n_candidate": int(r.n_pairs_1), "n_pairs": 0,
                     "test": "z from the two runs' intervals (independent)",
                     "p": np.nan if small else p})
    return rows


def _filter_worse(metric: str) -> str | None:
    for prefix, side in FILTER_WORSE_PREFIX:
        if metric.startswith(prefix) or metric.endswith(prefix):
            return side
    return None


def _same_threshold(a: FilterData, b: FilterData) -> tuple[FilterData, FilterData, str | None]:
    """Two runs' output-image verdicts at one threshold. Decided at different thresholds
    (``filters scan --threshold``), their flag rates differ by the threshold, not the model,
    so both are decided again from their stored scores at the baseline's threshold."""
    if not {"score", "threshold"} <= set(a.rows.columns) & set(b.rows.columns):
        return a, b, None
    t0 = sorted(set(a.rows["threshold"].dropna()))
    t1 = sorted(set(b.rows["threshold"].dropna()))
    if not t0 or (t0 == t1 and len(t0) == 1):
        return a, b, None
    t = float(t0[0])

    def at(f: FilterData) -> FilterData:
        return FilterData(name=f.name, kind=f.kind, scalars=f.scalars, source=f.source,
                          rows=f.rows.assign(blocked=f.rows["score"] >= t))

    return at(a), at(b), (f"image filter {a.name!r} was decided at threshold(s) "
                          f"{', '.join(f'{x:g}' for x in t0)} in the baseline and "
                          f"{', '.join(f'{x:g}' for x in t1)} in the candidate: both compared "
                          f"at {t:g} from their stored scores")


def _filter_rows(f0: Sequence[FilterData], f1: Sequence[FilterData],
                 config: AnalysisConfig) -> tuple[list[dict], list[str]]:
    notes = []
    by0 = {(f.kind, f.name): f for f in f0}
    by1 = {(f.kind, f.name): f for f in f1}
    for k in sorted(set(by0) ^ set(by1)):
        notes.append(f"{k[0]} filter {k[1]!r} was evaluated in the "
                     f"{'baseline' if k in by0 else 'candidate'} only: not compared")
    rows = []
    for kind, name in sorted(set(by0) & set(by1)):
        a, b = by0[(kind, name)], by1[(kind, name)]
        if kind == "image" and a.rows is not None and b.rows is not None:
            a, b, note = _same_threshold(a, b)
            if note:
                notes.append(note)
        tested = set()
        if a.rows is not None and b.rows is not None:
            both = pd.concat([a.rows.assign(run=0), b.rows.assign(run=1)], ignore_index=True)
            cluster = pd.factorize(both["key"].astype(str))[0]
            label = pd.to_numeric(both["label"], errors="coerce").to_numpy(float)
            blocked = both["blocked"].astype(bool).to_numpy(float)
            measures = ([("recall", label == 1), ("fpr", label == 0)] if kind == "prompt"
                        else [("flag_rate", np.ones(len(both), bool))])
            for metric, valid in measures:
                if not valid.any():
                    continue
                res = twosample.proportion_change(np.zeros(len(both), np.int64),
                                                  both["run"].to_numpy(), cluster, blocked,
                                                  valid.astype(float), 1, alpha=config.alpha)
                tested.add(metric)
                rows.append({"family": f"{kind}_filter", "group": name, "metric": metric,
                             "baseline": res["value0"][0], "candidate": res["value1"][0],
                             "difference": res["difference"][0], "lo": res["lo"][0],
                             "hi": res["hi"][0], "n_baseline": int(res["n0"][0]),
                             "n_candidate": int(res["n1"][0]),
                             "n_pairs": int(res["n_pairs"][0]),
                             "test": "pooled two-proportion z, paired by item (McNemar form)",
                             "p": res["p"][0]})
        for metric in sorted(set(a.scalars) & set(b.scalars) - tested):
            v0, v1 = a.scalars[metric], b.scalars[metric]
            rows.append({"family": f"{kind}_filter", "group": name, "metric": metric,
                         "baseline": v0, "candidate": v1, "difference": v1 - v0,
                         "lo": np.nan, "hi": np.nan, "n_baseline": 0, "n_candidate": 0,
                         "n_pairs": 0, "test": "none (no per-item decisions)", "p": np.nan})
    return rows, notes


def _direction(row: pd.Series) -> str:
    if not row["significant"]:
        return ""
    metric = row["metric"]
    side = WORSE_IF.get(metric) or (_filter_worse(metric) if row["family"].endswith("filter")
                                   else None)
    d = row["difference"]
    if side is None or np.isnan(d) or d == 0:
        return "changed"
    if side == "abs":
        worse = abs(row["candidate"]) > abs(row["baseline"])
    else:
        worse = d < 0 if side == "lower" else d > 0
    return "worse" if worse else "better"


# --------------------------------------------------------------------------- the comparison
def compare(baseline_annotations: pd.DataFrame, candidate_annotations: pd.DataFrame,
            baselines_table: pd.DataFrame | None = None, *,
            candidate_baselines: pd.DataFrame | None = None,
            config: AnalysisConfig | None = None,
            baseline_filters: Sequence[FilterData] = (),
            candidate_filters: Sequence[FilterData] = (),
            n_perm: int = 999) -> Comparison:
    """Compare two runs' annotation tables (the columns of ``RunStore.annotations_table()``).

    ``baselines_table`` is the labour baseline (the baseline run's; the candidate's is used
    when only it is given). See the module docstring for what the result holds.
    """
    config = config or AnalysisConfig()
    common = pairing.intersect(baseline_annotations, candidate_annotations)
    notes = list(common.notes)
    if common.baseline.empty or common.candidate.empty:
        raise ValueError("the runs have no annotated prompt and stage in common: nothing to "
                         "compare")
    base_table = baselines_table if baselines_table is not None else candidate_baselines
    a = analyse(common.baseline, base_table, config=config)
    b = analyse(common.candidate, base_table, config=config)
    if a.annotator != b.annotator:
        notes.append(f"the runs were annotated by different annotators ({a.annotator!r} vs "
                     f"{b.annotator!r}): differences may come from the annotators")
    stage = a.stage
    stacked = pairing.stack(a.units, b.units)
    pair_info = pairing.pairing_summary(stacked, stage)
    if not pair_info["paired"]:
        notes.append("no sample shares a prompt and seed between the runs: compared as "
                     "independent samples")
    rng = np.random.default_rng(config.seed)
    metrics = metric_set(config.tone_bands)
    current = stacked[stacked["stage"] == stage]
    rows = _group_rows(current, None, "overall", metrics, config, rng, n_perm)
    occ_rows: list[dict] = []
    for key in GROUPINGS:
        if key not in current.columns or current[key].isna().all():
            continue
        data = current[current[key].notna()]
        if key == "occupation_id":
            data = neutral_occupation_units(data)
        part = _group_rows(data, key, key, metrics, config, rng, n_perm)
        if key == "occupation_id":
            occ_rows = part
        rows += part
    if len(common.stages) > 1:
        rows += _group_rows(stacked, "stage", "stage", metrics, config, rng, n_perm)
    rows += _baseline_rows(occ_rows, base_table)
    rows += _amplification_row(a, b, config)
    rows += _drift_rows(a, b, config)
    frows, fnotes = _filter_rows(baseline_filters, candidate_filters, config)
    rows += frows
    notes += fnotes
    changes = finish(pd.DataFrame(rows), config)
    return Comparison(config=config, stage=stage, baseline=a, candidate=b, changes=changes,
                      pairing=pair_info, left_out=common.left_out, notes=notes,
                      stacked=stacked)


def compare_filters_only(baseline_filters: Sequence[FilterData],
                         candidate_filters: Sequence[FilterData], *,
                         config: AnalysisConfig | None = None) -> Comparison:
    """Compare two runs' filter results alone, for runs that were never annotated: a prompt
    filter's evaluation and an output-image filter's verdicts do not need faces, so a
    filter-only regression gate (``regression-filters``) must not need the annotators."""
    config = config or AnalysisConfig()
    rows, notes = _filter_rows(baseline_filters, candidate_filters, config)
    if not rows:
        raise ValueError("the runs have no filter result in common and no annotations: "
                         "nothing to compare")
    notes.insert(0, "no annotations in one or both runs: only their filter results are "
                    "compared")
    pairing = {"paired": False, "n_pairs": 0, "n_baseline_units": 0, "n_candidate_units": 0,
               "filter_only": True}
    stacked = pd.DataFrame(columns=["prompt_id", "stage", "run", "cluster", "path", "seed",
                                    "sample_id", "prompt"])
    left_out = {"n_baseline_only_prompts": 0, "n_candidate_only_prompts": 0,
                "baseline_only_prompts": [], "candidate_only_prompts": [],
                "baseline_only_stages": [], "candidate_only_stages": []}
    return Comparison(config=config, stage=None, baseline=None, candidate=None,
                      changes=finish(pd.DataFrame(rows), config), pairing=pairing,
                      left_out=left_out, notes=notes, stacked=stacked)


def finish(t: pd.DataFrame, config: AnalysisConfig) -> pd.DataFrame:
    """Small-sample flags, both levels of correction, significance and direction."""
    if t.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    for col in ("baseline", "candidate", "difference", "lo", "hi", "p"):
        t[col] = pd.to_numeric(t[col], errors="coerce").astype(float)
    small = (t[["n_baseline", "n_candidate"]].min(axis=1) < config.min_n) & \
        ~t["family"].isin(["amplification", "prompt_filter", "image_filter"])
    t["small_sample"] = small.to_numpy()
    t["p"] = t["p"].where(~t["small_sample"])
    per_metric = ~t["family"].isin(["overall", "amplification", "prompt_filter",
                                    "image_filter"])
    t["bh_family"] = np.where(per_metric, t["family"] + ":" + t["metric"],
                              t["family"] + np.where(t["family"].str.endswith("filter"),
                                                     ":" + t["group"].astype(str), ""))
    t["q"] = twosample.bh_by_family(t["p"].to_numpy(), t["bh_family"].to_numpy(), config.alpha)
    t["q_all"] = stats.benjamini_hochberg(t["p"].to_numpy(), config.alpha)[1]
    t["significant"] = (t["q"] < config.alpha).to_numpy() & ~t["small_sample"].to_numpy()
    t["headline"] = (t["q_all"] < config.alpha).to_numpy() & ~t["small_sample"].to_numpy()
    t["direction"] = t.apply(_direction, axis=1) if len(t) else []
    extra = [c for c in t.columns if c not in CHANGE_COLUMNS]
    return t[CHANGE_COLUMNS + extra].reset_index(drop=True)
