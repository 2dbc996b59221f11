"""The whole analysis on synthetic annotation tables with planted effects (and on null data)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from imagen_audit.analyse import AnalysisConfig, adjust, analyse, to_json
from imagen_audit.analyse.synthetic import synthetic_annotations
from imagen_audit.analyse.units import tone_band, units_from_annotations

FAST = AnalysisConfig(n_boot=200)


def test_units_take_the_primary_face_and_flag_abstentions() -> None:
    ann, _ = synthetic_annotations(2, 40, stages=(1,), multi_face_rate=0.5, seed=1)
    units = units_from_annotations(ann)
    assert units["image_id"].is_unique and len(units) == 80
    multi = units[units["n_faces"] == 2]
    assert len(multi) > 0
    # The planted background face (small box, always 'male', Monk 10) never wins.
    first = ann[ann["face_index"] == 0].set_index("image_id")
    assert (multi.set_index("image_id")["monk_tone"]
            == first.loc[multi["image_id"], "monk_tone"].astype(float)).all()
    no_face = units[~units["face_detected"]]
    assert no_face["gender_label"].isna().all() and no_face["gender_abstained"].isna().all()
    unknown = units["face_detected"] & (units["perceived_gender"] == "unknown")
    assert (units.loc[unknown, "gender_abstained"] == True).all()  # noqa: E712
    assert units.loc[unknown, "gender_label"].isna().all()


def test_tone_bands_default_and_configurable() -> None:
    monk = pd.Series([1, 3, 4, 7, 8, 10, None])
    assert list(tone_band(monk)[:6]) == ["light", "light", "medium", "medium", "dark", "dark"]
    assert pd.isna(tone_band(monk)[6])
    custom = tone_band(monk, {"a": (1, 5), "b": (6, 10)})
    assert list(custom[:6]) == ["a", "a", "a", "b", "b", "b"]
    with pytest.raises(ValueError):
        tone_band(monk, {"a": (1, 5), "b": (7, 10)})  # 6 uncovered


def test_planted_baseline_gaps_are_found_and_null_occupations_are_not() -> None:
    n_occ = 12
    planted = {"occ00": 0.55, "occ11": 0.45}  # baselines 0.10 and 0.90
    ann, base = synthetic_annotations(n_occ, 150, share_female=planted, stages=(1,), seed=5,
                                      gender_abstention=0.0, detection_rate=1.0)
    result = analyse(ann, base, config=FAST)
    b = result.baselines.set_index("occupation_id")
    for occ, p in planted.items():
        assert b.loc[occ, "lo"] <= p <= b.loc[occ, "hi"]
        assert b.loc[occ, "q_baseline"] < 0.05
    # Planted shares pull towards parity: amplification is negative there.
    assert b.loc["occ00", "amplification"] < 0 and b.loc["occ11", "amplification"] < 0
    gaps = {f.group["occupation_id"] for f in result.findings if f.kind == "baseline_gap"}
    assert gaps == set(planted)
    finding = next(f for f in result.findings if f.kind == "baseline_gap")
    assert finding.prompt_ids == [f"occupations/face/{finding.group['occupation_id']}"]
    assert len(finding.sample_ids) == int(b.loc[finding.group["occupation_id"], "n"])


def test_stereotype_amplification_is_detected() -> None:
    base_share = np.linspace(0.1, 0.9, 10)
    pushed = np.clip(0.5 + (base_share - 0.5) * 1.8, 0.01, 0.99)  # exaggerate the spread
    ann, base = synthetic_annotations(10, 200, share_female=pushed, stages=(1,), seed=9)
    result = analyse(ann, base, config=FAST)
    amp = result.amplification
    assert amp["lo"] > 0 and amp["slope"] > 1.3
    kinds = {f.kind for f in result.findings}
    assert "amplification" in kinds


def test_small_samples_are_never_findings() -> None:
    ann, base = synthetic_annotations(3, 12, share_female=[0.95, 0.5, 0.05], stages=(1,),
                                      seed=2)
    result = analyse(ann, base, config=FAST)
    assert result.baselines["small_sample"].all()
    assert result.baselines["q_baseline"].isna().all()
    assert result.findings == []


def test_null_data_gives_few_false_findings() -> None:
    """Every occupation at its baseline: BH-corrected baseline findings stay rare."""
    false_runs = 0
    runs = 20
    for seed in range(runs):
        ann, base = synthetic_annotations(30, 60, stages=(1,), seed=1000 + seed,
                                          gender_abstention=0.0, detection_rate=1.0)
        result = analyse(ann, base, config=AnalysisConfig(n_boot=20, min_effect=0.0))
        false_runs += any(f.kind == "baseline_gap" for f in result.findings)
    assert false_runs <= 4  # expected ≈ alpha × runs = 1


def test_stage_drift_recovers_a_planted_shift_and_flips() -> None:
    ann, base = synthetic_annotations(4, 80, stages=(1, 2, 3), ita_shift=-6.0, flip_rate=0.1,
                                      seed=11)
    result = analyse(ann, base, config=FAST)
    d = result.drift
    overall = d[(d["group"] == "(all)") & (d["measure"] == "ita")]
    assert len(overall) == 2
    assert ((overall["lo"] <= -6.0) & (overall["hi"] >= -6.0)).all()
    flips = d[(d["group"] == "(all)") & (d["measure"] == "gender_flip_rate")]
    # Stage s flips each sample's stage-1 label with probability 0.1 (s - 1), independently:
    # 1→2 differ with p 0.1; 2→3 with p 0.1 × 0.8 + 0.9 × 0.2 = 0.26.
    for (_, row), p in zip(flips.iterrows(), (0.1, 0.26), strict=True):
        assert row["lo"] <= p <= row["hi"]
    assert any(f.kind == "drift_ita" for f in result.findings)
    assert result.stage == 3
    # No shift planted: the interval holds zero and nothing is reported.
    ann0, _ = synthetic_annotations(4, 80, stages=(1, 2), seed=12)
    d0 = analyse(ann0, base, config=FAST).drift
    row = d0[(d0["group"] == "(all)") & (d0["measure"] == "ita")].iloc[0]
    assert row["lo"] <= 0 <= row["hi"]


def test_detection_rate_per_identity_term_is_a_finding() -> None:
    ann, base = synthetic_annotations(5, 60, identity_terms=("wheelchair_user", "woman"),
                                      stages=(1,), seed=4)
    mask = ann["identity_id"] == "wheelchair_user"
    rng = np.random.default_rng(0)
    lost = mask & (rng.random(len(ann)) < 0.6)
    for col in ("face_index", "perceived_gender", "monk_tone", "ita"):
        ann.loc[lost, col] = None
    ann.loc[lost, "n_faces"] = 0
    result = analyse(ann, base, config=FAST)
    iv = result.by["identity_id"]
    rate = iv[(iv["metric"] == "face_detection_rate")].set_index("identity_id")["value"]
    assert rate["wheelchair_user"] < 0.5 < rate["woman"]
    hits = [f for f in result.findings if f.kind == "face_detection_rate"]
    assert {f.group.get("identity_id") for f in hits if "identity_id" in f.group} \
        == {"wheelchair_user"}


def _misclassify(labels: np.ndarray, confusion: np.ndarray, names: list[str],
                 rng: np.random.Generator) -> np.ndarray:
    rates = confusion / confusion.sum(axis=1, keepdims=True)
    out = np.empty(len(labels), dtype=object)
    for i, name in enumerate(["female", "male"]):
        idx = np.flatnonzero(labels == name)
        out[idx] = rng.choice(names, size=len(idx), p=rates[i])
    return out


@pytest.mark.parametrize("layout", ["square", "validate-annotators"])
def test_misclassification_adjusted_share_recovers_the_truth(layout: str) -> None:
    rng = np.random.default_rng(21)
    n, p_true = 4000, 0.30
    truth = np.where(rng.random(n) < p_true, "female", "male")
    if layout == "square":
        confusion = np.array([[120, 80], [20, 180]])  # 60% / 90% correct
        names = ["female", "male"]
        validation = {"gender": {"labels": names, "overall": {"confusion": confusion.tolist()}}}
    else:
        confusion = np.array([[110, 60, 25, 5], [15, 170, 10, 5]])
        names = ["female", "male", "unknown", "no_face"]
        validation = {"schema": "imagen-audit/validation/1", "gender": {
            "true_labels": ["female", "male"], "predicted_labels": names,
            "overall": {"confusion": confusion.tolist(), "n": 400},
            "groups": {"Black": {"confusion": confusion.tolist()}}}}
    observed = _misclassify(truth, confusion, names, rng)
    units = pd.DataFrame({"gender_label": np.where(np.isin(observed, ["female", "male"]),
                                                   observed, None)})
    sets = adjust.load_validation(validation)
    table = adjust.adjusted_shares(units, "gender_label", sets["gender"], n_boot=300)
    row = table[table["label"] == "female"].iloc[0]
    assert abs(row["observed"] - p_true) > 0.05  # the raw share is biased
    assert row["lo"] <= p_true <= row["hi"]
    assert row["adjusted"] == pytest.approx(p_true, abs=0.03)


def test_validation_loader_names_the_problem(tmp_path) -> None:
    bad = {"gender": {"labels": ["female", "male"], "overall": {"confusion": [[1, 2, 3]]}}}
    with pytest.raises(adjust.ValidationFileError, match="shape"):
        adjust.load_validation(bad)
    with pytest.raises(adjust.ValidationFileError, match="no such file"):
        adjust.load_validation(tmp_path / "missing.json")
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"gender": {"labels": ["female", "male"],
                                           "overall": {"confusion": [[5, 0], [0, 0]]}}}))
    with pytest.raises(adjust.ValidationFileError, match="no validation examples"):
        adjust.load_validation(path)


def test_analysis_json_is_strict_json_and_traceable() -> None:
    ann, base = synthetic_annotations(4, 40, stages=(1, 2), identity_terms=("woman",), seed=3)
    validation = {"gender": {"labels": ["female", "male"],
                             "overall": {"confusion": [[90, 10], [10, 90]]}}}
    result = analyse(ann, base, validation=validation, config=FAST)
    doc = json.loads(json.dumps(to_json(result), allow_nan=False))
    assert doc["stage"] == 2 and doc["n_units"] == 4 * 40 * 2
    row = next(r for r in doc["by"]["occupation_id"] if r["metric"] == "share_female")
    assert row["prompt_ids"] == [f"occupations/face/{row['occupation_id']}"]
    assert doc["adjusted"] and {"observed", "adjusted", "lo", "hi"} <= set(doc["adjusted"][0])
    assert {r["gender_label"] for r in doc["intersections"]} <= {"female", "male"}
    cells = [r for r in doc["intersections"] if r["group"] == "(all)"]
    assert sum(r["count"] for r in cells) == cells[0]["n"]
