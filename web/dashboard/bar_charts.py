"""The dashboard's bar charts as server-side SVG, beside ``web.dashboard.charts.line_chart`` for time lines.

``stacked_bars`` shows item or arm shares per time bucket; ``bar_chart`` shows
decisions per model version. Both return SVG text that scales with its container
through ``viewBox`` and carries a ``<title>``; ``legend`` gives the (name, colour)
pairs for the page to list under a chart, where the list can wrap on a phone.

>>> svg = stacked_bars(["2026-01-01T00:00:00Z"], ["sku-1", "(other)"], [[0.75, 0.25]], "Item shares")
>>> svg.startswith("<svg") and svg.count("<rect") == 2 and legend(["sku-1", "(other)"])[1] == ("(other)", OTHER)
True
"""
from __future__ import annotations

import math
from datetime import datetime
from html import escape

from web.dashboard.charts import PALETTE, nice_ceiling

OTHER = "#b8bfc6"
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 34
FONT = 'font-family="sans-serif" font-size="11" fill="#4b5563"'


def colour(index: int, name: str = "") -> str:
    return OTHER if name == "(other)" else PALETTE[index % len(PALETTE)]


def legend(names: list[str]) -> list[tuple[str, str]]:
    return [(name, colour(i, name)) for i, name in enumerate(names)]


def short_time(label: str) -> str:
    """Shorten an ISO bucket start for an axis: ``01-05 13:00``, or ``01-05`` at midnight.

    >>> short_time("2026-01-05T13:00:00.000Z"), short_time("2026-01-05T00:00:00Z")
    ('01-05 13:00', '01-05')
    """
    try:
        moment = datetime.fromisoformat(label.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return str(label)
    return moment.strftime("%m-%d") if moment.hour == moment.minute == 0 else moment.strftime("%m-%d %H:%M")


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Return round tick values from 0 to at least ``high``.

    >>> nice_ticks(1234)
    [0.0, 500.0, 1000.0, 1500.0]
    """
    if not high or high <= 0 or not math.isfinite(high):
        return [0.0, 0.25, 0.5, 0.75, 1.0]
    step = nice_ceiling(high / count)
    return [float(round(i * step, 10)) for i in range(math.ceil(high / step - 1e-9) + 1)]


def _tick(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _open(title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']


def _y_axis(ticks: list[float], percent: bool) -> list[str]:
    parts, bottom, top = [], HEIGHT - BOTTOM, ticks[-1] or 1
    for value in ticks:
        y = bottom - (bottom - TOP) * value / top
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{_tick(value, percent)}</text>')
    return parts


def _x_labels(labels: list[str], xs: list[float], most: int) -> list[str]:
    every = max(1, math.ceil(len(labels) / most))
    return [f'<text x="{xs[i]:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" {FONT}>{escape(labels[i])}</text>'
            for i in range(0, len(labels), every)]


def _empty(title: str) -> str:
    return "".join(_open(title)) + (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" {FONT}>'
                                    "no data in this range yet</text></svg>")


def _columns(count: int) -> tuple[list[float], float]:
    span = (WIDTH - LEFT - RIGHT) / count
    return [LEFT + span * (i + 0.5) for i in range(count)], span


def stacked_bars(buckets: list[str], names: list[str], rows: list[list[float]], title: str) -> str:
    """Draw one column per time bucket split into shares (each row sums to 1, or 0 when empty)."""
    if not buckets or not rows:
        return _empty(title)
    xs, span = _columns(len(buckets))
    bar, bottom = max(1.0, span * 0.8), HEIGHT - BOTTOM
    parts = _open(title) + _y_axis([0.0, 0.25, 0.5, 0.75, 1.0], True)
    parts += _x_labels([short_time(b) for b in buckets], xs, 6)
    for x, bucket, shares in zip(xs, buckets, rows):
        y = bottom
        for index, (name, share) in enumerate(zip(names, shares)):
            if share:
                height = (bottom - TOP) * share
                y -= height
                parts.append(f'<rect x="{x - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                             f'fill="{colour(index, name)}"><title>{escape(name)}: {share * 100:.1f}% at '
                             f'{escape(short_time(bucket))}</title></rect>')
    return "".join(parts) + "</svg>"


def bar_chart(labels: list[str], values: list[float], title: str) -> str:
    """Draw one bar per label (decisions per model version, say)."""
    if not labels or not any(values):
        return _empty(title)
    ticks = nice_ticks(max(values))
    xs, span = _columns(len(labels))
    bottom, top = HEIGHT - BOTTOM, ticks[-1]
    parts = _open(title) + _y_axis(ticks, False) + _x_labels(labels, xs, 12)
    for x, label, value in zip(xs, labels, values):
        height = (bottom - TOP) * value / top
        parts.append(f'<rect x="{x - span * 0.35:.1f}" y="{bottom - height:.1f}" width="{max(1.0, span * 0.7):.1f}" '
                     f'height="{height:.1f}" fill="{PALETTE[0]}"><title>{escape(label)}: {value:,}</title></rect>')
    return "".join(parts) + "</svg>"
