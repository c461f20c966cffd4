"""Render a report (the JSON of ``experiments.reporting.reports.report``) as a text table or a standalone HTML page."""
from __future__ import annotations

import math

from jinja2 import Environment, PackageLoader, select_autoescape

from web.dashboard.charts import line_chart


def estimate(e: dict | None, percent: bool = False, signed: bool = False) -> str:
    """Format an estimate as ``value [low, high]``; missing numbers as a dash.

    >>> estimate({"value": 0.1234, "low": 0.1, "high": 0.15}, percent=True)
    '12.34% [10.00%, 15.00%]'
    """
    if not e or e.get("value") is None:
        return "–"
    fmt = (lambda x: f"{x:+.2%}" if signed else f"{x:.2%}") if percent else (
        lambda x: f"{x:+.4g}" if signed else f"{x:.4g}")
    if e.get("low") is None or e.get("high") is None:
        return fmt(e["value"])
    return f"{fmt(e['value'])} [{fmt(e['low'])}, {fmt(e['high'])}]"


def _p_value(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]


def text(report: dict) -> str:
    """Return the report as plain-text tables for a terminal."""
    exp, rng = report["experiment"], report["range"]
    out = [f"Report of {exp['key']} ({exp['name']}): {exp['kind']}, {exp['status']}, version {exp['version']}, "
           f"{exp['slots']} slot(s)",
           f"Decisions from {rng['first_decision'] or '–'} to {rng['last_decision'] or '–'}"
           f" (range {rng['from'] or 'start'} .. {rng['to'] or 'now'}), by {rng['interval']}"]
    out += [log_text(report.get("log")), ""]
    out += _variants_text(report) + [""] + _checks_text(report) + [""] + _off_policy_text(report) + [""]
    rewards, models = report["rewards"], report["model_versions"]
    out.append(f"Rewards: {rewards['received']:,} received, {rewards['on_time']:,} on time, {rewards['late']:,} late, "
               f"{rewards['duplicate']:,} duplicate, {rewards['unattributed']:,} unattributed"
               + (f", {rewards['unknown_event']:,} for unknown events" if rewards.get("unknown_event") else ""))
    served = [m["version"] for m in models["served"]]
    out.append(f"Model versions: served {_versions(served)}; {len(models['published'])} snapshot(s) published in "
               f"range; latest v{models['latest']}" if models["latest"] is not None else
               f"Model versions: served {_versions(served)}; no snapshot published yet")
    return "\n".join(out) + "\n"


def log_text(log: dict | None) -> str:
    """Say from when the log holds data: retention and purges delete old decisions."""
    if not log:
        return ""
    kept = f"Log kept from {log['data_from'] or '–'}"
    rule = f"retention {log['retention_days']} days" if log["retention_days"] else "kept forever"
    if log["purged_before"]:
        return (f"{kept} ({rule}; {log['purged_decisions']:,} decisions made before {log['purged_before']} "
                "were deleted)")
    return f"{kept} ({rule})"


def _versions(served: list[int]) -> str:
    if not served:
        return "none"
    return f"v{served[0]}" if len(served) == 1 else f"v{min(served)}–v{max(served)} ({len(served)} versions)"


def _variants_text(report: dict) -> list[str]:
    types = sorted({t for v in report["variants"] for t in v["rates"]})
    header = ["variant", "decisions", "units", "rewarded", "reward per decision [95% CI]", *types]
    rows = [[v["variant"], f"{v['decisions']:,}", f"{v['units']:,}", estimate(v["rewarded_rate"], percent=True),
             estimate(v["reward"]), *(estimate(v["rates"].get(t), percent=True) for t in types)]
            for v in report["variants"]]
    return _table(header, rows) if rows else ["No decisions in this range."]


def _checks_text(report: dict) -> list[str]:
    out = []
    lift = report["lift"]
    if lift:
        out.append(f"Lift of bandit over holdout (reward per decision): {estimate(lift['absolute'], signed=True)}, "
                   f"relative {estimate(lift['relative'], percent=True, signed=True)}")
    else:
        out.append("Lift: needs decisions in both the bandit and the holdout")
    srm = report["sample_ratio"]
    if srm:
        verdict = "FLAGGED: the split does not match the configuration" if srm["flagged"] else "ok"
        shares = " / ".join(f"{s:.0%}" for s in srm["expected_shares"])
        out.append(f"Sample ratio (units): bandit {srm['observed'][0]:,} / holdout {srm['observed'][1]:,}, "
                   f"configured {shares}, p = {_p_value(srm['p_value'])}: {verdict}")
    return out


def _off_policy_text(report: dict) -> list[str]:
    sample = report["off_policy_sample"]
    rows = [[p["label"], estimate(p["ips"]), estimate(p["snips"]), estimate(p["dr"]), effective(p)]
            for p in report["off_policy"]]
    title = (f"Off-policy estimates of first-slot reward per decision ({sample['decisions']:,} of "
             f"{sample['of']:,} decisions):")
    return [title, *_table(["policy", "IPS", "SNIPS", "DR", "effective decisions"], rows)] if rows else [title, "none"]


def effective(policy: dict) -> str:
    """How many decisions a policy's estimates rest on; reports written before it was counted have none."""
    found = policy.get("effective_decisions")
    return "" if found is None else f"{found:,.0f}"


# -- html ------------------------------------------------------------------------------------------
def charts(report: dict) -> dict[str, str]:
    """Return the report's SVG charts: reward rate and mean reward per variant, first-slot shares."""
    series = report["time_series"]
    labels = [b[:10] if series["interval"] == "day" else b[5:16].replace("T", " ") for b in series["buckets"]]
    out = {
        "reward_rate": line_chart({v: s["reward_rate"] for v, s in series["variants"].items()}, labels,
                                  f"Rewarded decisions per {series['interval']}", "{:.0%}"),
        "mean_reward": line_chart({v: s["mean_reward"] for v, s in series["variants"].items()}, labels,
                                  f"Reward per decision per {series['interval']}", "{:.3g}"),
    }
    shares = series["shares"]
    for variant, table in shares["variants"].items():
        columns = {item: [row[i] for row in table] for i, item in enumerate(shares["items"])}
        out[f"shares_{variant}"] = line_chart(columns, labels, f"First-slot shares, {variant}", "{:.0%}")
    return out


_env = Environment(loader=PackageLoader("web.dashboard", "templates"), autoescape=select_autoescape(["html"]))
_env.filters["estimate"] = estimate
_env.filters["effective"] = effective
_env.filters["p_value"] = _p_value
_env.globals["isfinite"] = math.isfinite


def html(report: dict) -> str:
    """Return a standalone HTML page (inline CSS, inline SVG charts, no scripts)."""
    return _env.get_template("report_standalone.html").render(
        report=report, charts=charts(report), log_text=log_text(report.get("log")))


def settings_label(policy: dict) -> str:
    """Name replayed settings briefly.

    >>> settings_label({"policy": "live", "exploration": {"algorithm": "epsilon", "epsilon": 0.2},
    ...                 "learning": {"learning_rate": 0.5}})
    'live: epsilon (epsilon=0.2), learning_rate 0.5'
    """
    exploration = dict(policy["exploration"])
    name = exploration.pop("algorithm")
    details = ", ".join(f"{k}={v}" for k, v in exploration.items())
    return f"{policy['policy']}: {name} ({details}), learning_rate {policy['learning']['learning_rate']}"


def evaluation_text(view: dict) -> str:
    """Return a finished counterfactual evaluation as a plain-text table."""
    result = view["result"]
    rows = [[settings_label(p), estimate(p["ips"]), estimate(p["snips"]), estimate(p["dr"])]
            for p in result["policies"]]
    diff, logged = result["difference"], result["logged"]
    return "\n".join([
        f"Evaluation {view['id']} of {view['experiment']}: replayed {result['decisions']:,} decisions in log order "
        "(first-slot reward per decision)", "",
        *_table(["settings", "IPS", "SNIPS", "DR"], rows), "",
        f"Candidate minus live: IPS {estimate(diff['ips'], signed=True)}, DR {estimate(diff['dr'], signed=True)}"
        f" -> {result['verdict']}",
        f"Logged reward per decision: all traffic {estimate(logged['all'])}, bandit {estimate(logged['bandit'])}",
    ]) + "\n"
