"""Two runs on common ground: the prompts and stages both have, and which units pair up.

Runs with different probe sets compare on the **intersection** of their prompt ids (and of
their annotated stages); everything left out is listed. Units pair when both runs have an
image of the same prompt id, seed and stage: runs made with the same probes and ``--seed``
share every sample id and seed, so a mitigation run pairs sample by sample with the run it
mitigates, while runs made with different seeds share no pair and compare as independent
samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_LISTED = 200


@dataclass
class Common:
    """What the two annotation tables have in common, and what was left out."""

    baseline: pd.DataFrame
    candidate: pd.DataFrame
    prompts: list[str]
    stages: list[int]
    left_out: dict[str, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def intersect(ann0: pd.DataFrame, ann1: pd.DataFrame) -> Common:
    """Keep the rows of prompt ids and stages present in both annotation tables."""
    p0 = set(map(str, ann0["prompt_id"].dropna()))
    p1 = set(map(str, ann1["prompt_id"].dropna()))
    s0 = {int(s) for s in pd.to_numeric(ann0["stage"]).dropna()}
    s1 = {int(s) for s in pd.to_numeric(ann1["stage"]).dropna()}
    prompts, stages = sorted(p0 & p1), sorted(s0 & s1)
    only0, only1 = sorted(p0 - p1), sorted(p1 - p0)
    notes = []
    if only0 or only1:
        notes.append(f"compared on the {len(prompts)} prompts both runs have; left out "
                     f"{len(only0)} prompts only in the baseline and {len(only1)} only in "
                     "the candidate")
    if s0 != s1:
        notes.append(f"compared on stages {stages}; stages {sorted(s0 ^ s1)} are annotated "
                     "in one run only")

    def keep(t: pd.DataFrame) -> pd.DataFrame:
        return t[t["prompt_id"].astype(str).isin(prompts)
                 & pd.to_numeric(t["stage"]).isin(stages)].reset_index(drop=True)

    return Common(keep(ann0), keep(ann1), prompts, stages,
                  {"baseline_only_prompts": only0[:MAX_LISTED],
                   "candidate_only_prompts": only1[:MAX_LISTED],
                   "n_baseline_only_prompts": len(only0), "n_candidate_only_prompts": len(only1),
                   "baseline_only_stages": sorted(s0 - s1),
                   "candidate_only_stages": sorted(s1 - s0)}, notes)


def stack(units0: pd.DataFrame, units1: pd.DataFrame) -> pd.DataFrame:
    """Both runs' units in one table with ``run`` (0 baseline, 1 candidate) and ``cluster``
    (an integer code of prompt id, seed and stage, shared by the two runs' units of a pair)."""
    both = pd.concat([units0.assign(run=0), units1.assign(run=1)], ignore_index=True)
    seed = pd.to_numeric(both["seed"] if "seed" in both else pd.Series(np.nan, both.index),
                         errors="coerce")
    key = (both["prompt_id"].astype(str) + "\0" + seed.astype("Int64").astype(str) + "\0"
           + both["stage"].astype(str))
    # A unit without a seed never pairs: its image id makes its key unique to its run.
    key = key.where(seed.notna(), "lone\0" + both["run"].astype(str) + "\0"
                    + both["image_id"].astype(str))
    both["cluster"] = pd.factorize(key)[0].astype(np.int64)
    return both


def pairing_summary(stacked: pd.DataFrame, stage: int | None) -> dict[str, int | bool]:
    """How many units of the headline stage pair up."""
    s = stacked if stage is None else stacked[stacked["stage"] == stage]
    runs_per_cluster = s.groupby("cluster")["run"].nunique()
    n_pairs = int((runs_per_cluster == 2).sum())
    n0, n1 = int((s["run"] == 0).sum()), int((s["run"] == 1).sum())
    return {"paired": n_pairs > 0, "n_pairs": n_pairs, "n_baseline_units": n0,
            "n_candidate_units": n1, "n_unpaired_baseline": n0 - n_pairs,
            "n_unpaired_candidate": n1 - n_pairs}
