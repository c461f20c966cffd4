"""Which part of one experiment's log a report or an evaluation reads.

The reading itself happens in ``experiments.reporting.analytics`` (DuckDB over the
archive and the live store).
"""
from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("bandit", "holdout", "fallback")


@dataclass(frozen=True)
class Window:
    """Which decisions a report reads: one experiment, created in [start, end), bucketed by ``width`` seconds."""

    key: str
    start: float
    end: float
    width: int

    def params(self) -> tuple:
        return self.key, self.start, self.end
