"""Shape reports for the dashboard: list summaries, the experiment page's tables and charts.

The numbers all come from ``experiments.reporting.reports.report``; this module only picks
what each page shows, formats estimates with their intervals and draws charts.
"""
from __future__ import annotations

from flask import current_app

from experiments.errors import InvalidField
from experiments.health import health
from experiments.reporting.reports import report
from web.dashboard import bar_charts
from web.dashboard import forms
from web.dashboard.charts import line_chart
from web.dashboard.formatting import interval, number, percent

RANGE_FIELDS = ("from", "to", "interval")
SUMMARY_SECONDS = 60.0


def _silent() -> dict:
    return current_app.extensions["silent"]


def split_text(spec: dict) -> str:
    holdout = spec["traffic"]["holdout"]
    return f"{(1 - holdout) * 100:.0f}% bandit · {holdout * 100:.0f}% holdout"


def estimate(e: dict | None, as_percent: bool = False, signed: bool = False) -> dict:
    """Format an estimate ``{"value", "low", "high"}`` as text, interval text and a tone."""
    fmt = percent if as_percent else number
    if not e or e.get("value") is None:
        return {"text": "–", "interval": "", "tone": "muted"}
    text = fmt(e["value"])
    if signed and e["value"] > 0:
        text = "+" + text
    low, high = e.get("low"), e.get("high")
    tone = ""
    if signed:  # a difference: colour it only when its interval excludes zero
        tone = "good" if low is not None and low > 0 else "bad-text" if high is not None and high < 0 else ""
    return {"text": text, "interval": interval(low, high, fmt), "tone": tone}


def headline_lift(lift: dict | None) -> dict | None:
    """Relative lift of the bandit over the holdout (absolute when the holdout earned nothing).

    None until the lift has an interval: a lift of two decisions (say -100%) says nothing yet.
    """
    if not lift:
        return None
    relative, absolute = lift["relative"], lift["absolute"]
    if _has_interval(relative):
        return {**estimate(relative, as_percent=True, signed=True), "metric": "relative"}
    if (not relative or relative.get("value") is None) and _has_interval(absolute):
        return {**estimate(absolute, signed=True), "metric": "absolute"}
    return None


def _has_interval(e: dict | None) -> bool:
    return bool(e) and all(e.get(name) is not None for name in ("value", "low", "high"))


def warnings(rep: dict, checks: dict) -> list[dict]:
    """The badges of an experiment: a flagged sample-ratio check, rewards not arriving."""
    out = []
    srm = rep.get("sample_ratio")
    if srm and srm["flagged"]:
        out.append({"text": "sample ratio mismatch", "level": "bad",
                    "detail": f"units {srm['observed']} vs expected shares {srm['expected_shares']}; "
                              f"p = {srm['p_value']:.2g}"})
    if checks["no_rewards"]:
        out.append({"text": "no rewards arriving", "level": "warn",
                    "detail": f"none of the {checks['recent_closed']} newest decisions whose reward window "
                              "closed got a reward; is the shop posting rewards?"})
    return out


def _headline(row: dict) -> dict:
    """Return the lift and sample-ratio part of the report, reused for ``SUMMARY_SECONDS`` per version.

    A report reads the whole log (seconds for millions of decisions), so the list
    does not rebuild one per experiment on every visit; a settings change does.
    """
    silent = _silent()
    cache, now = silent.setdefault("dashboard_summaries", {}), silent["clock"].now()
    cached = cache.get(row["key"])
    if cached and cached["version"] == row["version"] and now - cached["at"] < SUMMARY_SECONDS:
        return cached
    rep = report(silent["store"], row["key"], ope_sample=0, clock=silent["clock"], archive=silent["archive"])
    cached = {"version": row["version"], "at": now, "lift": rep["lift"], "sample_ratio": rep["sample_ratio"],
              "has_decisions": bool(rep["variants"])}
    cache[row["key"]] = cached
    return cached


def summary(row: dict) -> dict:
    """Return what the experiments list shows for one experiment."""
    silent = _silent()
    checks = health(silent["store"], row["key"], row["spec"], row["status"], silent["clock"].now())
    headline = _headline(row)
    lift = headline_lift(headline["lift"])
    note = ("not enough data" if headline["lift"] else "needs bandit and holdout decisions") \
        if headline["has_decisions"] else "no decisions yet"
    return {"row": row, "split": split_text(row["spec"]), "decisions_today": checks["decisions_today"],
            "lift": lift, "lift_note": note, "warnings": warnings(headline, checks), "enough_data": lift is not None,
            "checks": checks}


def _range(args) -> dict:
    """Read the page's range inputs from its query string."""
    values = {name: (args.get(name) or "").strip() for name in RANGE_FIELDS}
    values["interval"] = values["interval"] or "auto"
    return values


def _report(key: str, values: dict) -> tuple[dict, dict]:
    """Build the report for the range; a bad range input is reported next to it and the whole log shown."""
    silent = _silent()
    try:
        return report(silent["store"], key, values["from"], values["to"], values["interval"],
                      clock=silent["clock"], archive=silent["archive"]), {}
    except InvalidField as exc:
        if exc.field not in RANGE_FIELDS:
            raise
        errors = {exc.field: forms.message_for(exc, exc.field)}
        return report(silent["store"], key, clock=silent["clock"], archive=silent["archive"]), errors


def variant_rows(rep: dict) -> tuple[list[str], list[dict]]:
    """Rows of the variant table, with every reward type seen as a column."""
    types = sorted({kind for v in rep["variants"] for kind in v["rates"]})
    rows = [{"variant": v["variant"], "decisions": v["decisions"], "units": v["units"], "rewarded": v["rewarded"],
             "rewarded_rate": estimate(v["rewarded_rate"], as_percent=True), "reward": estimate(v["reward"]),
             "rates": [estimate(v["rates"].get(kind), as_percent=True) for kind in types]}
            for v in rep["variants"]]
    return types, rows


def off_policy_rows(rep: dict) -> list[dict]:
    return [{"label": p["label"], "policy": p["policy"],
             **{name: estimate(p[name]) for name in ("ips", "snips", "dr")}} for p in rep["off_policy"]]


def report_charts(rep: dict) -> list[dict]:
    """The experiment page's charts: reward over time per variant, item shares, model versions."""
    series = rep["time_series"]
    buckets, variants = series["buckets"], series["variants"]
    labels = [bar_charts.short_time(b) for b in buckets]
    per = series["interval"]
    rate = line_chart({name: v["reward_rate"] for name, v in variants.items()}, labels, "", "{:.0%}")
    mean = line_chart({name: v["mean_reward"] for name, v in variants.items()}, labels, "", "{:.3g}")
    shares = series["shares"]
    shown = "bandit" if "bandit" in shares["variants"] else next(iter(shares["variants"]), None)
    what = "Arm" if rep["experiment"]["kind"] == "strategies" else "Item"
    share = bar_charts.stacked_bars(buckets, shares["items"], shares["variants"].get(shown, []),
                                          f"{what} shares of the first slot per {per}")
    served = rep["model_versions"]["served"]
    models = bar_charts.bar_chart([f"v{m['version']}" for m in served], [m["decisions"] for m in served],
                                        "Decisions served by each model version")
    return [
        {"title": f"Rewarded share per {per}", "svg": rate, "legend": [], "note": "per variant"},
        {"title": f"Mean reward per decision per {per}", "svg": mean, "legend": [],
         "note": "what the bandit maximises"},
        {"title": f"{what} shares over time", "svg": share, "legend": bar_charts.legend(shares["items"]),
         "note": f"first slot, {shown} variant" if shown else ""},
        {"title": "Model versions", "svg": models, "legend": [], "note": "decisions served per version (v0: none yet)"},
    ]


def report_page(row: dict, args) -> dict:
    """Everything the experiment page shows for the range chosen in its query string."""
    values = _range(args)
    rep, errors = _report(row["key"], values)
    types, variants = variant_rows(rep)
    srm = rep["sample_ratio"]
    return {"report": rep, "range_values": values, "range_errors": errors, "types": types, "variants": variants,
            "lift": rep["lift"] and {"absolute": estimate(rep["lift"]["absolute"], signed=True),
                                     "relative": estimate(rep["lift"]["relative"], as_percent=True, signed=True)},
            "srm": srm, "off_policy": off_policy_rows(rep), "charts": report_charts(rep),
            "split": split_text(row["spec"])}
