"""Synthetic annotation tables with planted effects, for tests, benchmarks and demos.

The table has the columns of ``RunStore.annotations_table()``. Everything planted is known
(true share perceived female per occupation, tone-band probabilities, face-detection and
abstention probabilities, ITA shift between stages), so the analysis can be checked
against the truth. Nothing here is a measurement of any model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from imagen_audit.analyse.units import ITA_CATEGORIES


def _ita_category(ita: np.ndarray) -> np.ndarray:
    edges = np.array([-30, 10, 28, 41, 55])  # dark < -30 ≤ brown < 10 ≤ tan < 28 ...
    idx = np.digitize(ita, edges)  # 0 → dark ... 5 → very light
    return np.array(ITA_CATEGORIES[::-1], dtype=object)[idx]


def synthetic_annotations(
    n_occupations: int = 10,
    samples_per_occupation: int = 100,
    *,
    share_female: Mapping[str, float] | np.ndarray | None = None,
    tone_probs: tuple[float, float, float] = (0.6, 0.3, 0.1),
    detection_rate: float = 0.95,
    gender_abstention: float = 0.05,
    tone_abstention: float = 0.05,
    stages: tuple[int, ...] = (1, 2),
    ita_shift: float = 0.0,
    flip_rate: float = 0.0,
    multi_face_rate: float = 0.0,
    identity_terms: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (annotations, baselines) for ``n_occupations`` occupations ``occ00``, ...

    ``share_female`` is the true probability that a face is perceived female, per
    occupation (array or mapping; default: the baseline itself, i.e. no gap). Baselines
    are spread evenly from 0.1 to 0.9. Stage ``s`` adds ``ita_shift * (s - 1)`` degrees to
    each face's ITA and flips perceived gender with probability ``flip_rate`` per stage.
    """
    rng = np.random.default_rng(seed)
    occ = [f"occ{i:02d}" for i in range(n_occupations)]
    base = np.linspace(0.1, 0.9, n_occupations) if n_occupations > 1 else np.array([0.5])
    if share_female is None:
        truth = base.copy()
    elif isinstance(share_female, Mapping):
        truth = np.array([share_female.get(o, b) for o, b in zip(occ, base, strict=True)])
    else:
        truth = np.asarray(share_female, dtype=float)
    baselines = pd.DataFrame({"occupation_id": occ, "occupation": [f"occupation {o}" for o in occ],
                              "baseline_women": base, "baseline_white": np.nan,
                              "baseline_black": np.nan, "baseline_asian": np.nan,
                              "baseline_hispanic_or_latino": np.nan})
    groups = [(o, None, t) for o, t in zip(occ, truth, strict=True)]
    groups += [(o, ident, t) for ident in identity_terms for o, t in zip(occ, truth, strict=True)]
    n_groups = len(groups)
    k = samples_per_occupation
    g_idx = np.repeat(np.arange(n_groups), k)
    s_idx = np.tile(np.arange(k), n_groups)
    occ_col = np.array([g[0] for g in groups], dtype=object)[g_idx]
    ident_col = np.array([g[1] for g in groups], dtype=object)[g_idx]
    p_f = np.array([g[2] for g in groups])[g_idx]
    prompt_ids = np.array([f"occupations/face/{o}" if i is None else
                           f"identities/face/{i}+{o}" for o, i, _ in groups], dtype=object)
    prompt_col = prompt_ids[g_idx]
    prompts = np.array([f"a photo of the face of a {o}" if i is None else
                        f"a photo of the face of a {i} {o}" for o, i, _ in groups],
                       dtype=object)[g_idx]
    n = len(g_idx)
    sample_id = np.array([hashlib.sha1(f"{p}\0{s}".encode()).hexdigest()[:20]
                          for p, s in zip(prompt_col, s_idx, strict=True)], dtype=object)
    # Per-sample truth, shared by all stages (the same face, upscaled).
    detected = rng.random(n) < detection_rate
    female = rng.random(n) < p_f
    band = rng.choice(3, size=n, p=np.asarray(tone_probs) / np.sum(tone_probs))
    lo_hi = np.array([[1, 3], [4, 7], [8, 10]])
    monk_tone = rng.integers(lo_hi[band, 0], lo_hi[band, 1] + 1)
    ita0 = 60 - (monk_tone - 1) * 10 + rng.normal(0, 4, n)
    extra = rng.random(n) < multi_face_rate
    frames = []
    for stage in stages:
        step = stage - stages[0]
        flipped = female ^ (rng.random(n) < flip_rate * step) if flip_rate else female
        gender = np.where(flipped, "female", "male").astype(object)
        gender[rng.random(n) < gender_abstention] = "unknown"
        tone = monk_tone.astype(float)
        tone[rng.random(n) < tone_abstention] = np.nan
        ita = ita0 + ita_shift * step + rng.normal(0, 1, n)
        n_faces = np.where(detected, 1 + extra.astype(int), 0)
        frame = pd.DataFrame({
            "image_id": [f"{s}-s{stage}" for s in sample_id], "sample_id": sample_id,
            "prompt_id": prompt_col, "prompt": prompts,
            "family": np.where(ident_col == None, "occupations", "identities"),  # noqa: E711
            "template_id": "face", "occupation_id": occ_col, "identity_id": ident_col,
            "identity_axis": np.where(ident_col == None, None, "gender"),  # noqa: E711
            "sample_index": s_idx, "seed": s_idx + 1000, "stage": stage,
            "stage_name": f"stage{stage}",
            "path": [f"images/stage{stage}/{s[:2]}/{s}.png" for s in sample_id],
            "annotator": "synthetic", "n_faces": n_faces,
            "face_index": np.where(detected, 0, np.nan),
            "box_left": np.where(detected, 10.0, np.nan),
            "box_top": np.where(detected, 10.0, np.nan),
            "box_right": np.where(detected, 50.0, np.nan),
            "box_bottom": np.where(detected, 50.0, np.nan),
            "detection_score": np.where(detected, 0.9, np.nan),
            "perceived_gender": np.where(detected, gender, None),
            "gender_probability": np.where(detected, 0.9, np.nan),
            "p_female": np.where(detected, np.where(gender == "female", 0.9, 0.1), np.nan),
            "monk_tone": np.where(detected, tone, np.nan),
            "ita": np.where(detected, ita, np.nan),
            "ita_category": np.where(detected, _ita_category(ita), None),
            "tone_confidence": np.where(detected, 0.8, np.nan),
        })
        if extra.any():
            # A second, smaller face (a background figure): the analysis must ignore it.
            second = frame[extra & detected].copy()
            second["face_index"] = 1
            second["box_right"] = 20.0
            second["box_bottom"] = 20.0
            second["perceived_gender"] = "male"
            second["monk_tone"] = 10.0
            frames.append(second)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["monk_tone"] = table["monk_tone"].astype("Int64")
    return table, baselines
