"""Matplotlib charts for the report, returned as ``data:image/png;base64,...`` URIs.

Agg backend only (no display, no fonts fetched); every figure is closed after encoding so
memory stays flat over hundreds of occupation charts.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

DPI = 80


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _encode(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def baseline_scatter(table: pd.DataFrame) -> str | None:
    """Model share perceived female against the labour baseline, one point per occupation."""
    t = table.dropna(subset=["baseline_women", "share_female"])
    if t.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    small = t["small_sample"].astype(bool).to_numpy()
    x = t["baseline_women"].to_numpy(float)
    y = t["share_female"].to_numpy(float)
    err = np.vstack([y - t["lo"].to_numpy(float), t["hi"].to_numpy(float) - y])
    ax.errorbar(x[~small], y[~small], yerr=err[:, ~small], fmt="o", ms=4, color="#1f5f9f",
                ecolor="#9bb8d8", label="occupation (95% interval)")
    if small.any():
        ax.errorbar(x[small], y[small], yerr=err[:, small], fmt="o", ms=4, mfc="white",
                    color="#999999", ecolor="#dddddd", label="too few images for a claim")
    ax.plot([0, 1], [0, 1], "--", color="#555555", lw=1, label="model = baseline")
    ax.axhline(0.5, color="#cc7a00", lw=1, ls=":", label="parity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("share of women among US workers (BLS 2018)")
    ax.set_ylabel("share of images perceived female")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def baseline_forest(table: pd.DataFrame, max_rows: int = 60) -> str | None:
    """Per occupation: share perceived female with its interval and the baseline marker,
    sorted by gap from the baseline (the largest gaps first when truncated)."""
    t = table.dropna(subset=["share_female"]).copy()
    if t.empty:
        return None
    t["_abs"] = t["gap_baseline"].abs()
    t = t.sort_values("_abs", ascending=False).head(max_rows).sort_values("gap_baseline")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 0.22 * len(t) + 1.2))
    yy = np.arange(len(t))
    y = t["share_female"].to_numpy(float)
    ax.hlines(yy, t["lo"], t["hi"], color="#9bb8d8", lw=3)
    ax.plot(y, yy, "o", color="#1f5f9f", ms=4, label="model (95% interval)")
    ax.plot(t["baseline_women"], yy, "|", color="#c0392b", ms=10, mew=2, label="BLS baseline")
    ax.axvline(0.5, color="#cc7a00", lw=1, ls=":")
    labels = [str(o if isinstance(o, str) else i) + (" *" if s else "")
              for o, i, s in zip(t["occupation"], t["occupation_id"], t["small_sample"],
                                 strict=True)]
    ax.set_yticks(yy, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share perceived female   (* too few images for a claim)")
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return _encode(fig)


def drift_plot(drift: pd.DataFrame) -> str | None:
    """Overall paired change between consecutive stages: ITA° and share perceived female."""
    t = drift[(drift["group"] == "(all)") & drift["measure"].isin(["ita", "share_female"])]
    t = t.dropna(subset=["value"])
    if t.empty:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.4))
    for ax, measure, label in ((axes[0], "ita", "mean change of ITA° (+ = lighter)"),
                               (axes[1], "share_female", "change of share perceived female")):
        m = t[t["measure"] == measure]
        names = [f"{a}→{b}" for a, b in zip(m["stage_from"], m["stage_to"], strict=True)]
        yy = np.arange(len(m))
        v = m["value"].to_numpy(float)
        ax.hlines(yy, m["lo"], m["hi"], color="#9bb8d8", lw=3)
        ax.plot(v, yy, "o", color="#1f5f9f")
        ax.axvline(0, color="#555555", lw=1)
        ax.set_yticks(yy, [f"stage {n}" for n in names], fontsize=8)
        ax.set_xlabel(label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    return _encode(fig)


class OccupationChart:
    """Small two-panel chart per occupation: share perceived female (interval, baseline,
    parity) and the share of each tone band (intervals).

    One figure is built once and its artists are updated for each occupation: drawing
    157 occupations costs one figure's set-up instead of 157.
    """

    COLOURS = ("#f1d3b3", "#c68e5e", "#6b4226")

    def __init__(self, bands: list[str]) -> None:
        plt = _plt()
        self.bands = list(bands)
        self.fig, (a, b) = plt.subplots(1, 2, figsize=(5.6, 1.5),
                                        gridspec_kw={"wspace": 0.45})
        self.fig.subplots_adjust(left=0.04, right=0.98, bottom=0.2, top=0.82)
        (self.interval,) = a.plot([], [], color="#9bb8d8", lw=6, solid_capstyle="butt")
        (self.point,) = a.plot([], [], "o", color="#1f5f9f")
        (self.base,) = a.plot([], [], "|", color="#c0392b", ms=16, mew=2)
        a.axvline(0.5, color="#cc7a00", lw=1, ls=":")
        a.set_xlim(0, 1)
        a.set_ylim(-1, 1)
        a.set_yticks([])
        a.set_title("perceived female (red: BLS)", fontsize=8)
        yy = np.arange(len(self.bands))
        colours = [self.COLOURS[i] if i < 3 else "#999999" for i in range(len(self.bands))]
        self.bars = b.barh(yy, np.zeros(len(yy)), color=colours)
        (self.errs,) = b.plot([], [], color="#333333", lw=1)
        b.set_yticks(yy, self.bands, fontsize=7)
        b.set_xlim(0, 1)
        b.set_title("perceived skin-tone band", fontsize=8)
        for ax in (a, b):
            ax.tick_params(labelsize=7)

    def __call__(self, share: tuple[float, float, float], baseline: float | None,
                 bands: dict[str, tuple[float, float, float]]) -> str:
        v, lo, hi = share
        ok = not np.isnan(v)
        self.interval.set_data([lo, hi] if ok else [], [0, 0] if ok else [])
        self.point.set_data([v] if ok else [], [0] if ok else [])
        has_base = baseline is not None and not np.isnan(baseline)
        self.base.set_data([baseline] if has_base else [], [0] if has_base else [])
        xs, ys = [], []
        for i, (name, bar) in enumerate(zip(self.bands, self.bars, strict=True)):
            bv, blo, bhi = bands.get(name, (np.nan,) * 3)
            bar.set_width(0.0 if np.isnan(bv) else bv)
            if not np.isnan(blo):
                xs += [blo, bhi, np.nan]
                ys += [i, i, np.nan]
        self.errs.set_data(xs, ys)
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=DPI)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def close(self) -> None:
        _plt().close(self.fig)


def occupation_chart(share: tuple[float, float, float], baseline: float | None,
                     bands: dict[str, tuple[float, float, float]]) -> str:
    """One occupation's chart (see :class:`OccupationChart`)."""
    chart = OccupationChart(list(bands))
    try:
        return chart(share, baseline, bands)
    finally:
        chart.close()


def rate_bars(table: pd.DataFrame, key: str, metric: str, title: str,
              max_rows: int = 40) -> str | None:
    """Horizontal bars of a rate per group (lowest first) with intervals."""
    t = table[table["metric"] == metric].dropna(subset=["value"]).sort_values("value")
    t = t.head(max_rows)
    if t.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.22 * len(t) + 1))
    yy = np.arange(len(t))
    v = t["value"].to_numpy(float)
    ax.barh(yy, v, color=np.where(t["small_sample"], "#cccccc", "#6c8ebf"))
    ax.hlines(yy, t["lo"], t["hi"], color="#333333", lw=1)
    ax.set_yticks(yy, [str(x) + (" *" if s else "") for x, s in
                       zip(t[key], t["small_sample"], strict=True)], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{title}   (* too few images for a claim)", fontsize=8)
    return _encode(fig)


def filter_who_pays(sweep: list[dict[str, float]], decision: float = 0.5,
                    labelled: int = 8) -> str | None:
    """Share of each benign set blocked at each threshold of the combined score: COCO-like
    captions ("fpr"), the identity probes and every further benign set. ``sweep`` is the
    report's reading of it (:func:`imagen_audit.report.inputs.read_filter_results`): every key
    but ``threshold``, ``recall`` and ``fpr`` is a benign set's blocked share. The sets
    blocked most at the decision are drawn in colour and named; the rest are grey. ``None``
    when the sweep names no set beyond the main benign one."""
    rows = [r for r in sweep if r.get("threshold") == r.get("threshold")]
    keys = sorted({k for r in rows for k in r} - {"threshold", "recall", "fpr"})
    if not rows or not keys:
        return None
    keys = ["fpr", *keys]
    rows = sorted(rows, key=lambda r: r["threshold"])
    at = min(rows, key=lambda r: abs(r["threshold"] - decision))
    ranked = sorted(keys, key=lambda k: -at.get(k, 0.0))
    xs = [r["threshold"] for r in rows]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for k in ranked[labelled:]:
        ax.plot(xs, [r.get(k, float("nan")) for r in rows], color="0.8", lw=0.8)
    names = {"fpr": "benign (main set)", "identity_fpr": "identity probes"}
    for k in ranked[:labelled]:
        ax.plot(xs, [r.get(k, float("nan")) for r in rows], lw=1.4,
                label=f"{names.get(k, k.removeprefix('fpr_'))} ({at.get(k, 0.0):.1%})")
    ax.axvline(decision, color="k", ls="--", lw=0.8)
    ax.set_xlabel("threshold on the combined score (dashed: the policy's decision)")
    ax.set_ylabel("share blocked")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper right", title="blocked at the decision",
              title_fontsize=6)
    return _encode(fig)


def filter_sweep(sweep: list[dict[str, float]]) -> str | None:
    if not sweep:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3))
    s = sorted(sweep, key=lambda r: r["fpr"])
    ax.plot([r["fpr"] for r in s], [r["recall"] for r in s], "-o", ms=2)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("recall")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    return _encode(fig)
