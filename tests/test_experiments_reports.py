"""Reports on real SQLite logs written straight into the store, with hand-computed expectations."""
import doctest

import numpy as np
import pytest

import bandit.intervals
import experiments.reporting.exports
import experiments.reporting.archive
import experiments.reporting.reports
import web.dashboard.charts
import web.dashboard.report_render
from bandit.encoding import action_text, context_text
from bandit.policy import Policy
from experiments.clock import VirtualClock
from experiments.errors import InvalidField, NotFound
from experiments.reporting.reports import parse_window, report
from experiments.service import Service
from experiments.spec import parse_spec
from experiments.store import Store, dumps

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CANDIDATES = [{"id": f"sku-{i}", "features": {"category": f"c{i % 2}"}} for i in range(4)]


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "reports.db"))
    yield store
    store.close()


def create(store, key="exp", **spec):
    Service(store, VirtualClock(T0)).create_experiment({"key": key, "status": "running", **spec})


def log_decisions(store, key, decisions):
    """Insert decisions: dicts with seq, variant, unit, at, slate [(index, probability)], optional context."""
    digest = store.candidate_set(CANDIDATES)
    store.conn.executemany(
        "INSERT INTO decisions (seq, event_id, experiment, unit, variant, model_version, spec_version, context,"
        " candidate_set, excluded, slate, created_at, window_closes_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [(d["seq"], f"{key}-{d['seq']}", key, d.get("unit", f"u{d['seq']}"), d["variant"], d.get("model", 0), 1,
          dumps(d.get("context", {})), digest, "[]",
          dumps([{"slot": k, "id": CANDIDATES[i]["id"], "index": i, "probability": p}
                 for k, (i, p) in enumerate(d["slate"])]), T0 + d["at"], T0 + d["at"] + 60)
         for d in decisions])


def log_rewards(store, key, rewards):
    """Insert rewards: (seq, type, slot, value, late, duplicates)."""
    store.conn.executemany(
        "INSERT INTO rewards (event_id, experiment, decision_seq, reward_key, type, item, slot, value, received_at,"
        " late, duplicates) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        [(f"{key}-{seq}", key, int(seq), f"r{n}", kind, None, slot, value, T0 + n, late, dup)
         for n, (seq, kind, slot, value, late, dup) in enumerate(rewards)])


def by_variant(result):
    return {v["variant"]: v for v in result["variants"]}


def test_modules_doctests_pass():
    for module in (experiments.reporting.archive, experiments.reporting.reports, bandit.intervals,
                   experiments.reporting.exports,
                   web.dashboard.charts, web.dashboard.report_render):
        assert doctest.testmod(module).failed == 0, module.__name__


@pytest.mark.parametrize("default", [0.0, 0.5])
def test_variants_rates_lift_and_reward_counts_by_hand(store, default):
    create(store, slots=2, reward={"default": default, "aggregation": "max",
                                   "events": {"click": 1, "add_to_cart": 3, "purchase": 10}})
    log_decisions(store, "exp", [
        {"seq": 1, "variant": "bandit", "at": 0, "slate": [(0, 0.5), (1, 1 / 3)]},
        {"seq": 2, "variant": "bandit", "at": 10, "slate": [(2, 0.5), (1, 1 / 3)]},
        {"seq": 3, "variant": "bandit", "at": 20, "slate": [(3, 0.5), (1, 1 / 3)]},
        {"seq": 4, "variant": "holdout", "at": 30, "slate": [(0, 0.25), (1, 1 / 3)]},
        {"seq": 5, "variant": "holdout", "at": 40, "slate": [(1, 0.25), (0, 1 / 3)]},
        {"seq": 6, "variant": "holdout", "at": 50, "slate": [(2, 0.25)]},
    ])
    log_rewards(store, "exp", [
        (1, "click", 0, 1.0, 0, 0), (1, "purchase", 0, 10.0, 0, 2),  # slot 0: max(1, 10)
        (2, "add_to_cart", 1, 3.0, 0, 0), (2, "purchase", 0, 10.0, 1, 0),  # the purchase came late
        (4, "review", None, 5.0, 0, 0),  # on time but not attributed to a slot
        (5, "click", 0, 1.0, 1, 0),  # only a late reward: not rewarded
    ])
    result = report(store, "exp")
    d = default
    bandit_values, holdout_values = [10 + d, 3 + d, 2 * d], [2 * d, 2 * d, d]
    variants = by_variant(result)
    assert variants["bandit"]["decisions"] == 3 and variants["bandit"]["rewarded"] == 2
    assert variants["holdout"]["rewarded"] == 1 and variants["holdout"]["units"] == 3
    assert variants["bandit"]["reward"]["value"] == pytest.approx(np.mean(bandit_values))
    assert variants["holdout"]["reward"]["value"] == pytest.approx(np.mean(holdout_values))
    rates = variants["bandit"]["rates"]
    assert [rates[t]["value"] for t in ("click", "purchase", "add_to_cart")] == pytest.approx([1 / 3] * 3)
    assert variants["holdout"]["rates"]["review"]["value"] == pytest.approx(1 / 3)
    assert variants["holdout"]["rates"]["click"]["value"] == 0 and variants["holdout"]["rates"]["click"]["high"] > 0
    lift = result["lift"]
    assert lift["absolute"]["value"] == pytest.approx(np.mean(bandit_values) - np.mean(holdout_values))
    if d:
        assert lift["relative"]["value"] == pytest.approx(np.mean(bandit_values) / np.mean(holdout_values) - 1)
    else:
        assert lift["relative"]["value"] is None  # the holdout earned nothing: no ratio
    assert result["rewards"] == {"received": 6, "on_time": 4, "late": 2, "duplicate": 2, "unattributed": 1,
                                 "by_type": {"add_to_cart": 1, "click": 2, "purchase": 2, "review": 1},
                                 "unknown_event": 0}
    series = result["time_series"]["variants"]
    assert sum(series["bandit"]["decisions"]) == 3 and sum(series["bandit"]["rewarded"]) == 2
    assert series["bandit"]["mean_reward"][0] == pytest.approx(np.mean(bandit_values))


def test_relative_lift_is_null_when_the_holdout_earned_nothing(store):
    create(store)
    log_decisions(store, "exp", [{"seq": i, "variant": "bandit" if i % 2 else "holdout", "at": i,
                                  "slate": [(0, 0.25)]} for i in range(1, 21)])
    log_rewards(store, "exp", [(1, "click", 0, 1.0, 0, 0)])
    lift = report(store, "exp")["lift"]
    assert lift["absolute"]["value"] == pytest.approx(0.1) and lift["relative"]["value"] is None


def srm_log(store, bandit_units, holdout_units):
    create(store, traffic={"holdout": 0.5})
    variants = ["bandit"] * bandit_units + ["holdout"] * holdout_units
    log_decisions(store, "exp", [{"seq": i + 1, "variant": v, "unit": f"user-{i}", "at": i * 0.01,
                                 "slate": [(0, 0.25)]} for i, v in enumerate(variants)])
    return report(store, "exp", ope_sample=100)["sample_ratio"]


def test_sample_ratio_flags_45_55_at_10000_units(store):
    check = srm_log(store, 5500, 4500)
    assert check["flagged"] and check["p_value"] < 1e-20
    assert check["observed"] == [5500, 4500] and check["expected"] == [5000.0, 5000.0]
    assert check["counted"] == "units" and check["threshold"] == 0.001


def test_sample_ratio_does_not_flag_50_50(store):
    check = srm_log(store, 5000, 5000)
    assert not check["flagged"] and check["p_value"] == pytest.approx(1.0)


def test_sample_ratio_counts_units_not_decisions(store):
    create(store, traffic={"holdout": 0.5})
    decisions = [{"seq": i + 1, "variant": "bandit", "unit": f"b{i % 50}", "at": i, "slate": [(0, 0.25)]}
                 for i in range(500)]  # 50 bandit units with 10 decisions each
    decisions += [{"seq": 501 + i, "variant": "holdout", "unit": f"h{i}", "at": i, "slate": [(0, 0.25)]}
                  for i in range(50)]
    log_decisions(store, "exp", decisions)
    check = report(store, "exp")["sample_ratio"]
    assert check["observed"] == [50, 50] and not check["flagged"]


def test_time_series_buckets_gaps_and_shares(store):
    create(store)
    log_decisions(store, "exp", [
        {"seq": 1, "variant": "bandit", "at": 100, "slate": [(0, 0.5)]},
        {"seq": 2, "variant": "bandit", "at": 200, "slate": [(1, 0.5)]},
        {"seq": 3, "variant": "holdout", "at": 300, "slate": [(1, 0.25)]},
        {"seq": 4, "variant": "bandit", "at": 3 * 3600 + 5, "slate": [(0, 0.5)]},
    ])
    log_rewards(store, "exp", [(1, "click", 0, 1.0, 0, 0), (4, "click", 0, 1.0, 0, 0)])
    series = report(store, "exp", interval="hour")["time_series"]
    assert series["buckets"] == ["2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z",
                                 "2026-01-01T02:00:00.000Z", "2026-01-01T03:00:00.000Z"]
    assert series["variants"]["bandit"]["decisions"] == [2, 0, 0, 1]
    assert series["variants"]["bandit"]["reward_rate"] == [0.5, None, None, 1.0]
    assert series["variants"]["holdout"]["reward_rate"] == [0.0, None, None, None]
    shares = series["shares"]
    assert shares["items"] == ["sku-0", "sku-1"]
    assert shares["variants"]["bandit"] == [[0.5, 0.5], [0, 0], [0, 0], [1.0, 0.0]]
    daily = report(store, "exp", interval="day")["time_series"]
    assert daily["buckets"] == ["2026-01-01T00:00:00.000Z"] and daily["variants"]["bandit"]["decisions"] == [3]
    auto = report(store, "exp")  # three hours of decisions: 5-minute buckets draw them in 37 points
    assert auto["range"]["interval"] == auto["time_series"]["interval"] == "5 minutes"
    assert len(auto["time_series"]["buckets"]) == 37
    assert auto["time_series"]["variants"]["bandit"]["decisions"][:2] == [2, 0]
    short = report(store, "exp", end=T0 + 3600)["time_series"]  # 200 seconds of decisions: minutes
    assert short["interval"] == "minute" and short["buckets"][0] == "2026-01-01T00:01:00.000Z"


def test_range_keeps_decisions_and_their_rewards_in_it(store):
    create(store)
    log_decisions(store, "exp", [{"seq": i, "variant": "bandit", "at": i * 3600, "slate": [(0, 0.5)]}
                                 for i in range(1, 6)])
    log_rewards(store, "exp", [(i, "click", 0, 1.0, 0, 0) for i in range(1, 6)])
    result = report(store, "exp", start="2026-01-01T02:00:00Z", end=T0 + 4 * 3600)
    assert by_variant(result)["bandit"]["decisions"] == 2 and result["rewards"]["received"] == 2
    assert result["range"]["from"] == "2026-01-01T02:00:00.000Z" and result["range"]["to"] == "2026-01-01T04:00:00.000Z"
    assert result["range"]["first_decision"] == "2026-01-01T02:00:00.000Z"


@pytest.mark.parametrize("start, end, interval, field", [
    ("yesterday", None, "hour", "from"),
    (None, "2026-13-01", "hour", "to"),
    (None, "nan", "hour", "to"),
    (None, None, "week", "interval"),
    ("2026-01-02", "2026-01-01", "hour", "to"),
    (T0, T0, "day", "to"),
])
def test_bad_range_or_interval_names_the_parameter(start, end, interval, field):
    with pytest.raises(InvalidField) as err:
        parse_window("exp", start, end, interval)
    assert err.value.field == field


def test_range_accepts_iso_with_offsets_and_epoch_seconds():
    window = parse_window("exp", "2026-01-01T01:00:00+01:00", str(T0 + 60), "day")
    assert (window.start, window.end, window.width) == (T0, T0 + 60, 86400)
    assert parse_window("exp", "2026-01-01", None).start == T0


def test_unknown_experiment_and_empty_log(store):
    with pytest.raises(NotFound):
        report(store, "missing")
    create(store)
    result = report(store, "exp")
    assert result["variants"] == [] and result["lift"] is None and result["sample_ratio"] is None
    assert result["time_series"]["buckets"] == [] and result["model_versions"]["latest"] is None
    assert all(p["ips"]["value"] is None and p["ips"]["n"] == 0 for p in result["off_policy"])


def uniform_log(store, key, n, rng):
    """Uniform logging over 4 candidates; candidate 0 pays off 80% of the time, the others 10%."""
    index = rng.integers(0, 4, n)
    log_decisions(store, key, [{"seq": i + 1, "variant": "holdout", "at": i, "slate": [(int(index[i]), 0.25)],
                                "context": {"user": {"segment": "s"}}} for i in range(n)])
    paid = rng.random(n) < np.where(index == 0, 0.8, 0.1)
    log_rewards(store, key, [(i + 1, "click", 0, 1.0, 0, 0) for i in np.flatnonzero(paid)])
    return index, paid


def train_snapshot(store, key, index, paid):
    """Publish a model snapshot that learned the log (it learns candidate 0 is best)."""
    settings = parse_spec(store.get_experiment(key)["spec"]).policy_settings()
    policy = Policy(settings)
    actions = [action_text(c) for c in CANDIDATES]
    for i, p in zip(index, paid):
        policy.learn(context_text({"user": {"segment": "s"}}), actions, [(int(i), 0.25)], [float(p)])
    store.publish_model({"experiment": key, "version": 1, "args": settings.args(), "spec_version": 1,
                        "cursor_seq": len(index), "learned": len(index), "created_at": T0, "model": policy.save()})


def covers(estimate, truth):
    return estimate["low"] <= truth <= estimate["high"]


def test_off_policy_estimates_cover_known_values(store, rng):
    create(store, exploration={"algorithm": "epsilon", "epsilon": 0.1})
    index, paid = uniform_log(store, "exp", 4000, rng)
    train_snapshot(store, "exp", index, paid)
    result = report(store, "exp", ope_sample=2000)
    estimates = {p["policy"]: p for p in result["off_policy"]}
    assert list(estimates) == ["learned", "learned-greedy", "uniform", "first-candidate"]
    for name in ("ips", "snips", "dr"):
        assert covers(estimates["first-candidate"][name], 0.8), name
        assert covers(estimates["uniform"][name], (0.8 + 3 * 0.1) / 4), name
        assert covers(estimates["learned-greedy"][name], 0.8), name
    assert 0.6 < estimates["learned"]["dr"]["value"] < 0.85  # epsilon 0.1 around the best candidate
    # The log is uniform over 4: uniform rests on every sampled decision, always-candidate-0 on about a quarter.
    assert estimates["uniform"]["effective_decisions"] == result["off_policy_sample"]["decisions"]
    assert 0.2 < estimates["first-candidate"]["effective_decisions"] / result["off_policy_sample"]["decisions"] < 0.3
    sample = result["off_policy_sample"]
    assert sample["of"] == 4000 and 1700 < sample["decisions"] < 2300 and sample["model_version"] == 1
    assert estimates["learned"]["label"].startswith("learned policy (model v1")


def test_strategies_are_evaluated_arm_by_arm(store, rng):
    arms = [{"id": c["id"], "features": c["features"]} for c in CANDIDATES]
    create(store, kind="strategies", arms=arms, traffic={"holdout": 0.5, "control": {"arm": "sku-1"}})
    uniform_log(store, "exp", 2000, rng)
    policies = {p["policy"]: p for p in report(store, "exp")["off_policy"]}
    assert list(policies) == ["uniform", "arm:sku-0", "arm:sku-1", "arm:sku-2", "arm:sku-3"]
    assert covers(policies["arm:sku-0"]["dr"], 0.8) and covers(policies["arm:sku-2"]["ips"], 0.1)
    assert policies["arm:sku-3"]["label"] == "always sku-3"
