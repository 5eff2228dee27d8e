"""Triage tiers of health-hut measurements from Chinese guidelines: ONE table of rules, pure functions.

Every threshold the cloud applies to a health value is a row of `RULES` (measurement type, value
key, comparison, threshold, unit, tier, follow-up reason, source); docs/health.md prints the same
table with its sources. A hut reading is a self-measurement: blood pressure is judged by the home
(self-measured) cut-off 135/85, not the office 140/90.

Tiers, in order: `normal`, `recheck` (repeat / lifestyle advice), `refer` (family doctor within
2 weeks), `urgent` (same Shanghai day). One reading never makes "suspected hypertension": that is
the across-visits row (`raised_days`), applied by `suspected_hypertension` to a resident's history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Tier = Literal["normal", "recheck", "refer", "urgent"]
TIERS: tuple[Tier, ...] = ("normal", "recheck", "refer", "urgent")
RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
FOLLOW_UP_TIERS: frozenset[str] = frozenset({"refer", "urgent"})
DUE_DAYS: dict[str, int] = {"urgent": 0, "refer": 14}  # days after the reading's Shanghai day

Op = Literal[">=", "<=", "<"]
Values = Mapping[str, float | str]

# Glucose meal contexts (contract `meal`); a value without one is judged as random, never as fasting.
FASTING = frozenset({"fasting"})
NOT_FASTING = frozenset({"postprandial", "random"})

HTN_2018 = "中国高血压防治指南（2018年修订版） Chinese Guidelines for the Prevention and Treatment of Hypertension, 2018 revision"
HTN_PRIMARY_2020 = (
    "国家基层高血压防治管理指南（2020版） National primary-care hypertension guideline, 2020"
)
DM_2020 = "中国2型糖尿病防治指南（2020年版） Chinese guideline for type 2 diabetes, 2020 edition"
DM_PRIMARY_2022 = (
    "国家基层糖尿病防治管理指南（2022） National primary-care diabetes guideline, 2022"
)
WS_T_428 = "WS/T 428-2013 成人体重判定 Criteria of weight for adults (China)"
SPO2_SRC = "BTS guideline for oxygen use in adults (2017): target 94-98 %; 国家卫健委 诊疗方案: resting SpO2 <= 93 % is a severity criterion"
FEVER_SRC = "《诊断学》(人民卫生出版社, 9th ed.) fever grades: low 37.3-38.0, moderate 38.1-39.0, high 39.1-41.0 degC"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the triage table: `values[key] <op> threshold` gives `tier` (and a follow-up reason)."""

    code: str  # what is found (rows of one finding share it, e.g. systolic and diastolic)
    type: str  # contract measurement type
    key: str  # contract value key; "raised_days" is the across-visits row
    op: Op
    threshold: float
    unit: str
    tier: Tier
    reason: str  # the follow-up's reason: one open follow-up per resident and reason
    source: str
    meals: frozenset[str] | None = None  # glucose: the meal contexts the row applies to
    sexes: frozenset[str] | None = None  # waist: the sex (entered with it) the row applies to

    def matches(self, value: float) -> bool:
        """Whether a value meets this row's comparison."""
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        return value < self.threshold


BP, GLU, BC, SPO2, TEMP, HW, CIRC = (
    "blood_pressure",
    "blood_glucose",
    "body_composition",
    "pulse_oximetry",
    "body_temperature",
    "height_weight",
    "body_circumference",
)
MEN, WOMEN = frozenset({"M"}), frozenset({"F"})
RAISED_DAYS = "raised_days"
SUSPECTED_HYPERTENSION = "suspected_hypertension"
BP_RAISED = "bp_raised_home"
HTN_WINDOW_DAYS = 30  # the raised days of a "suspected hypertension" lie within this many days

RULES: tuple[Rule, ...] = (
    Rule("bp_severe", BP, "systolic_mmhg", ">=", 180, "mmHg", "urgent", "hypertension", f"{HTN_2018}: grade 3; {HTN_PRIMARY_2020}: >= 180/110 refer urgently"),
    Rule("bp_severe", BP, "diastolic_mmhg", ">=", 110, "mmHg", "urgent", "hypertension", f"{HTN_2018}: grade 3; {HTN_PRIMARY_2020}: >= 180/110 refer urgently"),
    Rule(BP_RAISED, BP, "systolic_mmhg", ">=", 135, "mmHg", "recheck", "hypertension", f"{HTN_2018}: home (self-measured) BP >= 135/85 corresponds to office 140/90"),
    Rule(BP_RAISED, BP, "diastolic_mmhg", ">=", 85, "mmHg", "recheck", "hypertension", f"{HTN_2018}: home (self-measured) BP >= 135/85 corresponds to office 140/90"),
    Rule(SUSPECTED_HYPERTENSION, BP, RAISED_DAYS, ">=", 3, "days", "refer", "hypertension", f"{HTN_2018}: diagnosis from raised BP on 3 different days, never one reading; here: raised home readings on >= 3 Shanghai days within {HTN_WINDOW_DAYS} days"),
    Rule("glucose_very_high", GLU, "glucose_mmol_l", ">=", 16.7, "mmol/L", "urgent", "hyperglycaemia", f"{DM_2020}: >= 16.7 screen for ketoacidosis / hyperosmolar state; {DM_PRIMARY_2022}: urgent referral"),
    Rule("glucose_high_fasting", GLU, "glucose_mmol_l", ">=", 7.0, "mmol/L", "refer", "hyperglycaemia", f"{DM_2020}: fasting >= 7.0 diabetes range (WHO 1999)", FASTING),
    Rule("glucose_impaired_fasting", GLU, "glucose_mmol_l", ">=", 6.1, "mmol/L", "recheck", "hyperglycaemia", f"{DM_2020}: impaired fasting glucose 6.1-<7.0 (WHO 1999)", FASTING),
    Rule("glucose_high_random", GLU, "glucose_mmol_l", ">=", 11.1, "mmol/L", "refer", "hyperglycaemia", f"{DM_2020}: random >= 11.1 diabetes range (WHO 1999)", NOT_FASTING),
    Rule("glucose_very_low", GLU, "glucose_mmol_l", "<", 3.0, "mmol/L", "urgent", "hypoglycaemia", f"{DM_2020}: level 2 hypoglycaemia < 3.0"),
    Rule("glucose_low", GLU, "glucose_mmol_l", "<=", 3.9, "mmol/L", "refer", "hypoglycaemia", f"{DM_2020}: hypoglycaemia in diabetes <= 3.9 (level 1: 3.0-3.9)"),
    Rule("obese", BC, "bmi", ">=", 28, "kg/m2", "refer", "obesity", f"{WS_T_428}: obese >= 28.0"),
    Rule("overweight", BC, "bmi", ">=", 24, "kg/m2", "recheck", "overweight", f"{WS_T_428}: overweight 24.0-<28.0"),
    Rule("underweight", BC, "bmi", "<", 18.5, "kg/m2", "recheck", "underweight", f"{WS_T_428}: underweight < 18.5"),
    Rule("obese", HW, "bmi", ">=", 28, "kg/m2", "refer", "obesity", f"{WS_T_428}: obese >= 28.0"),
    Rule("overweight", HW, "bmi", ">=", 24, "kg/m2", "recheck", "overweight", f"{WS_T_428}: overweight 24.0-<28.0"),
    Rule("underweight", HW, "bmi", "<", 18.5, "kg/m2", "recheck", "underweight", f"{WS_T_428}: underweight < 18.5"),
    Rule("central_obesity", CIRC, "waist_cm", ">=", 90, "cm", "recheck", "central_obesity", f"{WS_T_428}: central obesity, waist >= 90 cm (men)", sexes=MEN),
    Rule("central_obesity", CIRC, "waist_cm", ">=", 85, "cm", "recheck", "central_obesity", f"{WS_T_428}: central obesity, waist >= 85 cm (women)", sexes=WOMEN),
    Rule("spo2_very_low", SPO2, "spo2_pct", "<", 90, "%", "urgent", "hypoxaemia", f"{SPO2_SRC}; < 90 % is hypoxaemia needing same-day assessment"),
    Rule("spo2_low", SPO2, "spo2_pct", "<=", 93, "%", "refer", "hypoxaemia", SPO2_SRC),
    Rule("high_fever", TEMP, "temperature_c", ">=", 39.1, "Cel", "urgent", "fever", f"{FEVER_SRC}: high fever"),
    Rule("fever", TEMP, "temperature_c", ">=", 37.3, "Cel", "recheck", "fever", f"{FEVER_SRC}: fever"),
    Rule("temperature_low", TEMP, "temperature_c", "<", 35.0, "Cel", "recheck", "low_temperature", "hypothermia < 35.0 degC (usually a measurement to repeat at a hut)"),
)  # fmt: skip
RULE_OF_CODE: dict[str, Rule] = {}
for _rule in RULES:
    RULE_OF_CODE.setdefault(_rule.code, _rule)
REASONS: tuple[str, ...] = tuple(dict.fromkeys(r.reason for r in RULES))
# reasons a follow-up can be opened for (a refer or urgent row); a raised reading of such a reason
# at tier recheck joins an open follow-up but never opens one
FOLLOW_UP_REASONS: frozenset[str] = frozenset(r.reason for r in RULES if r.tier in FOLLOW_UP_TIERS)


@dataclass(frozen=True, slots=True)
class Triage:
    """The verdict on one measurement: its tier and the codes of the rows at that tier."""

    tier: Tier
    codes: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """The follow-up reasons of the codes (distinct, in table order)."""
        return tuple(dict.fromkeys(RULE_OF_CODE[c].reason for c in self.codes))

    @property
    def follow_up(self) -> bool:
        """Whether this verdict opens (or joins) a follow-up: refer or urgent."""
        return self.tier in FOLLOW_UP_TIERS


NORMAL_TRIAGE = Triage("normal")


def _meal(values: Values) -> str:
    meal = values.get("meal")
    return meal if isinstance(meal, str) and meal in FASTING | NOT_FASTING else "random"


def matching_rules(type_: str, values: Values) -> list[Rule]:
    """Every single-reading row of the table that this measurement meets (table order)."""
    meal = _meal(values)
    out = []
    for rule in RULES:
        if rule.type != type_ or rule.key == RAISED_DAYS:
            continue
        value = values.get(rule.key)
        if value is None or isinstance(value, str):
            continue
        if rule.meals is not None and meal not in rule.meals:
            continue
        if rule.sexes is not None and values.get("sex") not in rule.sexes:
            continue  # no sex entered: no sex-specific row applies (never a guess)
        if rule.matches(float(value)):
            out.append(rule)
    return out


def triage(type_: str, values: Values) -> Triage:
    """The tier of one (plausible) measurement: the worst tier of the rows it meets."""
    rules = matching_rules(type_, values)
    if not rules:
        return NORMAL_TRIAGE
    worst = max(RANK[r.tier] for r in rules)
    codes = tuple(dict.fromkeys(r.code for r in rules if RANK[r.tier] == worst))
    return Triage(TIERS[worst], codes)


def worse(a: Tier, b: Tier) -> Tier:
    """The more urgent of two tiers."""
    return a if RANK[a] >= RANK[b] else b


def bp_raised(values: Values) -> bool:
    """Whether a blood-pressure reading is raised by the home cut-off (any tier above normal)."""
    return bool(matching_rules(BP, values))


def suspected_hypertension(raised_days: Iterable[int], day: int) -> bool:
    """Whether a raised reading on Shanghai day `day` makes "suspected hypertension": raised readings
    on at least the table's number of different days within HTN_WINDOW_DAYS ending on `day`
    (`raised_days`: the resident's days with a raised reading, `day` among them)."""
    rule = RULE_OF_CODE[SUSPECTED_HYPERTENSION]
    window = {d for d in raised_days if day - HTN_WINDOW_DAYS < d <= day}
    return day in window and rule.matches(len(window))
