"""``silent simulate`` and ``silent demo``: the simulated shop against the real service, as click commands."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import uuid

import click
from tqdm import tqdm

from experiments.errors import ServiceError
from web.cli.common import fail

SCENARIO_CHOICE = click.Choice(["items", "slate", "strategies", "drift"])
DEMO_KEY = "home-recs"
DEMO_NAME = "Home page recommendations (simulated shop)"
DEMO_EVENTS = 20_000
CHART_FILE = "learning-curve.svg"
# Over HTTP the server keeps real time while the shop runs fast-forward: a short window and frequent
# snapshots let the server's learner catch up within a run of a minute or two.
HTTP_WAIT_SECONDS = 2.0
HTTP_LEARNING = {"update_seconds": 1.0}
REFERENCES = (("holdout", "holdout (uniform control)"), ("uniform", "uniform random"),
              ("best_fixed", "best fixed slate"), ("oracle", "oracle (best possible)"))


def _progress(total: int, desc: str):
    """A tqdm bar on stderr, quiet when stderr is not a terminal (so --json output stays clean)."""
    return tqdm(total=total, desc=desc, unit=" views", disable=None, file=sys.stderr, leave=False)


def run_in_process(settings, db_path: str, desc: str) -> tuple[dict, object, object]:
    """Run the simulation on the real service and learner; return (result, target, clock)."""
    from experiments.clock import VirtualClock
    from experiments.simulation.runner import InProcessTarget, run

    clock = VirtualClock()
    target = InProcessTarget(db_path, clock, settings.learn_seconds)
    with _progress(settings.events, desc) as bar:
        result = run(settings, target, clock, on_progress=bar.update)
    return result, target, clock


def run_over_http(settings, url: str, api_key: str | None) -> dict:
    """Run the simulation against a running server; event ids are fresh for every run."""
    from experiments.clock import VirtualClock
    from experiments.simulation.runner import run
    from experiments.simulation.http_target import HttpTarget

    target = HttpTarget(url, api_key)
    try:
        with _progress(settings.events, f"simulating {settings.scenario} over HTTP") as bar:
            return run(settings, target, VirtualClock(), on_progress=bar.update,
                       event_prefix=f"sim-{uuid.uuid4().hex[:8]}-")
    finally:
        target.close()


# -- text ------------------------------------------------------------------------------------------
def rates_text(result: dict) -> list[str]:
    """The measured clicks per decision of the bandit and the references, with the normalized lift."""
    ctr, expected = result["ctr"], result["expected"]
    lines = [f"Clicks per page view over the last {result['graded_events']:,} page views "
             "(measured; expected under the true click model in brackets):"]
    for name, label in (("bandit", "bandit"), *REFERENCES):
        lines.append(f"  {label:<28} {_rate(ctr[name])}  ({_rate(expected[name])})")
    lines.append(f"Normalized lift {_number(result['normalized_lift'])} "
                 f"(expected {_number(result['normalized_lift_expected'])}): 0 is uniform random, 1 the oracle.")
    return lines


def curve_text(result: dict) -> list[str]:
    """The learning curve as a small table: the bandit's clicks per page view as traffic grows."""
    lines = ["  page views         bandit clicks/view   expected"]
    first = 1
    for point in result["learning_curve"]:
        span = f"{first:,}-{point['events']:,}"
        lines.append(f"  {span:<17}  {_rate(point['ctr']):>18}   {_rate(point['expected']):>8}")
        first = point["events"] + 1
    return lines


def drift_text(result: dict) -> list[str]:
    """The drift's headline: when the segment changed, and when it had recovered."""
    drift = result.get("drift")
    if drift is None:
        return []
    recovered = (f"reached {drift['recovery_share']:.0%} of its new oracle lift {drift['recovery_events']:,} page views "
                 "later" if drift["recovery_events"] is not None else
                 f"had not reached {drift['recovery_share']:.0%} of its new oracle lift by the end")
    return [f"Segment {drift['segment']} took on the tastes of {drift['like']} at page view {drift['change_at']:,}; "
            f"it {recovered}."]


def _rate(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _number(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def chart_svg(result: dict) -> str:
    """Draw the learning curve with the uniform, best fixed and oracle levels as flat lines."""
    from web.dashboard.charts import line_chart

    curve = result["learning_curve"]
    series = {"bandit (measured)": [p["ctr"] for p in curve], "bandit (expected)": [p["expected"] for p in curve]}
    for name, label in REFERENCES[1:]:
        series[label] = [result["expected"][name]] * len(curve)
    labels = [f"{p['events']:,} views" for p in curve]
    title = f"Clicks per page view as the bandit learns ({result['scenario']}, seed {result['seed']})"
    return line_chart(series, labels, title, y_format="{:.2f}", width=720, height=300)


# -- simulate --------------------------------------------------------------------------------------
@click.command("simulate")
@click.option("--scenario", type=SCENARIO_CHOICE, default="items", show_default=True,
              help="items: one item of 50; slate: 3 slots; strategies: pick one of 5 recommendation strategies; "
                   "drift: items, and half way one segment's tastes change.")
@click.option("--events", type=click.IntRange(1), default=20_000, show_default=True, help="Page views to simulate.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the shop and its users.")
@click.option("--url", default=None, help="Drive a running server (e.g. http://127.0.0.1:8000) instead of the "
                                          "in-process service on virtual time.")
@click.option("--api-key", envvar="SILENT_API_KEY", default=None,
              help="Bearer key for --url (admin, to create the experiment) [env SILENT_API_KEY].")
@click.option("--db", default=None, help="In-process: keep the SQLite file here (default: a temporary file).")
@click.option("--key", default=None, help="Experiment key [default: sim-SCENARIO]; over HTTP an existing one is "
                                          "reused.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="Page views per (virtual) second; outcomes arrive after their simulated delays.")
@click.option("--learn-seconds", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="In-process: virtual seconds between learner passes.")
@click.option("--wait-seconds", type=click.FloatRange(0), default=None,
              help="Reward window of the experiment it creates  [default: 120; 2 over HTTP, in real seconds].")
@click.option("--holdout", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Share of users who get the uniform control.")
@click.option("--change-at", type=click.IntRange(1), default=None,
              help="drift: the page view at which the segment's tastes change  [default: half way].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the result) and nothing else.")
def simulate(scenario, events, seed, url, api_key, db, key, rate, learn_seconds, wait_seconds, holdout, change_at,
             as_json):
    """Play the simulated shop against the service and measure how close the bandit gets to the oracle.

    In-process (the default) runs the real service and learner on a SQLite file on
    virtual time, reproducible bit for bit for a seed; --url drives a running
    server over HTTP. The result compares the bandit's clicks per page view over
    the last 20% of events with the holdout, uniform random, the best fixed slate
    and the oracle; normalized lift = (bandit - uniform) / (oracle - uniform).

    Example: silent simulate --scenario slate --events 5000 --seed 1 --json
    """
    from experiments.simulation.runner import SimulationSettings

    if wait_seconds is None:
        wait_seconds = HTTP_WAIT_SECONDS if url else 120.0
    settings = SimulationSettings(scenario=scenario, events=events, seed=seed, rate=rate, learn_seconds=learn_seconds,
                                  wait_seconds=wait_seconds, holdout=holdout, key=key, change_at=change_at,
                                  learning=HTTP_LEARNING if url else None)
    try:
        settings.validate()
        if url:
            result = run_over_http(settings, url, api_key)
        else:
            result = _simulate_in_process(settings, db)
    except ServiceError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{scenario}: {events:,} page views, seed {seed}, {result['mode']}")
    click.echo("\n".join(rates_text(result) + drift_text(result) + ["Learning curve:"] + curve_text(result)))


def _simulate_in_process(settings, db: str | None) -> dict:
    with contextlib.ExitStack() as stack:
        if db is None:
            db = os.path.join(stack.enter_context(tempfile.TemporaryDirectory()), "simulate.db")
        result, target, _ = run_in_process(settings, db, f"simulating {settings.scenario}")
        target.close()
        return result


# -- demo ------------------------------------------------------------------------------------------
def fresh_folder(folder: str | None) -> str:
    """Return the demo's folder: the one given (must not hold a database yet) or the first free ./silent-demo*."""
    if folder is not None:
        if os.path.exists(os.path.join(folder, "silent.db")):
            raise click.ClickException(f"{folder} already holds a demo database; remove it or pick another --folder")
        return folder
    candidate, n = "silent-demo", 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"silent-demo-{n}"
    return candidate


def headline(store, key: str, clock) -> list[str]:
    """The report's headline: reward per decision of bandit and holdout, and the lift with its interval."""
    from experiments.reporting.reports import report
    from web.dashboard.report_render import estimate

    result = report(store, key, clock=clock, ope_sample=2000)
    variants = {v["variant"]: v for v in result["variants"]}
    lines = ["The report (silent report) over the whole run, clicks per page view with 95% intervals:"]
    for name in ("bandit", "holdout"):
        if name in variants:
            v = variants[name]
            lines.append(f"  {name:<8} {estimate(v['reward'])}  ({v['decisions']:,} page views)")
    if result["lift"]:
        lines.append(f"  lift     {estimate(result['lift']['absolute'], signed=True)} clicks per page view, "
                     f"{estimate(result['lift']['relative'], percent=True, signed=True)}")
    return lines


@click.command("demo")
@click.option("--events", type=click.IntRange(100), default=DEMO_EVENTS, show_default=True,
              help="Simulated page views.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the simulated shop.")
@click.option("--scenario", type=SCENARIO_CHOICE, default="slate", show_default=True,
              help="What the bandit chooses: a 3-item slate, one item, or a strategy.")
@click.option("--folder", default=None, help="Where to put the database and chart  [default: a fresh ./silent-demo].")
def demo(events, seed, scenario, folder):
    """Watch the bandit learn: a simulated shop's traffic through the real service, then the report.

    Creates a SQLite database in a fresh ./silent-demo folder, starts a demo
    experiment (3-item home page recommendations, 10% holdout), plays simulated
    page views, clicks and purchases through the real service and learner on
    virtual time, then prints how the click rate climbs, the report's lift of the
    bandit over the holdout, and writes the learning curve as an SVG chart.

    Example: silent demo --events 5000
    """
    from experiments.simulation.runner import SimulationSettings

    folder = fresh_folder(folder)
    os.makedirs(folder, exist_ok=True)
    db_path = os.path.join(folder, "silent.db")
    settings = SimulationSettings(scenario=scenario, events=events, seed=seed, key=DEMO_KEY, name=DEMO_NAME,
                                  curve_points=10)
    click.echo(f"Silent Customizer demo: {events:,} simulated page views of a shop with 50 products, "
               f"through the real service (database {db_path}).")
    try:
        result, target, clock = run_in_process(settings, db_path, "simulating shop traffic")
    except ServiceError as exc:
        fail(exc)
    try:
        report_lines = headline(target.store, DEMO_KEY, clock)
    finally:
        target.close()
    chart = os.path.join(folder, CHART_FILE)
    with open(chart, "w", encoding="utf-8") as fh:
        fh.write(chart_svg(result))
    click.echo("\nThe bandit's clicks per page view as traffic grows:")
    click.echo("\n".join(curve_text(result) + [""] + rates_text(result) + [""] + report_lines))
    click.echo(f"\nLearning curve: {chart}\nExplore it: silent serve --db {db_path}   "
               f"(dashboard at http://127.0.0.1:8000/), or: silent report {DEMO_KEY} --db {db_path}")
