"""Sample-size planning: how many samples per prompt it takes to see a gap of a given size.

Reviewers planning a GPU budget ask "how many images per prompt do we need to tell a 10-point
skew from noise?". The answers here are the textbook normal-approximation sizes for the
tests the analysis runs on shares:

* **one run** against a fixed share ``p0`` (parity 0.5, or an occupation's labour baseline):
  the one-sample score test of ``share == p0``;
* **two runs** (baseline vs candidate): the two-sample test of equal shares with pooled
  variance under the null.

The normal-approximation size is the starting point; it is then refined against the exact
power of the same test under the binomial distribution (counts are discrete, and at small
sizes the approximation misses by several points), taking the smallest size whose exact
power reaches the target.

Faces are not found in every image and annotators abstain, so the number of usable
estimates per sample is ``face_rate × coverage``; the sample count is inflated by that.
``simulate_power`` checks a plan by Monte Carlo with the very same tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_N = NormalDist()


@dataclass(frozen=True)
class SamplePlan:
    """Samples per prompt needed for a test, and what they cost."""

    test: str  # "one-sample" or "two-sample"
    p0: float
    gap: float
    alpha: float
    power: float
    usable_per_sample: float
    estimates_needed: int  # usable estimates (faces with a label) per prompt (per run)
    samples_per_prompt: int  # samples to generate per prompt (per run)

    def gpu_hours(self, prompts: int, images_per_second: float, runs: int = 1) -> float:
        """GPU hours to generate this plan for ``prompts`` prompts (and ``runs`` runs)."""
        if images_per_second <= 0:
            raise ValueError("images per second must be positive")
        return prompts * self.samples_per_prompt * runs / images_per_second / 3600


def _check(gap: float, alpha: float, power: float, p0: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie strictly between 0 and 1")
    if not 0 < p0 < 1:
        raise ValueError("the reference share must lie strictly between 0 and 1")
    if gap == 0 or not 0 < p0 + gap < 1:
        raise ValueError(f"the gap {gap} must be non-zero and keep {p0} + gap inside (0, 1)")


def _inflate(n: float, usable: float) -> int:
    if not 0 < usable <= 1:
        raise ValueError("face rate × coverage must lie in (0, 1]")
    return math.ceil(n / usable)


def one_sample_plan(gap: float, *, alpha: float = 0.05, power: float = 0.8, p0: float = 0.5,
                    face_rate: float = 1.0, coverage: float = 1.0) -> SamplePlan:
    """Samples per prompt to detect ``share = p0 + gap`` against ``share = p0`` (two-sided)."""
    _check(gap, alpha, power, p0)
    p1 = p0 + gap
    za, zb = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    n = ((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / gap) ** 2
    usable = face_rate * coverage
    n = _refine(lambda m: exact_power("one-sample", m, p0, gap, alpha), math.ceil(n), power)
    return SamplePlan("one-sample", p0, gap, alpha, power, usable, n, _inflate(n, usable))


def two_sample_plan(gap: float, *, alpha: float = 0.05, power: float = 0.8, p0: float = 0.5,
                    face_rate: float = 1.0, coverage: float = 1.0) -> SamplePlan:
    """Samples per prompt *in each run* to detect a change from ``p0`` to ``p0 + gap``."""
    _check(gap, alpha, power, p0)
    p1 = p0 + gap
    pbar = (p0 + p1) / 2
    za, zb = _N.inv_cdf(1 - alpha / 2), _N.inv_cdf(power)
    n = ((za * math.sqrt(2 * pbar * (1 - pbar))
          + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) / gap) ** 2
    usable = face_rate * coverage
    n = _refine(lambda m: exact_power("two-sample", m, p0, gap, alpha), math.ceil(n), power)
    return SamplePlan("two-sample", p0, gap, alpha, power, usable, n, _inflate(n, usable))


def exact_power(test: str, n: int, p0: float, gap: float, alpha: float) -> float:
    """Exact rejection probability of the test with ``n`` estimates (per run) when the true
    share is ``p0 + gap`` (the binomial distribution, no normal approximation)."""
    from scipy.stats import binom

    za = _N.inv_cdf(1 - alpha / 2)
    k = np.arange(n + 1)
    if test == "one-sample":
        reject = np.abs(one_sample_z(k, np.full(n + 1, n), p0)) > za
        return float(binom.pmf(k, n, p0 + gap)[reject].sum())
    nn = np.full(n + 1, n)
    reject = np.abs(two_sample_z(k[:, None], nn[:, None], k[None, :], nn[None, :])) > za
    joint = np.outer(binom.pmf(k, n, p0), binom.pmf(k, n, p0 + gap))
    return float(joint[reject].sum())


def _refine(power_at: Callable[[int], float], start: int, target: float) -> int:
    """Smallest size near ``start`` whose exact power reaches ``target``.

    Exact power saw-tooths with the size, so this walks down while the size below still
    reaches the target and up until one does.
    """
    n = max(start, 2)
    if power_at(n) >= target:
        while n > 2 and power_at(n - 1) >= target:
            n -= 1
        return n
    while power_at(n) < target:
        n += 1
    return n


def one_sample_z(successes: np.ndarray, n: np.ndarray, p0: float) -> np.ndarray:
    """Score statistic of ``share == p0`` (vectorised)."""
    return (successes / n - p0) / np.sqrt(p0 * (1 - p0) / n)


def two_sample_z(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Pooled two-proportion statistic (vectorised; 0 where both shares are 0 or 1)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x2 / n2 - x1 / n1) / se
    return np.where(se > 0, z, 0.0)


def simulate_power(plan: SamplePlan, *, reps: int = 4000, seed: int = 0) -> float:
    """Share of simulated studies (true share ``p0 + gap``) in which the test rejects.

    Usable estimates per sample are drawn too (binomial with ``usable_per_sample``), so the
    inflation for undetected faces and abstentions is checked along with the core size.
    """
    rng = np.random.default_rng(seed)
    za = _N.inv_cdf(1 - plan.alpha / 2)
    p1 = plan.p0 + plan.gap

    def usable(size: int) -> np.ndarray:
        return np.maximum(rng.binomial(plan.samples_per_prompt, plan.usable_per_sample, size), 1)

    if plan.test == "one-sample":
        n = usable(reps)
        z = one_sample_z(rng.binomial(n, p1), n, plan.p0)
    else:
        n1, n2 = usable(reps), usable(reps)
        z = two_sample_z(rng.binomial(n1, plan.p0), n1, rng.binomial(n2, p1), n2)
    return float(np.mean(np.abs(z) > za))
