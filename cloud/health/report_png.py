"""The resident's report as a PNG (matplotlib, the optional extra `[render]`): the same `Report`
as the HTML page, drawn on an A4 portrait page at 110 dpi.

matplotlib is imported by this module only, and the API imports it only when a PNG is asked for:
without the extra the route answers 501 with one line (docs/health.md, "Resident report").
"""

from __future__ import annotations

import datetime as dt
import io
import re

import matplotlib
import matplotlib.dates as mdates
from matplotlib import font_manager
from matplotlib.figure import Figure

from cloud.days import SHANGHAI
from cloud.health.report import (
    ADVICE,
    SCREENING_NOTE,
    TIER_COLOURS,
    TIER_WORDS,
    TYPE_LABELS,
    Report,
    findings_text,
    ordered_values,
    value_text,
)

CJK_FONTS = ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback")
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]+\s*")


def cjk_font() -> str | None:
    """An installed font family with Chinese glyphs (Debian: fonts-wqy-microhei), or None."""
    for name in CJK_FONTS:
        try:
            font_manager.findfont(
                font_manager.FontProperties(family=name), fallback_to_default=False
            )
        except ValueError:
            continue
        return name
    return None


def png(report: Report, dpi: int = 110) -> bytes:
    """The report drawn as one PNG page. Without a CJK font only the English half of each label
    is drawn (no missing-glyph boxes)."""
    cjk = cjk_font()

    def t(s: str) -> str:
        return s if cjk else _CJK.sub("", s).strip()

    with matplotlib.rc_context(
        {"font.family": [cjk, "DejaVu Sans"] if cjk else ["DejaVu Sans"], "font.size": 9}
    ):
        fig = Figure(figsize=(8.27, 11.69), dpi=dpi)
        gen = report.generated.astimezone(SHANGHAI)
        fig.text(
            0.05,
            0.965,
            t("健康小屋测量报告  Health hut measurement report"),
            fontsize=15,
            weight="bold",
        )
        fig.text(
            0.05,
            0.945,
            t(
                f"档案号 Record: {report.resident}   时间段 Period: {report.start} – {report.end}   "
                f"打印 Printed: {gen:%Y-%m-%d %H:%M}"
            ),
            fontsize=8,
            color="#555",
        )
        y = 0.915
        fig.text(0.05, y, t("最近一次测量  Latest measurements"), fontsize=11)
        y -= 0.022
        if not report.latest:
            fig.text(0.05, y, t("这段时间没有测量 No measurement in this period"))
            y -= 0.02
        for r in report.latest:
            zh, en = TYPE_LABELS.get(r.type, (r.type, r.type))
            when = dt.datetime.fromtimestamp(r.ts / 1000, SHANGHAI)
            words = TIER_WORDS[r.tier]
            fig.text(0.05, y, t(f"{zh} {en}"))
            fig.text(0.36, y, f"{when:%Y-%m-%d %H:%M}", color="#555")
            fig.text(0.60, y, t(f"{words[0]} {words[1]}"), color=TIER_COLOURS[r.tier])
            y -= 0.017
            vals = "; ".join(value_text(k, v) for k, v in ordered_values(r.values))
            found = findings_text(r)
            fig.text(0.07, y, t(vals + (f"  —  {found}" if found else "")), fontsize=8)
            y -= 0.021
        if report.tiers:
            fig.text(0.05, y, t("建议  Advice"), fontsize=11)
            y -= 0.02
            for tier in report.tiers:
                fig.text(
                    0.05,
                    y,
                    t(f"{TIER_WORDS[tier][0]}: {ADVICE[tier][0]}"),
                    color=TIER_COLOURS[tier],
                    fontsize=8.5,
                )
                y -= 0.016
                fig.text(
                    0.07, y, f"{TIER_WORDS[tier][1]}: {ADVICE[tier][1]}", fontsize=7.5, color="#555"
                )
                y -= 0.02
        height = (y - 0.06) / len(report.trends)
        lo = dt.datetime.combine(report.start, dt.time(), SHANGHAI)
        hi = dt.datetime.combine(report.end + dt.timedelta(days=1), dt.time(), SHANGHAI)
        for i, trend in enumerate(report.trends):
            ax = fig.add_axes((0.1, y - (i + 1) * height + 0.03, 0.62, height - 0.05))
            ax.set_title(
                t(f"{trend.title[0]} {trend.title[1]} ({trend.unit})"), loc="left", fontsize=9
            )
            for line in trend.lines:
                if line.points:
                    xs = mdates.date2num(
                        [dt.datetime.fromtimestamp(ts / 1000, SHANGHAI) for ts, _ in line.points]
                    )
                    ax.plot(
                        xs,
                        [v for _, v in line.points],
                        "-o",
                        color=line.colour,
                        markersize=3,
                        linewidth=1.2,
                        label=t(line.label),
                    )
            for value, label in trend.references:
                ax.axhline(value, color="#c62828", linestyle="--", linewidth=0.8)
                ax.annotate(
                    t(f"{label} ({value:g})"),
                    (1.01, value),
                    xycoords=("axes fraction", "data"),
                    fontsize=7,
                    color="#c62828",
                    va="center",
                )
            if trend.empty:
                ax.text(
                    0.5, 0.5, t("无数据 No data"), transform=ax.transAxes, ha="center", color="#777"
                )
                ax.set_ylim(0, 1)
            else:
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 0.6), fontsize=7, frameon=False)
            ax.set_xlim(float(mdates.date2num(lo)), float(mdates.date2num(hi)))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d", tz=SHANGHAI))
            ax.tick_params(labelsize=7)
            ax.grid(True, color="#eee")
        fig.text(
            0.05, 0.02, t(f"{SCREENING_NOTE[0]} {SCREENING_NOTE[1]}"), fontsize=7, color="#555"
        )
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
