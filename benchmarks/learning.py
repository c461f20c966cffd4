"""Measure how close the bandit gets to the oracle, with and without auto-tuning, and that nothing is lost.

Usage: python benchmarks/learning.py [--events 20000] [--seeds 0 1 ... 9] [--scenarios items slate strategies drift]
                                     [--autotune off on] [--jobs 2] [--learning JSON] [--exploration JSON]
                                     [--output FILE]
                                     [--runs FILE [--recorded-only]] [--table]
       python benchmarks/learning.py --compare FILE [FILE ...]

Every scenario and seed runs the simulated shop through the real service and
learner (``experiments.simulation.runner``, in-process on virtual time, the spec
defaults), once with auto-tuning off and once on. Each run reports
``normalized_lift`` (measured clicks, last 20% of events) and
``normalized_lift_expected`` (the same under the true click model), the drift
scenario its ``recovery_events``, and an auto-tuned run its switches. Then the
decisions the service logged and the rewards the driver saw arrive on time are
fed, in log order, to a bare ``vowpalwabbit.Workspace`` with the settings the
service had: for each model published just before an auto-tuning switch, the
decisions up to its cursor with its settings, and for the final model all of
them with the final settings; each must equal the service's model byte for byte.
Prints one JSON object with every run and a summary per scenario against the goals.
With ``--runs FILE`` each finished run is appended to FILE as a JSON line and
runs already there are not run again, so an interrupted grid resumes where it
stopped and a grid can be run in pieces (each run is reproducible bit for bit
for its seed); the report covers every run of the file that the options select.
Runs go seed by seed (every scenario with auto-tuning off, then on), so a grid
stopped part way has the same seeds for every scenario and setting.
``--compare`` runs nothing: it prints one Markdown row per setting
(``--learning``, ``--exploration``) that the run files hold, auto-tuning off: each scenario's
mean and worst seed, and the mean's difference from the defaults on the same
seeds: how defaults such as ``decay`` were chosen.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import vowpalwabbit
from tqdm import tqdm

from bandit.encoding import action_text, cb_lines, ccb_lines, context_text
from bandit.scaling import Scaler
from experiments import models
from experiments.clock import VirtualClock
from experiments.forgetting import forgotten
from experiments.labels import slot_rewards
from experiments.simulation.runner import InProcessTarget, SimulationSettings, play, summarize
from experiments.spec import parse_spec

GOALS = {  # mean and worst seed of normalized lift, auto-tuning off
    "items": {"mean": 0.85, "worst": 0.78},
    "strategies": {"mean": 0.85, "worst": 0.78},
    "slate": {"mean": 0.82, "worst": 0.72},
    "drift": {"recovery_events": 5000},
}
AUTOTUNE = {"enabled": True}
AUTOTUNE_TOLERANCE = 0.02  # auto-tuning may end below the same seed without it by at most this much


class RecordingTarget(InProcessTarget):
    """The in-process target, keeping each model the learner published just before a settings switch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key = None
        self.checkpoints: list[dict] = []

    def create(self, spec: dict) -> dict:
        view = super().create(spec)
        self.key = view["key"]
        return view

    def tick(self) -> None:
        before = self.store.existing_experiment(self.key)["version"]
        super().tick()
        if self.store.existing_experiment(self.key)["version"] != before:
            self.checkpoints.append(self.store.latest_model(self.key))


def replay_bare_vw(spec: dict, sc: dict, log: list, args: str, scaling, until: int, rules: tuple = ()) -> bytes:
    """Learn the first ``until`` logged decisions in log order with a bare VW workspace; return its model.

    Numeric features are scaled as the service's policy does: a standardising
    scaling observes the first examples, then they are learned in order. Decisions
    the forgetting ``rules`` leave out (sequence number = log position + 1) are skipped.
    """
    reward = spec["reward"]
    slate_experiment = spec["slots"] > 1
    lines_of = {c["id"]: action_text(c) for c in (spec["arms"] or sc["shop"].catalog)}
    scaler, examples = Scaler(scaling), []
    ws = vowpalwabbit.Workspace(args)
    for seq, (context, ids, slate, outcomes) in enumerate(log[:until], start=1):
        if forgotten(rules, seq, context):
            continue
        values = slot_rewards([(slot, reward["events"].get(kind, 0.0)) for slot, kind in outcomes], len(slate),
                              reward["aggregation"], reward["default"])
        labels = [(index, -value, max(p, 1e-6)) for (index, p), value in zip(slate, values)]
        shared, actions = context_text(context), [lines_of[i] for i in ids]
        if scaler.observing:
            scaler.observe([shared, *actions])
        examples.append((shared, actions, labels))
        if scaler.observing:
            continue
        for shared, actions, labels in examples:
            shared, actions = scaler.text(shared), scaler.texts(actions)
            ws.learn(ccb_lines(shared, actions, len(labels), labels=labels) if slate_experiment
                     else cb_lines(shared, actions, label=labels[0]))
        examples = []
    return _save(ws)


def _save(ws) -> bytes:
    fd, path = tempfile.mkstemp(suffix=".vw")
    os.close(fd)
    try:
        ws.save(path)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        ws.finish()
        os.unlink(path)


def _logged_until(store, cursor: int) -> int:
    return store.conn.execute("SELECT count(*) FROM decisions WHERE seq <= ?", (cursor,)).fetchone()[0]


def replay_checks(target: RecordingTarget, spec: dict, sc: dict, log: list) -> list[dict]:
    """Compare every recorded model and the final one with a bare VW replay of the log with its settings."""
    rows = target.checkpoints + [target.store.latest_model(target.key)]
    checks = []
    for row in rows:
        until = _logged_until(target.store, row["cursor_seq"])
        replayed = replay_bare_vw(spec, sc, log, row["args"], models.scaling(row), until, models.forgetting(row))
        checks.append({"model_version": row["version"], "decisions": until, "args": row["args"],
                       "identical": replayed == row["model"]})
    return checks


def switches(target: RecordingTarget) -> list[dict]:
    """The auto-tuning switches of the run: what changed, when, and the gain that justified it."""
    out = []
    for entry in target.service.history(target.key):
        summary = entry["change"].get("autotune") if isinstance(entry["change"], dict) else None
        if summary:
            chosen = next(a for a in summary["alternatives"] if a["label"] == summary["chosen"])
            out.append({"version": entry["version"], "chosen": summary["chosen"], "until_seq":
                        summary["window"]["until_seq"], "gain": chosen["gain"]})
    return out


def run_case(case: dict) -> dict:
    """One scenario, seed and auto-tuning setting; returns the run's figures."""
    learning = {**case["learning"], **({"autotune": AUTOTUNE} if case["autotune"] else {})}
    settings = SimulationSettings(scenario=case["scenario"], events=case["events"], seed=case["seed"],
                                  learning=learning or None, exploration=case.get("exploration") or None)
    with tempfile.TemporaryDirectory() as folder:
        clock = VirtualClock()
        target = RecordingTarget(os.path.join(folder, "run.db"), clock, settings.learn_seconds)
        started = time.perf_counter()
        with tqdm(total=case["events"], desc=case["label"], leave=False, disable=case["quiet"]) as bar:
            sc, trace, spec = play(settings, target, clock, on_progress=bar.update, keep_log=True)
        seconds = time.perf_counter() - started
        result = summarize(sc, settings, trace, spec, target.mode)
        final = target.store.existing_experiment(target.key)["spec"]
        out = {"scenario": case["scenario"], "seed": case["seed"], "autotune": case["autotune"],
               "normalized_lift": result["normalized_lift"],
               "normalized_lift_expected": result["normalized_lift_expected"], "ctr": result["ctr"],
               "switches": switches(target), "final_settings": {"exploration": final["exploration"],
                                                                "learning": final["learning"]},
               "replay": replay_checks(target, final, sc, trace.log), "simulation_seconds": round(seconds, 1)}
        if "drift" in result:
            drift = result["drift"]
            out["drift"] = {"recovery_events": drift["recovery_events"], "change_at": drift["change_at"],
                            "segment_lift_at_end": drift["segment_lift"][-1]["normalized_lift"]}
        target.close()
    return out


def _recovered(recovery_events: int | None) -> bool:
    """Whether the drift's changed segment recovered within the goal (None: never)."""
    return recovery_events is not None and recovery_events <= GOALS["drift"]["recovery_events"]


def _lifts(runs: list, autotune: bool) -> dict:
    return {r["seed"]: r["normalized_lift"] for r in runs if r["autotune"] == autotune}


def scenario_summary(name: str, runs: list) -> dict:
    """Mean and worst seed with and without auto-tuning, the goals, and what auto-tuning changed."""
    out = {"goal": GOALS[name]}
    for autotune in (False, True):
        lifts = _lifts(runs, autotune)
        if not lifts:
            continue
        worst = min(lifts, key=lifts.get)
        figures = {"mean": round(float(np.mean(list(lifts.values()))), 4), "worst": lifts[worst], "worst_seed": worst,
                   "per_seed": lifts}
        if name == "drift":
            recovery = {r["seed"]: r["drift"]["recovery_events"] for r in runs if r["autotune"] == autotune}
            figures["recovery_events"] = recovery
            figures["recovered_within_goal"] = sum(map(_recovered, recovery.values()))
        else:
            figures["goal_met"] = figures["mean"] >= GOALS[name]["mean"] and figures["worst"] >= GOALS[name]["worst"]
        out["autotune_on" if autotune else "autotune_off"] = figures
    if "autotune_on" in out and "autotune_off" in out:
        off, on = _lifts(runs, False), _lifts(runs, True)
        paired = [seed for seed in off if seed in on]  # both settings ran (a grid in progress may lack some)
        differences = {seed: round(on[seed] - off[seed], 4) for seed in paired}
        worst = min(paired, key=off.get) if paired else None
        out["autotune_effect"] = {"per_seed": differences, "most_lost": min(differences.values(), default=None),
                                  "never_below_by_more_than_tolerance": min(differences.values(), default=0.0)
                                  >= -AUTOTUNE_TOLERANCE, "worst_seed": worst,
                                  "worst_seed_improved": worst is not None and on[worst] > off[worst],
                                  "switches": sum(len(r["switches"]) for r in runs if r["autotune"])}
    out["replays_identical"] = all(check["identical"] for r in runs for check in r["replay"])
    return out


def _case_key(case: dict) -> tuple:
    return (case["scenario"], case["seed"], case["autotune"], case["events"], setting_label(case))


def setting_label(case: dict) -> str:
    """The settings a case runs over the defaults, as JSON: learning fields, and ``exploration`` when given."""
    exploration = case.get("exploration") or {}
    return json.dumps({**case["learning"], **({"exploration": exploration} if exploration else {})}, sort_keys=True)


def run_cases(cases: list, jobs: int, runs_file: str | None, recorded_only: bool = False) -> list:
    """Run the cases (reusing those ``runs_file`` already holds), appending each as it finishes; in case order.

    ``recorded_only`` runs nothing: it returns the cases the file holds (a grid in progress).
    """
    done = {}
    if runs_file and os.path.exists(runs_file):
        for row in recorded_rows(runs_file):
            done[_case_key(row["case"])] = row["run"]
    if recorded_only:
        return [done[_case_key(case)] for case in cases if _case_key(case) in done]
    todo = [case for case in cases if _case_key(case) not in done]
    with ProcessPoolExecutor(jobs) as pool, tqdm(total=len(cases), initial=len(cases) - len(todo), desc="runs",
                                                 file=sys.stderr) as bar:
        futures = {pool.submit(run_case, case): case for case in todo}
        for future in as_completed(futures):
            case, run = futures[future], future.result()
            done[_case_key(case)] = run
            if runs_file:
                with open(runs_file, "a", encoding="utf-8") as fh:
                    kept = {k: case[k] for k in ("scenario", "seed", "autotune", "events", "learning")}
                    if case.get("exploration"):
                        kept["exploration"] = case["exploration"]
                    fh.write(json.dumps({"case": kept, "run": run}) + "\n")
            bar.update()
    return [done[_case_key(case)] for case in cases]


SCENARIO_TITLES = {"items": "items (1 of 50)", "slate": "slate (3 slots)", "strategies": "strategies (1 of 5)",
                   "drift": "drift (items; s2 changes half way)"}


def _goal_text(name: str) -> str:
    goal = GOALS[name]
    if name == "drift":
        return f"recovery ≤ {goal['recovery_events']:,}"
    return f"mean ≥ {goal['mean']}, worst ≥ {goal['worst']}"


def markdown_table(report: dict) -> str:
    """Return the per-seed figures of a report as the Markdown table of the README and docs/learning.md."""
    seeds = report["seeds"]
    lines = ["| scenario | goal | auto-tuning | mean | worst (seed) | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|---|---:|---:|" + "---:|" * len(seeds)]
    for name, summary in report["scenarios"].items():
        for setting in ("autotune_off", "autotune_on"):
            figures = summary.get(setting)
            if figures is None:
                continue
            per_seed = {int(k): v for k, v in figures["per_seed"].items()}
            cells = [f"{per_seed[s]:.3f}" if s in per_seed else "" for s in seeds]
            lines.append(f"| {SCENARIO_TITLES[name]} | {_goal_text(name) if name != 'drift' else 'lift'} | "
                         f"{setting.split('_')[1]} | {figures['mean']:.3f} | {figures['worst']:.3f} "
                         f"({figures['worst_seed']}) | " + " | ".join(cells) + " |")
            if name == "drift":
                recovery = {int(k): v for k, v in figures["recovery_events"].items()}
                cells = ["never" if recovery.get(s, 0) is None else f"{recovery[s]:,}" if s in recovery else ""
                         for s in seeds]
                lines.append(f"| {SCENARIO_TITLES[name]}: `recovery_events` | {_goal_text(name)} | "
                             f"{setting.split('_')[1]} | {figures['recovered_within_goal']} of {len(recovery)} "
                             "within | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_report(runs: list, events: int, seeds: list, scenarios: list, learning: dict,
                 exploration: dict | None = None) -> dict:
    """The JSON report: the settings, a summary per scenario against the goals, and every run."""
    defaults = parse_spec({"key": "defaults"}).data
    return {"events": events, "seeds": seeds, "learning_override": learning, "exploration_override": exploration or {},
            "defaults": {"exploration": defaults["exploration"], "learning": defaults["learning"]},
            "scenarios": {name: scenario_summary(name, [r for r in runs if r["scenario"] == name])
                          for name in scenarios},
            "runs": runs}


def _baseline(setting: str, settings) -> str:
    """The row a setting extends: the one with most of its fields (same values) among the others; else the defaults.

    A row measured before a default changed names the old value too (``{"decay": 0.3, "drift_watch":
    {"enabled": false}}``) and is compared with the old defaults' row, not with the new defaults.
    """
    fields = json.loads(setting).items()
    best, most = "{}", 0
    for other in settings:
        other_fields = json.loads(other).items()
        if other != setting and len(other_fields) > most and all(f in fields for f in other_fields):
            best, most = other, len(other_fields)
    return best


def comparison_table(rows: list) -> str:
    """One Markdown row per setting (auto-tuning off): mean / worst seed per scenario it ran.

    A row covers the seeds that all its scenarios ran; each cell adds, in brackets, the difference of
    its mean from the mean, on those same seeds, of the row it extends (``_baseline``: the defaults for
    a row of one setting).
    """
    by_setting: dict[str, dict] = {}
    for row in rows:
        case = row["case"]
        if not case["autotune"]:
            setting = setting_label(case)
            by_setting.setdefault(setting, {})[(case["scenario"], case["seed"])] = row["run"]
    names = [name for name in GOALS if any(scenario == name for runs in by_setting.values() for scenario, _ in runs)]
    lines = ["| settings | seeds | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for setting, runs in by_setting.items():
        ran = [name for name in names if any(scenario == name for scenario, _ in runs)]
        seeds = sorted(set.intersection(*({seed for scenario, seed in runs if scenario == name} for name in ran)))
        baseline, cells = by_setting.get(_baseline(setting, by_setting), {}), []
        for name in names:
            if name not in ran:
                cells.append("")
                continue
            lifts = [runs[(name, seed)]["normalized_lift"] for seed in seeds]
            cell = f"{np.mean(lifts):.3f} / {min(lifts):.3f}"
            if setting != "{}" and all((name, seed) in baseline for seed in seeds):
                base = np.mean([baseline[(name, seed)]["normalized_lift"] for seed in seeds])
                cell += f" ({np.mean(lifts) - base:+.3f})"
            if name == "drift":
                recovered = sum(_recovered(runs[(name, seed)]["drift"]["recovery_events"]) for seed in seeds)
                cell += f", {recovered} recovered"
            cells.append(cell)
        label = "defaults" if setting == "{}" else f"`{setting}`"
        lines.append(f"| {label} | {_span(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _span(seeds: list) -> str:
    return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds))


def recorded_rows(runs_file: str) -> list:
    """Every line a ``--runs`` file holds: the case and its run, in file order."""
    with open(runs_file, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def recorded_runs(runs_file: str) -> list:
    """Every run a ``--runs`` file holds, in file order."""
    return [row["run"] for row in recorded_rows(runs_file)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--scenarios", nargs="+", default=list(GOALS), choices=list(GOALS))
    parser.add_argument("--autotune", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--learning", type=json.loads, default={},
                        help='learning settings over the defaults, e.g. \'{"decay": 0.5}\' for a baseline')
    parser.add_argument("--exploration", type=json.loads, default={},
                        help='exploration instead of the default, e.g. \'{"algorithm": "squarecb", "gamma_scale": 50}\'')
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--output", default=None, help="also write the JSON here")
    parser.add_argument("--recorded-only", action="store_true",
                        help="run nothing: report the runs the --runs file holds (a grid in progress)")
    parser.add_argument("--table", action="store_true", help="print the per-seed Markdown table, not the JSON")
    parser.add_argument("--compare", nargs="+", default=None, metavar="FILE",
                        help="run nothing: compare the settings the run files hold (mean / worst seed)")
    parser.add_argument("--runs", default=None, help="append each finished run here (JSON lines); runs already "
                                                     "there with the same settings are reused, not run again")
    args = parser.parse_args()
    if args.compare:
        print(comparison_table([row for name in args.compare for row in recorded_rows(name)]))
        return
    cases = [{"scenario": name, "seed": seed, "autotune": autotune == "on", "events": args.events,
              "learning": args.learning, "exploration": args.exploration, "label": f"{name} seed {seed} autotune {autotune}",
              "quiet": args.jobs > 1} for seed in args.seeds for autotune in args.autotune for name in args.scenarios]
    if args.recorded_only and not args.runs:
        parser.error("--recorded-only needs --runs")
    runs = run_cases(cases, args.jobs, args.runs, args.recorded_only)
    report = build_report(runs, args.events, args.seeds, args.scenarios, args.learning, args.exploration)
    text = json.dumps(report, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(markdown_table(report) if args.table else text)


if __name__ == "__main__":
    main()
