"""``MetricFrame``: each metric overall and by group, with intervals, differences and ratios.

Modelled on fairlearn's ``MetricFrame`` (``overall``, ``by_group``, ``difference``,
``ratio``, ``group_min``/``group_max``), with two changes for an audit of generated images:

- the input is one table of **units** (one row per image at a stage, see
  :mod:`imagen_audit.analyse.units`) rather than ``y_true``/``y_pred`` arrays, and a metric
  is a description of a column (a share of a label, a rate, a distribution statistic, a
  mean), so every metric can be computed for all groups at once with ``groupby``;
- every value carries an interval, its unit count ``n``, a ``small_sample`` flag and the
  prompt ids it came from. Groups with fewer than ``min_n`` units are kept in the tables
  (flagged) but left out of ``difference``/``ratio``/``group_min``/``group_max`` unless
  asked for, so a tiny group never drives a headline number.

Each metric also draws a bootstrap distribution per group (binomial or multinomial draws
from the observed counts, or resampled means), which gives intervals for the differences
and ratios between groups.

Example::

    mf = MetricFrame({"share_female": Share("gender_label", "female")}, units,
                     by="occupation_id")
    mf.overall            # metric × (value, lo, hi, n, small_sample)
    mf.by_group           # group × metric values
    mf.intervals          # long table: group keys, metric, value, lo, hi, n, small_sample
    mf.difference()       # per metric: max - min over (non-small) groups
    mf.difference_ci()    # per metric: (lo, hi) of that difference
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from imagen_audit.analyse import stats

DEFAULT_MIN_N = 30
DEFAULT_N_BOOT = 1000


# --------------------------------------------------------------------------- metrics
@dataclass
class _Summary:
    """One metric summarised for G groups: values, intervals, counts and bootstrap draws."""

    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray
    draws: np.ndarray  # (n_boot, G)


class Metric:
    """A metric of a table of units. Subclasses implement :meth:`summarise`."""

    name: str = "metric"
    #: the columns the metric reads (for validation and error messages)
    columns: tuple[str, ...] = ()

    def summarise(self, data: pd.DataFrame, codes: np.ndarray, n_groups: int, *, alpha: float,
                  n_boot: int, rng: np.random.Generator) -> _Summary:
        raise NotImplementedError


def _bincount(codes: np.ndarray, weights: np.ndarray | None, n_groups: int) -> np.ndarray:
    return np.bincount(codes, weights=weights, minlength=n_groups)[:n_groups]


@dataclass
class Share(Metric):
    """Share of units whose ``column`` equals ``value`` among units where it is in ``among``.

    ``among`` defaults to every non-null value of the column, so for
    ``Share("gender_label", "female")`` the denominator is the units with a perceived
    gender (faces where the classifier abstained and images without a face are left out;
    their rates are metrics of their own). Wilson intervals.
    """

    column: str
    value: object
    among: Sequence[object] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"share_{self.column}_{self.value}"
        self.columns = (self.column,)

    def summarise(self, data, codes, n_groups, *, alpha, n_boot, rng):
        col = data[self.column]
        valid = col.notna() if self.among is None else col.isin(list(self.among))
        valid = valid.to_numpy()
        hit = (col == self.value).to_numpy() & valid
        k = _bincount(codes, hit.astype(float), n_groups)
        n = _bincount(codes, valid.astype(float), n_groups)
        return _share_summary(k, n, alpha, n_boot, rng)


@dataclass
class Rate(Metric):
    """Share of units where a boolean ``column`` is true (among non-null), e.g. face detected."""

    column: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"rate_{self.column}"
        self.columns = (self.column,)

    def summarise(self, data, codes, n_groups, *, alpha, n_boot, rng):
        col = data[self.column]
        valid = col.notna().to_numpy()
        hit = (col.fillna(False).astype(bool)).to_numpy() & valid
        k = _bincount(codes, hit.astype(float), n_groups)
        n = _bincount(codes, valid.astype(float), n_groups)
        return _share_summary(k, n, alpha, n_boot, rng)


def _share_summary(k, n, alpha, n_boot, rng) -> _Summary:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    lo, hi = stats.wilson_interval(k, n, alpha)
    safe_p = np.nan_to_num(p)
    draws = rng.binomial(n.astype(np.int64), safe_p, size=(n_boot, len(n))) / np.maximum(n, 1)
    draws[:, n == 0] = np.nan
    return _Summary(p, lo, hi, n.astype(int), draws)


@dataclass
class Distribution(Metric):
    """A statistic of the distribution of ``column`` over ``categories``.

    ``statistic`` is ``"gap_from_uniform"`` (mean absolute deviation from uniform, as in
    DALL-Eval) or ``"entropy"`` (normalised Shannon entropy). Units whose value is not one
    of the categories are left out. Multinomial-bootstrap percentile intervals.
    """

    column: str
    categories: Sequence[object]
    statistic: str = "gap_from_uniform"
    name: str = ""

    def __post_init__(self) -> None:
        if self.statistic not in ("gap_from_uniform", "entropy"):
            raise ValueError(f"unknown statistic {self.statistic!r}")
        self.name = self.name or f"{self.statistic}_{self.column}"
        self.columns = (self.column,)

    def _fn(self, shares):
        if self.statistic == "gap_from_uniform":
            return stats.gap_from_uniform(shares)
        return stats.normalised_entropy(shares)

    def summarise(self, data, codes, n_groups, *, alpha, n_boot, rng):
        col = data[self.column]
        cats = list(self.categories)
        counts = np.zeros((n_groups, len(cats)))
        for j, c in enumerate(cats):
            counts[:, j] = _bincount(codes, (col == c).to_numpy().astype(float), n_groups)
        n = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = counts / n[:, None]
        value = np.where(n > 0, self._fn(np.nan_to_num(shares)), np.nan)
        draws = np.full((n_boot, n_groups), np.nan)
        lo = np.full(n_groups, np.nan)
        hi = np.full(n_groups, np.nan)
        for g in np.flatnonzero(n > 0):
            sim = rng.multinomial(int(n[g]), shares[g], size=n_boot) / n[g]
            draws[:, g] = self._fn(sim)
            lo[g], hi[g] = np.quantile(draws[:, g], [alpha / 2, 1 - alpha / 2])
        return _Summary(value, lo, hi, n.astype(int), draws)


@dataclass
class Mean(Metric):
    """Mean of a numeric ``column`` (NaN left out), e.g. ITA°; bootstrap percentile interval."""

    column: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"mean_{self.column}"
        self.columns = (self.column,)

    def summarise(self, data, codes, n_groups, *, alpha, n_boot, rng):
        x = pd.to_numeric(data[self.column], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(x)
        n = _bincount(codes[ok], None, n_groups).astype(float)
        s = _bincount(codes[ok], x[ok], n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        draws = np.full((n_boot, n_groups), np.nan)
        lo = np.full(n_groups, np.nan)
        hi = np.full(n_groups, np.nan)
        order = np.argsort(codes[ok], kind="stable")
        xs = x[ok][order]
        bounds = np.concatenate([[0], np.cumsum(n.astype(int))])
        for g in np.flatnonzero(n > 1):
            vals = xs[bounds[g]:bounds[g + 1]]
            # Resample in blocks: memory stays bounded (≈ 2M values) for any group size.
            block = max(1, 2_000_000 // vals.size)
            for start in range(0, n_boot, block):
                stop = min(n_boot, start + block)
                idx = rng.integers(0, vals.size, size=(stop - start, vals.size))
                draws[start:stop, g] = vals[idx].mean(axis=1)
            lo[g], hi[g] = np.quantile(draws[:, g], [alpha / 2, 1 - alpha / 2])
        return _Summary(value, lo, hi, n.astype(int), draws)


# --------------------------------------------------------------------------- the frame
@dataclass
class MetricFrame:
    """Metrics of a table of units, overall and by group (see the module docstring)."""

    metrics: Mapping[str, Metric] | Sequence[Metric]
    data: pd.DataFrame
    by: str | Sequence[str] | None = None
    alpha: float = 0.05
    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0
    min_n: int = DEFAULT_MIN_N
    trace_column: str = "prompt_id"
    _overall: dict = field(init=False, repr=False)
    _groups: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.metrics, Mapping):
            self.metrics = {m.name: m for m in self.metrics}
        else:
            self.metrics = dict(self.metrics)
            for name, m in self.metrics.items():
                m.name = name
        self.keys: list[str] = ([] if self.by is None else
                                [self.by] if isinstance(self.by, str) else list(self.by))
        wanted = {c for m in self.metrics.values() for c in m.columns} | set(self.keys)
        missing = sorted(wanted - set(self.data.columns))
        if missing:
            raise KeyError(f"MetricFrame: the table has no column(s) {missing}")
        rng = np.random.default_rng(self.seed)
        n = len(self.data)
        zero = np.zeros(n, dtype=np.int64)
        self._overall = {name: m.summarise(self.data, zero, 1, alpha=self.alpha,
                                           n_boot=self.n_boot, rng=rng)
                         for name, m in self.metrics.items()}
        if self.keys:
            keyframe = self.data[self.keys]
            codes, uniques = _factorize(keyframe)
            self.group_index = uniques
            self._groups = {name: m.summarise(self.data, codes, len(uniques), alpha=self.alpha,
                                              n_boot=self.n_boot, rng=rng)
                            for name, m in self.metrics.items()}
            self._codes = codes
        else:
            self.group_index = pd.Index([], name=None)
            self._groups = {}
            self._codes = zero

    # ------------------------------------------------------------------ fairlearn-like
    @property
    def overall(self) -> pd.DataFrame:
        """One row per metric: value, lo, hi, n, small_sample."""
        rows = {name: {"value": s.value[0], "lo": s.lo[0], "hi": s.hi[0], "n": int(s.n[0]),
                       "small_sample": bool(s.n[0] < self.min_n)}
                for name, s in self._overall.items()}
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def by_group(self) -> pd.DataFrame:
        """Group × metric table of values (NaN where a group has no unit for the metric)."""
        self._need_groups()
        return pd.DataFrame({name: s.value for name, s in self._groups.items()},
                            index=self.group_index)

    def _need_groups(self) -> None:
        if not self.keys:
            raise ValueError("this MetricFrame has no groups (by=None)")

    def _frame(self, attr: str) -> pd.DataFrame:
        self._need_groups()
        return pd.DataFrame({name: getattr(s, attr) for name, s in self._groups.items()},
                            index=self.group_index)

    @property
    def by_group_lo(self) -> pd.DataFrame:
        return self._frame("lo")

    @property
    def by_group_hi(self) -> pd.DataFrame:
        return self._frame("hi")

    @property
    def by_group_n(self) -> pd.DataFrame:
        return self._frame("n")

    @property
    def intervals(self) -> pd.DataFrame:
        """Long table: group keys, metric, value, lo, hi, n, small_sample, prompt_ids."""
        self._need_groups()
        traces = self.trace()
        parts = []
        base = self.group_index.to_frame(index=False)
        for name, s in self._groups.items():
            part = base.copy()
            part["metric"] = name
            part["value"] = s.value
            part["lo"] = s.lo
            part["hi"] = s.hi
            part["n"] = s.n
            part["small_sample"] = s.n < self.min_n
            part["prompt_ids"] = traces
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def _eligible(self, s: _Summary, include_small: bool) -> np.ndarray:
        ok = ~np.isnan(s.value)
        return ok if include_small else ok & (s.n >= self.min_n)

    def group_min(self, include_small: bool = False) -> pd.Series:
        return self._reduce(np.nanmin, include_small)

    def group_max(self, include_small: bool = False) -> pd.Series:
        return self._reduce(np.nanmax, include_small)

    def _reduce(self, fn, include_small: bool) -> pd.Series:
        self._need_groups()
        out = {}
        for name, s in self._groups.items():
            ok = self._eligible(s, include_small)
            out[name] = float(fn(s.value[ok])) if ok.any() else np.nan
        return pd.Series(out, dtype=float)

    def difference(self, method: str = "between_groups",
                   include_small: bool = False) -> pd.Series:
        """``between_groups``: max - min over groups; ``to_overall``: max |group - overall|."""
        return pd.Series({name: _difference(s.value[None, :], self._overall[name].value[0],
                                            self._eligible(s, include_small), method)[0]
                          for name, s in self._groups.items()} if self.keys else {},
                         dtype=float)

    def ratio(self, method: str = "between_groups", include_small: bool = False) -> pd.Series:
        """``between_groups``: min / max over groups; ``to_overall``: min of group/overall
        and overall/group."""
        return pd.Series({name: _ratio(s.value[None, :], self._overall[name].value[0],
                                       self._eligible(s, include_small), method)[0]
                          for name, s in self._groups.items()} if self.keys else {},
                         dtype=float)

    def difference_ci(self, method: str = "between_groups",
                      include_small: bool = False) -> pd.DataFrame:
        """Bootstrap percentile interval (lo, hi) of :meth:`difference` per metric."""
        return self._ci(_difference, method, include_small)

    def ratio_ci(self, method: str = "between_groups",
                 include_small: bool = False) -> pd.DataFrame:
        return self._ci(_ratio, method, include_small)

    def _ci(self, fn, method: str, include_small: bool) -> pd.DataFrame:
        self._need_groups()
        rows = {}
        for name, s in self._groups.items():
            ok = self._eligible(s, include_small)
            reps = fn(s.draws, self._overall[name].draws[:, 0], ok, method)
            reps = reps[~np.isnan(reps)]
            rows[name] = ({"lo": np.nan, "hi": np.nan} if reps.size == 0 else
                          dict(zip(("lo", "hi"), np.quantile(
                              reps, [self.alpha / 2, 1 - self.alpha / 2]), strict=True)))
        return pd.DataFrame.from_dict(rows, orient="index")

    # ------------------------------------------------------------------ traceability
    def trace(self) -> list[list[str]]:
        """Per group, the sorted ids (``trace_column``, prompt ids by default) of its rows."""
        self._need_groups()
        if self.trace_column not in self.data.columns:
            return [[] for _ in range(len(self.group_index))]
        ids = pd.Series(self.data[self.trace_column].to_numpy(), index=self._codes)
        grouped = ids.groupby(level=0).unique()
        return [sorted(str(v) for v in grouped.get(g, [])) for g in range(len(self.group_index))]

    def rows(self, group: object) -> pd.DataFrame:
        """The units behind one group (for tracing a number back to sample ids)."""
        self._need_groups()
        pos = self.group_index.get_loc(group)
        return self.data[self._codes == pos]


def _difference(values: np.ndarray, overall, ok: np.ndarray, method: str) -> np.ndarray:
    v = values[:, ok]
    if v.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    with np.errstate(invalid="ignore"):
        if method == "between_groups":
            return np.nanmax(v, axis=1) - np.nanmin(v, axis=1)
        if method == "to_overall":
            return np.nanmax(np.abs(v - np.asarray(overall).reshape(-1, 1)), axis=1)
    raise ValueError(f"unknown method {method!r}; use 'between_groups' or 'to_overall'")


def _ratio(values: np.ndarray, overall, ok: np.ndarray, method: str) -> np.ndarray:
    v = values[:, ok]
    if v.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "between_groups":
            return np.nanmin(v, axis=1) / np.nanmax(v, axis=1)
        if method == "to_overall":
            o = np.asarray(overall).reshape(-1, 1)
            return np.nanmin(np.minimum(v / o, o / v), axis=1)
    raise ValueError(f"unknown method {method!r}; use 'between_groups' or 'to_overall'")


def _factorize(keyframe: pd.DataFrame) -> tuple[np.ndarray, pd.Index]:
    """Integer group codes (missing keys become their own '(none)' group) and the index."""
    filled = keyframe.astype(object).where(keyframe.notna(), "(none)")
    if filled.shape[1] == 1:
        codes, uniques = pd.factorize(filled.iloc[:, 0], sort=True)
        return codes.astype(np.int64), pd.Index(uniques, name=keyframe.columns[0])
    index = pd.MultiIndex.from_frame(filled)
    codes, uniques = pd.factorize(index, sort=True)
    return codes.astype(np.int64), pd.MultiIndex.from_tuples(list(uniques),
                                                             names=list(keyframe.columns))
