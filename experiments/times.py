"""Moments as callers write them and as the service answers them: ISO 8601 in UTC, or epoch seconds."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from experiments.errors import InvalidField

TIME_HELP = "must be an ISO 8601 time such as 2026-01-01T00:00:00Z, or seconds since the epoch"
LATEST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z, the last moment an ISO 8601 date can name


def iso(ts: float | None) -> str | None:
    """Format epoch seconds as an ISO 8601 UTC timestamp."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value, field: str) -> float | None:
    """Read a moment: ISO 8601 (UTC unless it names an offset) or epoch seconds; None is open."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = _iso_seconds(value, field)
    else:
        raise InvalidField(field, TIME_HELP)
    if not math.isfinite(number) or not 0 <= number <= LATEST_TIME:
        raise InvalidField(field, f"{TIME_HELP}, from 1970 to 9999")
    return number


def _iso_seconds(text: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidField(field, TIME_HELP) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
