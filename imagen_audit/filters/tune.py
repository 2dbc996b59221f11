"""Pick policy thresholds for a target on one split; report them on another.

Two targets, because two people tune. A policy team starts from what it may wrongly block:
``target_fpr`` picks the most permissive thresholds that keep the tuning split's benign
false-positive rate at or below the target. A release engineer swapping in a retrained model
starts from what the old policy caught: ``target_recall`` (``filters tune --match-recall
OLD_POLICY`` sets it to the old policy's recall on the same split) picks the most permissive
thresholds that still catch at least that share of the tuning split's harmful prompts, so the
new model is compared with the old at equal recall and what changes is its over-blocking.

:func:`tune` never picks and reports on the same prompts: the caller passes a *tuning*
split and a *held-out* split (the CLI makes them with
:func:`~imagen_audit.filters.datasets.split_by_prompt`, so near-identical prompts never
straddle the two). Continuous backends (``embedding``, ``profanity``, ``detoxify``) are
tuned; the ``blocklist`` keeps its threshold (its weights are reviewed by people, not
fitted). For ``combine: any`` with several tuned backends, their thresholds move together
along their own score quantiles (benign scores for an FPR target, harmful ones for a recall
target); for ``combine: weighted`` the policy threshold is tuned. With ``identity`` prompts,
an FPR target also requires that none of them is blocked; a recall target that cannot be met
without blocking one is an error, not a silent trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.evaluate import confusion
from imagen_audit.filters.policy import Policy

FIXED_BACKENDS = ("blocklist",)


def _raw(policy: Policy, prompts: list[str]) -> dict[str, np.ndarray]:
    res = policy.backend_results(prompts)
    return {k: np.array([r.score for r in v], float) for k, v in res.items()}


def _flagged(policy: Policy, raw: Mapping[str, np.ndarray]) -> float:
    """Share of the scored prompts the policy flags: the FPR on benign prompts, the recall on
    harmful ones."""
    s = policy.combine_scores(raw)
    return float((s >= 0.5).mean()) if len(s) else 0.0


def _floor(x: float, grid: float | None) -> float:
    """``x`` rounded down to a multiple of ``grid`` (thresholds a person can read and
    write in a policy file, e.g. 0.38); unchanged without a grid."""
    if not grid:
        return x
    return round(float(np.floor(x / grid + 1e-9) * grid), 10)


def _edge(passes: Any, good: float, bad: float, steps: int) -> float:
    """Bisection between a ``good`` end that passes and a ``bad`` one that fails: the passing
    point nearest the failing end (the share of prompts a backend may flag, ``q``)."""
    for _ in range(steps):
        mid = (good + bad) / 2
        if passes(mid):
            good = mid
        else:
            bad = mid
    return good


def _recall_search(policy: Policy, harmful: Mapping[str, np.ndarray], tuned: list[str],
                   target: float, grid: float | None) -> Policy:
    """The most permissive thresholds whose recall on ``harmful`` reaches ``target``."""
    def ok(p: Policy) -> bool:
        return _flagged(p, harmful) >= target - 1e-12

    def settle(p: Policy, get: Any, put: Any) -> Policy:
        # Rounded down to the grid the recall can only rise; step back up while it holds.
        if not grid:
            return p
        p = put(_floor(get(p), grid))
        while get(p) + grid <= 1.0 + 1e-9 and ok(up := put(round(get(p) + grid, 10))):
            p = up
        return p

    if policy.combine == "weighted":
        total = sum(b.weight for b in policy.backends)
        mean = sum(b.weight * harmful[b.name] for b in policy.backends) / total
        for t in np.unique(np.r_[mean, 0.0])[::-1]:  # descending: first pass = most permissive
            p = policy.with_thresholds({}, combined=float(t))
            if ok(p):
                return settle(p, lambda q: q.threshold,
                              lambda v: policy.with_thresholds({}, combined=v))
        return policy.with_thresholds({}, combined=0.0)

    def at(q: float) -> Policy:  # q = share of harmful each tuned backend alone flags
        return policy.with_thresholds({n: 1.0 if q <= 0 else
                                       float(np.quantile(harmful[n], 1.0 - q))
                                       for n in tuned})

    if ok(at(0.0)):
        best = at(0.0)
    else:
        if not ok(at(1.0)):  # recall grows with q: 0 fails, 1 must pass
            raise FilterError(f"tune: no threshold reaches recall {target:.4f} on the tuning "
                              "split")
        best = at(_edge(lambda q: ok(at(q)), 1.0, 0.0, 40))
    if len(tuned) == 1:
        n = tuned[0]
        best = settle(best, lambda q: next(b.threshold for b in q.backends if b.name == n),
                      lambda v: policy.with_thresholds({n: v}))
    else:
        best = policy.with_thresholds({b.name: _floor(b.threshold, grid)  # type: ignore[arg-type]
                                       for b in best.backends if b.name in tuned})
    return best


def tune(policy: Policy, tune_harmful: pd.DataFrame, tune_benign: pd.DataFrame,
         test_harmful: pd.DataFrame, test_benign: pd.DataFrame, *,
         target_fpr: float | None = None, target_recall: float | None = None,
         grid: float | None = None, identity: pd.DataFrame | None = None,
         name: str | None = None, resamples: int = 0, seed: int = 0
         ) -> tuple[Policy, dict[str, Any]]:
    """A copy of ``policy`` with tuned thresholds, and a report of both splits. Exactly one
    of ``target_fpr`` and ``target_recall``; ``grid`` (recall targets only) keeps the
    thresholds on multiples of it. With ``resamples`` the report also says how much the pick
    owes to the luck of the tuning split (``stability``: the same search on bootstrap
    resamples of it, and what each resampled pick does on the held-out split)."""
    if (target_fpr is None) == (target_recall is None):
        raise FilterError("tune: give exactly one of a target FPR and a target recall")
    if target_recall is not None:
        if not 0.0 < target_recall <= 1.0:
            raise FilterError(f"--target-recall must be in (0, 1], got {target_recall}")
    elif not 0.0 <= target_fpr < 1.0:  # type: ignore[operator]
        raise FilterError(f"--target-fpr must be in [0, 1), got {target_fpr}")
    if grid is not None and (target_recall is None or not 0.0 < grid < 1.0):
        raise FilterError(f"--grid {grid}: a step in (0, 1), with a recall target only")
    if resamples < 0:
        raise FilterError(f"--resamples must be 0 or more, got {resamples}")
    overlap = set(tune_benign["prompt"]) & set(test_benign["prompt"]) | \
        set(tune_harmful["prompt"]) & set(test_harmful["prompt"])
    if overlap:
        raise FilterError(f"tune: {len(overlap)} prompts are in both the tuning and the "
                          "held-out split")
    ident = _raw(policy, identity["prompt"].astype(str).tolist()) if identity is not None \
        else None
    tuned_names = [b.name for b in policy.backends if b.name not in FIXED_BACKENDS]
    if policy.combine == "any" and not tuned_names:
        raise FilterError(f"policy {policy.name!r} has no tunable backend (only "
                          f"{list(FIXED_BACKENDS)})")
    # Every split is scored once; thresholds are then re-decided on the raw scores.
    raw = Splits(*(_raw(policy, df["prompt"].astype(str).tolist())
                   for df in (tune_harmful, tune_benign, test_harmful, test_benign)))

    def search(harmful: Mapping[str, np.ndarray], benign: Mapping[str, np.ndarray]) -> Policy:
        """The pick on one tuning sample (the split itself, or a resample of it)."""
        if target_recall is not None:
            return _recall_search(policy, harmful, tuned_names, target_recall, grid)
        return _fpr_search(policy, benign, ident, tuned_names, target_fpr)  # type: ignore[arg-type]

    new = search(raw.tune_harmful, raw.tune_benign)
    if target_recall is not None:
        if identity is not None and ident is not None \
                and (k := round(_flagged(new, ident) * len(identity))):
            raise FilterError(f"tune: recall {target_recall:.4f} on the tuning split needs "
                              f"thresholds that block {k} of the {len(identity)} identity "
                              "prompts (--no-identity-constraint accepts that)")
        name = name or f"{policy.name}-recall{target_recall:.4g}"
        how, target = f"recall >= {target_recall:.4g}", ("target_recall", target_recall)
    else:
        name = name or f"{policy.name}-fpr{target_fpr:g}"
        how, target = f"FPR <= {target_fpr:g}", ("target_fpr", target_fpr)
    new = new.with_thresholds({}, name=name,
                              description=f"{policy.description} Thresholds tuned by "
                              f"imagen-audit filters tune for {how} on a "
                              "tuning split.".strip())
    out = {target[0]: target[1],
           "thresholds": {b.name: b.threshold for b in new.backends},
           "combined_threshold": new.threshold,
           "tuning_split": _report(new, raw.tune_harmful, raw.tune_benign),
           "held_out_split": _report(new, raw.test_harmful, raw.test_benign),
           "sizes": {"tune_harmful": len(tune_harmful), "tune_benign": len(tune_benign),
                     "test_harmful": len(test_harmful), "test_benign": len(test_benign)}}
    if identity is not None:
        out["identity_blocked_on_tuning_constraint"] = 0
    if resamples:
        out["stability"] = _stability(search, raw, policy.combine, tuned_names, resamples, seed)
    return new, out


class Splits(NamedTuple):
    """Raw per-backend scores of the four splits :func:`tune` reads."""

    tune_harmful: dict[str, np.ndarray]
    tune_benign: dict[str, np.ndarray]
    test_harmful: dict[str, np.ndarray]
    test_benign: dict[str, np.ndarray]


def _report(policy: Policy, harmful: Mapping[str, np.ndarray],
            benign: Mapping[str, np.ndarray]) -> dict[str, Any]:
    h, b = policy.combine_scores(harmful), policy.combine_scores(benign)
    y = np.r_[np.ones(len(h)), np.zeros(len(b))]
    return confusion(y, np.r_[h, b] >= 0.5)


def _fpr_search(policy: Policy, benign: Mapping[str, np.ndarray],
                ident: Mapping[str, np.ndarray] | None, tuned: list[str], target: float
                ) -> Policy:
    """The most permissive thresholds whose FPR on ``benign`` stays at or below ``target``
    and, with ``ident``, that block none of those prompts."""
    def ok(p: Policy) -> bool:
        if _flagged(p, benign) > target + 1e-12:
            return False
        return ident is None or _flagged(p, ident) == 0.0

    if policy.combine == "weighted":
        total = sum(b.weight for b in policy.backends)
        mean = sum(b.weight * benign[b.name] for b in policy.backends) / total
        for t in np.unique(np.r_[mean, 1.0]):  # ascending: the first pass is most permissive
            p = policy.with_thresholds({}, combined=float(np.nextafter(t, 2.0)))
            if ok(p):
                return p
        return policy.with_thresholds({}, combined=1.0)

    # q = share of tuning-benign prompts each tuned backend alone may flag.
    def at(q: float) -> Policy:
        th = {n: 1.0 if q <= 0 else
              float(min(1.0, np.nextafter(np.quantile(benign[n], 1.0 - q), 2.0)))
              for n in tuned}
        return policy.with_thresholds(th)

    if not ok(at(0.0)):
        raise FilterError("tune: even the strictest thresholds exceed the target on the "
                          "tuning split (the fixed backends alone block too much, or block "
                          "identity prompts)")
    return at(_edge(lambda q: ok(at(q)), 0.0, 1.0, 30))  # FPR grows with q


def _stability(search: Any, raw: Splits, combine: str, tuned: list[str], resamples: int,
               seed: int) -> dict[str, Any]:
    """Run the same search on ``resamples`` bootstrap resamples of the tuning split (harmful
    and benign prompts drawn with replacement, each part to its own size) and give the
    central 95% of the thresholds it picks and of their held-out recall and FPR. A tuning
    split of a few hundred prompts moves a threshold as much as a retrained model does
    (filters/README.md, round 69); this shows by how much before a policy is adopted. A
    recall target's identity check applies to the pick itself, not to the resampled picks."""
    rng = np.random.default_rng(seed)
    n_h = len(next(iter(raw.tune_harmful.values()), []))
    n_b = len(next(iter(raw.tune_benign.values()), []))
    keys = ["combined"] if combine == "weighted" else list(tuned)
    picked: dict[str, list[float]] = {k: [] for k in keys}
    recall, fpr, failed = [], [], 0
    for _ in range(resamples):
        ih, ib = rng.integers(0, max(n_h, 1), n_h), rng.integers(0, max(n_b, 1), n_b)
        try:
            p = search({k: v[ih] for k, v in raw.tune_harmful.items()},
                       {k: v[ib] for k, v in raw.tune_benign.items()})
        except FilterError:
            failed += 1
            continue
        for k in keys:
            picked[k].append(float(p.threshold) if k == "combined" else  # type: ignore[arg-type]
                             float(next(b.threshold for b in p.backends if b.name == k)))
        recall.append(_flagged(p, raw.test_harmful))
        fpr.append(_flagged(p, raw.test_benign))

    def central(x: list[float]) -> list[float] | None:
        return [float(v) for v in np.quantile(x, [0.025, 0.975])] if x else None

    return {"resamples": resamples, "seed": seed, "failed": failed,
            "thresholds": {k: central(v) for k, v in picked.items()},
            "held_out_recall": central(recall), "held_out_fpr": central(fpr)}


def stability_line(st: Mapping[str, Any]) -> str:
    """One line for people: the resampled picks' range, or why there is none."""
    def rng(v: list[float] | None, fmt: str = ".3f") -> str:
        return "none" if v is None else f"{v[0]:{fmt}}-{v[1]:{fmt}}"

    ths = ", ".join(f"{k} {rng(v, '.4f')}" for k, v in st["thresholds"].items())
    failed = f"; {st['failed']} resamples had no threshold meeting the target" \
        if st["failed"] else ""
    return (f"resampled tuning split ({st['resamples']}x, central 95%): thresholds {ths}; "
            f"held-out recall {rng(st['held_out_recall'])}, FPR {rng(st['held_out_fpr'])}"
            f"{failed}")
