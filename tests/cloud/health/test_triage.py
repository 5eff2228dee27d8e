"""The triage table: every row at, just below and just above its threshold; glucose by meal context;
suspected hypertension only from raised readings on 3 different days (pure, no services)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.health.flags import flag
from cloud.health.triage import (
    HTN_WINDOW_DAYS,
    RAISED_DAYS,
    RANK,
    RULES,
    Rule,
    suspected_hypertension,
    triage,
)

# values that are normal for every other key of a type (so one row is probed at a time)
BASE: dict[str, dict[str, float | str]] = {
    "blood_pressure": {"systolic_mmhg": 118.0, "diastolic_mmhg": 72.0},
    "blood_glucose": {"glucose_mmol_l": 5.0},
    "body_composition": {"weight_kg": 60.0, "bmi": 21.0},
    "pulse_oximetry": {"spo2_pct": 98.0},
    "body_temperature": {"temperature_c": 36.5},
    "height_weight": {"height_cm": 170.0, "weight_kg": 60.0, "bmi": 20.8},
    "body_circumference": {"waist_cm": 70.0, "hip_cm": 95.0, "sex": "M"},
}
SINGLE = [r for r in RULES if r.key != RAISED_DAYS]


def probe(rule: Rule, value: float) -> dict[str, float | str]:
    values = {**BASE[rule.type], rule.key: value}
    if rule.meals is not None:
        values["meal"] = sorted(rule.meals)[0]
    if rule.sexes is not None:
        values["sex"] = sorted(rule.sexes)[0]
    return values


@pytest.mark.parametrize("rule", SINGLE, ids=lambda r: f"{r.code}-{r.key}")
def test_every_row_at_and_around_its_threshold(rule: Rule) -> None:
    eps = 0.1 if rule.unit in ("mmol/L", "kg/m2", "Cel", "cm") else 1.0
    inside = rule.threshold if rule.op in (">=", "<=") else rule.threshold - eps
    outside = rule.threshold - eps if rule.op == ">=" else rule.threshold + eps
    if rule.op == "<=":
        outside = round(rule.threshold + eps, 3)
    at = triage(rule.type, probe(rule, inside))
    assert RANK[at.tier] >= RANK[rule.tier], (inside, at)
    assert rule.code in at.codes or RANK[at.tier] > RANK[rule.tier]
    beyond = triage(rule.type, probe(rule, outside))
    assert rule.code not in beyond.codes, (outside, beyond)


@pytest.mark.parametrize(
    ("sys_", "dia", "tier", "codes"),
    [
        (118, 72, "normal", ()),
        (134, 84, "normal", ()),
        (135, 70, "recheck", ("bp_raised_home",)),  # home cut-off: a hut reading is self-measured
        (120, 85, "recheck", ("bp_raised_home",)),
        (139, 89, "recheck", ("bp_raised_home",)),  # below the office 140/90, still raised at home
        (179, 109, "recheck", ("bp_raised_home",)),  # one reading never refers: 3 days do
        (180, 80, "urgent", ("bp_severe",)),
        (150, 110, "urgent", ("bp_severe",)),
    ],
)
def test_blood_pressure_tiers(sys_: float, dia: float, tier: str, codes: tuple[str, ...]) -> None:
    t = triage("blood_pressure", {"systolic_mmhg": sys_, "diastolic_mmhg": dia})
    assert (t.tier, t.codes) == (tier, codes)


@pytest.mark.parametrize(
    ("mmol", "meal", "tier", "code"),
    [
        (6.0, "fasting", "normal", None),
        (6.1, "fasting", "recheck", "glucose_impaired_fasting"),
        (6.9, "fasting", "recheck", "glucose_impaired_fasting"),
        (7.0, "fasting", "refer", "glucose_high_fasting"),
        (7.0, "random", "normal", None),  # random is never judged by the fasting cut-off
        (9.9, "postprandial", "normal", None),
        (9.9, None, "normal", None),  # no context: judged as random
        (11.0, "random", "normal", None),
        (11.1, "random", "refer", "glucose_high_random"),
        (11.1, "postprandial", "refer", "glucose_high_random"),
        (11.1, None, "refer", "glucose_high_random"),
        (11.1, "fasting", "refer", "glucose_high_fasting"),
        (16.6, "random", "refer", "glucose_high_random"),
        (16.7, "random", "urgent", "glucose_very_high"),
        (16.7, "fasting", "urgent", "glucose_very_high"),
        (4.0, "fasting", "normal", None),
        (3.9, "fasting", "refer", "glucose_low"),
        (3.9, "random", "refer", "glucose_low"),
        (3.0, None, "refer", "glucose_low"),
        (2.9, None, "urgent", "glucose_very_low"),
    ],
)
def test_glucose_by_meal_context(
    mmol: float, meal: str | None, tier: str, code: str | None
) -> None:
    values: dict[str, float | str] = {"glucose_mmol_l": mmol}
    if meal is not None:
        values["meal"] = meal
    t = triage("blood_glucose", values)
    assert t.tier == tier and t.codes == ((code,) if code else ())


@pytest.mark.parametrize(
    ("type_", "values", "tier", "code"),
    [
        ("body_composition", {"weight_kg": 50, "bmi": 18.4}, "recheck", "underweight"),
        ("body_composition", {"weight_kg": 55, "bmi": 18.5}, "normal", None),
        ("body_composition", {"weight_kg": 70, "bmi": 23.9}, "normal", None),
        ("body_composition", {"weight_kg": 72, "bmi": 24.0}, "recheck", "overweight"),
        ("body_composition", {"weight_kg": 80, "bmi": 27.9}, "recheck", "overweight"),
        ("body_composition", {"weight_kg": 82, "bmi": 28.0}, "refer", "obese"),
        ("body_composition", {"weight_kg": 60}, "normal", None),  # no BMI: nothing to judge
        ("pulse_oximetry", {"spo2_pct": 94}, "normal", None),
        ("pulse_oximetry", {"spo2_pct": 93}, "refer", "spo2_low"),
        ("pulse_oximetry", {"spo2_pct": 90}, "refer", "spo2_low"),
        ("pulse_oximetry", {"spo2_pct": 89}, "urgent", "spo2_very_low"),
        ("body_temperature", {"temperature_c": 37.2}, "normal", None),
        ("body_temperature", {"temperature_c": 37.3}, "recheck", "fever"),
        ("body_temperature", {"temperature_c": 39.0}, "recheck", "fever"),
        ("body_temperature", {"temperature_c": 39.1}, "urgent", "high_fever"),
        ("body_temperature", {"temperature_c": 35.0}, "normal", None),
        ("body_temperature", {"temperature_c": 34.9}, "recheck", "temperature_low"),
        ("height_weight", {"height_cm": 160, "weight_kg": 72, "bmi": 28.1}, "refer", "obese"),
        (
            "height_weight",
            {"height_cm": 160, "weight_kg": 62, "bmi": 24.2},
            "recheck",
            "overweight",
        ),
        ("height_weight", {"height_cm": 160, "weight_kg": 55, "bmi": 21.5}, "normal", None),
        ("body_circumference", {"waist_cm": 89.9, "sex": "M"}, "normal", None),
        ("body_circumference", {"waist_cm": 90.0, "sex": "M"}, "recheck", "central_obesity"),
        ("body_circumference", {"waist_cm": 84.9, "sex": "F"}, "normal", None),
        ("body_circumference", {"waist_cm": 85.0, "sex": "F"}, "recheck", "central_obesity"),
        ("body_circumference", {"waist_cm": 88.0, "sex": "M"}, "normal", None),  # 88: only women
        ("body_circumference", {"waist_cm": 120.0}, "normal", None),  # no sex entered: no guess
    ],
)
def test_bmi_spo2_temperature(
    type_: str, values: dict[str, float], tier: str, code: str | None
) -> None:
    t = triage(type_, values)
    assert t.tier == tier and t.codes == ((code,) if code else ())


def test_the_stored_verdict_is_the_triage() -> None:
    f = flag("blood_pressure", {"systolic_mmhg": 185, "diastolic_mmhg": 100})
    assert (f.tier, f.text, f.severity, f.abnormal) == ("urgent", "bp_severe", "severe", True)
    f = flag("blood_pressure", {"systolic_mmhg": 118, "diastolic_mmhg": 76})
    assert (f.tier, f.text, f.abnormal) == ("normal", "normal", False)


@given(
    st.floats(40, 300, allow_nan=False),
    st.floats(20, 200, allow_nan=False),
    st.floats(0, 30, allow_nan=False),
)
def test_blood_pressure_tier_never_falls_as_a_value_rises(s: float, d: float, up: float) -> None:
    base = RANK[triage("blood_pressure", {"systolic_mmhg": s, "diastolic_mmhg": d}).tier]
    assert (
        RANK[triage("blood_pressure", {"systolic_mmhg": s + up, "diastolic_mmhg": d}).tier] >= base
    )
    assert (
        RANK[triage("blood_pressure", {"systolic_mmhg": s, "diastolic_mmhg": d + up}).tier] >= base
    )


@given(st.floats(4.0, 11.09, allow_nan=False), st.sampled_from(["random", "postprandial", None]))
def test_a_random_value_between_the_cut_offs_is_normal(mmol: float, meal: str | None) -> None:
    values: dict[str, float | str] = {"glucose_mmol_l": mmol}
    if meal:
        values["meal"] = meal
    assert triage("blood_glucose", values).tier == "normal"


def test_suspected_hypertension_needs_three_different_days() -> None:
    assert not suspected_hypertension([10], 10)  # one reading never
    assert not suspected_hypertension([10, 10, 10], 10)  # three readings, one day
    assert not suspected_hypertension([9, 10], 10)
    assert suspected_hypertension([8, 9, 10], 10)
    assert not suspected_hypertension([8, 9, 10], 9)  # the third day is later
    w = HTN_WINDOW_DAYS
    assert suspected_hypertension([10 - w + 1, 5, 10], 10)  # first day just inside the window
    assert not suspected_hypertension([10 - w, 5, 10], 10)  # just outside
    assert not suspected_hypertension([1, 2, 3], 10)  # the day itself was not raised


def test_every_row_names_a_source_and_a_reason() -> None:
    for r in RULES:
        assert r.source and r.reason and r.unit and r.tier in RANK


def test_docs_print_every_row() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "health.md").read_text(encoding="utf-8")
    for r in RULES:
        assert f"| `{r.code}` |" in doc and f"**{r.tier}**" in doc, r.code
        assert f"{r.threshold:g}" in doc, (r.code, r.threshold)
