"""Small server-side SVG charts: no JavaScript, so reports render in any browser, mail or PDF.

``line_chart`` draws one line per series over shared x labels; ``None`` values
leave a gap (a bucket without decisions is not a zero).
"""
from __future__ import annotations

import math
from html import escape

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
           "#65a30d", "#94a3b8")
MARGIN = {"left": 56, "right": 16, "top": 28, "bottom": 44}
LEGEND_ROW = 16


def nice_ceiling(value: float) -> float:
    """Round a positive axis maximum up to 1, 2, 2.5 or 5 times a power of ten.

    >>> nice_ceiling(0.137), nice_ceiling(7), nice_ceiling(0)
    (0.2, 10.0, 1.0)
    """
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-12:
            return float(step * power)
    return float(10 * power)


def _segments(values: list, xs: list[float], y) -> list[str]:
    """Polyline point lists, broken where a value is missing."""
    segments, current = [], []
    for x, value in zip(xs, values):
        if value is None or not math.isfinite(value):
            if current:
                segments.append(current)
            current = []
        else:
            current.append(f"{x:.1f},{y(value):.1f}")
    if current:
        segments.append(current)
    return [" ".join(points) for points in segments]


def line_chart(series: dict[str, list], labels: list[str], title: str = "", y_format: str = "{:.0%}",
               width: int = 640, height: int = 240) -> str:
    """Return an SVG line chart of ``series`` (name -> values aligned with ``labels``).

    >>> svg = line_chart({"bandit": [0.1, None, 0.3]}, ["00:00", "01:00", "02:00"], "Reward rate")
    >>> svg.startswith("<svg") and "Reward rate" in svg and svg.count("<polyline") == 2
    True
    """
    plot_w = width - MARGIN["left"] - MARGIN["right"]
    plot_h = height - MARGIN["top"] - MARGIN["bottom"]
    bottom = MARGIN["top"] + plot_h
    height += LEGEND_ROW * (len(_legend_rows(list(series), width)) - 1)  # room for wrapped legend rows
    finite = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
    top = nice_ceiling(max(finite, default=0.0))
    count = max(len(labels), 1)
    xs = [MARGIN["left"] + (plot_w * i / (count - 1) if count > 1 else plot_w / 2) for i in range(count)]
    y = lambda v: MARGIN["top"] + plot_h * (1 - min(max(v, 0.0), top) / top)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
             f'<text x="{MARGIN["left"]}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    parts += _grid(top, y, y_format, width)
    parts += _x_labels(labels, xs, bottom)
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        for points in _segments(values, xs, y):
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
            if " " not in points:  # a lone point draws no line: mark it so a first hour still shows
                cx, cy = points.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
    parts += _legend(list(series), width, bottom)
    parts.append("</svg>")
    return "".join(parts)


def _grid(top: float, y, y_format: str, width: int) -> list[str]:
    out = []
    steps = 4 if f"{top:e}".startswith("2.0") else 5  # ticks at round numbers: 0.5 by 0.1, 2 by 0.5
    for k in range(steps + 1):
        value = top * k / steps
        out.append(f'<line x1="{MARGIN["left"]}" x2="{width - MARGIN["right"]}" y1="{y(value):.1f}" '
                   f'y2="{y(value):.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{MARGIN["left"] - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#4b5563">'
                   f'{escape(y_format.format(value))}</text>')
    return out


def _x_labels(labels: list[str], xs: list[float], bottom: float) -> list[str]:
    if not labels:
        return []
    picks = sorted({0, len(labels) // 2, len(labels) - 1})
    def anchor(i: int) -> str:
        return "start" if i == 0 and len(labels) > 1 else "end" if i == len(labels) - 1 else "middle"
    return [f'<text x="{xs[i]:.1f}" y="{bottom + 16:.0f}" text-anchor="{anchor(i)}" fill="#4b5563">'
            f'{escape(labels[i])}</text>' for i in picks]


def _legend_rows(names: list[str], width: int) -> list[list[tuple[int, str]]]:
    """Lay legend entries out left to right, wrapping onto new rows; return (x, name) per row."""
    rows, x = [[]], MARGIN["left"]
    for name in names:
        step = 28 + 7 * len(name)
        if rows[-1] and x + step > width - MARGIN["right"]:
            rows.append([])
            x = MARGIN["left"]
        rows[-1].append((x, name))
        x += step
    return rows


def _legend(names: list[str], width: int, bottom: float) -> list[str]:
    out, color_of = [], {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    for r, row in enumerate(_legend_rows(names, width)):
        y = round(bottom) + 34 + LEGEND_ROW * r
        for x, name in row:
            out.append(f'<line x1="{x}" x2="{x + 14}" y1="{y - 4}" y2="{y - 4}" stroke="{color_of[name]}" '
                       f'stroke-width="3"/><text x="{x + 18}" y="{y}">{escape(name)}</text>')
    return out
