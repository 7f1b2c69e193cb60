"""The usage page's daily chart, laid out on the server: the template draws these rectangles as inline
SVG, so the page needs no chart library and no script (the CSP allows neither inline code nor CDNs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.utils import timezone

from workspaces.models import DailyUsage, Workspace


# Stacked bottom to top; each is a DailyUsage counter with its legend label and CSS class.
SERIES = (
    ("api_hits", "API, photo", "api-hit"),
    ("api_misses", "API, monogram", "api-miss"),
    ("mcp_hits", "MCP, photo", "mcp-hit"),
    ("mcp_misses", "MCP, monogram", "mcp-miss"),
)
ERRORS = (
    ("refused_401", "401 key or domain refused"),
    ("refused_402", "402 quota spent"),
    ("refused_429", "429 rate limited"),
)

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 20, 12, 28  # room for the axis labels
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass
class Segment:
    x: float
    y: float
    width: float
    height: float
    css: str


@dataclass
class Day:
    day: date
    counts: dict[str, int]
    total: int
    x: float = 0  # the bar's left edge
    center: float = 0
    label: str = ""  # an x-axis label under this bar, every few days
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Chart:
    days: list[Day]
    ticks: list[tuple[float, int]]  # (y, value) gridlines
    total: int
    peak: Day
    legend: tuple = SERIES
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: int = TOP + PLOT_H
    label_y: int = HEIGHT - 8


def _gridline_step(peak: int) -> int:
    """The smallest round step (1, 2, 2.5 or 5 × 10ⁿ, whole numbers only) whose four gridlines reach `peak`."""
    magnitude = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            step = factor * magnitude
            if step == int(step) and step * 4 >= peak:
                return int(step)
        magnitude *= 10


def _days(workspace: Workspace, days: int, today: date | None) -> list[tuple[date, DailyUsage | None]]:
    """The last `days` days up to `today`, oldest first, each with its usage row (None if nothing happened)."""
    first = (today or timezone.now().date()) - timedelta(days=days - 1)
    rows = {row.day: row for row in DailyUsage.objects.filter(workspace=workspace, day__gte=first)}
    return [(day, rows.get(day)) for day in (first + timedelta(days=offset) for offset in range(days))]


def daily_chart(workspace: Workspace, *, days: int = 30, today: date | None = None) -> Chart:
    chart_days = []
    for day, row in _days(workspace, days, today):
        counts = {name: getattr(row, name) if row else 0 for name, _label, _css in SERIES}
        chart_days.append(Day(day=day, counts=counts, total=sum(counts.values())))
    step = _gridline_step(max(d.total for d in chart_days))
    top = step * 4
    slot = PLOT_W / days
    bar = slot * 0.72
    for index, chart_day in enumerate(chart_days):
        x = chart_day.x = round(LEFT + index * slot + (slot - bar) / 2, 2)
        chart_day.center = round(LEFT + (index + 0.5) * slot, 2)
        y: float = TOP + PLOT_H
        for name, _label, css in SERIES:
            height = round(chart_day.counts[name] / top * PLOT_H, 2)
            if height:
                y -= height
                chart_day.segments.append(Segment(x=x, y=round(y, 2), width=round(bar, 2), height=height, css=css))
        if index % 7 == (days - 1) % 7:  # label today and every week before it
            chart_day.label = f"{chart_day.day:%b} {chart_day.day.day}"
    ticks = [(round(TOP + PLOT_H - PLOT_H * line / 4, 2), step * line) for line in range(5)]
    return Chart(
        days=chart_days,
        ticks=ticks,
        total=sum(d.total for d in chart_days),
        peak=max(chart_days, key=lambda d: d.total),
    )


def recent_errors(workspace: Workspace, *, days: int = 7, today: date | None = None) -> dict:
    """Refused requests per day for the last `days` days, and their totals."""
    per_day = [
        (day, [getattr(row, name) if row else 0 for name, _label in ERRORS])
        for day, row in _days(workspace, days, today)
    ]
    totals = [sum(counts[i] for _day, counts in per_day) for i in range(len(ERRORS))]
    return {"columns": ERRORS, "days": per_day, "totals": totals, "any": any(totals)}
