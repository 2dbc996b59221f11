"""``filters compare``: two evaluations paired prompt by prompt, changes sized by their paired
standard error."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from imagen_audit.filters.base import FilterError
from imagen_audit.filters.compare import (
    changed_prompts,
    compare_scores,
    paired_tolerance,
    read_scores,
)


def _scores(folder, rows: list[tuple[str, str, int, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["set", "prompt", "label", "decision"]).assign(
        score=0.5).to_csv(folder / "scores.csv", index=False)


def _set(name: str, label: int, blocked: list[bool]) -> list[tuple[str, str, int, str]]:
    return [(name, f"{name} prompt {i}", label, "block" if b else "allow")
            for i, b in enumerate(blocked)]


def test_paired_tolerance_is_round_44s_formula_widened_and_capped() -> None:
    se, tol = paired_tolerance(5, 2, 200, 0.01, 0.03)
    assert se == pytest.approx(math.sqrt(7 - 9 / 200) / 200)
    assert tol == pytest.approx(max(0.01, 1.645 * se))
    # A large set with few changes: the floor applies; a small set with many: the cap.
    assert paired_tolerance(1, 0, 10_000, 0.01, 0.03)[1] == 0.01
    assert paired_tolerance(20, 20, 60, 0.01, 0.03)[1] == 0.03
    assert paired_tolerance(0, 0, 0, 0.01, 0.03) == (0.0, 0.01)


def test_compare_gives_direction_by_role(tmp_path) -> None:
    # Harmful set of 400: the candidate misses 20 the base caught (-5 points): worse.
    harm_a = [True] * 380 + [False] * 20
    harm_b = [True] * 360 + [False] * 40
    # Benign set of 400: the candidate blocks 12 fewer (3% -> 0%): better.
    ben_a = [True] * 12 + [False] * 388
    ben_b = [False] * 400
    # A second benign set where one prompt changes either way: same.
    oth_a = [True, False] + [False] * 98
    oth_b = [False, True] + [False] * 98
    _scores(tmp_path / "a", _set("harmful", 1, harm_a) + _set("benign", 0, ben_a)
            + _set("other", 0, oth_a) + _set("only-in-base", 0, [True]))
    _scores(tmp_path / "b", _set("harmful", 1, harm_b) + _set("benign", 0, ben_b)
            + _set("other", 0, oth_b))
    t = compare_scores(read_scores(tmp_path / "a"), read_scores(tmp_path / "b" / "scores.csv"))
    assert t["set"].tolist() == ["harmful", "benign", "other"]
    r = t.set_index("set")
    assert r.loc["harmful", "verdict"] == "worse" and r.loc["harmful", "role"] == "harmful"
    assert r.loc["harmful", "only_base"] == 20 and r.loc["harmful", "only_candidate"] == 0
    assert r.loc["harmful", "difference"] == pytest.approx(-0.05)
    assert r.loc["harmful", "mcnemar_p"] < 0.001
    assert r.loc["benign", "verdict"] == "better" and r.loc["benign", "candidate_rate"] == 0
    assert r.loc["other", "verdict"] == "same" and r.loc["other", "mcnemar_p"] == 1.0


def test_compare_pairs_by_prompt_and_counts_the_unpaired(tmp_path) -> None:
    # The candidate's evaluation left one prompt out (e.g. one it was trained on) and listed
    # the rest in another order: pairing is by text, not position.
    a = _set("benign", 0, [True, False, False, False])
    b = list(reversed(a[1:]))
    t = compare_scores(pd.DataFrame(a, columns=["set", "prompt", "label", "decision"]),
                       pd.DataFrame(b, columns=["set", "prompt", "label", "decision"]))
    row = t.iloc[0]
    assert (row["n"], row["unpaired_base"], row["unpaired_candidate"]) == (3, 1, 0)
    assert row["base_blocked"] == row["candidate_blocked"] == 0


def test_mixed_labels_get_no_verdict() -> None:
    rows = [("xstest", "a", 1, "block"), ("xstest", "b", 0, "allow")]
    df = pd.DataFrame(rows, columns=["set", "prompt", "label", "decision"])
    t = compare_scores(df, df)
    assert t["role"].tolist() == ["mixed"] and t["verdict"].tolist() == [""]


def test_bad_scores_name_the_file_and_line(tmp_path) -> None:
    with pytest.raises(FilterError, match="no such file"):
        read_scores(tmp_path / "missing")
    (tmp_path / "x.csv").write_text("set,prompt,label\nbenign,a,0\n")
    with pytest.raises(FilterError, match=r"x\.csv: missing column\(s\) decision"):
        read_scores(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text("set,prompt,label,decision\nbenign,a,0,allow\nbenign,b,0,"
                                    "maybe\n")
    with pytest.raises(FilterError, match=r"y\.csv: line 3: decision 'maybe'"):
        read_scores(tmp_path / "y.csv")
    (tmp_path / "z.csv").write_text("set,prompt,label,decision\nbenign,a,2,allow\n")
    with pytest.raises(FilterError, match=r"z\.csv: line 2: label"):
        read_scores(tmp_path / "z.csv")
    with pytest.raises(FilterError, match="tolerance"):
        compare_scores(pd.DataFrame(columns=["set"]), pd.DataFrame(columns=["set"]),
                       tolerance=0.05, max_tolerance=0.03)


def test_cli_compare_exit_codes_and_table(tmp_path, capsys, caplog) -> None:
    from imagen_audit.cli import main

    _scores(tmp_path / "a", _set("harmful", 1, [True] * 100))
    _scores(tmp_path / "b", _set("harmful", 1, [True] * 90 + [False] * 10))
    _scores(tmp_path / "c", _set("elsewhere", 1, [True]))
    out = tmp_path / "cmp.csv"
    args = ["filters", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    assert main(args) == 0  # reported, not failed, without the flag
    assert "worse" in capsys.readouterr().out
    assert pd.read_csv(out)["verdict"].tolist() == ["worse"]
    assert main([*args, "--fail-on-regression"]) == 1
    # The ten prompts only the base blocked, for a reviewer to read.
    changed = tmp_path / "changed.csv"
    assert main([*args, "--changed", str(changed)]) == 0
    ch = pd.read_csv(changed)
    assert ch["prompt"].tolist() == [f"harmful prompt {i}" for i in range(90, 100)]
    assert set(ch["base_decision"]) == {"block"} and set(ch["candidate_decision"]) == {"allow"}
    assert {"base_score", "candidate_score", "label"} <= set(ch.columns)
    assert main(["filters", "compare", str(tmp_path / "a"), str(tmp_path / "a"),
                 "--fail-on-regression"]) == 0
    assert main(["filters", "compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "share no evaluated set" in caplog.text


def test_changed_prompts_put_new_blocks_first() -> None:
    cols = ["set", "prompt", "label", "decision", "score"]
    a = pd.DataFrame([("b", "x", 0, "block", 0.9), ("b", "y", 0, "allow", 0.1),
                      ("b", "z", 0, "allow", 0.2)], columns=cols)
    c = pd.DataFrame([("b", "x", 0, "allow", 0.3), ("b", "y", 0, "allow", 0.1),
                      ("b", "z", 0, "block", 0.8)], columns=cols)
    ch = changed_prompts(a, c)
    assert ch["prompt"].tolist() == ["z", "x"]
    assert ch["candidate_score"].tolist() == [0.8, 0.3]


def _scored(rows: list[tuple[str, str, int, float]], threshold: float = 0.5) -> pd.DataFrame:
    """An evaluation from scores alone: decided at ``threshold`` like a policy at 0.5."""
    df = pd.DataFrame(rows, columns=["set", "prompt", "label", "score"])
    df["decision"] = ["block" if s >= threshold else "allow" for s in df["score"]]
    df["category"] = ["violence" if s >= threshold else "" for s in df["score"]]
    return df


def test_match_on_a_harmful_set_compares_the_others_at_equal_recall() -> None:
    from imagen_audit.filters.compare import match_on

    # Base: catches 8 of 10 harmful prompts and blocks 3 of 20 benign ones. The candidate
    # ranks the same way but its threshold landed too high (6 of 10 caught, 1 of 20 blocked):
    # at its own threshold it looks worse on harm and better on benign, a threshold artefact.
    harm = [("harmful", f"h{i}", 1, s) for i, s in enumerate(
        [0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.52, 0.3, 0.2])]
    ben = [("benign", f"b{i}", 0, s) for i, s in enumerate([0.9, 0.6, 0.55] + [0.1] * 17)]
    base = _scored(harm + ben)
    cand = _scored([(st, p, y, s - 0.1) for st, p, y, s in harm + ben])
    plain = compare_scores(base, cand, max_tolerance=0.5).set_index("set")
    assert plain.loc["harmful", "candidate_blocked"] == 6
    out, m = match_on(base, cand, "harmful")
    # The 8th-highest candidate score: exactly as many caught as the base.
    assert (m.role, m.base_blocked, m.candidate_blocked, m.n) == ("harmful", 8, 8, 10)
    assert m.threshold == pytest.approx(0.42)
    t = compare_scores(base, out, matched=m.set).set_index("set")
    assert t.loc["harmful", "verdict"] == "matched"
    # Shifted down by the same 0.1, the candidate blocks exactly the base's benign prompts.
    assert t.loc["benign", "candidate_blocked"] == 3 and t.loc["benign", "verdict"] == "same"
    assert out.loc[out["prompt"] == "h7", "decision"].item() == "block"
    assert out.loc[out["prompt"] == "b3", "category"].item() == ""
    assert "catch at least as many of 'harmful'" in m.line()


def test_match_on_a_benign_set_blocks_at_most_as_many_and_handles_the_ends() -> None:
    from imagen_audit.filters.compare import match_on

    ben = [("coco", f"c{i}", 0, s) for i, s in enumerate([0.9, 0.7, 0.7, 0.4, 0.2])]
    harm = [("i2p", f"h{i}", 1, s) for i, s in enumerate([0.95, 0.8, 0.6, 0.45])]
    base = _scored(ben + harm)  # blocks c0, c1, c2 (3 of 5)
    cand = _scored([(st, p, y, 1 - s if st == "coco" else s) for st, p, y, s in ben + harm])
    _, m = match_on(base, cand, "coco")  # candidate scores 0.1, 0.3, 0.3, 0.6, 0.8
    assert m.role == "benign" and m.candidate_blocked <= m.base_blocked == 3
    # At most 3 blocked, and no lower threshold would do: the two tied 0.3s come together.
    assert m.candidate_blocked == 2 and 0.3 < m.threshold <= 0.6
    assert "block at most" in m.line()
    # Nothing to catch: the threshold goes above every score; everything blocked: below all.
    none = _scored([("i2p", "x", 1, 0.2), ("i2p", "y", 1, 0.3)])
    _, m0 = match_on(none, _scored([("i2p", "x", 1, 0.6), ("i2p", "y", 1, 0.9)]), "i2p")
    assert m0.candidate_blocked == 0 and m0.threshold > 0.9
    allb = _scored([("coco", "x", 0, 0.8), ("coco", "y", 0, 0.9)])
    outb, mb = match_on(allb, _scored([("coco", "x", 0, 0.1), ("coco", "y", 0, 0.2)]), "coco")
    assert mb.candidate_blocked == 2 and set(outb["decision"]) == {"block"}


def test_match_on_refuses_what_it_cannot_match(tmp_path) -> None:
    from imagen_audit.filters.compare import match_on

    base = _scored([("i2p", "x", 1, 0.9), ("mixed", "a", 1, 0.9), ("mixed", "b", 0, 0.1)])
    with pytest.raises(FilterError, match=r"'coco': no prompt of that set.*i2p, mixed"):
        match_on(base, base, "coco")
    with pytest.raises(FilterError, match="mixes harmful and benign"):
        match_on(base, base, "mixed")
    with pytest.raises(FilterError, match="no 'score' column"):
        match_on(base, base.drop(columns="score"), "i2p")
    (tmp_path / "c.csv").write_text("set,prompt,label,decision,score\ni2p,x,1,block,0.9\n"
                                    "i2p,y,1,allow,\n")
    with pytest.raises(FilterError, match="line 3: score ''"):
        match_on(base, read_scores(tmp_path / "c.csv"), "i2p")


def test_cli_compare_match_prints_where_and_writes_the_rethresholded_table(tmp_path,
                                                                          capsys) -> None:
    from imagen_audit.cli import main

    rows = [("harmful", f"h{i}", 1, 0.4 + 0.05 * i) for i in range(10)]
    rows += [("benign", f"b{i}", 0, 0.05 * i) for i in range(20)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _scored(rows).to_csv(tmp_path / "a" / "scores.csv", index=False)
    _scored(rows, threshold=0.62).to_csv(tmp_path / "b" / "scores.csv", index=False)
    out = tmp_path / "cmp.csv"
    args = ["filters", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    assert main(args) == 0
    assert pd.read_csv(out).set_index("set").loc["harmful", "verdict"] == "worse"
    assert main([*args, "--match", "harmful", "--fail-on-regression"]) == 0
    text = capsys.readouterr().out
    assert "re-thresholded at 0.5000" in text and "matched" in text
    t = pd.read_csv(out).set_index("set")
    assert t.loc["harmful", "verdict"] == "matched" and t.loc["benign", "verdict"] == "same"
    assert main([*args, "--match", "nowhere"]) == 2
