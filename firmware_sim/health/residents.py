"""Simulated residents with realistic, diverse health profiles and what each visit measures."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resident:
    """One simulated resident; `card` is the raw card number (only the gateway ever sees it)."""

    card: str
    age: int
    sex: str
    height_cm: float
    weight_kg: float
    hypertensive: bool
    diabetic: bool
    copd: bool


@dataclass(frozen=True, slots=True)
class Truth:
    """What the instruments measure in one visit, in SI units at the instruments' resolutions."""

    systolic: int
    diastolic: int
    mean_arterial: float
    pulse: int
    weight_kg: float
    height_cm: float
    bmi: float
    body_fat_pct: float
    temperature_c: float
    glucose_mmol_l: float
    meal: str
    spo2: int
    spo2_pulse: int


def _card(rng: random.Random) -> str:
    """A Shanghai social-security-style card number (fictional digits)."""
    return "SH" + "".join(rng.choice("0123456789") for _ in range(16))


def make_residents(n: int, seed: int = 7) -> list[Resident]:
    """`n` residents of a Shanghai neighbourhood; hypertension and diabetes become likelier with age."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        age = int(min(95, max(18, rng.gauss(58, 16))))
        sex = rng.choice("FM")
        height = round(rng.gauss(170 if sex == "M" else 158, 6) - max(0, age - 60) * 0.08, 1)
        bmi = min(38.0, max(17.0, rng.gauss(23.8, 3.2)))
        weight = round(bmi * (height / 100) ** 2 * 200) / 200  # 0.005 kg resolution
        p_htn = min(0.65, max(0.05, 0.08 + 0.009 * (age - 30)))
        p_dm = min(0.30, max(0.03, 0.03 + 0.004 * (age - 30)))
        out.append(
            Resident(
                _card(rng),
                age,
                sex,
                height,
                weight,
                rng.random() < p_htn,
                rng.random() < p_dm,
                age > 60 and rng.random() < 0.08,
            )
        )
    return out


def measure(resident: Resident, rng: random.Random) -> Truth:
    """One visit's readings: age-dependent blood pressure, diabetic glucose, the odd fever."""
    age = resident.age
    sys_ = rng.gauss(108 + 0.55 * (age - 20), 8) + (
        rng.gauss(28, 12) if resident.hypertensive else 0
    )
    dia = rng.gauss(68 + 0.25 * (age - 20) - 0.3 * max(0, age - 60), 6)
    dia += rng.gauss(12, 6) if resident.hypertensive else 0
    systolic = round(min(230, max(85, sys_)))
    diastolic = round(min(systolic - 20, max(45, dia)))
    pulse = round(min(130, max(45, rng.gauss(74, 10))))
    meal = rng.choice(("fasting", "postprandial", "random"))
    if resident.diabetic:
        glucose = rng.uniform(7.0, 11.5) if meal == "fasting" else rng.uniform(9.0, 17.0)
    else:
        glucose = rng.uniform(4.2, 6.0) if meal == "fasting" else rng.uniform(4.8, 7.6)
    fever = rng.random() < 0.06
    temperature = rng.uniform(37.4, 38.8) if fever else rng.uniform(36.1, 37.1)
    spo2 = rng.randint(89, 94) if resident.copd else rng.randint(95, 99)
    weight = round((resident.weight_kg + rng.gauss(0, 0.4)) * 200) / 200
    fat = rng.gauss(22 if resident.sex == "M" else 30, 5) + 0.15 * (age - 40) / 10
    return Truth(
        systolic=systolic,
        diastolic=diastolic,
        mean_arterial=round((systolic + 2 * diastolic) / 3, 1),
        pulse=pulse,
        weight_kg=weight,
        height_cm=resident.height_cm,
        bmi=round(weight / (resident.height_cm / 100) ** 2, 1),
        body_fat_pct=round(min(55.0, max(5.0, fat)), 1),
        temperature_c=round(temperature, 1),
        glucose_mmol_l=round(glucose, 1),
        meal=meal,
        spo2=spo2,
        spo2_pulse=max(45, pulse + rng.randint(-3, 3)),
    )
