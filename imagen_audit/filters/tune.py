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

Prompts that do not read as English (:mod:`imagen_audit.filters.language`) can have an
operating point of their own: the embedding backend's ``non_english: [FROM, TO]`` blocks such
a prompt exactly when its score reaches FROM, wherever TO, the English threshold, lies. The
English model cannot tell harmless foreign prompts from harmful ones as it tells English ones
(it blocks 86% of a blind set of harmless prompts in twelve languages at the default's
threshold; filters/README.md), so a team serving other languages tunes FROM on its own
prompts: given :class:`ForeignSets`, the same target (recall or FPR) picks FROM on their tuning
part and is reported on their held-out part. Then, and whenever the policy already sets
``non_english``, the English thresholds are tuned and reported on the main sets' English
prompts only (the foreign ones are decided at FROM, not at the threshold being tuned), and
TO follows the tuned threshold, so the pair always means what it says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.embedding import MAX_PROMPT_CHARS, piecewise_align
from imagen_audit.filters.evaluate import confusion
from imagen_audit.filters.policy import Policy

FIXED_BACKENDS = ("blocklist",)
# The backend whose ``non_english`` option gives foreign prompts a threshold of their own.
NON_ENGLISH_BACKEND = "embedding"
# FROM must lie strictly inside (0, 1) (the option refuses the ends).
_FROM_MIN, _FROM_MAX = 1e-6, 1.0 - 1e-6


def _raw(policy: Policy, prompts: list[str]) -> dict[str, np.ndarray]:
    """Each backend's scores; for a prompt the ``non_english`` option re-mapped, the score
    before the mapping, so that thresholds can be re-decided with another FROM and TO."""
    res = policy.backend_results(prompts)
    return {k: np.array([r.details.get("score_before_non_english", r.score) for r in v],
                        float) for k, v in res.items()}


def _english_mask(prompts: pd.Series) -> np.ndarray:
    """True where a prompt reads as English, as the embedding backend reads it."""
    from imagen_audit.filters.language import reads_english_each

    return np.asarray(reads_english_each([str(p)[:MAX_PROMPT_CHARS] for p in prompts]),
                      dtype=bool)


def _subset(raw: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in raw.items()}


def _at_own_threshold(raw: Mapping[str, np.ndarray], pair: tuple[float, float]
                      ) -> dict[str, np.ndarray]:
    """Scores of non-English prompts as the backend gives them with ``non_english: pair``."""
    out = dict(raw)
    out[NON_ENGLISH_BACKEND] = piecewise_align(np.clip(raw[NON_ENGLISH_BACKEND], 0.0, 1.0),
                                               *pair)
    return out


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


def _round6(x: float, up: bool) -> float:
    """``x`` on 6 decimals (what a policy file keeps), up or down: rounded the wrong way, a
    threshold read back from the file could miss the target it was picked for."""
    if not 0.0 < x < 1.0:
        return x
    r = round(float(np.ceil(x * 1e6) if up else np.floor(x * 1e6)) / 1e6, 6)
    if (r < x) if up else (r > x):  # the float product landed on the wrong side
        r = round(r + (1e-6 if up else -1e-6), 6)
    return float(min(max(r, _FROM_MIN), _FROM_MAX))


def _step_up(x: float, grid: float, passes: Any, top: float) -> float:
    """A threshold that meets a recall target, rounded down to the grid (where the recall can
    only rise), stepped back up by ``grid`` while ``passes`` holds and ``top`` allows."""
    while x + grid <= top and passes(up := round(x + grid, 10)):
        x = up
    return x


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
        if not grid:
            return p
        return put(_step_up(_floor(get(p), grid), grid, lambda v: ok(put(v)), 1.0 + 1e-9))

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


class ForeignSets(NamedTuple):
    """Prompts in the languages a deployment serves, for the ``non_english`` threshold: a
    tuning and a held-out part of harmful and of benign prompts (a kind not given is None).
    Rows that read as English are left out (the English threshold decides them)."""

    tune_harmful: pd.DataFrame | None = None
    tune_benign: pd.DataFrame | None = None
    test_harmful: pd.DataFrame | None = None
    test_benign: pd.DataFrame | None = None


def _from_search(policy: Policy, raw: Mapping[str, np.ndarray], to: float, *,
                 target_recall: float | None, target_fpr: float | None,
                 grid: float | None) -> float:
    """FROM for non-English prompts: with a recall target the highest that still catches the
    target share of ``raw`` (harmful prompts), with an FPR target the lowest that blocks at
    most the target share of ``raw`` (benign prompts). ``policy`` holds the tuned English
    thresholds; ``to`` is the embedding backend's."""
    def flagged(f: float) -> float:
        return _flagged(policy, _at_own_threshold(raw, (f, to)))

    s = np.clip(raw[NON_ENGLISH_BACKEND], _FROM_MIN, _FROM_MAX)
    if target_recall is not None:
        def ok(f: float) -> bool:
            return flagged(f) >= target_recall - 1e-12

        cands = np.unique(np.r_[s, _FROM_MIN])          # ascending; ok holds up to some k
        if not ok(cands[0]):
            raise FilterError(f"tune: no non-English threshold reaches recall "
                              f"{target_recall:.4f} on the tuning part of the non-English "
                              "harmful prompts")
        lo, hi = 0, len(cands) - 1                       # the last index where ok holds
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(cands[mid]) else (lo, mid - 1)
        best = float(cands[lo])
        if grid:
            floored = _floor(best, grid)
            best = _step_up(floored if floored >= _FROM_MIN else best, grid, ok, _FROM_MAX)
        return best

    def fits(f: float) -> bool:
        return flagged(f) <= target_fpr + 1e-12  # type: ignore[operator]

    cands = np.unique(np.r_[np.minimum(np.nextafter(s, 2.0), _FROM_MAX), _FROM_MIN])
    if not fits(cands[-1]):
        raise FilterError(f"tune: even the strictest non-English threshold blocks more than "
                          f"{target_fpr:g} of the tuning part of the non-English benign "
                          "prompts (the other backends alone block too many)")
    lo, hi = 0, len(cands) - 1                           # the first index where fits holds
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(cands[mid]) else (mid + 1, hi)
    return float(cands[lo])


def _foreign_report(policy: Policy, pair: tuple[float, float],
                    harmful: Mapping[str, np.ndarray] | None,
                    benign: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if harmful is not None:
        out["n_harmful"] = len(harmful[NON_ENGLISH_BACKEND])
        out["recall"] = _flagged(policy, _at_own_threshold(harmful, pair))
    if benign is not None:
        out["n_benign"] = len(benign[NON_ENGLISH_BACKEND])
        out["fpr"] = _flagged(policy, _at_own_threshold(benign, pair))
    return out


def tune(policy: Policy, tune_harmful: pd.DataFrame, tune_benign: pd.DataFrame,
         test_harmful: pd.DataFrame, test_benign: pd.DataFrame, *,
         target_fpr: float | None = None, target_recall: float | None = None,
         grid: float | None = None, identity: pd.DataFrame | None = None,
         name: str | None = None, resamples: int = 0, seed: int = 0,
         non_english: ForeignSets | None = None) -> tuple[Policy, dict[str, Any]]:
    """A copy of ``policy`` with tuned thresholds, and a report of both splits. Exactly one
    of ``target_fpr`` and ``target_recall``; ``grid`` (recall targets only) keeps the
    thresholds on multiples of it. With ``resamples`` the report also says how much the pick
    owes to the luck of the tuning split (``stability``: the same search on bootstrap
    resamples of it, and what each resampled pick does on the held-out split). With
    ``non_english`` the same target also picks the ``non_english`` FROM on those prompts (a
    recall target needs their harmful part, an FPR target their benign part); the report's
    ``non_english`` part gives both of their splits."""
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
    emb = next((b for b in policy.backends if b.name == NON_ENGLISH_BACKEND), None)
    kept_pair = None if emb is None else emb.options.get("non_english")
    foreign_mode = non_english is not None or kept_pair is not None
    if foreign_mode and (policy.combine != "any" or emb is None):
        raise FilterError(f"tune: policy {policy.name!r}: non-English prompts get a threshold "
                          f"of their own only from the {NON_ENGLISH_BACKEND} backend of a "
                          "'combine: any' policy")
    if non_english is not None:
        need = ("tune_harmful", "--non-english-harmful") if target_recall is not None \
            else ("tune_benign", "--non-english-benign")
        if getattr(non_english, need[0]) is None:
            raise FilterError(f"tune: a {'recall' if target_recall is not None else 'FPR'} "
                              f"target picks the non-English threshold on non-English "
                              f"{need[0].split('_')[1]} prompts ({need[1]})")
    ident = _raw(policy, identity["prompt"].astype(str).tolist()) if identity is not None \
        else None
    tuned_names = [b.name for b in policy.backends if b.name not in FIXED_BACKENDS]
    if policy.combine == "any" and not tuned_names:
        raise FilterError(f"policy {policy.name!r} has no tunable backend (only "
                          f"{list(FIXED_BACKENDS)})")
    # Every split is scored once; thresholds are then re-decided on the raw scores.
    frames = (tune_harmful, tune_benign, test_harmful, test_benign)
    raw = Splits(*(_raw(policy, df["prompt"].astype(str).tolist()) for df in frames))
    set_aside: dict[str, int] = {}
    if foreign_mode:
        # Foreign prompts are decided at FROM, not at the threshold tuned here: the English
        # thresholds are picked and reported on the English prompts alone.
        masks = [_english_mask(df["prompt"]) for df in frames]
        set_aside = {f: int((~m).sum()) for f, m in zip(Splits._fields, masks, strict=True)}
        raw = Splits(*(_subset(r, m) for r, m in zip(raw, masks, strict=True)))
        for f, r in zip(Splits._fields, raw, strict=True):
            if not len(next(iter(r.values()), [])):
                raise FilterError(f"tune: the {f.replace('_', ' ')} split has no prompt that "
                                  "reads as English (non-English prompts are tuned apart)")

    def search(harmful: Mapping[str, np.ndarray], benign: Mapping[str, np.ndarray]) -> Policy:
        """The pick on one tuning sample (the split itself, or a resample of it)."""
        if target_recall is not None:
            return _recall_search(policy, harmful, tuned_names, target_recall, grid)
        return _fpr_search(policy, benign, ident, tuned_names, target_fpr)  # type: ignore[arg-type]

    new = search(raw.tune_harmful, raw.tune_benign)
    if foreign_mode:
        # On the 6 decimals a policy file keeps, rounded the way that still meets the target,
        # so that the saved pair [FROM, TO] and the saved threshold agree exactly.
        t = next(b.threshold for b in new.backends if b.name == NON_ENGLISH_BACKEND)
        if t is not None:
            new = new.with_thresholds({NON_ENGLISH_BACKEND: _round6(
                t, up=target_recall is None)})
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
    if foreign_mode:
        new, out["non_english"] = _tune_non_english(
            new, non_english, kept_pair, set_aside, target_recall=target_recall,
            target_fpr=target_fpr, grid=grid)
        out["thresholds"] = {b.name: b.threshold for b in new.backends}
    if resamples:
        out["stability"] = _stability(search, raw, policy.combine, tuned_names, resamples, seed)
    return new, out


def _tune_non_english(policy: Policy, sets: ForeignSets | None,
                      kept_pair: Any, set_aside: Mapping[str, int], *,
                      target_recall: float | None, target_fpr: float | None,
                      grid: float | None) -> tuple[Policy, dict[str, Any]]:
    """``policy`` (English thresholds tuned) with ``non_english: [FROM, TO]``: TO its tuned
    embedding threshold; FROM picked on ``sets`` for the target, or else the policy's own."""
    to = next(b.threshold for b in policy.backends if b.name == NON_ENGLISH_BACKEND)
    if to is None or not 0.0 < to < 1.0:
        raise FilterError(f"tune: the tuned {NON_ENGLISH_BACKEND} threshold is {to}; a "
                          "non-English threshold needs one inside (0, 1)")
    to = round(float(to), 6)  # tune() put it on the policy file's 6 decimals
    report: dict[str, Any] = {"main_split_non_english": dict(set_aside)}
    if sets is None:
        frm = float(kept_pair[0])
        report["from_kept"] = True
        parts: dict[str, dict[str, np.ndarray] | None] = {}
    else:
        parts, sizes = {}, {}
        for f in ForeignSets._fields:
            df = getattr(sets, f)
            if df is None:
                parts[f] = None
                continue
            foreign = df[~_english_mask(df["prompt"])]
            sizes[f] = {"given": len(df), "non_english": len(foreign)}
            if foreign.empty:
                raise FilterError(f"tune: the {f.replace('_', ' ')} part of the non-English "
                                  "prompts has none that reads as non-English")
            parts[f] = _raw(policy, foreign["prompt"].astype(str).tolist())
        report["sizes"] = sizes
        search = parts["tune_harmful"] if target_recall is not None else parts["tune_benign"]
        assert search is not None  # checked by tune() before any scoring
        frm = _round6(_from_search(policy, search, to, target_recall=target_recall,
                                   target_fpr=target_fpr, grid=grid), up=target_recall is None)
    pair = (frm, to)
    spec = next(b for b in policy.backends if b.name == NON_ENGLISH_BACKEND)
    new = policy.with_options(NON_ENGLISH_BACKEND,
                              {**spec.options, "non_english": [frm, to]})
    report.update({"from": frm, "to": to})
    if parts:
        report["tuning_split"] = _foreign_report(new, pair, parts["tune_harmful"],
                                                 parts["tune_benign"])
        report["held_out_split"] = _foreign_report(new, pair, parts["test_harmful"],
                                                   parts["test_benign"])
    return new, report


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
