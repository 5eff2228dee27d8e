"""WS 365 / WS 363 data-element export: the mapping, the CSV, and the API route (health role only)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from cloud.health import ws365
from cloud.health.fhir import SINGLE
from tests.support.health import DAY, seed_resident

R = "r-" + "a" * 32
T0 = 1_795_743_000_000  # 2026-11-27 09:30 Shanghai


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_every_exported_value_key_has_a_data_element() -> None:
    keys = {e.key for e in ws365.ELEMENTS}
    assert set(SINGLE) | {"systolic_mmhg", "diastolic_mmhg", "mean_arterial_mmhg"} <= keys
    assert all(e.identifier == "" or e.identifier.startswith("DE0") for e in ws365.ELEMENTS)
    assert all(e.source for e in ws365.ELEMENTS)


def test_blood_pressure_and_glucose_rows() -> None:
    rows = [
        ws365.Row(
            R,
            T0,
            "blood_pressure",
            "HH-01-BP",
            {"systolic_mmhg": 142, "diastolic_mmhg": 88, "pulse_bpm": 71},
            "recheck",
        ),
        ws365.Row(
            R,
            T0,
            "blood_glucose",
            "HH-01-GLU",
            {"glucose_mmol_l": 7.25, "meal": "fasting"},
            "refer",
        ),
        ws365.Row(
            R, T0, "blood_glucose", "HH-01-GLU", {"glucose_mmol_l": 9.0, "meal": "random"}, "normal"
        ),
    ]
    got = parse(ws365.csv_text(rows))
    assert [(g["数据元标识符"], g["数据元名称"], g["数据元值"], g["计量单位"]) for g in got] == [
        ("DE04.10.174.00", "收缩压", "142", "mmHg"),
        ("DE04.10.176.00", "舒张压", "88", "mmHg"),
        ("DE04.10.118.00", "脉率", "71", "次/min"),
        ("DE04.50.102.00", "空腹血糖值", "7.25", "mmol/L"),  # fasting only
        ("", "随机血糖值", "9", "mmol/L"),  # never under the fasting element
    ]
    assert {g["检查日期时间"] for g in got} == {"20261127T093000"}
    assert {g["测量方式"] for g in got} == {"自测"} and {g["个人标识"] for g in got} == {R}
    assert [g["评估结果"] for g in got][2:4] == ["建议复测", "建议家庭医生就诊"]


def test_no_cell_is_a_spreadsheet_formula() -> None:
    row = ws365.Row(
        "=cmd|' /C calc'!A0", T0, "body_temperature", "@HH", {"temperature_c": 36.6}, None
    )
    text = ws365.csv_text([row])
    assert "\n=" not in text and ",=" not in text and ",@" not in text
    assert parse(text)[0]["个人标识"].startswith("'=")


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    store = stack.tokens()
    return {role: store.create(f"ws365 test {role}", role) for role in ("operator", "health")}


def test_route_exports_the_stored_readings(api_url, tokens, influx) -> None:
    resident = seed_resident(influx)  # 3 blood-pressure readings with pulse on DAY
    url = f"{api_url}/api/v1/health/residents/{resident}/ws365.csv"
    auth = {"Authorization": f"Bearer {tokens['health']}"}
    r = httpx.get(url, params={"start": DAY, "end": DAY}, headers=auth, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert (
        r.content.startswith(b"\xef\xbb\xbf") and "attachment" in r.headers["content-disposition"]
    )
    got = parse(r.text)
    assert len(got) == 9 and {g["个人标识"] for g in got} == {resident}
    assert [g["数据元值"] for g in got if g["数据元标识符"] == "DE04.10.174.00"] == [
        "120",
        "121",
        "122",
    ]
    operator = {"Authorization": f"Bearer {tokens['operator']}"}
    assert httpx.get(url, params={"start": DAY, "end": DAY}, headers=operator).status_code == 403
    bad = httpx.get(url, params={"start": DAY, "end": "2023-04-01"}, headers=auth)
    assert bad.status_code == 422 and "before" in bad.json()["detail"]
