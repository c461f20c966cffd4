"""Template filters: numbers, rates, intervals and changes written for people, not machines."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone


def when(value) -> str:
    """Format an ISO timestamp or epoch seconds as ``2026-01-01 12:00:05`` (UTC)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, timezone.utc)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def number(value, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits; missing or infinite values as a dash."""
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"


def percent(value, digits: int = 1) -> str:
    if value is None or isinstance(value, float) and not math.isfinite(value):
        return "–"
    return f"{value * 100:.{digits}f}%"


def interval(low, high, fmt=number) -> str:
    """Format a 95% interval as ``[0.12, 0.18]``."""
    if low is None or high is None:
        return ""
    return f"[{fmt(low)}, {fmt(high)}]"


def change_text(change) -> str:
    """Describe one history entry's change in a line or two."""
    if not isinstance(change, dict):
        return json.dumps(change)
    if change.get("created"):
        return f"created as {change.get('status', 'draft')}"
    parts = []
    for name, value in change.items():
        if name == "status":
            parts.append(f"status → {value}")
        else:
            parts.append(f"{name}: {json.dumps(value, separators=(', ', ': '))}")
    return "\n".join(parts) or "no change"


FILTERS = {"when": when, "number": number, "percent": percent, "change_text": change_text}
