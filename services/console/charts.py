"""Small server-drawn SVG line charts: a zone's intensity (history, forecast, error band) and savings over time.

Drawn here rather than by a chart library: a few dozen lines of SVG cost nothing to load and need no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 460, 190
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 10, 22
HOUR = 3600


@dataclass
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    css: str
    dashed: bool = False


@dataclass
class Chart:
    title: str
    unit: str
    series: list[Series] = field(default_factory=list)
    # (t, low, high) per point: the forecast's error band.
    band: list[tuple[float, float, float]] = field(default_factory=list)
    now: float | None = None


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def _time_ticks(t0: float, t1: float) -> list[float]:
    """Round hours (or days) between t0 and t1, at most about five."""
    step = next((h * HOUR for h in (1, 3, 6, 12, 24, 48, 168) if (t1 - t0) / (h * HOUR) <= 5), 336 * HOUR)
    first = (int(t0) // step + 1) * step
    return [float(t) for t in range(first, int(t1) + 1, step)]


def _label(t: float, span: float) -> str:
    moment = datetime.fromtimestamp(t, UTC)
    if span > 3 * 86400:
        return moment.strftime("%m-%d")
    return moment.strftime("%H:%M") if moment.hour or span < 6 * HOUR else moment.strftime("%m-%d")


def render(chart: Chart) -> str:
    ts = [t for s in chart.series for t, _ in s.points] + [t for t, _, _ in chart.band]
    vs = [v for s in chart.series for _, v in s.points] + [v for _, lo, hi in chart.band for v in (lo, hi)]
    title = f"<figcaption>{escape(chart.title)}</figcaption>"
    if not ts:
        return f'<figure class="chart">{title}<p class="muted">no data from the API</p></figure>'
    t0, t1 = min(ts), max(ts)
    if chart.now is not None:
        t0, t1 = min(t0, chart.now), max(t1, chart.now)
    t1 = t1 if t1 > t0 else t0 + 1
    v0, v1 = 0.0, max(vs) * 1.05 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v - v0) / (v1 - v0) * plot_h

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(chart.title)}">',
    ]
    for v in _ticks(v0, v1):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="axis" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>'
        )
    for t in _time_ticks(t0, t1):
        parts.append(
            f'<text class="axis" x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{_label(t, t1 - t0)}</text>"
        )
    if chart.band:
        upper = " ".join(f"{x(t):.1f},{y(hi):.1f}" for t, _, hi in chart.band)
        lower = " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, lo, _ in reversed(chart.band))
        parts.append(
            f'<polygon class="band" points="{upper} {lower}"><title>forecast error band</title></polygon>'
        )
    for s in chart.series:
        if not s.points:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<polyline class="{s.css}" points="{path}"{dash}><title>{escape(s.label)}</title></polyline>'
        )
    if chart.now is not None:
        parts.append(
            f'<line class="now" x1="{x(chart.now):.1f}" x2="{x(chart.now):.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
        )
    parts.append("</svg>")
    legend = "".join(f'<span class="key {s.css}">{escape(s.label)}</span>' for s in chart.series if s.points)
    if chart.band:
        legend += '<span class="key band">error band</span>'
    return f'<figure class="chart">{title}{"".join(parts)}<div class="legend">{legend} <span class="muted">{escape(chart.unit)}</span></div></figure>'
