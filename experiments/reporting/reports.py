"""The experiment report: what the bandit won, how sure we are, what other policies would have done.

``report(store, key, start=None, end=None, interval="hour")`` reads the decision
and reward log of one experiment (decisions created in [start, end)) and returns
a JSON-ready dict. Definitions, used throughout:

- A decision's *reward* is what the learner learns from: per slot, the on-time
  rewards combined with ``reward.aggregation`` (``reward.default`` for a slot with
  none), summed over the slate. Late rewards (after ``reward.wait_seconds``) and
  rewards not attributed to a slot are counted under ``rewards`` but not in it.
- A decision is *rewarded* when at least one reward of any type arrived on time.
- Intervals are 95%: CLT intervals for means (decisions treated as independent,
  which is slightly optimistic when units see many decisions), Wilson intervals
  for rates, Welch for the absolute lift, the delta method for the relative lift.
- Off-policy estimates use a deterministic sample of at most ``ope_sample``
  decisions (a hash of the sequence number picks them) and the first slot of
  each slate; the learned policy is the newest published model snapshot, which
  has learned from these same decisions, so its estimate leans optimistic (the
  counterfactual replay in ``experiments.reporting.evaluation`` is the honest comparison).

The JSON shape (``E`` is an estimate ``{"value", "low", "high", "n", "alpha"}``,
numbers that cannot be computed are ``null``; times are ISO 8601 UTC)::

    {"experiment": {"key", "name", "kind", "status", "version", "slots"},
     "range": {"from", "to", "interval": "hour" | "day", "first_decision", "last_decision"},
     "generated_at": "...",
     "variants": [{"variant": "bandit" | "holdout" | "fallback", "decisions", "units", "rewarded",
                   "rewarded_rate": E, "reward": E,           # reward: mean reward per decision
                   "rates": {"click": E, "add_to_cart": E, ...}}],   # share of decisions with that type
     "lift": {"metric": "reward per decision", "treatment": "bandit", "baseline": "holdout",
              "absolute": E, "relative": E} | null,             # null without both variants
     "sample_ratio": {"p_value", "flagged", "observed": [bandit units, holdout units],
                      "expected": [...], "variants": ["bandit", "holdout"], "expected_shares": [...],
                      "threshold": 0.001, "counted": "units"} | null,
     "off_policy": [{"policy": "learned" | "learned-greedy" | "uniform" | "first-candidate" | "arm:<id>",
                     "label": "...", "ips": E, "snips": E, "dr": E}],
     "off_policy_sample": {"decisions", "of", "slot": 0, "model_version", "note"},
     "time_series": {"interval", "buckets": [iso, ...],
                     "variants": {"bandit": {"decisions": [...], "rewarded": [...],
                                             "reward_rate": [...], "mean_reward": [...]}, ...},
                     "shares": {"slot": 0, "items": [id, ..., "(other)"],
                                "variants": {"bandit": [[share per item] per bucket], ...}}},
     "rewards": {"received", "on_time", "late", "duplicate", "unattributed", "by_type": {type: count},
                 "unknown_event"},  # rewards for event ids never logged (Personalizer accepts them), by receipt
     "model_versions": {"served": [{"version", "decisions"}], "published": [{"version", "learned",
                        "published_at", "spec_version"}], "latest": int | null}}
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np

from bandit import estimators
from bandit.intervals import wilson_interval
from experiments.reporting import logdata
from experiments.reporting import offpolicy
from experiments.clock import SystemClock
from experiments.errors import InvalidField
from experiments.reporting.logdata import VARIANTS, Window
from experiments.service import iso
from experiments.spec import parse_spec

INTERVALS = {"hour": 3600, "day": 86400}
OPE_SAMPLE = 10_000
MAX_OPE_ARMS = 20
TOP_ITEMS = 10
SRM_THRESHOLD = 0.001
TIME_HELP = "must be an ISO 8601 time such as 2026-01-01T00:00:00Z, or seconds since the epoch"


def parse_time(value, field: str) -> float | None:
    """Read a range bound: ISO 8601 (UTC unless it names an offset) or epoch seconds; None is open."""
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
    if not math.isfinite(number):
        raise InvalidField(field, TIME_HELP)
    return number


def _iso_seconds(text: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidField(field, TIME_HELP) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_window(key: str, start=None, end=None, interval="hour") -> Window:
    """Validate a report's range and bucket size; errors name ``from``, ``to`` or ``interval``."""
    interval = "hour" if interval in (None, "") else interval
    if interval not in INTERVALS:
        raise InvalidField("interval", f"must be one of {', '.join(INTERVALS)}")
    low, high = parse_time(start, "from"), parse_time(end, "to")
    if low is not None and high is not None and high <= low:
        raise InvalidField("to", "must be after from")
    return Window(key, -math.inf if low is None else low, math.inf if high is None else high, INTERVALS[interval])


def report(store, key: str, start=None, end=None, interval: str = "hour", ope_sample: int = OPE_SAMPLE,
           clock=None) -> dict:
    """Build the report of one experiment over decisions created in [start, end)."""
    window = parse_window(key, start, end, interval)
    experiment = store.existing_experiment(key)
    spec = parse_spec(experiment["spec"], check_vw=False)
    reward = spec.reward
    decisions = logdata.decision_rows(store, window, slate_lengths=reward["default"] != 0)
    rows = logdata.reward_rows(store, window, decisions)
    rewarded = logdata.rewarded_decisions(rows, decisions, reward["aggregation"], reward["default"])
    variants, values = variant_summaries(decisions, logdata.unit_counts(store, window), rows, rewarded,
                                         reward["default"])
    return {
        "experiment": {"key": key, "name": experiment["name"], "kind": experiment["kind"],
                       "status": experiment["status"], "version": experiment["version"], "slots": spec.slots},
        "range": _range(window, decisions, interval or "hour"),
        "generated_at": iso((clock or SystemClock()).now()),
        "variants": variants,
        "lift": lift(values),
        "sample_ratio": sample_ratio(variants, spec.traffic["holdout"]),
        **off_policy(store, window, spec, decisions.size, rewarded, ope_sample),
        "time_series": time_series(decisions, rewarded, window.width, interval or "hour", reward["default"]),
        "rewards": {**reward_counts(rows), "unknown_event": store.unattributed_count(*window.params())},
        "model_versions": model_versions(store, window, decisions),
    }


def _range(window: Window, decisions, interval: str) -> dict:
    bound = lambda x: iso(x) if math.isfinite(x) else None  # noqa: E731
    return {"from": bound(window.start), "to": bound(window.end), "interval": interval,
            "first_decision": iso(decisions.first_created), "last_decision": iso(decisions.last_created)}


# -- variants and lift ---------------------------------------------------------------------------
def variant_values(decisions, rewarded, code: int, default: float) -> np.ndarray:
    """Return every decision's reward in one variant (slots x default for unrewarded decisions)."""
    mine, won = decisions.variant == code, rewarded.variant == code
    if default == 0:
        return np.concatenate([np.zeros(int(mine.sum()) - int(won.sum())), rewarded.total[won]])
    lengths = np.bincount(decisions.slots[mine], minlength=int(rewarded.slots.max(initial=0)) + 1)
    lengths[: lengths.size] -= np.bincount(rewarded.slots[won], minlength=lengths.size)
    quiet = np.repeat(default * np.arange(lengths.size, dtype=float), np.maximum(lengths, 0))
    return np.concatenate([quiet, rewarded.total[won]])


def variant_summaries(decisions, units: dict, rows, rewarded, default: float) -> tuple[list[dict], dict]:
    """Per variant that has decisions: counts, rates per reward type and mean reward."""
    on_time = rows.late == 0
    pairs = np.unique(np.stack([rows.seq[on_time], rows.type[on_time], decisions.variant[rows.position[on_time]]]),
                      axis=1)
    summaries, values = [], {}
    for code, name in enumerate(VARIANTS):
        made = int((decisions.variant == code).sum())
        if made == 0:
            continue
        values[name] = variant_values(decisions, rewarded, code, default)
        won = int((rewarded.variant == code).sum())
        typed = np.bincount(pairs[1][pairs[2] == code], minlength=len(rows.types))
        summaries.append({
            "variant": name, "decisions": made, "units": int(units.get(name, 0)), "rewarded": won,
            "rewarded_rate": wilson_interval(won, made).to_dict(),
            "reward": estimators.mean_interval(values[name]).to_dict(),
            "rates": {kind: wilson_interval(int(typed[i]), made).to_dict() for i, kind in enumerate(rows.types)},
        })
    return summaries, values


def lift(values: dict) -> dict | None:
    """Bandit over holdout in reward per decision: absolute (Welch) and relative (delta method)."""
    if "bandit" not in values or "holdout" not in values:
        return None
    treatment, baseline = values["bandit"], values["holdout"]
    return {"metric": "reward per decision", "treatment": "bandit", "baseline": "holdout",
            "absolute": estimators.difference_interval(treatment, baseline).to_dict(),
            "relative": estimators.relative_lift(treatment, baseline).to_dict()}


def sample_ratio(variants: list[dict], holdout: float) -> dict | None:
    """Chi-square test of bandit / holdout units against the configured holdout share."""
    units = {v["variant"]: v["units"] for v in variants}
    observed = [units.get("bandit", 0), units.get("holdout", 0)]
    if sum(observed) == 0:
        return None
    check = estimators.sample_ratio_check(observed, [1 - holdout, holdout], threshold=SRM_THRESHOLD)
    return {**check, "variants": ["bandit", "holdout"], "expected_shares": [1 - holdout, holdout],
            "threshold": SRM_THRESHOLD, "counted": "units"}


# -- off-policy ----------------------------------------------------------------------------------
def target_policies(spec, sample, model_row) -> tuple[dict, dict, list]:
    """Name the policies to evaluate: learned (+ greedy), uniform, each arm or the first candidate."""
    policies, labels, closers = {}, {}, []
    if model_row is not None:
        learned = offpolicy.ModelPolicy(model_row)
        closers.append(learned)
        policies["learned"], policies["learned-greedy"] = learned, offpolicy.greedy(learned)
        labels["learned"] = f"learned policy (model v{model_row['version']}, with its exploration)"
        labels["learned-greedy"] = f"learned policy (model v{model_row['version']}, always its top choice)"
    policies["uniform"], labels["uniform"] = offpolicy.uniform_policy, "uniform random"
    if spec.data["kind"] == "strategies":
        for arm in _frequent_arms(spec, sample):
            policies[f"arm:{arm}"], labels[f"arm:{arm}"] = offpolicy.arm_policy(arm), f"always {arm}"
    else:
        policies["first-candidate"] = offpolicy.first_candidate_policy
        labels["first-candidate"] = "the shop's first candidate"
    return policies, labels, closers


def _frequent_arms(spec, sample) -> list[str]:
    arms = [arm["id"] for arm in spec.arms]
    if len(arms) <= MAX_OPE_ARMS:
        return arms
    shown = {}
    for row in sample.rows:
        shown[row["slate"][0]["id"]] = shown.get(row["slate"][0]["id"], 0) + 1
    return sorted(arms, key=lambda arm: -shown.get(arm, 0))[:MAX_OPE_ARMS]


def off_policy(store, window: Window, spec, total: int, rewarded, ope_sample: int) -> dict:
    """Estimate each target policy's first-slot reward per decision on a bounded sample."""
    fraction = 1.0 if total <= ope_sample else ope_sample / total
    rows = logdata.sample_decisions(store, window, fraction) if total else []
    sample = offpolicy.logged_sample(rows, rewarded.seq, rewarded.first_slot, spec.reward["default"])
    model_row = store.latest_model(window.key)
    policies, labels, closers = target_policies(spec, sample, model_row)
    try:
        results = offpolicy.estimate(sample, offpolicy.RewardModel(sample), policies)
    finally:
        for closer in closers:
            closer.close()
    note = ("first-slot reward per decision; the learned policy has learned from these decisions, "
            "so its estimate leans optimistic")
    return {"off_policy": [{"policy": r["policy"], "label": labels[r["policy"]], **{k: r[k] for k in
                                                                                    ("ips", "snips", "dr")}}
                           for r in results],
            "off_policy_sample": {"decisions": sample.size, "of": total, "slot": 0,
                                  "model_version": model_row["version"] if model_row else None, "note": note}}


# -- time series ---------------------------------------------------------------------------------
def time_series(decisions, rewarded, width: int, interval: str, default: float) -> dict:
    """Decisions, reward rate and mean reward per bucket and variant, and first-slot item shares."""
    if decisions.size == 0:
        return {"interval": interval, "buckets": [], "variants": {}, "shares": {"slot": 0, "items": [],
                                                                                "variants": {}}}
    first = int(decisions.bucket.min())
    size = int(decisions.bucket.max()) - first + 1
    at = decisions.bucket - first
    won_at = rewarded.bucket - first
    series = {}
    for code, name in enumerate(VARIANTS):
        mine, won = decisions.variant == code, rewarded.variant == code
        if not mine.any():
            continue
        made = np.bincount(at[mine], minlength=size)
        slot_sum = np.bincount(at[mine], weights=decisions.slots[mine], minlength=size)
        hits = np.bincount(won_at[won], minlength=size)[:size]
        extra = np.bincount(won_at[won], weights=rewarded.total[won] - default * rewarded.slots[won],
                            minlength=size)[:size]
        series[name] = {"decisions": made.astype(int).tolist(), "rewarded": hits.astype(int).tolist(),
                        "reward_rate": _ratio(hits, made), "mean_reward": _ratio(default * slot_sum + extra, made)}
    buckets = [iso(float((first + i) * width)) for i in range(size)]
    return {"interval": interval, "buckets": buckets, "variants": series, "shares": shares(decisions, at, size)}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> list:
    out = np.full(denominator.size, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return [round(float(x), 6) if math.isfinite(x) else None for x in out]


def shares(decisions, at: np.ndarray, size: int) -> dict:
    """Share of each of the most shown first-slot items per bucket and variant, the rest as (other)."""
    totals = np.bincount(decisions.item)
    top = np.argsort(-totals, kind="stable")[:TOP_ITEMS]
    column = np.full(totals.size, top.size)
    column[top] = np.arange(top.size)
    names = [decisions.items[i] for i in top] + (["(other)"] if totals.size > top.size else [])
    out = {}
    for code, name in enumerate(VARIANTS):
        mine = decisions.variant == code
        if not mine.any():
            continue
        cells = top.size + 1
        table = np.bincount(at[mine] * cells + column[decisions.item[mine]], minlength=size * cells)
        table = table.reshape(size, cells)[:, : len(names)].astype(float)
        sums = table.sum(axis=1, keepdims=True)
        table = np.divide(table, sums, out=np.zeros_like(table), where=sums > 0)
        out[name] = np.round(table, 4).tolist()
    return {"slot": 0, "items": names, "variants": out}


# -- rewards and models --------------------------------------------------------------------------
def reward_counts(rows) -> dict:
    """Count received, late, duplicate and unattributed rewards, and rewards per type."""
    by_type = np.bincount(rows.type, minlength=len(rows.types))
    return {"received": rows.size, "on_time": int((rows.late == 0).sum()), "late": int(rows.late.sum()),
            "duplicate": int(rows.duplicates.sum()), "unattributed": int((rows.slot < 0).sum()),
            "by_type": {kind: int(by_type[i]) for i, kind in enumerate(rows.types)}}


def model_versions(store, window: Window, decisions) -> dict:
    """Which model versions served decisions in the range, and the snapshots published in it."""
    served = np.bincount(decisions.model_version)
    published = store.query(
        "SELECT version, learned, created_at, spec_version FROM models WHERE experiment = ? AND created_at >= ?"
        " AND created_at < ? ORDER BY version", window.params())
    latest = store.conn.execute("SELECT max(version) FROM models WHERE experiment = ?", (window.key,)).fetchone()[0]
    return {"served": [{"version": v, "decisions": int(n)} for v, n in enumerate(served) if n],
            "published": [{"version": p["version"], "learned": p["learned"], "published_at": iso(p["created_at"]),
                           "spec_version": p["spec_version"]} for p in published],
            "latest": latest}
