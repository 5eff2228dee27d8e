"""Export in the field layout of China's resident health-record data set (WS 365 城乡居民健康档案
基本数据集, whose data elements are those of WS 363 卫生信息数据元目录): one CSV row per data element
value, so the district can load hut results into the health-record system it already uses.

Pure functions; the mapping table `ELEMENTS` is printed with its sources in docs/health.md. A value
whose WS 363 identifier could not be confirmed is still exported, with its name and an empty
identifier, for the loader to map by hand (never with a guessed identifier).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cloud.days import SHANGHAI

WS363_7 = "WS 363.7-2011 卫生信息数据元目录 第7部分：体格检查"
WS363_9 = "WS 363.9-2011 卫生信息数据元目录 第9部分：实验室检查"
NOT_CONFIRMED = "identifier not confirmed (no WS 363 text at hand); exported by name"


@dataclass(frozen=True, slots=True)
class Element:
    """One data element: contract value key -> WS 363 identifier, name, unit."""

    key: str
    identifier: str  # "" when not confirmed
    name: str
    unit: str
    source: str
    meals: frozenset[str] | None = None  # glucose: the meal contexts the element is for


FASTING = frozenset({"fasting"})
NOT_FASTING = frozenset({"postprandial", "random", "unknown"})

ELEMENTS: tuple[Element, ...] = (
    Element("systolic_mmhg", "DE04.10.174.00", "收缩压", "mmHg", WS363_7),
    Element("diastolic_mmhg", "DE04.10.176.00", "舒张压", "mmHg", WS363_7),
    Element("mean_arterial_mmhg", "", "平均动脉压", "mmHg", NOT_CONFIRMED),
    Element("pulse_bpm", "DE04.10.118.00", "脉率", "次/min", WS363_7),
    Element("height_cm", "DE04.10.167.00", "身高", "cm", WS363_7),
    Element("weight_kg", "DE04.10.188.00", "体重", "kg", WS363_7),
    Element("bmi", "", "体质指数", "kg/m2", NOT_CONFIRMED),
    Element("body_fat_pct", "", "体脂率", "%", NOT_CONFIRMED),
    Element("waist_cm", "", "腰围", "cm", NOT_CONFIRMED),
    Element("hip_cm", "", "臀围", "cm", NOT_CONFIRMED),
    Element("temperature_c", "DE04.10.186.00", "体温", "℃", WS363_7),
    Element("spo2_pct", "", "血氧饱和度", "%", NOT_CONFIRMED),
    Element("glucose_mmol_l", "DE04.50.102.00", "空腹血糖值", "mmol/L", WS363_9, FASTING),
    Element("glucose_mmol_l", "", "随机血糖值", "mmol/L", NOT_CONFIRMED, NOT_FASTING),
)
HEADER = (
    "个人标识",  # the resident's pseudonym; the staff tool maps it to the record number
    "检查日期时间",  # WS 363 DT15: YYYYMMDDThhmmss, Shanghai time
    "数据元标识符",
    "数据元名称",
    "数据元值",
    "计量单位",
    "测量方式",
    "设备标识",
    "评估结果",
)
SELF_MEASURED = "自测"  # self-measured at a health hut
STAFF_MEASURED = "工作人员测量"  # entered by health staff (waist, hip)
TIER_ZH = {
    "normal": "正常",
    "recheck": "建议复测",
    "refer": "建议家庭医生就诊",
    "urgent": "当日就医",
}


@dataclass(frozen=True, slots=True)
class Row:
    """One stored measurement to export."""

    resident: str
    ts: int  # epoch ms
    type: str
    device: str
    values: Mapping[str, float | str]
    tier: str | None
    staff_entered: bool = False


def datetime_dt15(ts_ms: int) -> str:
    """WS 363 DT15 date-time (YYYYMMDDThhmmss) in Shanghai time."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, SHANGHAI).strftime("%Y%m%dT%H%M%S")


def _cell(text: str) -> str:
    """A cell a spreadsheet will not evaluate (no leading = + - @)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _number(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def lines(rows: Iterable[Row]) -> list[tuple[str, ...]]:
    """The data rows (without header): one per data element value, in the rows' order."""
    out: list[tuple[str, ...]] = []
    for r in rows:
        meal = r.values.get("meal")
        meal_s = meal if isinstance(meal, str) else "unknown"
        for e in ELEMENTS:
            value = r.values.get(e.key)
            if value is None or isinstance(value, str):
                continue
            if e.meals is not None and meal_s not in e.meals:
                continue
            out.append(
                (
                    r.resident,
                    datetime_dt15(r.ts),
                    e.identifier,
                    e.name,
                    _number(float(value)),
                    e.unit,
                    STAFF_MEASURED if r.staff_entered else SELF_MEASURED,
                    r.device,
                    TIER_ZH.get(r.tier or "", ""),
                )
            )
    return out


def csv_text(rows: Iterable[Row]) -> str:
    """The whole CSV (header first), UTF-8 text with CRLF line ends (RFC 4180)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    for line in lines(rows):
        writer.writerow([_cell(c) for c in line])
    return buf.getvalue()
