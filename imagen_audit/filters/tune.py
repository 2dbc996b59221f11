"""Pick policy thresholds for a target false-positive rate on one split; report on another.

:func:`tune` never picks and reports on the same prompts: the caller passes a *tuning*
split and a *held-out* split (the CLI makes them with
:func:`~imagen_audit.filters.datasets.split_by_prompt`, so near-identical prompts never
straddle the two). Continuous backends (``embedding``, ``profanity``, ``detoxify``) are
tuned; the ``blocklist`` keeps its threshold (its weights are reviewed by people, not
fitted). For ``combine: any`` with several tuned backends, their thresholds move together
along their own benign-score quantiles; for ``combine: weighted`` the policy threshold is
tuned. The chosen thresholds are the most permissive that keep the tuning split's FPR at or
below the target (and, when ``identity`` prompts are given, block none of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.evaluate import confusion
from imagen_audit.filters.policy import Policy

FIXED_BACKENDS = ("blocklist",)


def _raw(policy: Policy, prompts: list[str]) -> dict[str, np.ndarray]:
    res = policy.backend_results(prompts)
    return {k: np.array([r.score for r in v], float) for k, v in res.items()}


def _fpr(policy: Policy, raw: Mapping[str, np.ndarray]) -> float:
    s = policy.combine_scores(raw)
    return float((s >= 0.5).mean()) if len(s) else 0.0


def tune(policy: Policy, tune_harmful: pd.DataFrame, tune_benign: pd.DataFrame,
         test_harmful: pd.DataFrame, test_benign: pd.DataFrame, *, target_fpr: float,
         identity: pd.DataFrame | None = None, name: str | None = None
         ) -> tuple[Policy, dict[str, Any]]:
    """A copy of ``policy`` with tuned thresholds, and a report of both splits."""
    if not 0.0 <= target_fpr < 1.0:
        raise FilterError(f"--target-fpr must be in [0, 1), got {target_fpr}")
    overlap = set(tune_benign["prompt"]) & set(test_benign["prompt"]) | \
        set(tune_harmful["prompt"]) & set(test_harmful["prompt"])
    if overlap:
        raise FilterError(f"tune: {len(overlap)} prompts are in both the tuning and the "
                          "held-out split")
    benign = _raw(policy, tune_benign["prompt"].astype(str).tolist())
    ident = _raw(policy, identity["prompt"].astype(str).tolist()) if identity is not None \
        else None

    def ok(p: Policy) -> bool:
        if _fpr(p, benign) > target_fpr + 1e-12:
            return False
        return ident is None or _fpr(p, ident) == 0.0

    tuned_names = [b.name for b in policy.backends if b.name not in FIXED_BACKENDS]
    if policy.combine == "weighted":
        total = sum(b.weight for b in policy.backends)
        mean = sum(b.weight * benign[b.name] for b in policy.backends) / total
        cands = np.unique(np.r_[mean, 1.0])
        chosen = None
        for t in cands:  # ascending: the first that passes is the most permissive
            p = policy.with_thresholds({}, combined=float(np.nextafter(t, 2.0)))
            if ok(p):
                chosen = p
                break
        new = chosen or policy.with_thresholds({}, combined=1.0)
    else:
        if not tuned_names:
            raise FilterError(f"policy {policy.name!r} has no tunable backend (only "
                              f"{list(FIXED_BACKENDS)})")
        # q = share of tuning-benign prompts each tuned backend alone may flag.
        def at(q: float) -> Policy:
            th = {n: 1.0 if q <= 0 else
                  float(min(1.0, np.nextafter(np.quantile(benign[n], 1.0 - q), 2.0)))
                  for n in tuned_names}
            return policy.with_thresholds(th)

        lo, hi = 0.0, 1.0
        if not ok(at(0.0)):
            raise FilterError("tune: even the strictest thresholds exceed the target on the "
                              "tuning split (the fixed backends alone block too much, or block "
                              "identity prompts)")
        for _ in range(30):  # bisection on q: FPR grows with q
            mid = (lo + hi) / 2
            if ok(at(mid)):
                lo = mid
            else:
                hi = mid
        new = at(lo)
    new = new.with_thresholds({}, name=name or f"{policy.name}-fpr{target_fpr:g}",
                              description=f"{policy.description} Thresholds tuned by "
                              f"imagen-audit filters tune for FPR <= {target_fpr:g} on a "
                              "tuning split.".strip())

    def report(harm: pd.DataFrame, ben: pd.DataFrame) -> dict[str, Any]:
        h = new.score_frame(harm["prompt"].astype(str).tolist())["score"].to_numpy()
        b = new.score_frame(ben["prompt"].astype(str).tolist())["score"].to_numpy()
        y = np.r_[np.ones(len(h)), np.zeros(len(b))]
        return confusion(y, np.r_[h, b] >= 0.5)

    out = {"target_fpr": target_fpr,
           "thresholds": {b.name: b.threshold for b in new.backends},
           "combined_threshold": new.threshold,
           "tuning_split": report(tune_harmful, tune_benign),
           "held_out_split": report(test_harmful, test_benign),
           "sizes": {"tune_harmful": len(tune_harmful), "tune_benign": len(tune_benign),
                     "test_harmful": len(test_harmful), "test_benign": len(test_benign)}}
    if identity is not None:
        out["identity_blocked_on_tuning_constraint"] = 0
    return new, out
