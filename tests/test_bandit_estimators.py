"""Off-policy estimators and report statistics: hand-computed cases, invalid inputs, coverage."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from bandit.estimators import (
    Estimate,
    SlateEstimate,
    chi_square_pvalue,
    chi_square_sf,
    difference_interval,
    dr,
    ips,
    mean_interval,
    relative_lift,
    sample_ratio_check,
    slot_ips,
    snips,
    z_value,
)

Z95 = 1.959963984540054
NAN = float("nan")

# A four-row log used by the hand-computed cases: importance weights w = [2, 4, 0, 0.5].
REWARDS = [1.0, 0.0, 1.0, 1.0]
P_LOGGED = [0.5, 0.25, 0.5, 1.0]
P_TARGET = [1.0, 1.0, 0.0, 0.5]


def assert_estimate(estimate, value, half, n):
    assert estimate.value == pytest.approx(value, abs=1e-9)
    assert estimate.low == pytest.approx(value - half, abs=1e-6)
    assert estimate.high == pytest.approx(value + half, abs=1e-6)
    assert estimate.n == n


# --- hand-computed cases ---------------------------------------------------------------------


def test_z_value_matches_normal_table():
    assert z_value() == pytest.approx(Z95, abs=1e-12)
    assert z_value(0.01) == pytest.approx(2.5758293035489, abs=1e-10)
    assert z_value(0.2) == pytest.approx(1.2815515655446004, abs=1e-10)


def test_ips_hand_computed():
    # terms w * r = [2, 0, 0, 0.5]: mean 0.625, sample variance 2.6875 / 3
    assert_estimate(ips(REWARDS, P_LOGGED, P_TARGET), 0.625, Z95 * math.sqrt(2.6875 / 3 / 4), 4)


def test_ips_alpha_widens_interval():
    narrow, wide = ips(REWARDS, P_LOGGED, P_TARGET, alpha=0.2), ips(REWARDS, P_LOGGED, P_TARGET, alpha=0.01)
    assert wide.low < narrow.low < narrow.value < narrow.high < wide.high
    assert wide.alpha == 0.01


def test_snips_hand_computed():
    # value = sum(w r) / sum(w) = 2.5 / 6.5; influence w (r - value) / mean(w) with mean(w) = 1.625
    value = 2.5 / 6.5
    influence = np.array([2 * (1 - value), 4 * (0 - value), 0.0, 0.5 * (1 - value)]) / 1.625
    se = math.sqrt((influence**2).sum() / 3 / 4)
    assert_estimate(snips(REWARDS, P_LOGGED, P_TARGET), value, Z95 * se, 4)
    assert se == pytest.approx(0.354240, abs=1e-6)


def test_snips_equals_mean_under_equal_weights_and_is_nan_without_support():
    assert snips([1, 0, 1], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]).value == pytest.approx(2 / 3)
    undefined = snips([1, 0], [0.5, 0.5], [0, 0])
    assert math.isnan(undefined.value) and undefined.to_dict()["value"] is None


def test_dr_hand_computed():
    q_logged, q_target = [0.5] * 4, [0.8, 0.6, 0.4, 0.5]
    terms = np.array([0.8 + 2 * 0.5, 0.6 + 4 * -0.5, 0.4, 0.5 + 0.5 * 0.5])  # q_t + w (r - q_l)
    half = Z95 * terms.std(ddof=1) / 2
    assert_estimate(dr(REWARDS, P_LOGGED, P_TARGET, q_logged, q_target), 0.3875, half, 4)


def test_dr_with_zero_model_is_ips_and_with_perfect_model_has_no_variance():
    zeros = [0.0] * 4
    assert dr(REWARDS, P_LOGGED, P_TARGET, zeros, zeros) == ips(REWARDS, P_LOGGED, P_TARGET)
    exact = dr(REWARDS, P_LOGGED, P_TARGET, REWARDS, [0.7] * 4)
    assert (exact.value, exact.low, exact.high) == pytest.approx((0.7, 0.7, 0.7))


def test_slot_ips_hand_computed_with_a_short_slate():
    rewards = [[1, 0], [0, 1], [1, NAN]]
    p_logged = [[0.5, 0.5], [0.25, 0.5], [0.5, NAN]]  # the third slate had one slot only
    p_target = [[1, 0], [1, 1], [0.5, NAN]]
    result = slot_ips(rewards, p_logged, p_target)  # terms [[2, 0], [0, 2], [1, 0]]
    assert isinstance(result, SlateEstimate) and len(result.slots) == 2
    assert_estimate(result.slots[0], 1.0, Z95 * 1 / math.sqrt(3), 3)
    assert_estimate(result.slots[1], 2 / 3, Z95 * math.sqrt(4 / 3) / math.sqrt(3), 3)
    assert_estimate(result.total, 5 / 3, Z95 * math.sqrt(1 / 3) / math.sqrt(3), 3)  # row sums [2, 2, 1]
    assert result.total.value == pytest.approx(sum(slot.value for slot in result.slots))
    assert json.loads(json.dumps(result.to_dict()))["total"]["n"] == 3


def test_mean_interval_hand_computed_and_undefined_for_one_value():
    assert_estimate(mean_interval([1, 2, 3, 4]), 2.5, Z95 * math.sqrt(5 / 3) / 2, 4)
    single = mean_interval([3.0])
    assert single.value == 3.0 and math.isnan(single.low) and single.to_dict()["low"] is None


def test_difference_interval_uses_welch_t():
    # equal n = 5 and equal variances 2.5: se = 1, Welch df = 8, t(0.975, 8) = 2.306004
    assert_estimate(difference_interval([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]), -1.0, 2.306004135, 10)
    # b constant: df = n_a - 1 = 1, t(0.975, 1) = 12.706205; se = sqrt(2 / 2) = 1
    assert_estimate(difference_interval([0, 2], [1, 1]), 0.0, 12.70620474, 4)
    # large samples: the normal interval
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 100_000), rng.normal(0, 2, 50_000)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert difference_interval(a, b).high - difference_interval(a, b).value == pytest.approx(Z95 * se, rel=1e-4)


def test_relative_lift_hand_computed_and_nan_safe():
    # means 3 and 2, both variances 2/3: var = (2/3)/(4*4) + 9*(2/3)/(4*16)
    half = Z95 * math.sqrt((2 / 3) / 16 + 9 * (2 / 3) / 64)
    assert_estimate(relative_lift([2, 3, 4, 3], [1, 2, 3, 2]), 0.5, half, 8)
    undefined = relative_lift([1, 2, 3], [0, 0, 0])
    assert all(math.isnan(x) for x in (undefined.value, undefined.low, undefined.high))
    assert json.dumps(undefined.to_dict()) == '{"value": null, "low": null, "high": null, "n": 6, "alpha": 0.05}'


@pytest.mark.parametrize(
    "statistic, df, expected",
    [(3.841458820694124, 1, 0.05), (5.991464547107979, 2, 0.05), (10.0, 3, 0.018566135463043),
     (0.0, 4, 1.0), (1.0, 1, math.erfc(math.sqrt(0.5))), (100.0, 1, math.erfc(math.sqrt(50.0))),
     (20.0, 2, math.exp(-10.0)), (11.344866730144373, 3, 0.01)],
)
def test_chi_square_sf_matches_known_values(statistic, df, expected):
    assert chi_square_sf(statistic, df) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_chi_square_pvalue_hand_computed():
    # 60/40 against 50/50: statistic (10^2 / 50) * 2 = 4, df 1, p = erfc(sqrt(2))
    assert chi_square_pvalue([60, 40], [0.5, 0.5]) == pytest.approx(math.erfc(math.sqrt(2)), rel=1e-12)
    assert chi_square_pvalue([60, 40], [1, 1]) == pytest.approx(math.erfc(math.sqrt(2)), rel=1e-12)
    # three groups, 1:1:2: expected [25, 25, 50]; statistic (25 + 25 + 0) / 25 = 2, df 2, p = exp(-1)
    assert chi_square_pvalue([30, 20, 50], [1, 1, 2]) == pytest.approx(math.exp(-1), rel=1e-12)


def test_chi_square_pvalue_zero_shares_and_no_counts():
    assert chi_square_pvalue([60, 40, 0], [0.5, 0.5, 0.0]) == pytest.approx(math.erfc(math.sqrt(2)))
    assert chi_square_pvalue([60, 40, 1], [0.5, 0.5, 0.0]) == 0.0
    assert chi_square_pvalue([0, 0], [0.5, 0.5]) == 1.0


# --- sample-ratio check ----------------------------------------------------------------------


def test_sample_ratio_check_flags_45_55_split():
    check = sample_ratio_check([4500, 5500], [0.5, 0.5])
    assert check["flagged"] is True and check["p_value"] < 1e-20
    assert check["observed"] == [4500, 5500] and check["expected"] == [5000.0, 5000.0]
    assert json.loads(json.dumps(check)) == check


@pytest.mark.parametrize("counts", [[5000, 5000], [5050, 4950], [4950, 5050]])
def test_sample_ratio_check_accepts_plausible_50_50_splits(counts):
    check = sample_ratio_check(counts, [0.5, 0.5])
    assert check["flagged"] is False and check["p_value"] > 0.3


def test_sample_ratio_check_with_holdout_split():
    assert sample_ratio_check([9000, 1000], [0.9, 0.1])["flagged"] is False
    assert sample_ratio_check([8800, 1200], [0.9, 0.1])["flagged"] is True
    assert sample_ratio_check([8800, 1200], [0.9, 0.1], threshold=1e-12)["flagged"] is False


# --- invalid inputs --------------------------------------------------------------------------

GOOD = {"rewards": [1.0, 0.0], "p_logged": [0.5, 0.5], "p_target": [1.0, 0.0]}
GOOD_DR = {**GOOD, "q_logged": [0.5, 0.5], "q_target": [0.5, 0.5]}
GOOD_SLATE = {"rewards": [[1.0, 0.0]], "p_logged": [[0.5, 0.5]], "p_target": [[1.0, 0.0]]}


def _with(base, **changes):
    return {**base, **changes}


@pytest.mark.parametrize(
    "function, kwargs, message",
    [
        (ips, _with(GOOD, rewards=[[1.0, 0.0]]), "rewards: must be a 1-d array"),
        (ips, _with(GOOD, rewards=1.0), "rewards: must be a 1-d array"),
        (ips, _with(GOOD, p_logged=[0.5, 0.5, 0.5]), "p_logged: length 3 does not match rewards"),
        (ips, _with(GOOD, rewards=[], p_logged=[], p_target=[]), "rewards: must not be empty"),
        (ips, _with(GOOD, rewards=[1.0, NAN]), "rewards: values must be finite"),
        (ips, _with(GOOD, rewards=["a", "b"]), "rewards: must be an array of numbers"),
        (ips, _with(GOOD, p_logged=[0.0, 0.5]), "p_logged: probabilities must be in (0, 1]"),
        (ips, _with(GOOD, p_logged=[1.5, 0.5]), "p_logged: probabilities must be in (0, 1]"),
        (ips, _with(GOOD, p_target=[-0.1, 0.5]), "p_target: probabilities must be in [0, 1]"),
        (ips, _with(GOOD, p_target=[1.1, 0.5]), "p_target: probabilities must be in [0, 1]"),
        (ips, _with(GOOD, p_target=[float("inf"), 0.5]), "p_target: values must be finite"),
        (ips, _with(GOOD, alpha=0.0), "alpha: must be in (0, 1)"),
        (ips, _with(GOOD, alpha=1.0), "alpha: must be in (0, 1)"),
        (ips, _with(GOOD, alpha="five"), "alpha: must be a number"),
        (snips, _with(GOOD, p_logged=[0.5, -0.5]), "p_logged: probabilities must be in (0, 1]"),
        (snips, _with(GOOD, p_target=[0.5]), "p_target: length 1 does not match rewards"),
        (snips, _with(GOOD, alpha=2), "alpha: must be in (0, 1)"),
        (dr, _with(GOOD_DR, q_logged=[0.5, NAN]), "q_logged: values must be finite"),
        (dr, _with(GOOD_DR, q_target=[0.5]), "q_target: length 1 does not match rewards"),
        (dr, _with(GOOD_DR, p_logged=[0.5, 2.0]), "p_logged: probabilities must be in (0, 1]"),
        (slot_ips, _with(GOOD_SLATE, rewards=[1.0, 0.0]), "rewards: must be a 2-d array"),
        (slot_ips, _with(GOOD_SLATE, p_target=[[1.0, 0.0, 0.0]]), "p_target: shape (1, 3) does not match"),
        (slot_ips, _with(GOOD_SLATE, rewards=[[NAN, 0.0]]), "rewards: values must be finite where p_logged"),
        (slot_ips, _with(GOOD_SLATE, p_logged=[[0.0, 0.5]]), "p_logged: probabilities must be in (0, 1]"),
        (slot_ips, _with(GOOD_SLATE, p_target=[[1.0, 2.0]]), "p_target: probabilities must be in [0, 1]"),
        (mean_interval, {"values": []}, "values: must not be empty"),
        (mean_interval, {"values": [1.0, 2.0], "alpha": -0.1}, "alpha: must be in (0, 1)"),
        (difference_interval, {"a": [1.0, 2.0], "b": [1.0, NAN]}, "b: values must be finite"),
        (relative_lift, {"a": [[1.0, 2.0]], "b": [1.0]}, "a: must be a 1-d array"),
        (chi_square_pvalue, {"observed_counts": [10, -1], "expected_shares": [1, 1]},
         "observed_counts: counts must be non-negative"),
        (chi_square_pvalue, {"observed_counts": [10, 10], "expected_shares": [0, 0]}, "expected_shares: shares"),
        (chi_square_pvalue, {"observed_counts": [10, 10], "expected_shares": [0.5, -0.5]}, "expected_shares: shares"),
        (chi_square_pvalue, {"observed_counts": [10, 10], "expected_shares": [1, 1, 1]},
         "expected_shares: length 3 does not match observed_counts"),
        (chi_square_pvalue, {"observed_counts": [10], "expected_shares": [1]}, "observed_counts: need at least two"),
        (sample_ratio_check, {"observed_counts": [10, 10], "expected_shares": [1, 1], "threshold": 0},
         "threshold: must be in (0, 1)"),
        (z_value, {"alpha": 1.5}, "alpha: must be in (0, 1)"),
        (chi_square_sf, {"statistic": -1.0, "df": 1}, "statistic: must be >= 0"),
        (chi_square_sf, {"statistic": 1.0, "df": 0}, "df: must be a positive number"),
    ],
)
def test_invalid_input_names_the_argument(function, kwargs, message):
    with pytest.raises(ValueError) as info:
        function(**kwargs)
    assert message in str(info.value)
    assert str(info.value).startswith(message.split(":")[0] + ":")


def test_estimate_is_frozen():
    with pytest.raises(AttributeError):
        Estimate(1.0, 0.0, 2.0, 10).value = 3.0


# --- interval coverage on synthetic logs with a known truth ----------------------------------

REPETITIONS, ROWS = 200, 2000
LOGGING = np.array([[0.40, 0.25, 0.15, 0.12, 0.08], [0.10, 0.15, 0.20, 0.25, 0.30]])  # per context
TARGET = np.array([[0.05, 0.10, 0.15, 0.30, 0.40], [0.40, 0.30, 0.10, 0.10, 0.10]])
MEANS = np.array([[0.10, 0.20, 0.30, 0.50, 0.60], [0.70, 0.40, 0.30, 0.20, 0.10]])  # Bernoulli reward means
MODEL = 0.8 * MEANS + 0.05  # a deliberately biased reward model for DR
TRUTH = float(0.5 * (TARGET * MEANS).sum())  # two contexts, equally likely


def sample_from(pmf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws, one per row of ``pmf`` (last axis), vectorised."""
    cdf = np.cumsum(pmf, axis=-1)
    return np.minimum((u[..., None] >= cdf).sum(axis=-1), pmf.shape[-1] - 1)


@pytest.fixture(scope="module")
def logs():
    """200 seeded repetitions of 2000 logged decisions, drawn at once as (200, 2000) arrays."""
    rng = np.random.default_rng(2024)
    context = rng.integers(0, 2, (REPETITIONS, ROWS))
    action = sample_from(LOGGING[context], rng.random((REPETITIONS, ROWS)))
    rewards = (rng.random((REPETITIONS, ROWS)) < MEANS[context, action]).astype(float)
    return {"rewards": rewards, "p_logged": LOGGING[context, action], "p_target": TARGET[context, action],
            "q_logged": MODEL[context, action], "q_target": (TARGET * MODEL).sum(axis=1)[context]}


def covered(estimates, truth) -> float:
    return float(np.mean([e.low <= truth <= e.high for e in estimates]))


@pytest.mark.parametrize("estimator", [ips, snips, dr])
def test_interval_covers_true_policy_value(logs, estimator):
    names = ["rewards", "p_logged", "p_target"] + (["q_logged", "q_target"] if estimator is dr else [])
    estimates = [estimator(*(logs[name][rep] for name in names)) for rep in range(REPETITIONS)]
    assert covered(estimates, TRUTH) >= 0.90
    assert np.mean([e.value for e in estimates]) == pytest.approx(TRUTH, abs=0.01)


ITEM_MEANS = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
POSITION = np.array([1.0, 0.6])  # slot 1 gets 60 % of slot 0's attention
SLATE_LOGGING = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
SLATE_TARGET = np.array([0.1, 0.1, 0.2, 0.3, 0.3])
SHOWN_SECOND = 0.75  # a quarter of the slates have one slot only


def second_slot_marginal(pmf: np.ndarray) -> np.ndarray:
    """P(item j in slot 1) when two distinct items are drawn in order from ``pmf``."""
    first = pmf[:, None] * pmf[None, :] / (1 - pmf[:, None])
    np.fill_diagonal(first, 0.0)
    return first.sum(axis=0)


def test_slot_ips_interval_covers_true_slate_value():
    rng = np.random.default_rng(7)
    shape = (REPETITIONS, ROWS)
    first = sample_from(np.broadcast_to(SLATE_LOGGING, shape + (5,)), rng.random(shape))
    remaining = np.where(np.arange(5) == first[..., None], 0.0, SLATE_LOGGING)
    second = sample_from(remaining / remaining.sum(axis=-1, keepdims=True), rng.random(shape))
    items = np.stack([first, second], axis=-1)
    rewards = (rng.random(shape + (2,)) < ITEM_MEANS[items] * POSITION).astype(float)
    marginals_logged = np.stack([SLATE_LOGGING, second_slot_marginal(SLATE_LOGGING)])
    marginals_target = np.stack([SLATE_TARGET, second_slot_marginal(SLATE_TARGET)])
    p_logged, p_target = marginals_logged[[0, 1], items], marginals_target[[0, 1], items]
    short = rng.random(shape) >= SHOWN_SECOND
    p_logged[..., 1][short] = np.nan
    truth_slots = (marginals_target * ITEM_MEANS).sum(axis=1) * POSITION * [1.0, SHOWN_SECOND]
    results = [slot_ips(rewards[rep], p_logged[rep], p_target[rep]) for rep in range(REPETITIONS)]
    assert covered([r.total for r in results], truth_slots.sum()) >= 0.90
    for k in range(2):
        assert covered([r.slots[k] for r in results], truth_slots[k]) >= 0.90


def test_report_intervals_cover_known_means():
    rng = np.random.default_rng(11)
    a = (rng.random((REPETITIONS, ROWS)) < 0.12).astype(float)
    b = (rng.random((REPETITIONS, ROWS)) < 0.10).astype(float)
    assert covered([mean_interval(a[rep]) for rep in range(REPETITIONS)], 0.12) >= 0.90
    assert covered([difference_interval(a[rep], b[rep]) for rep in range(REPETITIONS)], 0.02) >= 0.90
    assert covered([relative_lift(a[rep], b[rep]) for rep in range(REPETITIONS)], 0.2) >= 0.90


def test_a_million_rows_take_seconds_not_minutes():
    rng = np.random.default_rng(0)
    n = 1_000_000
    rewards, p_logged, p_target = rng.random(n), rng.uniform(0.1, 1.0, n), rng.random(n)
    start = time.perf_counter()
    ips(rewards, p_logged, p_target)
    snips(rewards, p_logged, p_target)
    dr(rewards, p_logged, p_target, rewards, rewards)
    slot_ips(rewards.reshape(-1, 4), p_logged.reshape(-1, 4), p_target.reshape(-1, 4))
    assert time.perf_counter() - start < 10.0
