"""Intervals, tests and BH: hand-computed cases, independent references, planted data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from imagen_audit.analyse import stats


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_matches_published_and_hand_computed_values() -> None:
    lo, hi = stats.wilson_interval(5, 10)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.2366, 0.7634)  # textbook value
    lo, hi = stats.wilson_interval(0, 10)
    assert float(lo) == 0.0 and round(float(hi), 4) == 0.2775
    lo, hi = stats.wilson_interval(10, 10)
    assert float(hi) == 1.0 and round(float(lo), 4) == 0.7225
    for k, n in [(1, 7), (37, 81), (260, 1000)]:
        assert np.allclose(stats.wilson_interval(k, n), _wilson_by_hand(k, n), atol=1e-12)
    lo, hi = stats.wilson_interval(np.array([3, 0]), np.array([0, 0]))
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_score_test_agrees_with_the_wilson_interval() -> None:
    # p0 outside the Wilson interval exactly when the score test rejects at the same level.
    for n in (12, 40, 333):
        for k in range(0, n + 1, max(1, n // 11)):
            lo, hi = stats.wilson_interval(k, n)
            for p0 in np.linspace(0.02, 0.98, 25):
                _, p = stats.score_test(k, n, p0)
                outside = p0 < lo - 1e-9 or p0 > hi + 1e-9
                inside = lo + 1e-9 < p0 < hi - 1e-9
                if outside:
                    assert p < 0.05
                if inside:
                    assert p > 0.05


def test_benjamini_hochberg_by_hand_and_against_scipy() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    reject, q = stats.benjamini_hochberg(p, 0.05)
    assert np.allclose(q, [0.02, 0.04, 0.04, 0.02])
    assert reject.all()
    reject, q = stats.benjamini_hochberg(np.array([0.01, 0.2, np.nan, 0.04]), 0.05)
    assert np.isnan(q[2]) and not reject[2]
    assert np.allclose(q[[0, 1, 3]], [0.03, 0.2, 0.06])  # m = 3: NaN is not a hypothesis
    assert list(reject) == [True, False, False, False]
    rng = np.random.default_rng(1)
    pv = rng.random(200) ** 2
    assert np.allclose(stats.benjamini_hochberg(pv)[1], sps.false_discovery_control(pv))


def test_distribution_statistics_by_hand() -> None:
    assert stats.gap_from_uniform(np.array([0.5, 0.5])) == 0.0
    assert stats.gap_from_uniform(np.array([1.0, 0.0])) == 0.5
    # |0.6 - 1/3| + |0.3 - 1/3| + |0.1 - 1/3| = 0.2667 + 0.0333 + 0.2333 = 0.5333; / 3
    assert stats.gap_from_uniform(np.array([0.6, 0.3, 0.1])) == pytest.approx(0.5333333 / 3)
    assert stats.normalised_entropy(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert stats.normalised_entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    h = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1)) / math.log(3)
    assert stats.normalised_entropy(np.array([0.6, 0.3, 0.1])) == pytest.approx(h)


def test_wilson_interval_covers_a_planted_share_at_the_stated_rate() -> None:
    rng = np.random.default_rng(2024)
    for p_true, n in [(0.3, 60), (0.05, 100), (0.5, 25)]:
        k = rng.binomial(n, p_true, size=4000)
        lo, hi = stats.wilson_interval(k, np.full(k.shape, n))
        coverage = np.mean((lo <= p_true) & (p_true <= hi))
        assert 0.925 <= coverage <= 0.975, (p_true, n, coverage)


def test_bootstrap_intervals_cover_planted_values() -> None:
    rng = np.random.default_rng(7)
    hits_mean = hits_gap = 0
    trials = 150
    for _ in range(trials):
        x = rng.normal(3.0, 2.0, 80)
        _, lo, hi = stats.bootstrap_mean(x, 400, rng)
        hits_mean += lo <= 3.0 <= hi
        counts = rng.multinomial(300, [0.6, 0.3, 0.1])
        lo, hi = stats.multinomial_bootstrap(counts, stats.gap_from_uniform, 400, rng)
        hits_gap += lo[0] <= stats.gap_from_uniform(np.array([0.6, 0.3, 0.1])) <= hi[0]
    assert hits_mean / trials >= 0.88
    assert hits_gap / trials >= 0.85


def test_bh_corrected_score_tests_false_positive_rate_is_near_alpha_on_null_data() -> None:
    """Global null (every occupation at its baseline): BH keeps P(any rejection) ≈ alpha."""
    rng = np.random.default_rng(12345)
    runs, m, n = 400, 40, 200
    base = rng.uniform(0.1, 0.9, m)
    k = rng.binomial(n, base, size=(runs, m))
    _, p = stats.score_test(k, n, base)
    any_reject = np.array([stats.benjamini_hochberg(row, 0.05)[0].any() for row in p])
    rate = any_reject.mean()
    assert 0.02 <= rate <= 0.08, rate
    # Uncorrected tests would reject somewhere in almost every run.
    assert (p < 0.05).any(axis=1).mean() > 0.8


def test_mcnemar_and_paired_difference() -> None:
    before = np.array([1] * 30 + [0] * 70)
    after = before.copy()
    after[:10] = 0  # 10 discordant pairs, all one way
    assert stats.mcnemar_p(before, after) == pytest.approx(2 * 0.5 ** 10)
    m, lo, hi = stats.paired_bootstrap_shares(before, after, 500, np.random.default_rng(0))
    assert m == pytest.approx(-0.10) and lo < -0.10 < hi < 0
    assert stats.mcnemar_p(before, before) == 1.0
