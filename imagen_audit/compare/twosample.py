"""Two-run tests of no change, vectorised over groups, paired where the runs share samples.

Every function takes **stacked rows**: one row per unit (an image at a stage) of either run,
with ``run`` (0 baseline, 1 candidate), ``group`` (an integer code; many groups, or many
simulated studies, at once) and ``cluster`` (an integer code of the pairing key: the prompt
id, the seed and the stage). A cluster holding rows of both runs is a **pair**: the same
prompt drawn from the same initial noise by both models. Clusters with rows of one run only
are unpaired. Runs made with different seeds share no cluster, and every test below then
reduces to its ordinary two-sample form; runs made with the same probes and ``--seed`` are
paired sample by sample, which removes the seed-to-seed noise the two images share.

- :func:`proportion_change`: a share (``hit`` among ``valid`` units) in each run. The
  estimate is ``p1 - p0`` (each a ratio of sums, so units without a valid value in one run
  are simply absent from that side). The test is the **pooled two-proportion z-test** with
  the covariance of the pairs subtracted::

      var0 = p̄ (1 - p̄) (1/n0 + 1/n1) - 2 Σ_pairs (k0c - p̄ n0c)(k1c - p̄ n1c) / (n0 n1)

  With no pairs this is exactly the statistic :mod:`imagen_audit.analyse.power` plans with
  (``two_sample_z``), so a plan's power carries over; with pairs it is the score form of
  McNemar's test. The 95 % interval is Wald's with the pair-robust (cluster sandwich)
  variance centred on each run's own share.
- :func:`mean_change`: a mean (e.g. ITA°), Wald z with the same pair-robust variance.
- :func:`distribution_change`: a statistic of a categorical distribution (gap from uniform,
  entropy), which has no usable variance formula at the uniform distribution: a
  **permutation test** (pairs swap runs with probability ½, unpaired units are shuffled
  between the runs) and a **cluster bootstrap** percentile interval. Its p-value cannot be
  below ``1 / (n_perm + 1)``.

:func:`bh_by_family` applies :func:`imagen_audit.analyse.stats.benjamini_hochberg` within each
family of tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

from imagen_audit.analyse import stats

EPS = 1e-12


def _pair_sums(group: np.ndarray, run: np.ndarray, cluster: np.ndarray,
               values: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per (group, cluster): the group code and, for each value array, sums for run 0 and 1
    as an array (cells, 2)."""
    key = group.astype(np.int64) * (int(cluster.max(initial=0)) + 1) + cluster.astype(np.int64)
    codes, uniq = _factorize(key)
    cells = len(uniq)
    idx = codes * 2 + run.astype(np.int64)
    out = [np.bincount(idx, weights=v, minlength=2 * cells).reshape(cells, 2) for v in values]
    cell_group = np.zeros(cells, dtype=np.int64)
    cell_group[codes] = group
    return cell_group, out


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.reshape(-1), uniq


def _by_group(cell_group: np.ndarray, x: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(cell_group, weights=x, minlength=n_groups)[:n_groups]


def _interval(d: np.ndarray, var: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    half = stats.z_value(alpha) * np.sqrt(np.maximum(var, 0.0))
    return d - half, d + half


def proportion_change(group: np.ndarray, run: np.ndarray, cluster: np.ndarray,
                      hit: np.ndarray, valid: np.ndarray, n_groups: int | None = None, *,
                      alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Change of a share per group (see the module docstring).

    Returns arrays over groups: ``k0, n0, k1, n1, value0, value1, difference, lo, hi, z, p,
    n_pairs`` (pairs: clusters with a valid unit in both runs). NaN where a run has no
    valid unit.
    """
    group = np.asarray(group, dtype=np.int64)
    n_groups = int(group.max(initial=-1)) + 1 if n_groups is None else n_groups
    v = np.asarray(valid, dtype=float)
    h = np.asarray(hit, dtype=float) * v
    cg, (k, n) = _pair_sums(group, np.asarray(run), np.asarray(cluster), [h, v])
    k0, k1 = _by_group(cg, k[:, 0], n_groups), _by_group(cg, k[:, 1], n_groups)
    n0, n1 = _by_group(cg, n[:, 0], n_groups), _by_group(cg, n[:, 1], n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        p0, p1 = k0 / n0, k1 / n1
        pooled = (k0 + k1) / (n0 + n1)
        d = p1 - p0
        pc = pooled[cg]
        cov = _by_group(cg, (k[:, 0] - pc * n[:, 0]) * (k[:, 1] - pc * n[:, 1]), n_groups)
        var0 = pooled * (1 - pooled) * (1 / n0 + 1 / n1) - 2 * cov / (n0 * n1)
        e = (k[:, 1] - p1[cg] * n[:, 1]) / n1[cg] - (k[:, 0] - p0[cg] * n[:, 0]) / n0[cg]
        var_emp = _by_group(cg, e * e, n_groups)
        n_cl = _by_group(cg, ((n[:, 0] > 0) | (n[:, 1] > 0)).astype(float), n_groups)
        var_emp = var_emp * np.where(n_cl > 1, n_cl / np.maximum(n_cl - 1, 1), 1.0)
        # Degenerate shares (all 0 or all 1 in both runs): the Agresti–Caffo variance.
        a0, a1 = (k0 + 1) / (n0 + 2), (k1 + 1) / (n1 + 2)
        ac = a0 * (1 - a0) / (n0 + 2) + a1 * (1 - a1) / (n1 + 2)
        var_ci = np.where(var_emp > EPS, var_emp, ac)
        var_t = np.where(var0 > EPS, var0, var_emp)
        z = np.where(np.abs(d) < EPS, 0.0,
                     np.where(var_t > EPS, d / np.sqrt(np.maximum(var_t, EPS)),
                              np.sign(d) * np.inf))
    lo, hi = _interval(d, var_ci, alpha)
    ok = (n0 > 0) & (n1 > 0)
    p = np.where(ok, 2 * special.ndtr(-np.abs(z)), np.nan)
    pairs = _by_group(cg, ((n[:, 0] > 0) & (n[:, 1] > 0)).astype(float), n_groups)
    nan = np.where(ok, 1.0, np.nan)
    return {"k0": k0, "n0": n0, "k1": k1, "n1": n1, "value0": p0, "value1": p1,
            "difference": d * nan, "lo": np.clip(lo, -1, 1) * nan,
            "hi": np.clip(hi, -1, 1) * nan, "z": z * nan, "p": p, "n_pairs": pairs}


def mean_change(group: np.ndarray, run: np.ndarray, cluster: np.ndarray, x: np.ndarray,
                n_groups: int | None = None, *, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Change of a mean per group (NaN values left out): Wald z with pair-robust variance."""
    group = np.asarray(group, dtype=np.int64)
    n_groups = int(group.max(initial=-1)) + 1 if n_groups is None else n_groups
    x = np.asarray(x, dtype=float)
    v = (~np.isnan(x)).astype(float)
    cg, (s, n) = _pair_sums(group, np.asarray(run), np.asarray(cluster), [np.nan_to_num(x), v])
    s0, s1 = _by_group(cg, s[:, 0], n_groups), _by_group(cg, s[:, 1], n_groups)
    n0, n1 = _by_group(cg, n[:, 0], n_groups), _by_group(cg, n[:, 1], n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        m0, m1 = s0 / n0, s1 / n1
        d = m1 - m0
        # Within-cluster sums of squares count too (several units in a cluster).
        e = (s[:, 1] - m1[cg] * n[:, 1]) / n1[cg] - (s[:, 0] - m0[cg] * n[:, 0]) / n0[cg]
        var = _by_group(cg, e * e, n_groups)
        n_cl = _by_group(cg, ((n[:, 0] > 0) | (n[:, 1] > 0)).astype(float), n_groups)
        var = var * np.where(n_cl > 1, n_cl / np.maximum(n_cl - 1, 1), 1.0)
        z = np.where(np.abs(d) < EPS, 0.0,
                     np.where(var > EPS, d / np.sqrt(np.maximum(var, EPS)), np.sign(d) * np.inf))
    ok = (n0 > 1) & (n1 > 1)
    lo, hi = _interval(d, var, alpha)
    nan = np.where(ok, 1.0, np.nan)
    pairs = _by_group(cg, ((n[:, 0] > 0) & (n[:, 1] > 0)).astype(float), n_groups)
    return {"n0": n0, "n1": n1, "value0": m0, "value1": m1, "difference": d * nan,
            "lo": lo * nan, "hi": hi * nan, "z": z * nan,
            "p": np.where(ok, 2 * special.ndtr(-np.abs(z)), np.nan), "n_pairs": pairs}


def distribution_change(run: np.ndarray, cluster: np.ndarray, category: np.ndarray,
                        n_categories: int, statistics: dict[str, Callable], *,
                        alpha: float = 0.05, n_perm: int = 999, n_boot: int = 999,
                        rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Change of statistics of one categorical distribution (one group).

    ``category`` holds a code in ``0..n_categories-1`` per row (-1: no valid value).
    ``statistics`` maps a name to a function of shares (..., K) → (...). Returns, per
    statistic, ``value0, value1, difference, lo, hi, p, n0, n1, n_pairs``.
    """
    run = np.asarray(run, dtype=np.int64)
    category = np.asarray(category, dtype=np.int64)
    ok = category >= 0
    run, cluster, category = run[ok], np.asarray(cluster)[ok], category[ok]
    onehot = np.zeros((len(category), n_categories))
    onehot[np.arange(len(category)), category] = 1.0
    _, cl = np.unique(cluster, return_inverse=True)
    cl = cl.reshape(-1)
    n_cl = int(cl.max(initial=-1)) + 1
    per = np.zeros((n_cl, 2, n_categories))
    np.add.at(per, (cl, run), onehot)
    has = per.sum(axis=2) > 0
    paired = has[:, 0] & has[:, 1]
    a, b = per[paired, 0], per[paired, 1]                      # (P, K)
    u = np.concatenate([per[~paired & has[:, 0], 0], per[~paired & has[:, 1], 1]])
    u0 = int((~paired & has[:, 0]).sum())                      # first u0 rows are run 0
    obs0 = per[:, 0].sum(axis=0)
    obs1 = per[:, 1].sum(axis=0)
    nan_row = {"value0": np.nan, "value1": np.nan, "difference": np.nan, "lo": np.nan,
               "hi": np.nan, "p": np.nan, "n0": float(obs0.sum()), "n1": float(obs1.sum()),
               "n_pairs": float(paired.sum())}
    if obs0.sum() == 0 or obs1.sum() == 0:
        return {name: dict(nan_row) for name in statistics}

    def shares(c: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return c / c.sum(axis=-1, keepdims=True)

    # Permutation: pairs swap sides, unpaired units are shuffled between the runs.
    swap = rng.random((n_perm, len(a))) < 0.5
    delta = b - a
    p0 = a.sum(axis=0) + swap @ delta
    p1 = b.sum(axis=0) - swap @ delta
    if len(u):
        order = np.argsort(rng.random((n_perm, len(u))), axis=1)
        sel = np.zeros((n_perm, len(u)))
        np.put_along_axis(sel, order[:, :u0], 1.0, axis=1)
        p0 = p0 + sel @ u
        p1 = p1 + (1 - sel) @ u
    # Cluster bootstrap: pairs, and each run's unpaired units, resampled.
    def resample(m: int) -> np.ndarray:
        return (rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot).astype(float) if m
                else np.zeros((n_boot, 0)))

    wp = resample(len(a))
    u_0, u_1 = u[:u0], u[u0:]
    b0 = wp @ a + resample(len(u_0)) @ u_0
    b1 = wp @ b + resample(len(u_1)) @ u_1
    out = {}
    for name, fn in statistics.items():
        v0, v1 = float(fn(shares(obs0))), float(fn(shares(obs1)))
        d = v1 - v0
        perm = fn(shares(p1)) - fn(shares(p0))
        perm = perm[~np.isnan(perm)]
        pval = (1 + np.sum(np.abs(perm) >= abs(d) - 1e-12)) / (len(perm) + 1)
        boot = fn(shares(b1)) - fn(shares(b0))
        boot = boot[~np.isnan(boot)]
        lo, hi = (np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if boot.size
                  else (np.nan, np.nan))
        out[name] = {"value0": v0, "value1": v1, "difference": d, "lo": float(lo),
                     "hi": float(hi), "p": float(pval) if abs(d) > EPS else 1.0,
                     "n0": float(obs0.sum()), "n1": float(obs1.sum()),
                     "n_pairs": float(paired.sum())}
    return out


def bh_by_family(p: np.ndarray, family: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Benjamini–Hochberg q-values computed separately within each family (NaN kept)."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    codes, _ = _factorize(np.asarray(family))
    # Vectorised BH: sort by (family, p), rank within family, cumulative minimum from the end.
    ok = ~np.isnan(p)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return q
    fam, pv = codes[idx], p[idx]
    order = np.lexsort((pv, fam))
    fam_s, p_s = fam[order], pv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(fam_s)) + 1]
    sizes = np.diff(np.r_[starts, len(fam_s)])
    m = np.repeat(sizes, sizes)
    rank = np.arange(len(fam_s)) - np.repeat(starts, sizes) + 1
    adj = p_s * m / rank
    out = np.empty_like(adj)
    for start, size in zip(starts, sizes, strict=True):  # reverse cumulative minimum
        seg = adj[start:start + size]
        out[start:start + size] = np.minimum.accumulate(seg[::-1])[::-1]
    q_s = np.minimum(out, 1.0)
    res = np.empty_like(q_s)
    res[order] = q_s
    q[idx] = res
    return q
