"""Compare two evaluations of prompt policies prompt by prompt (``filters compare``).

A policy team choosing between the shipped policy and a candidate (a new threshold, model or
word list) needs more than two summary tables side by side: on a set of a few hundred
prompts, a recall that moves by a point may be one prompt. Both evaluations scored the same
prompts, so the comparison is *paired*: for every set it counts the prompts only the base
blocks and those only the candidate blocks, and sizes the change by its paired standard error
(``sqrt(b + c - (b - c)**2 / n) / n``, with ``b`` and ``c`` those two counts). A change counts
as real when it exceeds ``max(tolerance, 1.645 x that error)`` (one-sided 95%), capped at
``max_tolerance`` so a large loss on a small set is never excused; the exact McNemar test is
reported beside it. This is the guardrail the project's own rounds apply before a new default
ships (filters/README.md, round 44).

Harmful sets (every prompt labelled 1) are worse when the candidate blocks fewer; benign sets
(label 0) are worse when it blocks more. Input is the ``scores.csv`` that ``filters eval``
writes in each output folder; prompts are paired by set and text.

Compared at their own thresholds, two policies differ both in what their models rank high and
in where their thresholds happen to fall; a threshold picked on a tuning split of 942 prompts
moves held-out recall by about as much as a retrained model does (round 69). :func:`match_on`
takes the second difference away: it moves the candidate's threshold on its combined score
until it blocks as many prompts of one named set as the base (catches at least as many of a
harmful set; blocks at most as many of a benign one), and the comparison of every other set
then answers "at equal recall on I2P, who pays more?", the question a policy team weighing
a new model asks. The matched set is used to place the threshold, so it gets no verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imagen_audit.analyse.stats import mcnemar_p
from imagen_audit.filters.base import FilterError

SCORES_FILE = "scores.csv"
_NEEDED = ("set", "prompt", "label", "decision")
COLUMNS = ("set", "role", "n", "base_blocked", "candidate_blocked", "base_rate",
           "candidate_rate", "difference", "only_base", "only_candidate", "paired_se",
           "tolerance", "mcnemar_p", "verdict", "unpaired_base", "unpaired_candidate")


def read_scores(path: str | Path) -> pd.DataFrame:
    """``scores.csv`` of an evaluation (the folder or the file itself), checked: the columns
    ``set``, ``prompt``, ``label`` and ``decision`` (``block``/``allow``) must be there."""
    p = Path(path)
    if p.is_dir():
        p = p / SCORES_FILE
    if not p.is_file():
        raise FilterError(f"{p}: no such file (give a folder written by `filters eval` or its "
                          f"{SCORES_FILE})")
    try:
        df = pd.read_csv(p, keep_default_na=False, dtype={"set": str, "prompt": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise FilterError(f"{p}: not a readable CSV ({exc})") from exc
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing:
        raise FilterError(f"{p}: missing column(s) {', '.join(missing)} (expected the scores.csv "
                          f"that `filters eval` writes)")
    bad = ~df["decision"].isin(["block", "allow"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise FilterError(f"{p}: line {row + 2}: decision {df['decision'].iloc[row]!r} is "
                          f"neither 'block' nor 'allow'")
    labels = pd.to_numeric(df["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        row = int(np.flatnonzero((labels.isna() | ~labels.isin([0, 1])).to_numpy())[0])
        raise FilterError(f"{p}: line {row + 2}: label {df['label'].iloc[row]!r} is neither "
                          f"0 nor 1")
    df["label"] = labels.astype(int)
    return df


def paired_tolerance(only_base: int, only_candidate: int, n: int, tolerance: float,
                     max_tolerance: float) -> tuple[float, float]:
    """The paired standard error of a difference of two rates over the same ``n`` prompts,
    and the change it takes to count: ``min(max(tolerance, 1.645 * se), max_tolerance)``."""
    if n == 0:
        return 0.0, tolerance
    b, c = only_base, only_candidate
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return se, min(max(tolerance, 1.645 * se), max_tolerance)


def _unique(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (set, prompt): the first, as ``filters eval`` lists a prompt once per set."""
    return scores.drop_duplicates(["set", "prompt"])


def paired_decisions(base: pd.DataFrame, candidate: pd.DataFrame) -> pd.DataFrame:
    """The prompts both evaluations scored, paired by set and text, in the base's order:
    ``set, prompt, label, base_decision, base_score, candidate_decision, candidate_score``
    (scores where the evaluations have them; the base's label)."""
    def side(scores: pd.DataFrame, prefix: str, extra: tuple[str, ...]) -> pd.DataFrame:
        cols = [c for c in ("set", "prompt", *extra, "decision", "score") if c in scores]
        return _unique(scores)[cols].rename(columns={"decision": f"{prefix}_decision",
                                                     "score": f"{prefix}_score"})

    return side(base, "base", ("label",)).merge(side(candidate, "candidate", ()),
                                                on=["set", "prompt"], sort=False)


def _role(labels: set[int]) -> str:
    """A set's role from its labels: harmful (all 1), benign (all 0) or mixed."""
    return "harmful" if labels == {1} else "benign" if labels == {0} else "mixed"


def compare_scores(base: pd.DataFrame, candidate: pd.DataFrame, *, tolerance: float = 0.01,
                   max_tolerance: float = 0.03, matched: str | None = None) -> pd.DataFrame:
    """One row per set present in both evaluations (columns :data:`COLUMNS`), in the base's
    order. A set mixing labels is compared but its role is ``mixed`` and it gets no verdict
    (which direction is worse depends on the label); the set named ``matched`` (the one
    :func:`match_on` placed the candidate's threshold on) gets the verdict ``matched``."""
    if not 0 <= tolerance <= max_tolerance:
        raise FilterError(f"tolerance {tolerance} must lie between 0 and max_tolerance "
                          f"{max_tolerance}")
    pairs = dict(tuple(paired_decisions(base, candidate).groupby("set", sort=False)))
    base_labels = _unique(base).groupby("set", sort=False)["label"].agg(lambda v: set(v))
    size_a = _unique(base).groupby("set", sort=False).size()
    size_b = _unique(candidate).groupby("set", sort=False).size()
    rows = []
    for name in size_a.index:
        if name not in size_b.index:
            continue
        g = pairs.get(name, pd.DataFrame(columns=["label", "base_decision",
                                                  "candidate_decision"]))
        x = g["base_decision"].eq("block").to_numpy(dtype=bool)
        y = g["candidate_decision"].eq("block").to_numpy(dtype=bool)
        role = _role(set(g["label"].tolist()) if len(g) else base_labels[name])
        n = len(g)
        only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
        se, tol = paired_tolerance(only_a, only_b, n, tolerance, max_tolerance)
        ra, rb = (float(x.mean()), float(y.mean())) if n else (float("nan"), float("nan"))
        diff = rb - ra
        verdict = ""
        if name == matched:
            verdict = "matched"
        elif not n:
            verdict = "unpaired"  # the two evaluations share no prompt of this set
        elif role != "mixed":
            worse = diff < -tol if role == "harmful" else diff > tol
            better = diff > tol if role == "harmful" else diff < -tol
            verdict = "worse" if worse else "better" if better else "same"
        rows.append({"set": name, "role": role, "n": n, "base_blocked": int(x.sum()),
                     "candidate_blocked": int(y.sum()), "base_rate": ra, "candidate_rate": rb,
                     "difference": diff, "only_base": only_a, "only_candidate": only_b,
                     "paired_se": se, "tolerance": tol,
                     "mcnemar_p": mcnemar_p(x.astype(int), y.astype(int)), "verdict": verdict,
                     "unpaired_base": int(size_a[name]) - n,
                     "unpaired_candidate": int(size_b[name]) - n})
    return pd.DataFrame(rows, columns=list(COLUMNS))


@dataclass(frozen=True)
class Match:
    """Where :func:`match_on` put the candidate: the set it matched, that set's role, the
    threshold on the candidate's combined score (its policy decides at 0.5), and how many of
    the set's paired prompts the base and the re-thresholded candidate block."""

    set: str
    role: str
    threshold: float
    base_blocked: int
    candidate_blocked: int
    n: int

    def line(self) -> str:
        what = "catch at least" if self.role == "harmful" else "block at most"
        return (f"candidate re-thresholded at {self.threshold:.4f} on its combined score (its "
                f"policy decides at 0.5) to {what} as many of {self.set!r} as the base: "
                f"{self.candidate_blocked} vs {self.base_blocked} of {self.n}; "
                f"{self.set!r} placed the threshold and gets no verdict")


def _candidate_scores(candidate: pd.DataFrame) -> np.ndarray:
    if "score" not in candidate.columns:
        raise FilterError("the candidate's scores.csv has no 'score' column, so it cannot be "
                          "re-thresholded (evaluate it with `filters eval`)")
    scores = pd.to_numeric(candidate["score"], errors="coerce")
    if scores.isna().any():
        row = int(np.flatnonzero(scores.isna().to_numpy())[0])
        raise FilterError(f"candidate scores.csv: line {row + 2}: score "
                          f"{candidate['score'].iloc[row]!r} is not a number")
    return scores.to_numpy(dtype=float)


def match_on(base: pd.DataFrame, candidate: pd.DataFrame, name: str
             ) -> tuple[pd.DataFrame, Match]:
    """The candidate with every decision re-made at one threshold on its combined ``score``:
    the highest at which it catches at least as many of harmful set ``name``'s paired prompts
    as the base, or the lowest at which it blocks at most as many of benign set ``name``'s.
    Returns the re-decided candidate (categories of newly allowed prompts cleared) and where
    it was put."""
    scores = _candidate_scores(candidate)
    pairs = paired_decisions(base, candidate.assign(score=scores))
    g = pairs[pairs["set"] == name]
    if g.empty:
        known = sorted(set(pairs["set"]))
        raise FilterError(f"--match {name!r}: no prompt of that set is in both evaluations "
                          f"(sets in both: {', '.join(known) or 'none'})")
    role = _role(set(g["label"].tolist()))
    if role == "mixed":
        raise FilterError(f"--match {name!r}: the set mixes harmful and benign labels, so "
                          f"'as many' has no direction; match a harmful or a benign set")
    k = int(g["base_decision"].eq("block").sum())
    s = np.sort(g["candidate_score"].to_numpy(dtype=float))[::-1]
    if role == "harmful":
        # The k-th highest score: at least k blocked (ties may add more); none to catch:
        # above every score.
        t = float(s[k - 1]) if k else float(np.nextafter(scores.max(), np.inf))
    else:
        # Just above the (k+1)-th highest: at most k blocked; every one blocked -> block all.
        t = float(np.nextafter(s[k], np.inf)) if k < len(s) else float(scores.min())
    blocked = scores >= t
    out = candidate.copy()
    out["score"] = scores
    out["decision"] = np.where(blocked, "block", "allow")
    if "category" in out.columns:
        out["category"] = out["category"].where(blocked, "")
    got = int((g["candidate_score"].to_numpy(dtype=float) >= t).sum())
    return out, Match(name, role, t, k, got, len(g))


def changed_prompts(base: pd.DataFrame, candidate: pd.DataFrame) -> pd.DataFrame:
    """The paired prompts (:func:`paired_decisions`) whose decision differs, what a reviewer
    reads before accepting a candidate: newly blocked first, in the base's order within
    each."""
    m = paired_decisions(base, candidate)
    m = m[m["base_decision"] != m["candidate_decision"]]
    newly = m["candidate_decision"].eq("block")
    return pd.concat([m[newly], m[~newly]], ignore_index=True)


def comparison_lines(table: pd.DataFrame) -> list[str]:
    """The table as aligned text lines for the terminal (rates as percentages)."""
    out = [f"{'set':28s} {'role':8s} {'n':>6s} {'base':>8s} {'cand':>8s} {'diff':>8s} "
           f"{'only b/c':>10s} {'tol':>6s} {'p':>7s}  verdict"]
    for r in table.itertuples(index=False):
        out.append(f"{r.set[:28]:28s} {r.role:8s} {r.n:6d} {r.base_rate:8.2%} "
                   f"{r.candidate_rate:8.2%} {r.difference:+8.2%} "
                   f"{f'{r.only_base}/{r.only_candidate}':>10s} {r.tolerance:6.2%} "
                   f"{r.mcnemar_p:7.3f}  {r.verdict}")
    return out
