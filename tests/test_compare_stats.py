"""The two-run tests by simulation: planted differences are found at the planned power, and
with no difference the false-alarm rate after Benjamini–Hochberg is at most alpha.

Studies are simulated many at a time: each (study, group) pair is one group code of one
vectorised call, and the correction runs per study (``bh_by_family``). Seeds are fixed.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagen_audit.analyse import AnalysisConfig
from imagen_audit.analyse.power import two_sample_plan
from imagen_audit.analyse.stats import benjamini_hochberg, gap_from_uniform
from imagen_audit.analyse.synthetic import synthetic_annotations
from imagen_audit.compare import twosample
from imagen_audit.compare.metrics import compare

ALPHA = 0.05


def _studies(reps: int, groups: int, samples: int, p0: np.ndarray, p1: np.ndarray,
             usable: float, rho: float, seed: int):
    """Stacked rows of ``reps × groups`` two-run comparisons of ``samples`` samples per run.

    Each sample yields a usable label with probability ``usable``; the label is female with
    the run's probability. With ``rho`` > 0 the runs share seeds: with probability ``rho`` a
    pair draws its two labels from one uniform (the same initial noise), which keeps each
    run's share and makes the pair's labels agree more often.
    """
    rng = np.random.default_rng(seed)
    g = reps * groups
    n = g * samples
    gid = np.repeat(np.arange(g), samples)
    u0 = rng.random(n)
    shared = rng.random(n) < rho
    u1 = np.where(shared, u0, rng.random(n))
    pg0 = np.tile(p0, reps)[gid]
    pg1 = np.tile(p1, reps)[gid]
    hit = np.r_[u0 < pg0, u1 < pg1].astype(float)
    valid = (rng.random(2 * n) < usable).astype(float)
    run = np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)]
    pair = np.arange(n)
    cluster = np.r_[pair, pair if rho > 0 else pair + n]
    return np.r_[gid, gid], run, cluster, hit, valid, g


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_no_difference_false_alarms_at_most_alpha_after_correction(rho: float) -> None:
    reps, groups = 1000, 10
    p = np.linspace(0.2, 0.8, groups)
    group, run, cluster, hit, valid, g = _studies(reps, groups, 120, p, p, 0.9, rho, seed=11)
    res = twosample.proportion_change(group, run, cluster, hit, valid, g, alpha=ALPHA)
    study = np.repeat(np.arange(reps), groups)
    q = twosample.bh_by_family(res["p"], study, ALPHA)
    any_alarm = np.bincount(study, weights=(q < ALPHA).astype(float)) > 0
    rate = any_alarm.mean()
    # 1000 studies: the standard error at 5% is 0.7 points, so 6.5% separates 5% from 10%.
    assert rate <= ALPHA + 0.015, rate
    raw = np.mean(res["p"] < ALPHA)  # each single test holds its level too
    assert 0.03 <= raw <= 0.06, raw


def test_whole_comparison_correction_keeps_the_headline_quiet_under_no_change() -> None:
    """Many families at once (12 metrics × 10 groups): with BH per family, a study sees some
    false alarm far more often than alpha; with BH across the comparison (``q_all``, the
    headline), at most alpha."""
    reps, groups, families = 400, 10, 12
    p = np.full(groups * families, 0.4)
    group, run, cluster, hit, valid, g = _studies(reps, groups * families, 60, p, p, 0.9, 0.0,
                                                  seed=5)
    res = twosample.proportion_change(group, run, cluster, hit, valid, g, alpha=ALPHA)
    study = np.repeat(np.arange(reps), groups * families)
    family = study * families + np.tile(np.repeat(np.arange(families), groups), reps)
    per_family = twosample.bh_by_family(res["p"], family, ALPHA) < ALPHA
    whole = twosample.bh_by_family(res["p"], study, ALPHA) < ALPHA
    rate_family = np.mean(np.bincount(study, weights=per_family.astype(float)) > 0)
    rate_whole = np.mean(np.bincount(study, weights=whole.astype(float)) > 0)
    assert rate_whole <= ALPHA + 0.02, rate_whole
    assert rate_family > 3 * ALPHA  # why the headline uses q_all


def test_planted_differences_found_at_the_planned_power() -> None:
    plan = two_sample_plan(0.1, alpha=ALPHA, power=0.8, p0=0.3, face_rate=0.9, coverage=0.95)
    reps, groups = 500, 8
    p0, p1 = np.full(groups, 0.3), np.full(groups, 0.4)
    group, run, cluster, hit, valid, g = _studies(reps, groups, plan.samples_per_prompt, p0, p1,
                                                  plan.usable_per_sample, 0.0, seed=3)
    res = twosample.proportion_change(group, run, cluster, hit, valid, g, alpha=ALPHA)
    power = np.mean(res["p"] < ALPHA)
    assert abs(power - plan.power) < 0.035, (power, plan)
    # Every group of the family planted: after BH about the same (0.765 with this seed).
    study = np.repeat(np.arange(reps), groups)
    q = twosample.bh_by_family(res["p"], study, ALPHA)
    assert np.mean(q < ALPHA) >= plan.power - 0.06
    # The intervals cover the planted difference at about 95%.
    cover = np.mean((res["lo"] <= 0.1) & (res["hi"] >= 0.1))
    assert 0.93 <= cover <= 0.97, cover
    # Paired runs (shared seeds) see the same gap with more power than planned.
    group, run, cluster, hit, valid, g = _studies(reps, groups, plan.samples_per_prompt, p0, p1,
                                                  plan.usable_per_sample, 0.6, seed=4)
    paired = twosample.proportion_change(group, run, cluster, hit, valid, g, alpha=ALPHA)
    assert np.mean(paired["p"] < ALPHA) > power + 0.05


def test_half_planted_family_finds_planted_and_spares_the_rest() -> None:
    plan = two_sample_plan(0.1, alpha=ALPHA, power=0.8, p0=0.5)
    reps, groups = 300, 10
    p0 = np.full(groups, 0.5)
    p1 = np.where(np.arange(groups) < 5, 0.6, 0.5)
    group, run, cluster, hit, valid, g = _studies(reps, groups, plan.samples_per_prompt, p0, p1,
                                                  1.0, 0.0, seed=9)
    res = twosample.proportion_change(group, run, cluster, hit, valid, g, alpha=ALPHA)
    study = np.repeat(np.arange(reps), groups)
    q = twosample.bh_by_family(res["p"], study, ALPHA).reshape(reps, groups)
    found = q < ALPHA
    power_bh = found[:, :5].mean()
    fdp = (found[:, 5:].sum(1) / np.maximum(found.sum(1), 1)).mean()
    assert power_bh > 0.6  # BH over 10 tests with 5 true effects: somewhat below 0.8
    assert fdp <= ALPHA + 0.01


def test_paired_identical_runs_have_no_change() -> None:
    group, run, cluster, hit, valid, g = _studies(5, 4, 50, np.full(4, 0.5), np.full(4, 0.5),
                                                  0.8, 1.0, seed=1)
    valid[len(valid) // 2:] = valid[:len(valid) // 2]  # the very same units
    res = twosample.proportion_change(group, run, cluster, hit, valid, g)
    assert np.all(res["difference"] == 0) and np.all(res["p"] == 1.0)
    x = np.where(valid > 0, hit * 10.0, np.nan)
    m = twosample.mean_change(group, run, cluster, x, g)
    assert np.all(m["difference"] == 0) and np.all(m["p"] == 1.0)


def test_mean_and_distribution_tests_hold_their_level() -> None:
    rng = np.random.default_rng(2)
    reps, n = 600, 80
    gid = np.repeat(np.arange(reps), n)
    x = rng.normal(30, 10, 2 * reps * n)
    run = np.r_[np.zeros(reps * n, np.int64), np.ones(reps * n, np.int64)]
    cluster = np.arange(2 * reps * n)
    res = twosample.mean_change(np.r_[gid, gid], run, cluster, x, reps)
    assert np.mean(res["p"] < ALPHA) <= ALPHA + 0.025
    shifted = twosample.mean_change(np.r_[gid, gid], run, cluster, x + run * 5.0, reps)
    # Half a standard deviation at n = 80 per run: z = 3.16, power 0.885.
    assert abs(np.mean(shifted["p"] < ALPHA) - 0.885) < 0.05
    alarms = 0
    fns = {"gap": gap_from_uniform}
    for _ in range(150):
        cat = rng.choice(3, 2 * 60, p=[0.5, 0.3, 0.2])
        out = twosample.distribution_change(np.repeat([0, 1], 60), np.arange(120), cat, 3, fns,
                                            n_perm=199, n_boot=199, rng=rng)
        alarms += out["gap"]["p"] < ALPHA
    assert alarms / 150 <= ALPHA + 0.04


def test_bh_by_family_matches_the_analysis_bh() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(300) ** 3
    p[5] = np.nan
    fam = rng.integers(0, 7, 300)
    q = twosample.bh_by_family(p, fam)
    for f in range(7):
        ref = benjamini_hochberg(p[fam == f])[1]
        np.testing.assert_allclose(q[fam == f], ref)


def test_compare_tables_finds_the_planted_occupations_only() -> None:
    a, base = synthetic_annotations(8, 150, stages=(1, 2), seed=1)
    b, _ = synthetic_annotations(8, 150, stages=(1, 2), seed=2,
                                 share_female={"occ00": 0.4, "occ07": 0.6})
    b["seed"] += 10_000  # another --seed: nothing pairs
    c = compare(a, b, base, config=AnalysisConfig(n_boot=100), n_perm=199)
    assert not c.pairing["paired"] and any("independent samples" in n for n in c.notes)
    occ = c.changes[(c.changes["family"] == "occupation_id")
                    & (c.changes["metric"] == "share_female")]
    assert set(occ.loc[occ["significant"], "group"]) == {"occ00", "occ07"}
    growth = c.changes[(c.changes["family"] == "baselines")
                       & (c.changes["metric"] == "abs_gap_baseline")].set_index("group")
    assert growth.loc["occ00", "direction"] == "worse" and growth.loc["occ00", "difference"] > 0.2
    assert set(c.worse()["group"]) >= {"occ00", "occ07"}
    # Same tables: no change anywhere, every p-value 1.
    same = compare(a, a, base, config=AnalysisConfig(n_boot=100), n_perm=199)
    assert same.no_change and same.pairing["n_pairs"] == same.pairing["n_baseline_units"]
    tested = same.changes.dropna(subset=["p"])
    assert len(tested) > 100 and (tested["p"] == 1.0).all()
    assert (same.changes["difference"].fillna(0) == 0).all()


def test_compare_tables_on_the_intersection_of_probe_sets() -> None:
    a, base = synthetic_annotations(6, 40, stages=(1,), seed=1, identity_terms=("woman",))
    b, _ = synthetic_annotations(6, 40, stages=(1,), seed=2)
    b = b[b["occupation_id"] != "occ05"]
    c = compare(a, b, base, config=AnalysisConfig(n_boot=50, min_n=10), n_perm=99)
    assert c.left_out["n_baseline_only_prompts"] == 6 + 1  # the woman+ prompts and occ05
    assert c.left_out["n_candidate_only_prompts"] == 0
    assert "occupations/face/occ05" in c.left_out["baseline_only_prompts"]
    assert any("left out 7 prompts" in n for n in c.notes)
    assert "occ05" not in set(c.changes["group"])


def test_image_verdicts_at_different_thresholds_are_compared_at_one() -> None:
    """Two runs scanned at different thresholds: identical images must not read as a change
    of the model. Both are decided again from their stored scores at the baseline's
    threshold, and the comparison says so."""
    import pandas as pd

    from imagen_audit.analyse import AnalysisConfig
    from imagen_audit.compare.metrics import FilterData, _filter_rows

    scores = [0.9, 0.7, 0.6, 0.2, 0.1, 0.05] * 5
    keys = [f"p{i}\0{i}\x001" for i in range(len(scores))]

    def run(threshold: float) -> FilterData:
        return FilterData(name="opennsfw", kind="image", rows=pd.DataFrame({
            "key": keys, "label": float("nan"), "score": scores, "threshold": threshold,
            "blocked": [s >= threshold for s in scores]}))

    rows, notes = _filter_rows([run(0.5)], [run(0.0)], AnalysisConfig())
    [row] = [r for r in rows if r["metric"] == "flag_rate"]
    assert row["baseline"] == row["candidate"] == 0.5 and row["difference"] == 0
    assert any("compared at 0.5 from their stored scores" in n for n in notes)
    rows, notes = _filter_rows([run(0.5)], [run(0.5)], AnalysisConfig())
    assert not notes
