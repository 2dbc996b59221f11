"""Gate checks on a comparison with a baseline run (``imagen-audit gate RUN --baseline B``).

Each check is a function of the :class:`~imagen_audit.compare.metrics.Comparison` and the
check's parameters returning ``(value, where)``, like the gate's single-run checks; missing
data raises ``GateDataError`` (the check is an error, never a pass). Only groups with at
least ``min_n`` images in both runs count.

``significant_only: true`` counts only changes that are significant after Benjamini–Hochberg;
``correction: family`` (default: the check names its own family, e.g. occupations, so that
family is the multiplicity to correct for) or ``all`` (across the whole comparison).
Without significance, the raw difference decides, however noisy.

Checks:

- ``max_gap_baseline_growth``: largest growth of an occupation's distance from its labour
  baseline share (``|gap|`` of the candidate minus that of the baseline run);
- ``max_gap_parity_growth``: the same for the distance from parity;
- ``max_amplification_growth``: largest increase of an occupation's stereotype
  amplification;
- ``max_mean_amplification_change``: change of the mean amplification across occupations;
- ``min_filter_recall_change`` / ``max_filter_fpr_change``: change of a prompt filter's
  recall / false-positive rate (``filter:`` names it when there are several);
- ``max_image_filter_flag_rate_change``: change of an output-image filter's flag rate;
- ``max_metric_increase`` / ``min_metric_change``: any metric (``measure:``) of any family
  (``family:`` overall, prompt_id, occupation_id, identity_id, family, stage), largest
  increase / most negative change over its groups;
- ``max_worsened``: how many changes got worse (headline: across the whole comparison),
  optionally only in ``families:`` / ``metrics:``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from imagen_audit.report.gate import (
    GateDataError,
    ParamSpec,
    p_bool,
    p_choice,
    p_group,
    p_text,
    p_texts,
)


def _need(c: Any) -> Any:
    if c is None:
        raise GateDataError("this check compares with a baseline run: give --baseline RUN")
    return c


def _rows(c: Any, family: str, metric: str | None, params: Mapping[str, Any]) -> pd.DataFrame:
    t = _need(c).changes
    t = t[t["family"] == family]
    if metric is not None:
        t = t[t["metric"] == metric]
    if "group" in params:
        t = t[t["group"].astype(str) == str(params["group"])]
    if t.empty:
        raise GateDataError(f"the comparison has no {family} {metric or ''} rows".strip())
    eligible = t[~t["small_sample"].astype(bool)].dropna(subset=["difference"])
    if eligible.empty:
        raise GateDataError(f"no {family} group has at least {c.config.min_n} images in both "
                            "runs")
    return eligible


def _significant(t: pd.DataFrame, params: Mapping[str, Any], alpha: float) -> pd.DataFrame:
    if not params.get("significant_only"):
        return t
    col = "q_all" if params.get("correction") == "all" else "q"
    return t[t[col] < alpha]


def _extreme(t: pd.DataFrame, c: Any, params: Mapping[str, Any], worst: str
             ) -> tuple[float, str]:
    t = _significant(t, params, c.config.alpha)
    if t.empty:
        return 0.0, "no significant change"
    i = t["difference"].idxmax() if worst == "max" else t["difference"].idxmin()
    r = t.loc[i]
    return float(r["difference"]), (f"{r['family']} {r['group']}: {r['metric']} "
                                    f"{r['baseline']:.3g} → {r['candidate']:.3g} "
                                    f"(q {r['q']:.3g})")


def _family_check(family: str, metric: str, worst: str) -> Callable:
    def fn(c, params):
        return _extreme(_rows(c, family, metric, params), c, params, worst)
    return fn


def _filter_check(kind: str, metric: str, worst: str) -> Callable:
    def fn(c, params):
        t = _need(c).changes
        t = t[(t["family"] == f"{kind}_filter") & (t["metric"] == metric)]
        names = sorted(set(t["group"].astype(str)))
        if not names:
            raise GateDataError(f"no {kind}-filter {metric} in both runs")
        name = params.get("filter")
        if name is None and len(names) > 1:
            raise GateDataError(f"several {kind} filters {names}: name one with 'filter:'")
        name = name or names[0]
        if name not in names:
            raise GateDataError(f"no {kind} filter named {name!r} in both runs (have {names})")
        t = t[t["group"].astype(str) == name].dropna(subset=["difference"])
        if t.empty:
            raise GateDataError(f"{kind} filter {name!r}: no {metric} in both runs")
        return _extreme(t, c, params, worst)
    return fn


def _metric_check(worst: str) -> Callable:
    def fn(c, params):
        if "measure" not in params:
            raise GateDataError("check needs 'measure:' (a metric name, e.g. "
                                "face_detection_rate)")
        return _extreme(_rows(c, str(params.get("family", "overall")), str(params["measure"]),
                              params), c, params, worst)
    return fn


def max_worsened(c, params):
    t = _need(c).worse(headline=params.get("correction") != "family")
    for key, column in (("families", "family"), ("metrics", "metric")):
        if params.get(key):
            t = t[t[column].isin(list(params[key]))]
    if t.empty:
        return 0.0, "none"
    r = t.loc[t["difference"].abs().idxmax()]
    return float(len(t)), f"largest: {r['family']} {r['group']} {r['metric']}"


COMPARISON_CHECKS: dict[str, Callable[[Any, Mapping[str, Any]], tuple[float, str]]] = {
    "max_gap_baseline_growth": _family_check("baselines", "abs_gap_baseline", "max"),
    "max_gap_parity_growth": _family_check("baselines", "abs_gap_parity", "max"),
    "max_amplification_growth": _family_check("baselines", "amplification", "max"),
    "max_mean_amplification_change": _family_check("amplification", "mean_amplification",
                                                   "max"),
    "min_filter_recall_change": _filter_check("prompt", "recall", "min"),
    "max_filter_fpr_change": _filter_check("prompt", "fpr", "max"),
    "max_image_filter_flag_rate_change": _filter_check("image", "flag_rate", "max"),
    "max_metric_increase": _metric_check("max"),
    "min_metric_change": _metric_check("min"),
    "max_worsened": max_worsened,
}

# The parameters of each check (the gate refuses any other key, naming it).
_SIG = {"significant_only": p_bool, "correction": p_choice("family", "all")}
_FAMILY = ParamSpec({**_SIG, "group": p_group})
_FILTER = ParamSpec({**_SIG, "filter": p_text})
_METRIC = ParamSpec({**_SIG, "group": p_group, "family": p_text}, {"measure": p_text})
COMPARISON_PARAMS: dict[str, ParamSpec] = {
    "max_gap_baseline_growth": _FAMILY,
    "max_gap_parity_growth": _FAMILY,
    "max_amplification_growth": _FAMILY,
    "max_mean_amplification_change": _FAMILY,
    "min_filter_recall_change": _FILTER,
    "max_filter_fpr_change": _FILTER,
    "max_image_filter_flag_rate_change": _FILTER,
    "max_metric_increase": _METRIC,
    "min_metric_change": _METRIC,
    "max_worsened": ParamSpec({"correction": p_choice("family", "all"),
                               "families": p_texts, "metrics": p_texts}),
}

__all__ = ["COMPARISON_CHECKS", "COMPARISON_PARAMS"]
