"""Occupations against parity and against their US labour baseline (BLS CPS table 11).

For each occupation (its neutral prompts: rows with an ``occupation_id`` and no
``identity_id``), on the units with a perceived gender:

- ``share_female`` with its Wilson interval and ``n``;
- ``gap_parity = share_female - 0.5`` and the score test of share == 0.5;
- ``gap_baseline = share_female - baseline_women`` and the score test of share == baseline;
- ``amplification = (share_female - baseline_women) * sign(baseline_women - 0.5)``:
  positive when the model pushes *further in the baseline's direction* (a majority-male
  occupation drawn even more male, a majority-female one even more female), negative when
  it moves towards parity or past it. Its interval is the Wilson interval mapped the same
  way. Occupations whose baseline is exactly 0.5 have no direction (NaN).

p-values are corrected across occupations with Benjamini–Hochberg (``q_parity``,
``q_baseline``, ``q_amplification``); the amplification test is one-sided (H1: pushed
further). Occupations with fewer than ``min_n`` labelled units are flagged
``small_sample`` and take no part in the correction or in any finding.

Perceived skin tone is **not** compared with the racial and ethnic baselines
(``baseline_white``, ...): a skin tone is not a race or an ethnicity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from imagen_audit.analyse import stats
from imagen_audit.analyse.frame import DEFAULT_MIN_N

BASELINE_COLUMNS = ("occupation_id", "baseline_women")


def neutral_occupation_units(units: pd.DataFrame) -> pd.DataFrame:
    """Units of occupation prompts that name no identity term."""
    occ = units["occupation_id"].notna()
    if "identity_id" in units.columns:
        occ &= units["identity_id"].isna()
    return units[occ]


def compare_to_baselines(units: pd.DataFrame, baselines: pd.DataFrame, *,
                         alpha: float = 0.05, min_n: int = DEFAULT_MIN_N) -> pd.DataFrame:
    """One row per occupation present in ``units`` (see the module docstring)."""
    cols = ["occupation_id", "occupation", "baseline_women", "n", "k_female", "share_female",
            "lo", "hi", "gap_parity", "p_parity", "q_parity", "gap_baseline", "p_baseline",
            "q_baseline", "amplification", "amplification_lo", "amplification_hi",
            "p_amplification", "q_amplification", "small_sample", "prompt_ids", "n_samples"]
    occ = neutral_occupation_units(units)
    occ = occ[occ["gender_label"].notna()]
    if occ.empty:
        return pd.DataFrame(columns=cols)
    g = occ.groupby("occupation_id", sort=True)
    table = pd.DataFrame({
        "n": g.size(),
        "k_female": g["gender_label"].agg(lambda s: int((s == "female").sum())),
        "prompt_ids": g["prompt_id"].agg(lambda s: sorted(set(map(str, s)))),
        "n_samples": g["sample_id"].nunique(),
    }).reset_index()
    base = baselines.reindex(columns=["occupation_id", "occupation", "baseline_women"])
    table = table.merge(base, on="occupation_id", how="left")
    k = table["k_female"].to_numpy(float)
    n = table["n"].to_numpy(float)
    b = table["baseline_women"].to_numpy(float)
    p = k / n
    table["share_female"] = p
    table["lo"], table["hi"] = stats.wilson_interval(k, n, alpha)
    small = n < min_n
    table["small_sample"] = small
    table["gap_parity"] = p - 0.5
    _, p_par = stats.score_test(k, n, 0.5)
    table["gap_baseline"] = p - b
    _, p_base = stats.score_test(k, n, b)
    direction = np.sign(b - 0.5)
    direction = np.where(direction == 0, np.nan, direction)
    table["amplification"] = (p - b) * direction
    lo_amp = (table["lo"].to_numpy() - b) * direction
    hi_amp = (table["hi"].to_numpy() - b) * direction
    table["amplification_lo"] = np.fmin(lo_amp, hi_amp)
    table["amplification_hi"] = np.fmax(lo_amp, hi_amp)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_amp = (p - b) * direction / np.sqrt(b * (1 - b) / n)
    p_amp = special.ndtr(-z_amp)  # one-sided: H1 amplification > 0
    for name, pv in (("parity", p_par), ("baseline", p_base), ("amplification", p_amp)):
        pv = np.where(small, np.nan, pv)
        table[f"p_{name}"] = pv
        table[f"q_{name}"] = stats.benjamini_hochberg(pv, alpha)[1]
    return table[cols]


def amplification_summary(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                          alpha: float = 0.05) -> dict[str, float | int]:
    """Across occupations (not small): mean amplification with a bootstrap interval over
    occupations, the share of occupations amplified, and the slope of model share on
    baseline share (a slope above 1 means the model exaggerates the baseline's spread)."""
    t = table[~table["small_sample"].astype(bool)].dropna(subset=["baseline_women"])
    out: dict[str, float | int] = {"n_occupations": len(t)}
    if t.empty:
        return out | {"mean_amplification": np.nan, "lo": np.nan, "hi": np.nan,
                      "share_amplified": np.nan, "slope": np.nan}
    amp = t["amplification"].to_numpy(float)
    amp = amp[~np.isnan(amp)]
    rng = np.random.default_rng(seed)
    mean, lo, hi = stats.bootstrap_mean(amp, n_boot, rng, alpha)
    out |= {"mean_amplification": mean, "lo": lo, "hi": hi,
            "share_amplified": float(np.mean(amp > 0)) if amp.size else np.nan}
    x = t["baseline_women"].to_numpy(float)
    y = t["share_female"].to_numpy(float)
    out["slope"] = float(np.polyfit(x, y, 1)[0]) if len(t) >= 3 and np.ptp(x) > 0 else np.nan
    return out
