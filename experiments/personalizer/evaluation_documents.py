"""Personalizer's evaluation documents, in the shape of the API version a client speaks.

v1.0 and v1.1 clients read ``status`` as ``completed`` / ``pending`` / ``failed`` and each
policy's results as ``summary[]`` (one entry per time window) and ``totalSummary`` with
IPS sums and a numeric ``confidenceInterval`` (the half-width of the 95% interval);
2022-09-01-preview clients read ``Succeeded`` / ``Running`` / ``Failed``, a
``summary`` with the doubly robust ``expectedReward`` and its interval, and a
``timeseries``. Both are built from the replay's additive per-window sums
(``experiments.reporting.evaluation.bucket_sums``). Pure functions.
"""
from __future__ import annotations

import math

from experiments.errors import InvalidField
from experiments.personalizer.config import duration_text
from experiments.personalizer.versions import V1_1
from experiments.times import iso

V1_STATUS = {"Running": "pending", "Succeeded": "completed", "Failed": "failed"}
INTERVALS = (5, 60, 360, 720, 1440)  # minutes, as the 2022 spec allows
WINDOWS = ("Expanding", "Rolling")
MAX_V1_WINDOWS = 288
Z95 = 1.959963984540054
# columns of a bucket row
START, COUNT, WEIGHTS, IPS, IPS_SQUARES, NONZERO, DR, DR_SQUARES = range(8)


def interval_minutes(value, start: float, end: float) -> int:
    """Return the aggregation window: the one asked for, else the finest giving at most 288 windows."""
    if value is not None:
        if not isinstance(value, int) or value not in INTERVALS:
            raise InvalidField("intervalInMinutes", f"must be one of {', '.join(map(str, INTERVALS))}")
        return value
    return next((m for m in INTERVALS if (end - start) / (60 * m) <= MAX_V1_WINDOWS), INTERVALS[-1])


def check_window(value) -> str:
    if value is None:
        return "Expanding"
    if value not in WINDOWS:
        raise InvalidField("window", "must be Expanding or Rolling")
    return value


def regroup(buckets: list[list[float]], minutes: int, start: float, end: float) -> list[list[float]]:
    """Sum the 5-minute rows into ``minutes``-wide windows aligned on ``start``, inside [start, end)."""
    width = 60.0 * minutes
    out: dict[float, list[float]] = {}
    for row in buckets:
        if not start <= row[START] < end:
            continue
        at = start + math.floor((row[START] - start) / width) * width
        total = out.setdefault(at, [at] + [0.0] * (len(row) - 1))
        for i in range(1, len(row)):
            total[i] += row[i]
    return [out[at] for at in sorted(out)]


def total(buckets: list[list[float]]) -> list[float]:
    return [0.0] + [sum(row[i] for row in buckets) for i in range(1, 8)]


def _half_width(count: float, sum_: float, squares: float) -> float:
    if count < 2:
        return 0.0
    variance = max(0.0, (squares - sum_ * sum_ / count) / (count - 1))
    return Z95 * math.sqrt(variance / count)


def v1_summary(row: list[float], at: float, window_seconds: float, version: str) -> dict:
    """One ``PolicyResultSummary``: IPS sums of a time window, as v1 clients read them."""
    count = row[COUNT]
    summary = {"timeStamp": iso(at), "ipsEstimatorNumerator": row[IPS], "ipsEstimatorDenominator": count,
               "snipsEstimatorDenominator": row[WEIGHTS],
               "aggregateTimeWindow": duration_text(window_seconds, version),
               "nonZeroProbability": row[NONZERO], "confidenceInterval": _half_width(count, row[IPS], row[IPS_SQUARES]),
               "sumOfSquares": row[IPS_SQUARES]}
    if version == V1_1:
        summary["averageReward"] = row[IPS] / count if count else 0.0
    return summary


def v1_policy_result(result: dict, contract: dict, minutes: int, version: str, with_summary: bool) -> dict:
    """A policy's name, arguments and (once done) its windows and total, as v1 clients read them."""
    out = {"name": result["name"], "arguments": result["arguments"]}
    if version == V1_1:
        out["policySource"] = result["policySource"]
    buckets = result.get("buckets")
    if buckets is None:
        return out
    start, end = contract["start"], contract["end"]
    if with_summary:
        out["summary"] = [v1_summary(row, row[START], 60.0 * minutes, version)
                          for row in regroup(buckets, minutes, start, end)]
    out["totalSummary"] = v1_summary(total(buckets), end, 0.0, version)
    return out


def timeseries(buckets: list[list[float]], minutes: int, window: str, start: float, end: float) -> dict:
    """The doubly robust estimate per window (``Rolling``) or up to each window (``Expanding``)."""
    data, running = [], [0.0] * 8
    for row in regroup(buckets, minutes, start, end):
        if window == "Expanding":
            running = [0.0] + [running[i] + row[i] for i in range(1, 8)]
            row = running
        count = row[COUNT]
        mean = row[DR] / count if count else None
        half = _half_width(count, row[DR], row[DR_SQUARES])
        data.append({"timeStamp": iso(row[START] if window == "Rolling" else row[START]),
                     "expectedReward": mean,
                     "confidenceInterval": [mean - half, mean + half] if mean is not None else [None, None]})
    return {"data": data}
