"""Stage drift: how the same samples change between cascade stages.

Super-resolution stages can lighten or darken skin and change how a face reads. Each
sample is compared with itself: for consecutive stages ``s → t`` and the samples with a
value at both, the paired differences

- ``ita``: mean change of ITA° of the primary face (t - s; positive = lighter), bootstrap
  interval over pairs, paired t-test;
- ``share_female``: change of the share perceived female (t - s), pair-resampling
  interval, exact McNemar test;
- ``gender_flip_rate``: share of pairs whose perceived gender differs (Wilson interval);
- ``tone_band_change_rate``: share of pairs whose Monk tone band differs (Wilson).

Rows come overall and per occupation; p-values are Benjamini–Hochberg corrected within
each (stage pair, measure) across occupations. Groups with fewer than ``min_n`` pairs are
flagged ``small_sample`` and left out of the correction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats as sps

from imagen_audit.analyse import stats
from imagen_audit.analyse.frame import DEFAULT_MIN_N

DRIFT_COLUMNS = ["stage_from", "stage_to", "measure", "group", "n_pairs", "value", "lo", "hi",
                 "p", "q", "small_sample", "prompt_ids"]


def _pairs(units: pd.DataFrame, s: int, t: int) -> pd.DataFrame:
    cols = ["sample_id", "prompt_id", "occupation_id", "ita", "gender_label", "tone_band"]
    cols = [c for c in cols if c in units.columns]
    a = units[units["stage"] == s][cols].set_index("sample_id")
    b = units[units["stage"] == t][[c for c in cols if c not in ("prompt_id", "occupation_id")]
                                   ].set_index("sample_id")
    return a.add_suffix("_from").join(b.add_suffix("_to"), how="inner").rename(
        columns={"prompt_id_from": "prompt_id", "occupation_id_from": "occupation_id"})


def _measure_rows(p: pd.DataFrame, n_boot: int, rng: np.random.Generator,
                  alpha: float) -> list[dict]:
    rows = []
    if "ita_from" in p.columns:
        d = (p["ita_to"] - p["ita_from"]).dropna()
        m, lo, hi = stats.bootstrap_mean(d.to_numpy(), n_boot, rng, alpha)
        pv = (float(sps.ttest_1samp(d.to_numpy(), 0.0).pvalue)
              if len(d) > 1 and np.ptp(d.to_numpy()) > 0 else np.nan)
        ids = p.loc[d.index, "prompt_id"]
        rows.append({"measure": "ita", "n_pairs": len(d), "value": m, "lo": lo, "hi": hi,
                     "p": pv, "prompt_ids": sorted(set(map(str, ids)))})
    g = p.dropna(subset=["gender_label_from", "gender_label_to"])
    before = (g["gender_label_from"] == "female").to_numpy().astype(int)
    after = (g["gender_label_to"] == "female").to_numpy().astype(int)
    m, lo, hi = (stats.paired_bootstrap_shares(before, after, n_boot, rng, alpha) if len(g)
                 else (np.nan, np.nan, np.nan))
    ids = sorted(set(map(str, g["prompt_id"])))
    rows.append({"measure": "share_female", "n_pairs": len(g), "value": m, "lo": lo, "hi": hi,
                 "p": stats.mcnemar_p(before, after) if len(g) else np.nan, "prompt_ids": ids})
    flips = int((g["gender_label_from"] != g["gender_label_to"]).sum())
    lo, hi = stats.wilson_interval(flips, len(g), alpha)
    rows.append({"measure": "gender_flip_rate", "n_pairs": len(g),
                 "value": flips / len(g) if len(g) else np.nan, "lo": float(lo),
                 "hi": float(hi), "p": np.nan, "prompt_ids": ids})
    tb = p.dropna(subset=["tone_band_from", "tone_band_to"])
    changes = int((tb["tone_band_from"] != tb["tone_band_to"]).sum())
    lo, hi = stats.wilson_interval(changes, len(tb), alpha)
    rows.append({"measure": "tone_band_change_rate", "n_pairs": len(tb),
                 "value": changes / len(tb) if len(tb) else np.nan, "lo": float(lo),
                 "hi": float(hi), "p": np.nan,
                 "prompt_ids": sorted(set(map(str, tb["prompt_id"])))})
    return rows


def stage_drift(units: pd.DataFrame, *, by: str | None = "occupation_id", alpha: float = 0.05,
                n_boot: int = 1000, seed: int = 0, min_n: int = DEFAULT_MIN_N) -> pd.DataFrame:
    """Paired stage-to-stage differences (see the module docstring); empty if < 2 stages."""
    stages = sorted(int(s) for s in units["stage"].dropna().unique())
    rng = np.random.default_rng(seed)
    out = []
    for s, t in itertools.pairwise(stages):
        pairs = _pairs(units, s, t)
        if pairs.empty:
            continue
        for row in _measure_rows(pairs, n_boot, rng, alpha):
            out.append({"stage_from": s, "stage_to": t, "group": "(all)", **row})
        if by and by in pairs.columns:
            for key, part in pairs.groupby(by, sort=True):
                for row in _measure_rows(part, n_boot, rng, alpha):
                    out.append({"stage_from": s, "stage_to": t, "group": str(key), **row})
    if not out:
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    table = pd.DataFrame(out)
    table["small_sample"] = table["n_pairs"] < min_n
    table["p"] = table["p"].where(~table["small_sample"])
    table["q"] = np.nan
    per_group = table["group"] != "(all)"
    for _, idx in table[per_group].groupby(["stage_from", "stage_to", "measure"]).groups.items():
        table.loc[idx, "q"] = stats.benjamini_hochberg(table.loc[idx, "p"].to_numpy(), alpha)[1]
    overall = ~per_group
    table.loc[overall, "q"] = table.loc[overall, "p"]
    return table[DRIFT_COLUMNS]
