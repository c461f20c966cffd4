"""Off-policy estimators and the interval statistics that reports need.

Everything here is a pure, vectorised function over plain arrays (numpy and the
``math`` module only, no scipy): a report calls these on a million logged rows.

Common assumptions, stated once: the logged rows are i.i.d. draws (context, action,
reward) from the logging policy, rewards are bounded, every logged probability is the
probability the logging policy really gave the shown action (``p_logged`` in (0, 1]),
and the target policy puts no mass where the logging policy had none (common support).
Intervals are asymptotic (central limit theorem), so they are honest for hundreds of
rows and more; with fewer than two rows the interval is undefined and its bounds are
``nan`` (``None`` in :meth:`Estimate.to_dict`).

Inputs are checked at the door: a wrong shape, a length mismatch, an empty array, a
non-finite number or a probability out of range raises ``ValueError`` with a message
that starts with the argument's name, e.g. ``"p_logged: probabilities must be in (0, 1]"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_EPS = 1e-15  # relative precision of the special-function iterations
_TINY = 1e-300  # floor that keeps Lentz's continued fractions away from division by zero
_MAX_ITERATIONS = 10_000


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its two-sided (1 - alpha) confidence interval over ``n`` rows."""

    value: float
    low: float
    high: float
    n: int
    alpha: float = 0.05

    def to_dict(self) -> dict:
        """Return a JSON-ready dict; undefined (non-finite) numbers become ``None``.

        >>> Estimate(0.5, 0.4, 0.6, 100).to_dict()
        {'value': 0.5, 'low': 0.4, 'high': 0.6, 'n': 100, 'alpha': 0.05}
        >>> Estimate(float("nan"), float("nan"), float("nan"), 1).to_dict()["value"] is None
        True
        """
        return {"value": _json_number(self.value), "low": _json_number(self.low),
                "high": _json_number(self.high), "n": int(self.n), "alpha": float(self.alpha)}

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] n={self.n}"


@dataclass(frozen=True)
class SlateEstimate:
    """Per-slot estimates of a slate policy plus the estimate of its total reward per slate."""

    slots: list[Estimate]
    total: Estimate

    def to_dict(self) -> dict:
        """Return a JSON-ready dict with one entry per slot and the total."""
        return {"slots": [slot.to_dict() for slot in self.slots], "total": self.total.to_dict()}


def _json_number(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# --- validation ------------------------------------------------------------------------------


def _array(name: str, x) -> np.ndarray:
    try:
        array = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be an array of numbers") from None
    if array.size == 0:
        raise ValueError(f"{name}: must not be empty")
    return array


def _vector(name: str, x) -> np.ndarray:
    array = _array(name, x)
    if array.ndim != 1:
        raise ValueError(f"{name}: must be a 1-d array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: values must be finite")
    return array


def _vectors(**named) -> list[np.ndarray]:
    """Check each argument is a finite non-empty 1-d array and all have the first one's length."""
    arrays = [_vector(name, x) for name, x in named.items()]
    first_name, first = next(iter(named)), arrays[0]
    for name, array in zip(named, arrays):
        if array.shape != first.shape:
            raise ValueError(f"{name}: length {array.size} does not match {first_name} (length {first.size})")
    return arrays


def _check_probabilities(p_logged: np.ndarray, p_target: np.ndarray) -> None:
    if not ((p_logged > 0) & (p_logged <= 1)).all():
        raise ValueError("p_logged: probabilities must be in (0, 1]")
    if not ((p_target >= 0) & (p_target <= 1)).all():
        raise ValueError("p_target: probabilities must be in [0, 1]")


def _check_unit_interval(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number in (0, 1)") from None
    if not 0 < value < 1:
        raise ValueError(f"{name}: must be in (0, 1), got {value!r}")
    return value


# --- intervals -------------------------------------------------------------------------------


def z_value(alpha: float = 0.05) -> float:
    """Return the two-sided standard normal critical value z with P(|Z| > z) = alpha, without scipy.

    Acklam's rational approximation of the normal quantile, polished by one Halley step
    on ``math.erfc`` to full double precision.

    >>> round(z_value(0.05), 6), round(z_value(0.01), 6)
    (1.959964, 2.575829)
    """
    alpha = _check_unit_interval("alpha", alpha)
    return -_normal_quantile(alpha / 2)


def _clt(terms: np.ndarray, alpha: float) -> Estimate:
    """Mean of per-row terms with the normal (CLT) interval mean +- z * sd / sqrt(n)."""
    n = terms.size
    se = float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return _normal_interval(float(terms.mean()), se, n, alpha)


def _normal_interval(value: float, se: float, n: int, alpha: float) -> Estimate:
    half = z_value(alpha) * se
    return Estimate(value, value - half, value + half, n, alpha)


# --- off-policy estimators ---------------------------------------------------------------------


def effective_decisions(p_logged, p_target) -> float:
    """Return how many decisions an importance-weighted estimate effectively rests on (Kish's sample size).

    (sum w)^2 / sum w^2 with w = p_target / p_logged: all of them when the target acts like the logging
    policy, a handful when the target mostly takes actions the log rarely explored. A small figure warns
    that the normal intervals understate the uncertainty: the rare decisions that carry the estimate may
    simply not have happened yet.

    >>> effective_decisions(np.full(100, 0.5), np.full(100, 0.5))
    100.0
    >>> round(effective_decisions(np.r_[np.full(99, 0.99), 0.001], np.full(100, 0.5)), 1)  # one rare one carries it
    1.2
    """
    p_logged, p_target = _vectors(p_logged=p_logged, p_target=p_target)
    _check_probabilities(p_logged, p_target)
    weights = p_target / p_logged
    squares = float(weights @ weights)
    return float(weights.sum() ** 2 / squares) if squares > 0 else 0.0


def ips(rewards, p_logged, p_target, alpha: float = 0.05) -> Estimate:
    """Estimate a target policy's reward per decision from logs by inverse propensity scoring.

    The value is mean(r * p_target / p_logged), unbiased under the module's assumptions.
    Interval: normal (CLT) interval on those i.i.d. per-row terms, mean +- z * sd / sqrt(n);
    it needs bounded rewards and importance weights, and is wide when p_logged is small.

    >>> rng = np.random.default_rng(3)
    >>> arm = rng.integers(0, 2, 1000)                        # logging: uniform over two arms
    >>> rewards = rng.random(1000) < np.where(arm == 1, 0.7, 0.2)
    >>> print(ips(rewards, np.full(1000, 0.5), arm == 1))    # target: always arm 1, truth 0.7
    0.686 [0.6271, 0.7449] n=1000
    """
    rewards, p_logged, p_target = _vectors(rewards=rewards, p_logged=p_logged, p_target=p_target)
    _check_probabilities(p_logged, p_target)
    alpha = _check_unit_interval("alpha", alpha)
    return _clt(rewards * (p_target / p_logged), alpha)


def snips(rewards, p_logged, p_target, alpha: float = 0.05) -> Estimate:
    """Estimate a target policy's reward per decision by self-normalised IPS, to tame large weights.

    The value is sum(w * r) / sum(w) with w = p_target / p_logged: slightly biased (O(1/n))
    but always inside the range of the rewards, with lower variance than IPS.
    Interval: delta-method (linearisation) interval, value +- z * se with se the standard
    error of the influence terms w * (r - value) / mean(w); i.i.d. rows, bounded rewards.
    When the target gives probability 0 to every logged action (sum(w) == 0) the value and
    the bounds are ``nan``: the logs hold no information about that policy.

    >>> rng = np.random.default_rng(3)
    >>> arm = rng.integers(0, 2, 1000)
    >>> rewards = rng.random(1000) < np.where(arm == 1, 0.7, 0.2)
    >>> print(snips(rewards, np.full(1000, 0.5), arm == 1))  # truth 0.7
    0.6986 [0.658, 0.7392] n=1000
    """
    rewards, p_logged, p_target = _vectors(rewards=rewards, p_logged=p_logged, p_target=p_target)
    _check_probabilities(p_logged, p_target)
    alpha = _check_unit_interval("alpha", alpha)
    n, weights = rewards.size, p_target / p_logged
    weight_sum = float(weights.sum())
    if weight_sum == 0:
        return Estimate(math.nan, math.nan, math.nan, n, alpha)
    value = float((weights * rewards).sum()) / weight_sum
    influence = weights * (rewards - value) / (weight_sum / n)
    se = float(np.sqrt((influence**2).sum() / (n - 1) / n)) if n > 1 else math.nan
    return _normal_interval(value, se, n, alpha)


def dr(rewards, p_logged, p_target, q_logged, q_target, alpha: float = 0.05) -> Estimate:
    """Estimate a target policy's reward per decision doubly robustly: reward model plus IPS correction.

    ``q_logged`` is the reward model's prediction for the logged action and ``q_target`` its
    expectation under the target policy (sum over actions of target probability * prediction).
    The value is mean(q_target + w * (r - q_logged)) with w = p_target / p_logged: unbiased
    when the logged probabilities are right, whatever the model; a good model shrinks the variance.
    Interval: normal (CLT) interval on those i.i.d. per-row terms; bounded rewards and predictions.

    >>> rng = np.random.default_rng(3)
    >>> arm = rng.integers(0, 2, 1000)
    >>> rewards = rng.random(1000) < np.where(arm == 1, 0.7, 0.2)
    >>> q_logged = np.where(arm == 1, 0.6, 0.3)               # an imperfect reward model
    >>> print(dr(rewards, np.full(1000, 0.5), arm == 1, q_logged, np.full(1000, 0.6)))  # truth 0.7
    0.6968 [0.6565, 0.7371] n=1000
    """
    rewards, p_logged, p_target, q_logged, q_target = _vectors(
        rewards=rewards, p_logged=p_logged, p_target=p_target, q_logged=q_logged, q_target=q_target)
    _check_probabilities(p_logged, p_target)
    alpha = _check_unit_interval("alpha", alpha)
    return _clt(q_target + (p_target / p_logged) * (rewards - q_logged), alpha)


# --- slates ----------------------------------------------------------------------------------


def slot_ips(rewards, p_logged, p_target, alpha: float = 0.05) -> SlateEstimate:
    """Estimate a slate policy's reward per slot and per slate by independent-position IPS.

    Arrays have shape (n, slots): cell (i, k) holds the reward of slot k of decision i and
    the logging / target policies' marginal probabilities of the item shown there. Assumes
    the reward of a slot depends only on the context, the slot and the item in it (no
    interaction between positions). Each slot's estimate is the IPS mean of its column; the
    total is the IPS mean of the per-row sums, so total.value == sum of the slot values, and
    its interval (normal, CLT) comes from those per-row sums, which keeps the correlation
    between slots of one slate.
    A ``nan`` in ``p_logged`` marks a slot that was not shown (slate shorter than ``slots``):
    that cell counts as reward 0, and ``rewards`` / ``p_target`` there are ignored. So every
    slot estimate is a reward per decision over all ``n`` rows.

    >>> rng = np.random.default_rng(3)
    >>> items = rng.integers(0, 3, (1000, 2))                 # logging: each slot uniform over 3 items
    >>> rewards = rng.random((1000, 2)) < np.where(items == 0, 0.5, 0.1)
    >>> result = slot_ips(rewards, np.full((1000, 2), 1 / 3), items == 0)  # target: item 0, truth 1.0
    >>> print(result.total)
    0.999 [0.9012, 1.097] n=1000
    """
    rewards, p_logged, p_target = _slate_arrays(rewards, p_logged, p_target)
    alpha = _check_unit_interval("alpha", alpha)
    terms = rewards * (p_target / p_logged)
    slots = [_clt(column, alpha) for column in terms.T]
    return SlateEstimate(slots, _clt(terms.sum(axis=1), alpha))


def _slate_arrays(rewards, p_logged, p_target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check (n, slots) arrays; fill cells not shown with reward 0, p_logged 1, p_target 0."""
    named = {"rewards": _array("rewards", rewards), "p_logged": _array("p_logged", p_logged),
             "p_target": _array("p_target", p_target)}
    for name, array in named.items():
        if array.ndim != 2:
            raise ValueError(f"{name}: must be a 2-d array (n, slots), got shape {array.shape}")
        if array.shape != named["rewards"].shape:
            raise ValueError(f"{name}: shape {array.shape} does not match rewards (shape {named['rewards'].shape})")
    shown = ~np.isnan(named["p_logged"])
    for name, array in named.items():
        if not np.isfinite(array[shown]).all():
            raise ValueError(f"{name}: values must be finite where p_logged is given")
    _check_probabilities(named["p_logged"][shown], named["p_target"][shown])
    return (np.where(shown, named["rewards"], 0.0), np.where(shown, named["p_logged"], 1.0),
            np.where(shown, named["p_target"], 0.0))


# --- report statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and sample variance of a set of values: all the reward intervals need of them.

    A report over millions of decisions gets these from a database's aggregates
    instead of an array per variant.

    >>> Moments.of([1, 2, 3, 4])
    Moments(n=4, mean=2.5, variance=1.6666666666666667)
    """

    n: int
    mean: float
    variance: float  # sample variance (ddof=1); nan with fewer than two values

    @classmethod
    def of(cls, values, name: str = "values") -> "Moments":
        values = _vector(name, values)
        return cls(values.size, float(values.mean()), float(values.var(ddof=1)) if values.size > 1 else math.nan)


def mean_interval(values, alpha: float = 0.05) -> Estimate:
    """Return the mean of ``values`` with its normal (CLT) interval, e.g. for reward per decision.

    Interval: mean +- z * sd / sqrt(n) (sample sd, ddof=1), for i.i.d. bounded values.
    ``values`` may be an array or their ``Moments``.

    >>> print(mean_interval([1, 2, 3, 4]))
    2.5 [1.235, 3.765] n=4
    """
    m = _moments("values", values)
    alpha = _check_unit_interval("alpha", alpha)
    se = math.sqrt(m.variance) / math.sqrt(m.n) if m.n > 1 else math.nan
    return _normal_interval(m.mean, se, m.n, alpha)


def _moments(name: str, values) -> Moments:
    if isinstance(values, Moments):
        if values.n < 1:
            raise ValueError(f"{name}: must not be empty")
        return values
    return Moments.of(values, name)


def difference_interval(a, b, alpha: float = 0.05) -> Estimate:
    """Return mean(a) - mean(b) with Welch's interval, for the absolute lift of one variant over another.

    Interval: Welch's t interval for two independent samples with unequal variances,
    diff +- t(df) * sqrt(var_a / n_a + var_b / n_b), df by Welch-Satterthwaite; for large
    samples it is the normal interval. ``n`` is n_a + n_b. Bounds are ``nan`` when either
    sample has fewer than two values; a zero standard error gives a zero-width interval.
    ``a`` and ``b`` may be arrays or their ``Moments``.

    >>> print(difference_interval([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]))  # df = 8, t = 2.306
    -1 [-3.306, 1.306] n=10
    """
    a, b = _moments("a", a), _moments("b", b)
    alpha = _check_unit_interval("alpha", alpha)
    value, n = a.mean - b.mean, a.n + b.n
    if a.n < 2 or b.n < 2:
        return Estimate(value, math.nan, math.nan, n, alpha)
    share_a, share_b = a.variance / a.n, b.variance / b.n
    se = math.sqrt(share_a + share_b)
    if se == 0:
        return Estimate(value, value, value, n, alpha)
    df = (share_a + share_b) ** 2 / (share_a**2 / (a.n - 1) + share_b**2 / (b.n - 1))
    half = _t_value(alpha, df) * se
    return Estimate(value, value - half, value + half, n, alpha)


def relative_lift(a, b, alpha: float = 0.05) -> Estimate:
    """Return mean(a) / mean(b) - 1 with a delta-method interval, for the relative lift over a baseline.

    Interval: normal interval with the delta-method variance of a ratio of two independent
    means, var = var_a / (n_a mb^2) + ma^2 var_b / (n_b mb^4). ``n`` is n_a + n_b.
    When mean(b) == 0 the lift is undefined: value and bounds are ``nan`` (``None`` in
    ``to_dict()``). Bounds are ``nan`` when either sample has fewer than two values.
    ``a`` and ``b`` may be arrays or their ``Moments``.

    >>> print(relative_lift([2, 3, 4, 3], [1, 2, 3, 2]))
    0.5 [-0.2212, 1.221] n=8
    >>> relative_lift([1, 2], [0, 0]).to_dict()["value"] is None
    True
    """
    a, b = _moments("a", a), _moments("b", b)
    alpha = _check_unit_interval("alpha", alpha)
    mean_a, mean_b, n = a.mean, b.mean, a.n + b.n
    if mean_b == 0:
        return Estimate(math.nan, math.nan, math.nan, n, alpha)
    if a.n < 2 or b.n < 2:
        return Estimate(mean_a / mean_b - 1, math.nan, math.nan, n, alpha)
    variance = a.variance / (a.n * mean_b**2) + mean_a**2 * b.variance / (b.n * mean_b**4)
    return _normal_interval(mean_a / mean_b - 1, math.sqrt(variance), n, alpha)


def chi_square_sf(statistic: float, df: float) -> float:
    """Return P(X >= statistic) for X ~ chi-square(df): the p-value of a chi-square statistic.

    Computed as the regularized upper incomplete gamma function Q(df / 2, statistic / 2)
    (series below a + 1, continued fraction above, as in Numerical Recipes).

    >>> round(chi_square_sf(3.841459, 1), 4), round(chi_square_sf(10.0, 3), 5)
    (0.05, 0.01857)
    """
    statistic, df = float(statistic), float(df)
    if math.isnan(statistic) or statistic < 0:
        raise ValueError(f"statistic: must be >= 0, got {statistic!r}")
    if not (math.isfinite(df) and df > 0):
        raise ValueError(f"df: must be a positive number, got {df!r}")
    return _gamma_q(df / 2, statistic / 2)


def chi_square_pvalue(observed_counts, expected_shares) -> float:
    """Return the Pearson chi-square goodness-of-fit p-value of counts against configured shares.

    ``expected_shares`` are normalised to sum to 1 (so ``[9, 1]`` means 90/10). A category
    with share 0 is left out of the test, unless it received counts, which makes p = 0.
    df = (categories with a positive share) - 1. With no counts at all, p = 1 (no evidence).

    >>> round(chi_square_pvalue([60, 40], [0.5, 0.5]), 4)  # statistic 4, df 1
    0.0455
    """
    observed, shares = _counts_and_shares(observed_counts, expected_shares)
    return _pearson(observed, shares)[0]


def sample_ratio_check(observed_counts, expected_shares, threshold: float = 0.001) -> dict:
    """Check a sample-ratio mismatch: flag when the observed split is implausible under the configured one.

    A flag (p-value < ``threshold``) means assignment or logging is broken, so the
    experiment's comparisons cannot be trusted. The test is :func:`chi_square_pvalue`;
    ``expected`` holds the expected counts for the observed total.

    >>> check = sample_ratio_check([4500, 5500], [0.5, 0.5])
    >>> check["flagged"], check["expected"]
    (True, [5000.0, 5000.0])
    >>> sample_ratio_check([5050, 4950], [0.5, 0.5])["flagged"]
    False
    """
    observed, shares = _counts_and_shares(observed_counts, expected_shares)
    threshold = _check_unit_interval("threshold", threshold)
    p_value, expected = _pearson(observed, shares)
    return {"p_value": p_value, "flagged": bool(p_value < threshold),
            "observed": [_plain_number(x) for x in observed], "expected": [float(x) for x in expected]}


def _counts_and_shares(observed_counts, expected_shares) -> tuple[np.ndarray, np.ndarray]:
    observed, shares = _vectors(observed_counts=observed_counts, expected_shares=expected_shares)
    if observed.size < 2:
        raise ValueError("observed_counts: need at least two categories")
    if (observed < 0).any():
        raise ValueError("observed_counts: counts must be non-negative")
    if (shares < 0).any() or shares.sum() <= 0:
        raise ValueError("expected_shares: shares must be non-negative with a positive sum")
    return observed, shares / shares.sum()


def _pearson(observed: np.ndarray, shares: np.ndarray) -> tuple[float, np.ndarray]:
    """Pearson's p-value and the expected counts; shares are normalised already."""
    total = float(observed.sum())
    expected = total * shares
    live = shares > 0
    if total == 0:
        return 1.0, expected
    if (observed[~live] > 0).any():
        return 0.0, expected
    df = int(live.sum()) - 1
    if df == 0:
        return 1.0, expected
    statistic = float(((observed[live] - expected[live]) ** 2 / expected[live]).sum())
    return chi_square_sf(statistic, df), expected


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


# --- special functions (pure Python on scalars) ------------------------------------------------

_ACKLAM_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
             1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_ACKLAM_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
             6.680131188771972e01, -1.328068155288572e01)
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
             -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def _polynomial(coefficients, x: float) -> float:
    result = 0.0
    for c in coefficients:
        result = result * x + c
    return result


def _normal_quantile(p: float) -> float:
    """Standard normal quantile for p in (0, 1): Acklam's approximation plus one Halley step."""
    if p < 0.02425 or p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(min(p, 1 - p)))
        x = _polynomial(_ACKLAM_C, q) / (_polynomial(_ACKLAM_D, q) * q + 1)
        x = x if p < 0.5 else -x
    else:
        q = p - 0.5
        r = q * q
        x = _polynomial(_ACKLAM_A, r) * q / (_polynomial(_ACKLAM_B, r) * r + 1)
    error = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    u = error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def _t_value(alpha: float, df: float) -> float:
    """Two-sided Student-t critical value: bisection on the exact tail, expansion for huge df."""
    z = z_value(alpha)
    if df > 1e4:  # Cornish-Fisher expansion, error O(df^-3)
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    tail = alpha / 2
    low, high = z, 2 * z
    while _t_sf(high, df) > tail:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if _t_sf(middle, df) > tail:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for t >= 0 and T ~ Student-t(df), through the regularized incomplete beta."""
    return 0.5 * _beta_regularized(df / 2, 0.5, df / (df + t * t))


def _beta_regularized(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (Numerical Recipes ``betai``)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta, by the modified Lentz method."""
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_ITERATIONS):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > _TINY else _TINY)
            c = 1 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return result


def _gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (Numerical Recipes ``gammq``)."""
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        return 1 - math.exp(log_front) * _gamma_series(a, x)
    return math.exp(log_front) * _gamma_fraction(a, x)


def _gamma_series(a: float, x: float) -> float:
    term = total = 1 / a
    for k in range(1, _MAX_ITERATIONS):
        term *= x / (a + k)
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total


def _gamma_fraction(a: float, x: float) -> float:
    """Continued fraction for Q(a, x) without its front factor, by the modified Lentz method."""
    b = x + 1 - a
    c, d = 1 / _TINY, 1 / b
    result = d
    for i in range(1, _MAX_ITERATIONS):
        numerator = -i * (i - a)
        b += 2
        d = numerator * d + b
        d = 1 / (d if abs(d) > _TINY else _TINY)
        c = b + numerator / c
        c = c if abs(c) > _TINY else _TINY
        result *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return result
