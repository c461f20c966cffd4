"""Intervals for proportions, which the normal interval gets wrong near 0 and 1.

A report's click rate is often a few percent, or exactly zero on a quiet day;
the Wilson score interval stays inside [0, 1] and is not zero-width at 0.
"""
from __future__ import annotations

import math

from bandit.estimators import Estimate, z_value


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> Estimate:
    """Return the share successes / n with its Wilson score interval.

    >>> print(wilson_interval(0, 100))
    0 [0, 0.03699] n=100
    >>> print(wilson_interval(45, 100))
    0.45 [0.3561, 0.5476] n=100
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"successes: must be in [0, n], got {successes!r} of {n!r}")
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, alpha)
    z = z_value(alpha)
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(share, max(0.0, centre - half), min(1.0, centre + half), n, alpha)
