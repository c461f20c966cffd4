"""How fast could any forgetting make the drift scenario recover? An oracle forgets for the learner.

Usage: python benchmarks/drift_forgetting.py [--seeds 0 1 2 3 4] [--delay 1000] [--events 20000] [--jobs 2]

Each seed plays the ``drift`` scenario twice through the real service and learner (in-process,
virtual time, the spec defaults with the drift watch off, since the oracle is the forgetting measured
here): once as is, and once with an oracle that knows when and whose
tastes changed. ``--delay`` events after the change the oracle deletes every decision the changed
segment's users got before the change, with their rewards, and drops the published models, so the
learner rebuilds its model from what is left: everything about the other segments, nothing stale
about the changed one. No forgetting setting can do better than that (it would also forget the
other segments), so the oracle's ``recovery_events`` bound what ``learning.decay`` or a model
rebuilt from a recent window could reach. Prints JSON: per seed and run, ``recovery_events``, the
run's normalized lift and the changed segment's lift 1,000, 3,000 and 5,000 events after the change.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.clock import VirtualClock  # noqa: E402
from experiments.errors import NotFound  # noqa: E402
from experiments.simulation.runner import InProcessTarget, SimulationSettings, play, summarize  # noqa: E402

GOAL_EVENTS = 5000
AFTER = (1000, 3000, 5000)


class OracleForgetting(InProcessTarget):
    """The in-process target, plus an oracle that deletes the changed segment's pre-change decisions."""

    def __init__(self, *args, segment: str, change_at: int, delay: int, rate: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.segment, self.change_at, self.delay, self.rate = segment, change_at, delay, rate
        self.key = self.started = self.change_seq = None
        self.forgotten = 0

    def create(self, spec: dict) -> dict:
        view = super().create(spec)
        self.key, self.started = view["key"], self.clock.now()
        return view

    def reward(self, event_id: str, body: dict) -> None:
        try:
            super().reward(event_id, body)
        except NotFound:
            pass  # a reward for a decision the oracle deleted

    def tick(self) -> None:
        events = (self.clock.now() - self.started) * self.rate
        if self.change_seq is None and events >= self.change_at:
            self.change_seq = self.store.conn.execute("SELECT max(seq) FROM decisions").fetchone()[0]
        if not self.forgotten and events >= self.change_at + self.delay:
            self._forget()
        super().tick()

    def _forget(self) -> None:
        conn = self.store.conn
        stale = "SELECT seq FROM decisions WHERE experiment = ? AND seq <= ? AND json_extract(context, '$.user.segment') = ?"
        arguments = (self.key, self.change_seq, self.segment)
        with conn:
            conn.execute(f"DELETE FROM rewards WHERE decision_seq IN ({stale})", arguments)
            self.forgotten = conn.execute(f"DELETE FROM decisions WHERE seq IN ({stale})", arguments).rowcount
            conn.execute("DELETE FROM models WHERE experiment = ?", (self.key,))
        self.learner._tracks.clear()  # rebuild from the log as it is now


def run(seed: int, events: int, delay: int | None) -> dict:
    settings = SimulationSettings(scenario="drift", events=events, seed=seed,
                                  learning={"drift_watch": {"enabled": False}})
    with tempfile.TemporaryDirectory() as folder:
        clock, path = VirtualClock(), os.path.join(folder, "run.db")
        if delay is None:
            target = InProcessTarget(path, clock, settings.learn_seconds)
        else:
            target = OracleForgetting(path, clock, settings.learn_seconds, segment="s2",
                                      change_at=settings.change_event, delay=delay, rate=settings.rate)
        sc, trace, spec = play(settings, target, clock)
        result = summarize(sc, settings, trace, spec, target.mode)
        target.close()
    drift = result["drift"]
    assert drift["segment"] == "s2", drift["segment"]
    curve = {p["events"] - drift["change_at"]: p["normalized_lift"] for p in drift["segment_lift"]}
    out = {"recovery_events": drift["recovery_events"], "normalized_lift": result["normalized_lift"],
           "segment_lift_after": {str(n): curve.get(n) for n in AFTER}}
    if delay is not None:
        out["decisions_forgotten"] = target.forgotten
    return out


def _case(args) -> tuple:
    seed, events, delay = args
    return seed, delay, run(seed, events, delay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--delay", type=int, default=1000, help="events after the change when the oracle forgets")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cases = [(seed, args.events, delay) for seed in args.seeds for delay in (None, args.delay)]
    seeds: dict = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for seed, delay, out in pool.map(_case, cases):
            seeds.setdefault(seed, {})["defaults" if delay is None else "oracle_forgetting"] = out
    within = {name: sum((runs[name]["recovery_events"] or float("inf")) <= GOAL_EVENTS for runs in seeds.values())
              for name in ("defaults", "oracle_forgetting")}
    print(json.dumps({"events": args.events, "delay": args.delay, "goal_events": GOAL_EVENTS,
                      "recovered_within_goal": within, "seeds": seeds}, indent=1))


if __name__ == "__main__":
    main()
