"""Intervals, tests and multiple-comparison correction, vectorised over groups.

Everything here takes counts or arrays and returns arrays: no pandas, no models. The
conventions, stated once:

- Proportions get **Wilson score intervals** (good coverage at small n and near 0 or 1,
  unlike the Wald interval). The matching test against a reference share ``p0`` is the
  **score test**, ``z = (k/n - p0) / sqrt(p0 (1 - p0) / n)``: ``p0`` lies outside the
  Wilson interval exactly when the score test rejects at the same level, so a table's
  intervals and its p-values never disagree.
- Statistics of a categorical distribution (gap from uniform, entropy) get **multinomial
  bootstrap** percentile intervals: resampling n labelled units with replacement is the
  same as drawing counts from Multinomial(n, observed shares).
- Paired differences (stage drift) get percentile intervals from resampling the pairs.
- Many groups tested at once are corrected with **Benjamini–Hochberg** (false-discovery
  rate), which returns adjusted p-values (q-values).
"""

from __future__ import annotations

import numpy as np
from scipy import special

Z_CACHE: dict[float, float] = {}


def z_value(alpha: float = 0.05) -> float:
    """Two-sided standard-normal quantile: 1.959964 for alpha = 0.05."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if alpha not in Z_CACHE:
        Z_CACHE[alpha] = float(special.ndtri(1 - alpha / 2))
    return Z_CACHE[alpha]


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int,
                    alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (NaN where n == 0)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_value(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    # Exact at the boundaries (avoids -1e-17 from rounding).
    lo = np.where(k == 0, 0.0, lo)
    hi = np.where(k == n, 1.0, hi)
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    return lo, hi


def score_test(k: np.ndarray | int, n: np.ndarray | int,
               p0: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided score test of H0: share == p0. Returns (z, p-value); NaN where undefined."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p0 = np.asarray(p0, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (k / n - p0) / np.sqrt(p0 * (1 - p0) / n)
        # p0 of exactly 0 or 1: any observation on the other side is impossible under H0.
        degenerate = (p0 <= 0) | (p0 >= 1)
        z = np.where(degenerate, np.where(k / n == p0, 0.0, np.inf), z)
        z = np.where(n > 0, z, np.nan)
        p = 2 * special.ndtr(-np.abs(z))
    return z, p


def benjamini_hochberg(pvalues: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg step-up procedure. Returns (reject, q-values).

    NaN p-values (untestable groups) are ignored: they are neither counted among the m
    hypotheses nor rejected, and their q-value is NaN.
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return np.zeros(p.shape, dtype=bool), q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    # q_(i) = min over j >= i of p_(j) m / j, capped at 1.
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    qv = np.empty(m)
    qv[order] = np.minimum(ranked, 1.0)
    q[ok] = qv
    reject = np.zeros(p.shape, dtype=bool)
    reject[ok] = qv <= alpha
    return reject, q


def gap_from_uniform(shares: np.ndarray) -> np.ndarray:
    """Mean absolute deviation from the uniform distribution (DALL-Eval), along the last axis.

    ``mean_k |p_k - 1/K|``: 0 for a uniform distribution; for two classes it is
    ``|p - 0.5|``.
    """
    shares = np.asarray(shares, dtype=float)
    k = shares.shape[-1]
    return np.mean(np.abs(shares - 1.0 / k), axis=-1)


def normalised_entropy(shares: np.ndarray) -> np.ndarray:
    """Shannon entropy divided by log K, along the last axis: 1 uniform, 0 one class only."""
    shares = np.asarray(shares, dtype=float)
    k = shares.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(shares > 0, -shares * np.log(shares), 0.0)
    return terms.sum(axis=-1) / np.log(k)


def multinomial_bootstrap(counts: np.ndarray, statistic, n_boot: int, rng: np.random.Generator,
                          alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of ``statistic(shares)`` for each row of ``counts`` (groups × K).

    ``statistic`` maps an array (..., K) of shares to (...). Rows with no counts give NaN.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim == 1:
        counts = counts[None, :]
    g = counts.shape[0]
    n = counts.sum(axis=1)
    lo = np.full(g, np.nan)
    hi = np.full(g, np.nan)
    for i in np.flatnonzero(n > 0):
        draws = rng.multinomial(int(n[i]), counts[i] / n[i], size=n_boot) / n[i]
        stats = statistic(draws)
        lo[i], hi[i] = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return lo, hi


def bootstrap_mean(values: np.ndarray, n_boot: int, rng: np.random.Generator,
                   alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean of ``values`` (NaN dropped) and its percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan
    if x.size == 1:
        return float(x[0]), np.nan, np.nan
    # Resample in blocks to bound memory: n_boot × min(n, 20k) floats at a time.
    means = np.empty(n_boot)
    block = max(1, 2_000_000 // x.size)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def paired_bootstrap_shares(before: np.ndarray, after: np.ndarray, n_boot: int,
                            rng: np.random.Generator,
                            alpha: float = 0.05) -> tuple[float, float, float]:
    """Difference of two paired proportions (after - before) with a pair-resampling interval.

    ``before`` and ``after`` are 0/1 arrays over the same units.
    """
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    return bootstrap_mean(d, n_boot, rng, alpha)


def mcnemar_p(before: np.ndarray, after: np.ndarray) -> float:
    """Two-sided exact McNemar test of paired 0/1 labels (binomial on discordant pairs)."""
    from scipy import stats

    b = int(np.sum((before == 1) & (after == 0)))
    c = int(np.sum((before == 0) & (after == 1)))
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)
