"""The report a resident takes home (健康小屋测量报告): pure functions from stored readings to a
printable HTML page with inline SVG trend plots, Chinese with English labels.

`build` picks the latest reading of each measurement type with its tier in plain words, the advice
line of each tier, and the trends of blood pressure, glucose and weight; `html` renders it. No
threshold lives here: the reference lines of the plots are rows of `cloud/health/triage.RULES`.
The PNG variant draws the same `Report` with matplotlib (`cloud/health/report_png.py`).
"""

from __future__ import annotations

import datetime as dt
import html as _html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cloud.days import SHANGHAI, number_of
from cloud.health.triage import (
    BP,
    RANK,
    RULE_OF_CODE,
    RULES,
    SUSPECTED_HYPERTENSION,
    Tier,
    bp_raised,
    suspected_hypertension,
    worse,
)

Values = Mapping[str, float | str]

# tier -> (plain words zh, en), advice line (zh, en)
TIER_WORDS: dict[str, tuple[str, str]] = {
    "normal": ("正常", "Normal"),
    "recheck": ("建议复测", "Measure again"),
    "refer": ("请看家庭医生", "See your family doctor"),
    "urgent": ("请今天就医", "See a doctor today"),
}
ADVICE: dict[str, tuple[str, str]] = {
    "normal": (
        "结果在正常范围。请保持健康的生活方式，定期来小屋测量。",
        "Within the normal range. Keep a healthy lifestyle and come back to measure regularly.",
    ),
    "recheck": (
        "结果偏离正常。请在几天内休息后再测一次，注意饮食、运动和休息。",
        "Outside the normal range. Rest and measure again within a few days; mind diet, "
        "exercise and sleep.",
    ),
    "refer": (
        "请在两周内到家庭医生处就诊，带上这份报告。",
        "Please see your family doctor within 2 weeks and bring this report.",
    ),
    "urgent": (
        "请今天就去看家庭医生或医院；如有胸痛、气短、意识模糊，请立即拨打120。",
        "Please see your family doctor or a hospital today; with chest pain, breathlessness or "
        "confusion call 120 at once.",
    ),
}
TIER_COLOURS: dict[str, str] = {
    "normal": "#2e7d32",
    "recheck": "#b26a00",
    "refer": "#c62828",
    "urgent": "#7b1fa2",
}
TYPE_LABELS: dict[str, tuple[str, str]] = {
    "blood_pressure": ("血压", "Blood pressure"),
    "blood_glucose": ("血糖", "Blood glucose"),
    "body_composition": ("体重与体成分", "Weight and body composition"),
    "body_temperature": ("体温", "Body temperature"),
    "pulse_oximetry": ("血氧", "Blood oxygen"),
    "height_weight": ("身高体重", "Height and weight"),
    "body_circumference": ("腰围臀围", "Waist and hip"),
}
# value key -> (zh, en, unit shown)
VALUE_LABELS: dict[str, tuple[str, str, str]] = {
    "systolic_mmhg": ("收缩压", "Systolic", "mmHg"),
    "diastolic_mmhg": ("舒张压", "Diastolic", "mmHg"),
    "mean_arterial_mmhg": ("平均压", "Mean arterial", "mmHg"),
    "pulse_bpm": ("脉搏", "Pulse", "/min"),
    "glucose_mmol_l": ("血糖", "Glucose", "mmol/L"),
    "weight_kg": ("体重", "Weight", "kg"),
    "height_cm": ("身高", "Height", "cm"),
    "bmi": ("体质指数", "BMI", "kg/m²"),
    "body_fat_pct": ("体脂率", "Body fat", "%"),
    "temperature_c": ("体温", "Temperature", "°C"),
    "spo2_pct": ("血氧饱和度", "SpO2", "%"),
    "waist_cm": ("腰围", "Waist", "cm"),
    "hip_cm": ("臀围", "Hip", "cm"),
}
MEAL_WORDS: dict[str, tuple[str, str]] = {
    "fasting": ("空腹", "fasting"),
    "postprandial": ("餐后", "after a meal"),
    "random": ("随机", "random"),
}
# triage row code -> what was found, in plain words
FINDINGS: dict[str, tuple[str, str]] = {
    "bp_severe": ("血压很高", "blood pressure very high"),
    "bp_raised_home": ("血压偏高", "blood pressure raised"),
    "suspected_hypertension": ("多日血压偏高，疑似高血压", "raised on several days"),
    "glucose_very_high": ("血糖很高", "glucose very high"),
    "glucose_high_fasting": ("空腹血糖高", "fasting glucose high"),
    "glucose_impaired_fasting": ("空腹血糖偏高", "fasting glucose raised"),
    "glucose_high_random": ("随机血糖高", "random glucose high"),
    "glucose_very_low": ("血糖很低", "glucose very low"),
    "glucose_low": ("血糖偏低", "glucose low"),
    "obese": ("肥胖", "obesity"),
    "overweight": ("超重", "overweight"),
    "underweight": ("体重过低", "underweight"),
    "spo2_very_low": ("血氧很低", "oxygen very low"),
    "spo2_low": ("血氧偏低", "oxygen low"),
    "high_fever": ("高热", "high fever"),
    "fever": ("发热", "fever"),
    "temperature_low": ("体温偏低", "temperature low"),
    "central_obesity": ("腰围超标（中心型肥胖）", "waist above the cut-off (central obesity)"),
}
SEX_WORDS: dict[str, tuple[str, str]] = {"M": ("男", "male"), "F": ("女", "female")}
SCREENING_NOTE = (
    "小屋结果为自测，仅供筛查，不作诊断。",
    "Hut results are self-measured: for screening, not a diagnosis.",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored measurement of the resident with its stored verdict."""

    ts: int  # epoch ms
    type: str
    values: Values
    tier: Tier
    codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """One plotted series: a label and its (epoch ms, value) points in time order."""

    label: str
    colour: str
    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class Trend:
    """One trend plot: title, unit, series and the triage table's reference lines (value, label)."""

    title: tuple[str, str]
    unit: str
    lines: tuple[Line, ...]
    references: tuple[tuple[float, str], ...]

    @property
    def empty(self) -> bool:
        """No point in any series."""
        return not any(line.points for line in self.lines)


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the printed page shows."""

    resident: str
    start: dt.date
    end: dt.date
    generated: dt.datetime
    latest: tuple[Reading, ...]  # the latest reading of each type, in TYPE_LABELS order
    trends: tuple[Trend, ...]
    measurements: int

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The distinct tiers of the latest readings, the most urgent first."""
        return tuple(sorted({r.tier for r in self.latest}, key=lambda t: -RANK[t]))


def _rule_threshold(code: str, key: str) -> float:
    return next(r.threshold for r in RULES if r.code == code and r.key == key)


def _series(
    readings: Sequence[Reading], types: Iterable[str], key: str
) -> tuple[tuple[int, float], ...]:
    wanted = set(types)
    return tuple(
        (r.ts, float(v))
        for r in readings
        if r.type in wanted and (v := r.values.get(key)) is not None and not isinstance(v, str)
    )


def trends(readings: Sequence[Reading]) -> tuple[Trend, ...]:
    """Blood pressure (systolic, diastolic), glucose (fasting and not fasting apart) and weight."""
    bp = Trend(
        ("血压", "Blood pressure"),
        "mmHg",
        (
            Line(
                "收缩压 systolic", "#c62828", _series(readings, ["blood_pressure"], "systolic_mmhg")
            ),
            Line(
                "舒张压 diastolic",
                "#1565c0",
                _series(readings, ["blood_pressure"], "diastolic_mmhg"),
            ),
        ),
        (
            (_rule_threshold("bp_raised_home", "systolic_mmhg"), "收缩压 systolic"),
            (_rule_threshold("bp_raised_home", "diastolic_mmhg"), "舒张压 diastolic"),
        ),
    )
    fasting = [r for r in readings if r.values.get("meal") == "fasting"]
    other = [r for r in readings if r.values.get("meal") != "fasting"]
    glucose = Trend(
        ("血糖", "Blood glucose"),
        "mmol/L",
        (
            Line("空腹 fasting", "#6a1b9a", _series(fasting, ["blood_glucose"], "glucose_mmol_l")),
            Line("餐后/随机 other", "#ef6c00", _series(other, ["blood_glucose"], "glucose_mmol_l")),
        ),
        (
            (_rule_threshold("glucose_high_fasting", "glucose_mmol_l"), "空腹 fasting"),
            (_rule_threshold("glucose_high_random", "glucose_mmol_l"), "随机 random"),
        ),
    )
    weight_types = {r.type for r in readings if "weight_kg" in r.values}
    weight = Trend(
        ("体重", "Weight"),
        "kg",
        (Line("体重 weight", "#2e7d32", _series(readings, sorted(weight_types), "weight_kg")),),
        (),
    )
    return (bp, glucose, weight)


def _day(ts_ms: int) -> int:
    return int(number_of(dt.datetime.fromtimestamp(ts_ms / 1000, SHANGHAI).date()))


def across_visits(last: Reading, readings: Sequence[Reading]) -> Reading:
    """The latest blood-pressure reading with the across-visits row applied: raised readings on
    enough different days within the window make it "suspected hypertension" (refer), as the
    aggregator's follow-up pass judges it (`triage.suspected_hypertension`)."""
    if not bp_raised(last.values):
        return last
    days = {_day(r.ts) for r in readings if r.type == BP and bp_raised(r.values)}
    if not suspected_hypertension(days, _day(last.ts)):
        return last
    rule = RULE_OF_CODE[SUSPECTED_HYPERTENSION]
    tier = worse(last.tier, rule.tier)
    codes = (
        last.codes + (SUSPECTED_HYPERTENSION,) if tier == last.tier else (SUSPECTED_HYPERTENSION,)
    )
    return Reading(last.ts, last.type, last.values, tier, codes)


def build(
    resident: str,
    readings: Iterable[Reading],
    start: dt.date,
    end: dt.date,
    generated: dt.datetime,
) -> Report:
    """The report of a resident's readings of the Shanghai days start..end."""
    ordered = sorted(readings, key=lambda r: r.ts)
    latest: dict[str, Reading] = {}
    for r in ordered:
        latest[r.type] = r
    if BP in latest:
        latest[BP] = across_visits(latest[BP], ordered)
    order = list(TYPE_LABELS)
    shown = sorted(
        latest.values(),
        key=lambda r: (order.index(r.type) if r.type in order else len(order), r.type),
    )
    return Report(resident, start, end, generated, tuple(shown), trends(ordered), len(ordered))


# ---- HTML ------------------------------------------------------------------------------------


def esc(s: object) -> str:
    """HTML-escaped text."""
    return _html.escape(str(s), quote=True)


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v)}"


def value_text(key: str, value: float | str) -> str:
    """A value with its label and unit in both languages (plain text)."""
    if key == "meal" and isinstance(value, str):
        zh, en = MEAL_WORDS.get(value, (value, value))
        return f"{zh} {en}"
    if key == "sex" and isinstance(value, str):
        zh, en = SEX_WORDS.get(value, (value, value))
        return f"性别 Sex: {zh} {en}"
    zh, en, unit = VALUE_LABELS.get(key, (key, key, ""))
    shown = _fmt(float(value)) if not isinstance(value, str) else value
    return f"{zh} {en}: {shown} {unit}".rstrip()


def ordered_values(values: Values) -> list[tuple[str, float | str]]:
    """The values in the order of VALUE_LABELS (systolic before diastolic), then the rest."""
    order = [*VALUE_LABELS, "meal", "sex"]
    return sorted(
        values.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])
    )


def findings_text(r: Reading) -> str:
    """What the triage found, in plain words (empty when normal)."""
    return "; ".join(f"{FINDINGS.get(c, (c, c))[0]} {FINDINGS.get(c, (c, c))[1]}" for c in r.codes)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    raw = span / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), SHANGHAI).timestamp() * 1000)


def svg(trend: Trend, start: dt.date, end: dt.date, width: int = 680, height: int = 220) -> str:
    """An inline SVG line plot of one trend over the days start..end (x: days, y: values)."""
    left, right, top, bottom = 52, 130, 14, 44
    x0, x1 = _day_ms(start), _day_ms(end + dt.timedelta(days=1))
    values = [v for line in trend.lines for _, v in line.points] + [v for v, _ in trend.references]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(" ".join(trend.title))}">'
    ]
    pw, ph = width - left - right, height - top - bottom
    if trend.empty:
        out.append(
            f'<text x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" text-anchor="middle" '
            'fill="#777" font-size="14">无数据 No data</text></svg>'
        )
        return "".join(out)
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.1, 1.0)
    lo, hi = lo - pad, hi + pad

    def x(ts: int) -> float:
        return left + (ts - x0) / (x1 - x0) * pw

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(lo, hi):
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>'
        )
    days = (end - start).days + 1
    step = max(1, math.ceil(days / 6))
    for i in range(0, days, step):
        day = start + dt.timedelta(days=i)
        xd = x(_day_ms(day))
        out.append(
            f'<line x1="{xd:.1f}" x2="{xd:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
            f'<text x="{xd:.1f}" y="{top + ph + 17}" text-anchor="middle" font-size="11">'
            f"{day:%m-%d}</text>"
        )
    for value, label in trend.references:
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#c62828" stroke-dasharray="5,4" stroke-width="1"/>'
            f'<text x="{left + pw + 4}" y="{y(value) + 4:.1f}" font-size="10" fill="#c62828">'
            f"{esc(label)} ({_fmt(value)})</text>"
        )
    legend_x = left
    for line in trend.lines:
        if line.points:
            pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line.points)
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{line.colour}" stroke-width="1.5"/>'
            )
            out.extend(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.6" fill="{line.colour}"/>'
                for t, v in line.points
            )
        out.append(
            f'<rect x="{legend_x}" y="{height - 13}" width="10" height="10" fill="{line.colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 4}" font-size="11">{esc(line.label)}</text>'
        )
        legend_x += 160
    out.append("</svg>")
    return "".join(out)


CSS = """
@page { size: A4; margin: 12mm; }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", sans-serif;
       color: #222; max-width: 190mm; margin: 0 auto; font-size: 13px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 14px 0 6px; }
.en { color: #555; font-weight: normal; font-size: 0.85em; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #bbb; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.tier { font-weight: bold; white-space: nowrap; }
.advice p { margin: 4px 0; }
figure { margin: 4px 0 8px; page-break-inside: avoid; }
figcaption { font-weight: bold; }
.meta, .note { color: #555; font-size: 11px; }
@media print { .noprint { display: none; } }
"""


def html(report: Report) -> str:
    """The printable page (UTF-8 HTML, inline SVG, no external resource)."""
    gen = report.generated.astimezone(SHANGHAI)
    rows = []
    for r in report.latest:
        zh, en = TYPE_LABELS.get(r.type, (r.type, r.type))
        when = dt.datetime.fromtimestamp(r.ts / 1000, SHANGHAI)
        values = "<br>".join(esc(value_text(k, v)) for k, v in ordered_values(r.values))
        words = TIER_WORDS[r.tier]
        found = findings_text(r)
        rows.append(
            f"<tr><td>{esc(zh)}<br><span class='en'>{esc(en)}</span></td><td>{values}</td>"
            f"<td>{when:%Y-%m-%d %H:%M}</td>"
            f"<td><span class='tier' style='color:{TIER_COLOURS[r.tier]}'>{esc(words[0])}<br>"
            f"<span class='en'>{esc(words[1])}</span></span>"
            + (f"<br><span class='en'>{esc(found)}</span>" if found else "")
            + "</td></tr>"
        )
    if not rows:
        rows.append("<tr><td colspan='4'>这段时间没有测量 No measurement in this period</td></tr>")
    advice = "".join(
        f"<p><span class='tier' style='color:{TIER_COLOURS[t]}'>{esc(TIER_WORDS[t][0])} "
        f"{esc(TIER_WORDS[t][1])}:</span> {esc(ADVICE[t][0])}<br>"
        f"<span class='en'>{esc(ADVICE[t][1])}</span></p>"
        for t in report.tiers
    )
    figures = "".join(
        f"<figure><figcaption>{esc(t.title[0])} <span class='en'>{esc(t.title[1])} "
        f"({esc(t.unit)})</span></figcaption>{svg(t, report.start, report.end)}</figure>"
        for t in report.trends
    )
    return (
        "<!DOCTYPE html>\n<html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>健康小屋测量报告 Health hut report</title><style>{CSS}</style></head><body>"
        "<h1>健康小屋测量报告 <span class='en'>Health hut measurement report</span></h1>"
        f"<div class='meta'>档案号 Record: {esc(report.resident)} · "
        f"时间段 Period: {report.start} – {report.end} · "
        f"测量次数 Measurements: {report.measurements} · "
        f"打印 Printed: {gen:%Y-%m-%d %H:%M}</div>"
        "<h2>最近一次测量 <span class='en'>Latest measurements</span></h2>"
        "<table><tr><th>项目 <span class='en'>Item</span></th><th>结果 <span class='en'>Result</span></th>"
        "<th>时间 <span class='en'>Time</span></th><th>评估 <span class='en'>Assessment</span></th></tr>"
        + "".join(rows)
        + "</table>"
        + (
            f"<h2>建议 <span class='en'>Advice</span></h2><div class='advice'>{advice}</div>"
            if advice
            else ""
        )
        + "<h2>变化趋势 <span class='en'>Trends</span></h2>"
        + figures
        + f"<p class='note'>{esc(SCREENING_NOTE[0])} {esc(SCREENING_NOTE[1])}</p>"
        "</body></html>\n"
    )
