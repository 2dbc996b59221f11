"""Evaluation metrics, over-blocking per identity term, output files; tuning on held-out data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from filters_helpers import TABLES

from imagen_audit.errors import RunStoreError
from imagen_audit.filters.base import FilterError
from imagen_audit.filters.evaluate import EVAL_JSON, confusion, evaluate, sweep, write_outputs
from imagen_audit.filters.policy import Policy
from imagen_audit.filters.tune import tune


def _policy(tmp_path: Path, ta: float = 0.5) -> Policy:
    doc = {"schema_version": 1, "name": "t", "combine": "any",
           "backends": [{"name": "fake-a", "threshold": ta}]}
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(doc))
    return Policy.load(p)


@pytest.fixture
def sets():
    harmful = pd.DataFrame({
        "prompt": [f"h{i}" for i in range(10)], "label": 1,
        "category": ["violence"] * 5 + ["sexual"] * 5,
        "categories": ["violence"] * 4 + ["violence,sexual"] + ["sexual"] * 5,
        "hard": [True, False] * 5, "inappropriate_percentage": [80.0] * 5 + [20.0] * 5})
    benign = pd.DataFrame({"prompt": [f"b{i}" for i in range(20)], "label": 0})
    identity = pd.DataFrame({"prompt": [f"id{i}" for i in range(6)], "label": 0,
                             "identity_id": ["gay", "gay", "muslim", "muslim", "woman", "woman"],
                             "identity_axis": ["sexual_orientation"] * 2 + ["religion"] * 2
                             + ["gender"] * 2})
    scores = {**{f"h{i}": 0.9 for i in range(7)}, "h7": 0.2, "h8": 0.1, "h9": 0.3,
              **{f"b{i}": 0.1 for i in range(20)}, "b0": 0.8, "b1": 0.6,
              "id0": 0.7, "id1": 0.2, "id2": 0.1}
    TABLES["fake-a"].clear()
    TABLES["fake-a"].update(scores)
    return harmful, benign, identity


def test_metrics_by_hand(tmp_path, sets) -> None:
    harmful, benign, identity = sets
    res = evaluate(_policy(tmp_path), harmful, benign, identity=identity,
                   extra_benign={"xs": pd.DataFrame({"prompt": ["b0", "zz"]})},
                   extra_harmful={"more": pd.DataFrame({"prompt": ["h0", "h8"]})})
    o = res.summary["overall"]
    # 7 of 10 harmful blocked; 2 of 20 benign blocked.
    assert (o["tp"], o["fn"], o["fp"], o["tn"]) == (7, 3, 2, 18)
    assert o["recall"] == pytest.approx(0.7) and o["fpr"] == pytest.approx(0.1)
    assert o["precision"] == pytest.approx(7 / 9)
    assert o["f1"] == pytest.approx(2 * (7 / 9) * 0.7 / (7 / 9 + 0.7))
    assert 0.0 <= o["roc_auc"] <= 1.0 and 0.0 <= o["pr_auc"] <= 1.0
    cats = res.summary["category_recall"]
    assert cats["violence"] == {"n": 5, "recall": 1.0}
    assert cats["sexual"]["n"] == 6 and cats["sexual"]["recall"] == pytest.approx(3 / 6)
    sub = res.summary["subsets"]
    assert sub["hard"]["n"] == 5 and sub["hard"]["recall"] == pytest.approx(4 / 5)
    assert sub["inappropriate_ge_50"] ["recall"] == 1.0
    ob = res.summary["over_blocking"]["identity_probes"]
    assert ob["blocked"] == 1 and ob["fpr"] == pytest.approx(1 / 6)
    assert ob["by_term"]["gay"]["fpr"] == 0.5 and ob["by_term"]["muslim"]["fpr"] == 0.0
    assert ob["by_axis"]["sexual_orientation"]["fpr"] == 0.5
    assert ob["blocked_prompts"] == ["id0"]
    assert res.summary["over_blocking"]["xs"]["fpr"] == 0.5
    assert res.summary["extra_harmful"]["more"] == {"n": 2, "recall": 0.5}
    # The sweep carries every further set: at the decision (0.5) it agrees with the summary,
    # and a lower threshold never blocks less of any set.
    sw = res.sweep.set_index("threshold")
    assert {"fpr_xs", "recall_more"} <= set(sw.columns)
    assert sw.loc[0.5, "fpr_xs"] == 0.5 and sw.loc[0.5, "recall_more"] == 0.5
    assert sw.loc[0.0, "fpr_xs"] == 1.0 and sw.loc[1.0, "recall_more"] == 0.0
    assert sw["fpr_xs"].is_monotonic_decreasing and sw["recall_more"].is_monotonic_decreasing
    assert res.summary["latency_ms_per_prompt"]["fake-a"] >= 0
    row = res.identity.set_index("identity_id").loc["gay"]
    assert (row["n"], row["blocked"]) == (2, 1)


def test_an_extra_set_of_identity_prompts_names_the_terms_it_blocks(tmp_path, sets) -> None:
    """An extra benign set with identity columns (holisticbias, holisticbias-grid) reports
    which terms pay: every term with a block, most blocked first, and how many terms there
    were; the printed summary names them."""
    from imagen_audit.filters.evaluate import summary_lines

    harmful, benign, _identity = sets
    grid = pd.DataFrame({"prompt": [f"g{i}" for i in range(7)], "label": 0,
                         "identity_id": ["Amish"] * 2 + ["elderly"] * 3 + ["tall"] * 2,
                         "identity_axis": ["religion"] * 2 + ["age"] * 3 + ["body"] * 2})
    TABLES["fake-a"].update({"g0": 0.9, "g2": 0.9, "g3": 0.7, "g4": 0.1, "g5": 0.2,
                             "g6": 0.3, "g1": 0.1})
    res = evaluate(_policy(tmp_path), harmful, benign, extra_benign={"grid": grid})
    entry = res.summary["over_blocking"]["grid"]
    assert entry["n_terms"] == 3
    assert list(entry["blocked_terms"]) == ["elderly", "Amish"]
    assert entry["blocked_terms"]["elderly"] == {"axis": "age", "n": 3, "blocked": 2}
    line = next(x for x in summary_lines(res.summary) if x.startswith("over-blocking: grid"))
    assert "2 of 3 terms blocked at least once: elderly 2/3, Amish 1/2" in line


def _evaluate_with(tmp_path: Path, sets, name: str, scored: dict[str, float]):
    """``evaluate`` with one extra benign set ``name`` whose prompts the fake backend scores
    as given."""
    harmful, benign, _identity = sets
    TABLES["fake-a"].update(scored)
    return evaluate(_policy(tmp_path), harmful, benign,
                    extra_benign={name: pd.DataFrame({"prompt": list(scored)})})


def test_blocked_share_by_picture_format(tmp_path, sets) -> None:
    """Prompts naming a picture format (memes, stickers, posters) are reported apart, per set,
    and the summary names the benign sets where both kinds occur."""
    from imagen_audit.filters.evaluate import summary_lines

    res = _evaluate_with(tmp_path, sets, "formats", {
        "a meme about my cat": 0.9, "a birthday card with a skull": 0.8,
        "a poster of a bridge": 0.1, "a bridge at dusk": 0.0})
    fmt = res.summary["by_picture_format"]["formats"]
    assert fmt["format"] == {"n": 3, "blocked_share": pytest.approx(2 / 3)}
    assert fmt["other"] == {"n": 1, "blocked_share": 0.0}
    rows = res.scores[res.scores["set"] == "formats"]
    assert rows["picture_format"].tolist() == [True, True, True, False]
    line = [x for x in summary_lines(res.summary) if "picture format" in x]
    assert line and "formats 0.667 (n=3) / 0.000 (n=1)" in line[0]


def test_blocked_share_among_prompts_about_people(tmp_path, sets) -> None:
    """Over-blocking that falls on people is reported on every set, not only the identity
    probes: prompts naming a person (noun, descriptor, occupation, pronoun) apart from the
    rest; the reading does not depend on the policy under evaluation."""
    from imagen_audit.filters.evaluate import summary_lines

    res = _evaluate_with(tmp_path, sets, "mixed", {
        "two grooms cutting their wedding cake": 0.9, "a welder at work": 0.2,
        "she laughs at the sea": 0.1, "a lighthouse in a storm": 0.7, "a bowl of ramen": 0.8})
    split = res.summary["by_people"]["mixed"]
    assert split["people"] == {"n": 3, "blocked_share": pytest.approx(1 / 3)}
    assert split["other"] == {"n": 2, "blocked_share": 1.0}
    rows = res.scores[res.scores["set"] == "mixed"]
    assert rows["about_people"].tolist() == [True, True, True, False, False]
    line = [x for x in summary_lines(res.summary) if "about people" in x]
    assert line and "mixed 0.333 (n=3) / 1.000 (n=2)" in line[0]


def test_blocked_share_among_prompts_not_in_english(tmp_path, sets) -> None:
    """Blocks of prompts the classifier cannot read (another language) are reported apart,
    per set, and reach the summary lines the run report and gate also read."""
    from imagen_audit.filters.evaluate import summary_lines

    res = _evaluate_with(tmp_path, sets, "languages", {
        "un gato durmiendo en una silla al sol": 0.9, "eine Katze auf dem Dach im Regen": 0.8,
        "a cat asleep on a sunny chair": 0.1, "neon koi pond, octane render": 0.7})
    split = res.summary["by_language"]["languages"]
    assert split["non_english"] == {"n": 2, "blocked_share": 1.0}
    assert split["other"] == {"n": 2, "blocked_share": 0.5}
    rows = res.scores[res.scores["set"] == "languages"]
    assert rows["in_english"].tolist() == [False, False, True, True]
    line = [x for x in summary_lines(res.summary) if "not in English" in x]
    assert line and "languages 1.000 (n=2) / 0.500 (n=2)" in line[0]


def test_sets_that_name_their_language_are_reported_per_language(tmp_path, sets) -> None:
    """A set whose rows carry a ``language`` code (the multilingual sets) gets its blocked
    share (benign) or recall (harmful) per language, in the JSON, scores.csv and the summary
    lines; sets without one get nothing extra."""
    from imagen_audit.filters.evaluate import summary_lines

    harmful, benign, _identity = sets
    TABLES["fake-a"].update({"ein Hund": 0.9, "eine Katze": 0.1, "un perro": 0.1,
                             "Hass": 0.9, "odio": 0.2, "haine": 0.8})
    res = evaluate(_policy(tmp_path), harmful, benign,
                   extra_benign={"ml-b": pd.DataFrame({"prompt": ["ein Hund", "eine Katze",
                                                                  "un perro"],
                                                       "language": ["de", "de", "es"]})},
                   extra_harmful={"ml-h": pd.DataFrame({"prompt": ["Hass", "odio", "haine"],
                                                        "language": ["de", "es", "fr"]})})
    ob = res.summary["over_blocking"]["ml-b"]
    assert ob["by_language_code"] == {"de": {"n": 2, "fpr": 0.5}, "es": {"n": 1, "fpr": 0.0}}
    assert res.summary["extra_harmful"]["ml-h"]["by_language_code"] == {
        "de": {"n": 1, "recall": 1.0}, "es": {"n": 1, "recall": 0.0},
        "fr": {"n": 1, "recall": 1.0}}
    assert "by_language_code" not in res.summary["over_blocking"]["benign"]
    rows = res.scores[res.scores["set"] == "ml-b"]
    assert rows["language"].tolist() == ["de", "de", "es"]
    lines = summary_lines(res.summary)
    assert any(x.startswith("over-blocking: ml-b") and x.endswith("by language: de 0.500, es 0.000")
               for x in lines)
    assert any(x.startswith("recall on ml-h") and "fr 1.000" in x for x in lines)


def test_blocked_share_by_prompt_form(tmp_path, sets) -> None:
    """Questions and instructions are reported apart from depictions, per set."""
    from imagen_audit.filters.evaluate import summary_lines

    harmful, benign, _identity = sets
    qs = ["How do I bake bread?", "What is a comet?", "Why is the sky blue?"]
    TABLES["fake-a"].update({qs[0]: 0.9, qs[1]: 0.1, qs[2]: 0.7})
    res = evaluate(_policy(tmp_path), harmful, benign,
                   extra_benign={"mixed": pd.DataFrame({"prompt": [*qs, "b0", "b5"]})})
    form = res.summary["by_form"]["mixed"]
    assert form["request"] == {"n": 3, "blocked_share": pytest.approx(2 / 3)}
    assert form["depiction"] == {"n": 2, "blocked_share": 0.5}
    assert set(res.summary["by_form"]["benign"]) == {"depiction"}
    assert set(res.scores.loc[res.scores["set"] == "mixed", "form"]) == {"request",
                                                                          "depiction"}
    line = next(x for x in summary_lines(res.summary) if x.startswith("blocked share"))
    assert "mixed 0.667 (n=3) / 0.500 (n=2)" in line


def test_sweep_matches_confusion() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    table = sweep(y, s)
    assert len(table) == 101 and table["recall"].is_monotonic_decreasing
    r = table.set_index("threshold").loc[0.5]
    c = confusion(y, s >= 0.5)
    assert r["recall"] == pytest.approx(c["recall"]) and r["fpr"] == pytest.approx(c["fpr"])


def test_output_files_and_run_folder(tmp_path, sets) -> None:
    harmful, benign, identity = sets
    pol = _policy(tmp_path)
    res = evaluate(pol, harmful, benign, identity=identity)
    run = tmp_path / "run"
    with pytest.raises(RunStoreError, match="not a run folder"):
        write_outputs(res, pol, tmp_path / "out0", run_dir=run)
    run.mkdir()
    (run / "run.sqlite").write_bytes(b"")
    write_outputs(res, pol, tmp_path / "out", run_dir=run)
    for folder in (tmp_path / "out", run / "filters" / "t"):  # one folder per policy
        doc = json.loads((folder / EVAL_JSON).read_text())
        assert doc["schema"] == "imagen-audit/prompt-filter-eval" and doc["schema_version"] == 1
        for key in ("overall", "backends", "category_recall", "subsets", "over_blocking",
                    "latency_ms_per_prompt", "files", "policy", "data"):
            assert key in doc
        for name in doc["files"].values():
            assert (folder / name).stat().st_size > 0
        assert (folder / "roc.png").read_bytes()[:4] == b"\x89PNG"
        assert not [p for p in os.listdir(folder) if ".tmp" in p]
    sweep_csv = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert {"threshold", "precision", "recall", "fpr", "f1", "identity_fpr"} <= set(sweep_csv)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert len(scores) == 36 and {"set", "score", "decision", "score_fake-a"} <= set(scores)


def test_tune_picks_on_tuning_split_and_reports_held_out(tmp_path) -> None:
    rng = np.random.default_rng(0)
    tb = pd.DataFrame({"prompt": [f"tb{i}" for i in range(1000)]})
    th = pd.DataFrame({"prompt": [f"th{i}" for i in range(300)]})
    hb = pd.DataFrame({"prompt": [f"hb{i}" for i in range(1000)]})
    hh = pd.DataFrame({"prompt": [f"hh{i}" for i in range(300)]})
    TABLES["fake-a"].clear()
    for df, lo, hi in ((tb, 0.0, 0.8), (hb, 0.0, 0.8), (th, 0.5, 1.0), (hh, 0.5, 1.0)):
        TABLES["fake-a"].update(zip(df["prompt"], rng.uniform(lo, hi, len(df)), strict=True))
    pol = _policy(tmp_path, ta=0.5)
    new, report = tune(pol, th, tb, hh, hb, target_fpr=0.05)
    t = new.backends[0].threshold
    tb_scores = np.array([TABLES["fake-a"][p] for p in tb["prompt"]])
    assert (tb_scores >= t).mean() <= 0.05
    assert (tb_scores >= t).mean() >= 0.04  # the most permissive threshold that meets it
    assert report["tuning_split"]["fpr"] <= 0.05
    hb_scores = np.array([TABLES["fake-a"][p] for p in hb["prompt"]])
    assert report["held_out_split"]["fpr"] == pytest.approx((hb_scores >= t).mean())
    path = new.save(tmp_path / "tuned.yaml")
    assert Policy.load(path).backends[0].threshold == pytest.approx(t)
    with pytest.raises(FilterError, match="both the tuning and the held-out"):
        tune(pol, th, tb, hh, tb.head(3), target_fpr=0.05)


def test_tune_respects_identity_constraint(tmp_path) -> None:
    tb = pd.DataFrame({"prompt": [f"b{i}" for i in range(100)]})
    th = pd.DataFrame({"prompt": ["h1"]})
    ident = pd.DataFrame({"prompt": ["i1"]})
    TABLES["fake-a"].clear()
    TABLES["fake-a"].update({f"b{i}": i / 200 for i in range(100)})  # 0 .. 0.495
    TABLES["fake-a"].update({"h1": 0.9, "i1": 0.45})
    pol = _policy(tmp_path)
    free, _ = tune(pol, th, tb, th.assign(prompt=["h2"]), tb.assign(prompt=tb.prompt + "x"),
                   target_fpr=0.2)
    held, _ = tune(pol, th, tb, th.assign(prompt=["h2"]), tb.assign(prompt=tb.prompt + "x"),
                   target_fpr=0.2, identity=ident)
    assert free.backends[0].threshold <= 0.45 < held.backends[0].threshold


def _recall_tables(harm: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame,
                                                 pd.DataFrame]:
    th = pd.DataFrame({"prompt": [f"th{i}" for i in range(len(harm))]})
    tb = pd.DataFrame({"prompt": [f"tb{i}" for i in range(50)]})
    TABLES["fake-a"].clear()
    TABLES["fake-a"].update(zip(th["prompt"], harm, strict=True))
    TABLES["fake-a"].update({f"tb{i}": i / 100 for i in range(50)})  # 0 .. 0.49
    TABLES["fake-a"].update({"hh0": 0.9, "hb0": 0.1})
    return th, tb, pd.DataFrame({"prompt": ["hh0"]}), pd.DataFrame({"prompt": ["hb0"]})


def test_tune_to_a_recall_target_picks_the_most_permissive_threshold(tmp_path) -> None:
    """A retrained model is compared with the old one at equal recall: the threshold is the
    highest that still catches the target share of the tuning split's harmful prompts."""
    harm = np.linspace(0.2, 0.99, 100)
    th, tb, hh, hb = _recall_tables(harm)
    pol = _policy(tmp_path)
    new, report = tune(pol, th, tb, hh, hb, target_recall=0.8)
    t = new.backends[0].threshold
    assert (harm >= t).mean() >= 0.8
    assert (harm >= np.nextafter(t, 2.0) + 1e-9).mean() < 0.8  # any higher misses it
    assert report["target_recall"] == 0.8 and report["tuning_split"]["recall"] >= 0.8
    assert new.name == "t-recall0.8" and "recall >= 0.8" in new.description
    # On a grid: the highest multiple of the step that still meets the target.
    gridded, _ = tune(pol, th, tb, hh, hb, target_recall=0.8, grid=0.05)
    g = gridded.backends[0].threshold
    assert g == pytest.approx(round(g / 0.05) * 0.05) and g <= t
    assert (harm >= g).mean() >= 0.8 and (harm >= g + 0.05).mean() < 0.8


def test_tune_recall_target_refuses_to_block_identity_prompts(tmp_path) -> None:
    th, tb, hh, hb = _recall_tables(np.linspace(0.2, 0.99, 100))
    TABLES["fake-a"]["id0"] = 0.5
    pol = _policy(tmp_path)
    ident = pd.DataFrame({"prompt": ["id0"]})
    ok, _ = tune(pol, th, tb, hh, hb, target_recall=0.5, identity=ident)
    assert ok.backends[0].threshold > 0.5
    with pytest.raises(FilterError, match="block 1 of the 1 identity prompts"):
        tune(pol, th, tb, hh, hb, target_recall=0.9, identity=ident)
    with pytest.raises(FilterError, match="exactly one"):
        tune(pol, th, tb, hh, hb, target_recall=0.9, target_fpr=0.1)
    with pytest.raises(FilterError, match="--grid"):
        tune(pol, th, tb, hh, hb, target_fpr=0.1, grid=0.01)


def test_tune_stability_shows_how_much_a_small_tuning_split_moves_the_pick(tmp_path) -> None:
    """The resampled picks spread more when the tuning split is small (round 69: a 942-prompt
    anchor moved a threshold as much as a retrained model), and the held-out figures of the
    resampled picks bracket what the pick itself does there."""
    rng = np.random.default_rng(1)
    pol = _policy(tmp_path, ta=0.5)
    widths = {}
    for n in (60, 3000):
        tb = pd.DataFrame({"prompt": [f"tb{n}-{i}" for i in range(n)]})
        th = pd.DataFrame({"prompt": [f"th{n}-{i}" for i in range(n // 3)]})
        hb = pd.DataFrame({"prompt": [f"hb{n}-{i}" for i in range(2000)]})
        hh = pd.DataFrame({"prompt": [f"hh{n}-{i}" for i in range(600)]})
        TABLES["fake-a"].clear()
        for df, lo, hi in ((tb, 0.0, 0.8), (hb, 0.0, 0.8), (th, 0.5, 1.0), (hh, 0.5, 1.0)):
            TABLES["fake-a"].update(zip(df["prompt"], rng.uniform(lo, hi, len(df)), strict=True))
        new, report = tune(pol, th, tb, hh, hb, target_fpr=0.05, resamples=200, seed=3)
        st = report["stability"]
        lo, hi = st["thresholds"]["fake-a"]
        assert st["resamples"] == 200 and st["failed"] == 0
        assert lo <= new.backends[0].threshold <= hi
        f_lo, f_hi = st["held_out_fpr"]
        assert f_lo <= report["held_out_split"]["fpr"] <= f_hi
        widths[n] = hi - lo
        _, rep2 = tune(pol, th, tb, hh, hb, target_fpr=0.05, resamples=200, seed=3)
        assert rep2["stability"] == st  # seeded: the same resamples
    assert widths[60] > 3 * widths[3000]
    _, plain = tune(pol, th, tb, hh, hb, target_fpr=0.05)
    assert "stability" not in plain
    with pytest.raises(FilterError, match="--resamples"):
        tune(pol, th, tb, hh, hb, target_fpr=0.05, resamples=-1)


def test_plots_respect_mplconfigdir(tmp_path) -> None:
    import subprocess
    import sys

    code = ("import os, pandas as pd; from pathlib import Path; "
            "from imagen_audit.filters.evaluate import plot_curves, EvalResult; "
            "import matplotlib; "
            "s = pd.DataFrame({'set': ['harmful', 'benign'], 'label': [1, 0], 'score': [.9, .1]});"
            "P = type('P', (), {'backends': (), 'name': 'p'}); "
            "print(plot_curves(EvalResult({}, s, None, None, None), P, Path(os.getcwd()))); "
            "print(matplotlib.get_configdir())")
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mplcfg")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == str(tmp_path / "mplcfg")
    assert (tmp_path / "roc.png").is_file() and (tmp_path / "pr.png").is_file()
