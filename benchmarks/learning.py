"""Measure how close the bandit gets to the oracle, and that the service loses nothing to VW run directly.

Usage: python benchmarks/learning.py [--events 20000] [--seeds 0 1 2] [--scenarios items slate strategies]

Each scenario and seed runs the simulated shop through the real service and
learner (``experiments.simulation.runner``, in-process on virtual time, the spec
defaults) and reports ``normalized_lift`` (measured clicks, last 20% of events)
and ``normalized_lift_expected`` (the same under the true click model). Then the
very decisions the service logged (context, candidates, chosen, probability) and
the rewards the driver saw arrive on time are fed, in log order, to a bare
``vowpalwabbit.Workspace`` with the same arguments. The service's final model
and that replayed model, plus a policy that learned online with no service at
all (no reward window, no batching, no holdout), are graded on the same held-out
page views under the true click model: the value of each policy as served, with
its exploration. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import vowpalwabbit
from tqdm import tqdm

from bandit.encoding import action_text, cb_lines, ccb_lines, context_text
from bandit.policy import Policy
from bandit.simulation import normalized_lift
from experiments.clock import VirtualClock
from experiments.labels import slot_rewards
from experiments.simulation.runner import InProcessTarget, SimulationSettings, outcome_rng, play, summarize
from experiments.spec import parse_spec

GOALS = {"items": 0.8, "slate": 0.7, "strategies": 0.8}
HELD_OUT_VIEWS = 2000


def actions_of(sc: dict) -> dict:
    """Return each candidate's (or arm's) VW action line by id."""
    pool = sc["spec"]["arms"] or sc["shop"].catalog
    return {c["id"]: action_text(c) for c in pool}


def replay_bare_vw(spec: dict, sc: dict, log: list) -> bytes:
    """Learn the logged decisions in log order with a bare VW workspace; return its model."""
    settings = parse_spec(spec).policy_settings()
    events, reward = spec["reward"]["events"], spec["reward"]
    lines_of = actions_of(sc)
    ws = vowpalwabbit.Workspace(settings.args())
    for context, ids, slate, outcomes in log:
        values = slot_rewards([(slot, events.get(kind, 0.0)) for slot, kind in outcomes], len(slate),
                              reward["aggregation"], reward["default"])
        labels = [(index, -value, max(p, 1e-6)) for (index, p), value in zip(slate, values)]
        shared, actions = context_text(context), [lines_of[i] for i in ids]
        if settings.is_slate:
            ws.learn(ccb_lines(shared, actions, len(labels), labels=labels))
        else:
            ws.learn(cb_lines(shared, actions, label=labels[0]))
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


def learn_online(spec: dict, sc: dict, settings: SimulationSettings) -> bytes:
    """Let a policy choose and learn after every page view, with no service around it; return its model."""
    policy = Policy(parse_spec(spec).policy_settings())
    lines_of = actions_of(sc)
    events = spec["reward"]["events"]
    view_rng, request_rng = np.random.default_rng([settings.seed, 0]), np.random.default_rng([settings.seed, 1])
    for i in range(settings.events):
        view = sc["shop"].page_view(view_rng)
        body = sc["request"](view, request_rng)
        ids = [c["id"] for c in body.get("candidates") or sc["spec"]["arms"]]
        shared, actions = context_text(view.context), [lines_of[k] for k in ids]
        chosen = policy.choose(shared, actions, sc["slots"], f"online-{i}")
        values = [0.0] * len(chosen)
        for o in sc["outcomes"](view, [ids[k] for k, _ in chosen], outcome_rng(settings.seed, i)):
            values[o.slot] += events.get(o.type, 0.0)
        policy.learn(shared, actions, chosen, values)
    return policy.save()


def served_value(sc: dict, spec: dict, model: bytes, views: list) -> float:
    """Return a model's mean expected clicks per page view as served (sampled with its exploration)."""
    policy = Policy(parse_spec(spec).policy_settings(), model)
    lines_of = actions_of(sc)
    request_rng = np.random.default_rng(1)
    values = []
    for j, view in enumerate(views):
        body = sc["request"](view, request_rng)
        ids = [c["id"] for c in body.get("candidates") or sc["spec"]["arms"]]
        shared, actions = context_text(view.context), [lines_of[k] for k in ids]
        if sc["slots"] == 1:
            pmf = policy.pmf(shared, actions)
            values.append(float(sum(p * sc["value"](view, [ids[k]]) for k, p in enumerate(pmf) if p > 0)))
        else:
            chosen = policy.choose(shared, actions, sc["slots"], f"held-out-{j}")
            values.append(sc["value"](view, [ids[k] for k, _ in chosen]))
    policy.close()
    return float(np.mean(values))


def held_out(sc: dict, spec: dict, models: dict, seed: int) -> dict:
    """Grade each model on the same held-out page views; lifts place them between uniform and oracle."""
    views = sc["shop"].sample_views(HELD_OUT_VIEWS, seed=10_000 + seed)
    uniform = float(np.mean([sc["uniform"](v) for v in views]))
    oracle = float(np.mean([sc["oracle"](v)[1] for v in views]))
    values = {name: served_value(sc, spec, model, views) for name, model in models.items()}
    return {"uniform": round(uniform, 5), "oracle": round(oracle, 5),
            "value": {name: round(v, 5) for name, v in values.items()},
            "normalized_lift": {name: round(normalized_lift(v, uniform, oracle), 4) for name, v in values.items()}}


def run_case(name: str, seed: int, events: int, folder: str) -> dict:
    settings = SimulationSettings(scenario=name, events=events, seed=seed)
    clock = VirtualClock()
    target = InProcessTarget(os.path.join(folder, f"{name}-{seed}.db"), clock, settings.learn_seconds)
    started = time.perf_counter()
    with tqdm(total=events, desc=f"{name} seed {seed}", leave=False) as bar:
        sc, trace, spec = play(settings, target, clock, on_progress=bar.update, keep_log=True)
    seconds = time.perf_counter() - started
    result = summarize(sc, settings, trace, spec, target.mode)
    service_model = target.store.latest_model(spec["key"])["model"]
    target.close()
    replayed = replay_bare_vw(spec, sc, trace.log)
    models = {"service": service_model, "vw_replay": replayed, "vw_online": learn_online(spec, sc, settings)}
    return {"seed": seed, "normalized_lift": result["normalized_lift"],
            "normalized_lift_expected": result["normalized_lift_expected"], "ctr": result["ctr"],
            "expected": result["expected"], "held_out": held_out(sc, spec, models, seed),
            "replay_model_identical": replayed == service_model, "simulation_seconds": round(seconds, 1),
            "events_per_second": round(events / seconds)}


def scenario_summary(name: str, runs: list) -> dict:
    mean = lambda pick: round(float(np.mean([pick(r) for r in runs])), 4)  # noqa: E731
    held = {model: mean(lambda r, m=model: r["held_out"]["normalized_lift"][m])
            for model in runs[0]["held_out"]["normalized_lift"]}
    lift, lift_expected = mean(lambda r: r["normalized_lift"]), mean(lambda r: r["normalized_lift_expected"])
    return {"goal": GOALS[name], "mean_normalized_lift": lift, "mean_normalized_lift_expected": lift_expected,
            "goal_met": lift >= GOALS[name] and lift_expected >= GOALS[name],
            "held_out_mean_normalized_lift": held, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scenarios", nargs="+", default=list(GOALS), choices=list(GOALS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        scenarios = {name: scenario_summary(name, [run_case(name, seed, args.events, folder) for seed in args.seeds])
                     for name in args.scenarios}
    defaults = parse_spec({"key": "defaults"}).data
    print(json.dumps({"events": args.events, "seeds": args.seeds,
                      "defaults": {"exploration": defaults["exploration"], "learning": defaults["learning"]},
                      "scenarios": scenarios}, indent=2))


if __name__ == "__main__":
    main()
