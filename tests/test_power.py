"""`plan`'s sample sizes give the stated power (checked by simulation with the same tests)."""

from __future__ import annotations

import pytest

from imagen_audit.analyse.power import one_sample_plan, simulate_power, two_sample_plan
from imagen_audit.cli import main


@pytest.mark.parametrize(("gap", "p0", "power"), [
    (0.1, 0.5, 0.8), (0.15, 0.3, 0.9), (-0.2, 0.8, 0.8), (0.05, 0.5, 0.8)])
def test_one_sample_plan_reaches_the_stated_power(gap: float, p0: float, power: float) -> None:
    plan = one_sample_plan(gap, p0=p0, power=power)
    assert abs(simulate_power(plan, reps=6000) - power) < 0.03


@pytest.mark.parametrize(("gap", "p0"), [(0.1, 0.5), (0.2, 0.2)])
def test_two_sample_plan_reaches_the_stated_power(gap: float, p0: float) -> None:
    plan = two_sample_plan(gap, p0=p0)
    assert abs(simulate_power(plan, reps=6000) - 0.8) < 0.03


def test_undetected_faces_and_abstentions_inflate_the_plan() -> None:
    base = one_sample_plan(0.1)
    lossy = one_sample_plan(0.1, face_rate=0.8, coverage=0.9)
    assert base.estimates_needed == lossy.estimates_needed == 194
    assert lossy.samples_per_prompt == 270  # ceil(194 / 0.72)
    assert abs(simulate_power(lossy, reps=6000) - 0.8) < 0.03


def test_no_gap_rejects_at_alpha() -> None:
    plan = one_sample_plan(0.1)
    null = type(plan)(**{**plan.__dict__, "gap": 0.0})
    assert abs(simulate_power(null, reps=8000) - 0.05) < 0.012


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        one_sample_plan(0.6, p0=0.5)
    with pytest.raises(ValueError):
        two_sample_plan(0.1, alpha=1.5)


def test_plan_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--min-detectable-gap", "0.1", "--power", "0.8", "--alpha", "0.05",
                 "--baseline-share", "0.3", "--prompts", "150", "--images-per-second",
                 "0.5"]) == 0
    out = capsys.readouterr().out
    single, double = one_sample_plan(0.1, p0=0.3), two_sample_plan(0.1, p0=0.3)
    assert f"{single.samples_per_prompt} samples per prompt" in out
    assert f"{double.samples_per_prompt} samples per prompt in each run" in out
    assert f"{single.gpu_hours(150, 0.5):.1f} GPU hours" in out
    assert main(["plan", "--min-detectable-gap", "0.9"]) == 2
