"""Positive controls: agreement of perceived labels with what control prompts state."""

from __future__ import annotations

import json

import pandas as pd

from imagen_audit.analyse.controls import control_agreement


def _units(rows: list[tuple[str, str | None, str | None]]) -> pd.DataFrame:
    controls = {"woman": {"perceived_gender": "female"}, "man": {"perceived_gender": "male"},
                "elderly": {"perceived_age": "older"}, None: {}}
    return pd.DataFrame([{"prompt_id": f"identities/face/{term}", "identity_id": term,
                          "controls": json.dumps(controls[term]), "gender_label": label}
                         for term, label in [(t, g) for t, g, _ in rows]])


def test_agreement_per_term_and_overall() -> None:
    rows = ([("woman", "female", None)] * 8 + [("woman", "male", None)] * 2
            + [("woman", None, None)] * 5 + [("man", "male", None)] * 10
            + [("elderly", "female", None)] * 3 + [(None, "male", None)] * 4)
    table = control_agreement(_units(rows), min_n=5).set_index(["identity_id", "expected"])
    woman = table.loc[("woman", "female")]
    assert (woman.n_images, woman.n_labelled, woman.agree) == (15, 10, 8)
    assert woman.share == 0.8 and woman.lo < 0.8 < woman.hi and not woman.small_sample
    assert table.loc[("man", "male")].share == 1.0
    assert table.loc[("(all)", "female")].n_labelled == 10
    # perceived age has no annotator: not measured, not reported as agreement
    assert "older" not in table.index.get_level_values("expected")


def test_no_controls_gives_an_empty_table() -> None:
    assert control_agreement(pd.DataFrame({"prompt_id": ["p"], "gender_label": ["male"]})
                             ).empty
    small = control_agreement(_units([("woman", "female", None)] * 3), min_n=30)
    assert bool(small.iloc[0].small_sample)


def test_gate_checks_the_weakest_control() -> None:
    from imagen_audit.analyse.pipeline import AnalysisConfig
    from imagen_audit.report import gate

    rows = ([("woman", "female", None)] * 8 + [("woman", "male", None)] * 2
            + [("man", "male", None)] * 10)

    class Result:  # the fields the check reads
        config = AnalysisConfig(min_n=5)
        controls = control_agreement(_units(rows), min_n=5)

    value, where = gate.CHECKS["min_control_agreement"](Result, [], {})
    assert value == 0.8 and where == "woman (female)"
    policy = gate.Policy(name="p", checks=(gate.Check(
        metric="min_control_agreement", minimum=0.9, maximum=None, name="controls",
        params={}),), analysis={}, source="test")
    assert gate.evaluate(policy, Result).exit_code == 1
    Result.controls = Result.controls.iloc[0:0]
    assert gate.evaluate(policy, Result).exit_code == 2  # missing data is an error
