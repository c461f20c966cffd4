"""The experiment report: what the bandit won, how sure we are, what other policies would have done.

``report(store, key, start=None, end=None, interval="auto")`` reads the decision
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
     "range": {"from", "to", "interval", "first_decision", "last_decision"},  # interval: the bucket used,
     # "hour" or "day" as asked, or for "auto" the finest of minute, 5 minutes, 15 minutes, hour, 6 hours and
     # day that draws the range in at most 100 buckets
     "log": {"data_from", "retention_days", "purged_before", "purged_decisions"},  # where the kept log starts
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
                     "label": "...", "ips": E, "snips": E, "dr": E,
                     "effective_decisions": float}],               # Kish's sample size of the weights
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

import numpy as np

from bandit import estimators
from bandit.intervals import wilson_interval
from experiments.clock import SystemClock
from experiments.errors import InvalidField
from experiments.reporting import offpolicy
from experiments.reporting.analytics import SAMPLE_MODULUS, SAMPLE_MULTIPLIER, LogView
from experiments.reporting.logdata import VARIANTS, Window
from experiments.spec import parse_spec
from experiments.store import loads
from experiments.times import iso, parse_time

INTERVALS = {"auto": None, "hour": 3600, "day": 86400}  # auto: the bucket is chosen from the decisions' range
BUCKETS = {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour", 21600: "6 hours", 86400: "day"}
MOST_AUTO_BUCKETS = 100
OPE_SAMPLE = 10_000
MAX_OPE_ARMS = 20
TOP_ITEMS = 10
SRM_THRESHOLD = 0.001


def parse_window(key: str, start=None, end=None, interval="auto") -> Window:
    """Validate a report's range and bucket size; errors name ``from``, ``to`` or ``interval``."""
    interval = "auto" if interval in (None, "") else interval
    if interval not in INTERVALS:
        raise InvalidField("interval", f"must be one of {', '.join(INTERVALS)}")
    low, high = parse_time(start, "from"), parse_time(end, "to")
    if low is not None and high is not None and high <= low:
        raise InvalidField("to", "must be after from")
    return Window(key, -math.inf if low is None else low, math.inf if high is None else high, INTERVALS[interval])


def auto_width(first: float | None, last: float | None) -> int:
    """The finest bucket that draws the decisions' range in at most ``MOST_AUTO_BUCKETS`` points.

    >>> auto_width(0, 10_000), auto_width(0, 3 * 86400), auto_width(0, 30 * 86400), auto_width(None, None)
    (300, 3600, 86400, 3600)
    """
    if first is None or last is None:
        return 3600
    for width in BUCKETS:
        if math.floor(last / width) - math.floor(first / width) + 1 <= MOST_AUTO_BUCKETS:
            return width
    return max(BUCKETS)


def report(store, key: str, start=None, end=None, interval: str = "auto", ope_sample: int = OPE_SAMPLE,
           clock=None, archive=None) -> dict:
    """Build the report of one experiment over decisions created in [start, end).

    ``archive`` (``experiments.reporting.archive.Archive``) finds the Parquet files of
    the decisions already archived; the rest comes from the live store.
    """
    window = parse_window(key, start, end, interval)
    experiment = store.existing_experiment(key)
    spec = parse_spec(experiment["spec"], check_vw=False)
    view = LogView(store, window, spec.reward, archive)
    try:
        totals, groups = view.variant_totals(), view.reward_groups()
        variants, moments = variant_summaries(totals, groups)
        total = sum(t[0] for t in totals.values())
        first = min((t[5] for t in totals.values()), default=None)
        last = max((t[6] for t in totals.values()), default=None)
        width = window.width or auto_width(first, last)
        return {
            "experiment": {"key": key, "name": experiment["name"], "kind": experiment["kind"],
                           "status": experiment["status"], "version": experiment["version"], "slots": spec.slots},
            "range": _range(window, first, last, BUCKETS[width]),
            "log": log_kept(store, key, spec, archive),
            "generated_at": iso((clock or SystemClock()).now()),
            "variants": variants,
            "lift": lift(moments),
            "sample_ratio": sample_ratio(variants, spec.traffic["holdout"]),
            **off_policy(store, view, spec, total, ope_sample),
            "time_series": time_series(view.cells(width), width, BUCKETS[width], spec.reward["default"]),
            "rewards": {**reward_counts(groups), "unknown_event": store.unattributed_count(*window.params())},
            "model_versions": model_versions(store, view),
        }
    finally:
        view.close()


def _range(window: Window, first: float | None, last: float | None, interval: str) -> dict:
    bound = lambda x: iso(x) if math.isfinite(x) else None  # noqa: E731
    return {"from": bound(window.start), "to": bound(window.end), "interval": interval,
            "first_decision": iso(first), "last_decision": iso(last)}


def log_kept(store, key: str, spec, archive=None) -> dict:
    """Say from when the experiment's log is kept (live store or archive), and what retention or purges deleted."""
    start = store.log_start(key)
    firsts = [t for t in (start["first_decision"], archive.first_created(key) if archive else None) if t is not None]
    return {"data_from": iso(min(firsts, default=None)), "retention_days": spec.data.get("retention", {}).get("days"),
            "purged_before": iso(start["purged_before"]), "purged_decisions": start["purged_decisions"]}


# -- variants and lift ---------------------------------------------------------------------------
def variant_summaries(totals: dict, groups: list[tuple]) -> tuple[list[dict], dict]:
    """Per variant that has decisions: counts, rates per reward type and mean reward (with its moments)."""
    types = sorted({g[1] for g in groups})
    typed = {(g[0], g[1]): g[4] for g in groups if not g[2]}  # decisions with an on-time reward of the type
    summaries, moments = [], {}
    for name in VARIANTS:
        if name not in totals:
            continue
        count, units, won, mean, variance = totals[name][:5]
        moments[name] = estimators.Moments(count, mean, math.nan if variance is None else variance)
        summaries.append({
            "variant": name, "decisions": count, "units": units, "rewarded": int(won),
            "rewarded_rate": wilson_interval(int(won), count).to_dict(),
            "reward": estimators.mean_interval(moments[name]).to_dict(),
            "rates": {kind: wilson_interval(typed.get((name, kind), 0), count).to_dict() for kind in types},
        })
    return summaries, moments


def lift(moments: dict) -> dict | None:
    """Bandit over holdout in reward per decision: absolute (Welch) and relative (delta method)."""
    if "bandit" not in moments or "holdout" not in moments:
        return None
    treatment, baseline = moments["bandit"], moments["holdout"]
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


def off_policy(store, view: LogView, spec, total: int, ope_sample: int) -> dict:
    """Estimate each target policy's first-slot reward per decision on a bounded sample."""
    fraction = 1.0 if total <= ope_sample else ope_sample / total
    sample = sampled_decisions(store, view, fraction, spec.reward["default"]) if total else \
        offpolicy.logged_sample([], np.zeros(0, np.int64), np.zeros(0), spec.reward["default"])
    model_row = store.latest_model(view.window.key)
    policies, labels, closers = target_policies(spec, sample, model_row)
    try:
        results = offpolicy.estimate(sample, offpolicy.RewardModel(sample), policies)
    finally:
        for closer in closers:
            closer.close()
    note = ("first-slot reward per decision; the learned policy has learned from these decisions, "
            "so its estimate leans optimistic")
    return {"off_policy": [{"policy": r["policy"], "label": labels[r["policy"]],
                            **{k: r[k] for k in ("ips", "snips", "dr", "effective_decisions")}} for r in results],
            "off_policy_sample": {"decisions": sample.size, "of": total, "slot": 0,
                                  "model_version": model_row["version"] if model_row else None, "note": note}}


def sampled_decisions(store, view: LogView, fraction: float, default: float):
    """About ``fraction`` of the window's decisions, the same ones every time (a hash of seq), archived or live."""
    threshold = int(min(1.0, max(0.0, fraction)) * SAMPLE_MODULUS)
    rows = view.archived_sample(threshold)
    for row in rows:
        row["context"], row["candidates"] = loads(row["context"]), loads(row["candidates"])
    w = view.window
    for row in store.live_sample(w.key, w.start, w.end, view.position, SAMPLE_MULTIPLIER, SAMPLE_MODULUS,
                                 threshold):
        row["context"], row["slate"] = loads(row["context"]), loads(row["slate"])
        row["candidates"] = store.candidates(row["candidate_set"])
        rows.append(row)
    rows.sort(key=lambda row: row["seq"])
    recomputed = view.recomputed_first_rewards(threshold)
    first = [row.get("first_reward") if row.get("first_reward") is not None else recomputed[row["seq"]]
             for row in rows]
    seq = np.array([row["seq"] for row in rows], dtype=np.int64)
    return offpolicy.logged_sample(rows, seq, np.array(first, dtype=float), default)


# -- time series ---------------------------------------------------------------------------------
def time_series(cells: list[tuple], width: int, interval: str, default: float) -> dict:
    """Decisions, reward rate and mean reward per bucket and variant, and first-slot item shares.

    ``cells``: (bucket, variant, item, decisions, rewarded, slots, reward above the default, first seq).
    """
    if not cells:
        return {"interval": interval, "buckets": [], "variants": {}, "shares": {"slot": 0, "items": [],
                                                                                "variants": {}}}
    first = min(c[0] for c in cells)
    size = max(c[0] for c in cells) - first + 1
    series = {}
    for name in VARIANTS:
        mine = [c for c in cells if c[1] == name]
        if not mine:
            continue
        at = np.array([c[0] - first for c in mine])
        made, hits, slot_sum, extra = (np.bincount(at, weights=[c[k] for c in mine], minlength=size)
                                       for k in (3, 4, 5, 6))
        if default == 0:
            slot_sum = made  # as if every slate had one slot: the default adds nothing
        series[name] = {"decisions": made.astype(int).tolist(), "rewarded": hits.astype(int).tolist(),
                        "reward_rate": _ratio(hits, made), "mean_reward": _ratio(default * slot_sum + extra, made)}
    buckets = [iso(float((first + i) * width)) for i in range(size)]
    return {"interval": interval, "buckets": buckets, "variants": series, "shares": shares(cells, first, size)}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> list:
    out = np.full(denominator.size, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return [round(float(x), 6) if math.isfinite(x) else None for x in out]


def shares(cells: list[tuple], first: int, size: int) -> dict:
    """Share of each of the most shown first-slot items per bucket and variant, the rest as (other)."""
    totals: dict[str, list] = {}
    for bucket, _, item, made, *_, first_seq in cells:
        entry = totals.setdefault(item, [0, first_seq])
        entry[0] += made
        entry[1] = min(entry[1], first_seq)
    ranked = sorted(totals, key=lambda item: (-totals[item][0], totals[item][1]))
    top = ranked[:TOP_ITEMS]
    names = top + (["(other)"] if len(ranked) > len(top) else [])
    column = {item: i for i, item in enumerate(top)}
    out = {}
    for name in VARIANTS:
        mine = [c for c in cells if c[1] == name]
        if not mine:
            continue
        table = np.zeros((size, len(top) + 1))
        for c in mine:
            table[c[0] - first, column.get(c[2], len(top))] += c[3]
        table = table[:, : len(names)]
        sums = table.sum(axis=1, keepdims=True)
        table = np.divide(table, sums, out=np.zeros_like(table), where=sums > 0)
        out[name] = np.round(table, 4).tolist()
    return {"slot": 0, "items": names, "variants": out}


# -- rewards and models --------------------------------------------------------------------------
def reward_counts(groups: list[tuple]) -> dict:
    """Count received, late, duplicate and unattributed rewards, and rewards per type.

    ``groups``: (variant, type, late, rewards, decisions, duplicates, without a slot).
    """
    by_type: dict[str, int] = {}
    for g in groups:
        by_type[g[1]] = by_type.get(g[1], 0) + g[3]
    return {"received": sum(g[3] for g in groups), "on_time": sum(g[3] for g in groups if not g[2]),
            "late": sum(g[3] for g in groups if g[2]), "duplicate": int(sum(g[5] for g in groups)),
            "unattributed": sum(g[6] for g in groups), "by_type": {kind: by_type[kind] for kind in sorted(by_type)}}


def model_versions(store, view: LogView) -> dict:
    """Which model versions served decisions in the range, and the snapshots published in it."""
    served = view.served_models()
    w = view.window
    return {"served": [{"version": v, "decisions": n} for v, n in served if n],
            "published": [{"version": p["version"], "learned": p["learned"], "published_at": iso(p["created_at"]),
                           "spec_version": p["spec_version"]} for p in store.published_models(w.key, w.start, w.end)],
            "latest": store.newest_model_version(w.key)}
