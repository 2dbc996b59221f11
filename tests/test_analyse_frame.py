"""MetricFrame: overall, by group, differences, ratios, intervals, small samples, tracing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imagen_audit.analyse.frame import Distribution, Mean, MetricFrame, Rate, Share


def _table() -> pd.DataFrame:
    # Group a: 40 units, 30 female; group b: 50 units, 10 female; group c: 5 units, 5 female.
    rows = ([("a", "female")] * 30 + [("a", "male")] * 10 + [("b", "female")] * 10
            + [("b", "male")] * 40 + [("c", "female")] * 5)
    t = pd.DataFrame(rows, columns=["g", "gender_label"])
    t["prompt_id"] = "p/" + t["g"]
    t.loc[t.index[:3], "gender_label"] = None  # three abstentions in group a
    t["face_detected"] = True
    t.loc[t.index[-1], "face_detected"] = False
    t["ita"] = np.where(t["g"] == "a", 40.0, 20.0)
    return t


def test_overall_and_by_group_by_hand() -> None:
    t = _table()
    mf = MetricFrame({"f": Share("gender_label", "female"), "det": Rate("face_detected"),
                      "ita": Mean("ita")}, t, by="g", min_n=30, n_boot=200)
    assert mf.overall.loc["f", "value"] == pytest.approx(42 / 92)
    assert mf.overall.loc["f", "n"] == 92
    bg = mf.by_group
    assert bg.loc["a", "f"] == pytest.approx(27 / 37)
    assert bg.loc["b", "f"] == pytest.approx(10 / 50)
    assert bg.loc["c", "f"] == 1.0
    assert bg.loc["c", "det"] == pytest.approx(4 / 5)
    assert bg.loc["a", "ita"] == 40.0
    n = mf.by_group_n
    assert (n.loc["a", "f"], n.loc["b", "f"], n.loc["c", "f"]) == (37, 50, 5)
    lo, hi = mf.by_group_lo, mf.by_group_hi
    assert (lo["f"] <= bg["f"]).all() and (bg["f"] <= hi["f"]).all()


def test_differences_ratios_leave_out_small_groups_unless_asked() -> None:
    mf = MetricFrame([Share("gender_label", "female", name="f")], _table(), by="g", min_n=30,
                     n_boot=300)
    # Group c (n = 5) is small: between a and b only.
    assert mf.difference()["f"] == pytest.approx(27 / 37 - 0.2)
    assert mf.ratio()["f"] == pytest.approx(0.2 / (27 / 37))
    assert mf.group_max()["f"] == pytest.approx(27 / 37)
    assert mf.difference(include_small=True)["f"] == pytest.approx(1 - 0.2)
    overall = 42 / 92
    assert mf.difference("to_overall")["f"] == pytest.approx(max(27 / 37 - overall,
                                                                 overall - 0.2))
    ci = mf.difference_ci()
    assert ci.loc["f", "lo"] < mf.difference()["f"] < ci.loc["f", "hi"]
    with pytest.raises(ValueError):
        mf.difference("nonsense")


def test_intervals_table_flags_small_samples_and_traces_prompts() -> None:
    mf = MetricFrame({"f": Share("gender_label", "female")}, _table(), by="g", min_n=30)
    iv = mf.intervals.set_index("g")
    assert bool(iv.loc["c", "small_sample"]) and not bool(iv.loc["a", "small_sample"])
    assert iv.loc["a", "prompt_ids"] == ["p/a"]
    assert len(mf.rows("b")) == 50


def test_distribution_metrics_and_multi_key_groups() -> None:
    t = _table()
    t["stage"] = np.where(np.arange(len(t)) % 2 == 0, 1, 2)
    mf = MetricFrame({"gap": Distribution("gender_label", ["female", "male"]),
                      "h": Distribution("gender_label", ["female", "male"], "entropy")},
                     t, by=["g", "stage"], n_boot=200)
    assert isinstance(mf.by_group.index, pd.MultiIndex)
    o = mf.overall
    p = 42 / 92
    assert o.loc["gap", "value"] == pytest.approx(abs(p - 0.5))
    h = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2)
    assert o.loc["h", "value"] == pytest.approx(h)
    assert o.loc["gap", "lo"] <= o.loc["gap", "value"] <= o.loc["gap", "hi"]


def test_missing_columns_are_named() -> None:
    with pytest.raises(KeyError, match="tone_band"):
        MetricFrame({"x": Share("tone_band", "dark")}, _table(), by="g")


def test_planted_group_shares_are_recovered_within_their_intervals() -> None:
    rng = np.random.default_rng(3)
    truth = {"g0": 0.1, "g1": 0.35, "g2": 0.5, "g3": 0.8}
    covered, total = 0, 0
    for rep in range(60):
        rows = [(g, "female" if rng.random() < p else "male")
                for g, p in truth.items() for _ in range(80)]
        t = pd.DataFrame(rows, columns=["g", "gender_label"])
        mf = MetricFrame({"f": Share("gender_label", "female")}, t, by="g", n_boot=50,
                         seed=rep)
        for g, p in truth.items():
            covered += mf.by_group_lo.loc[g, "f"] <= p <= mf.by_group_hi.loc[g, "f"]
            total += 1
    assert 0.91 <= covered / total <= 0.99
