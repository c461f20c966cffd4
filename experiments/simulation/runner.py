"""Drive the simulated shop through the real service and grade what the bandit learned.

``run(settings, target, clock)`` plays ``settings.events`` page views of a
``bandit.simulation`` scenario against a target: ``InProcessTarget`` (the real
``Service`` and ``Learner`` on a SQLite file, on a ``VirtualClock``; fast and
reproducible bit for bit) or ``HttpTarget`` (a running server, see
``experiments.simulation.http_target``). Page views arrive ``1 / rate`` virtual seconds
apart; each view's clicks, add-to-carts and purchases are scheduled at their
delays and posted once the virtual clock passes them; in-process, the learner
makes a pass every ``learn_seconds`` virtual seconds, as ``silent serve``'s
learner does every half second of real time.

The result (``summary``) holds measured click rates (clicks per decision, all
slots of a slate) of the bandit and the holdout over the last 20% of events, and
of uniform random, the best fixed slate and the oracle on the bandit's own page
views of that window. Those three are counterfactual: each is shown to the same
simulated user with the same random numbers the bandit's slate met (common random
numbers), so the differences are measured with little noise. ``expected`` gives
the same figures under the true click model.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from bandit.simulation import SCENARIOS, normalized_lift, reference_values, scenario, world_at
from experiments.assignment import BANDIT, FALLBACK, HOLDOUT
from experiments.errors import InvalidField
from experiments.learner import Learner
from experiments.service import Service
from experiments.store import open_store

VARIANT_CODES = {BANDIT: 0, HOLDOUT: 1, FALLBACK: 2}
TAIL_SHARE = 0.2  # normalized lift and the CTRs are measured over the last 20% of events
GRACE_SECONDS = 1.0  # as LEARNER_GRACE_SECONDS in serving
# drift: the changed segment's lift is measured over the last DRIFT_WINDOW events every DRIFT_STEP events; it
# has recovered once it reaches RECOVERY_SHARE of its new oracle lift at RECOVERY_HOLD points in a row.
DRIFT_WINDOW = 1000
DRIFT_STEP = 250
DRIFT_MIN_DECISIONS = 20
RECOVERY_SHARE = 0.8
RECOVERY_HOLD = 3


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate; ``exploration`` and ``learning`` override the spec defaults when given."""

    scenario: str = "items"
    events: int = 20_000
    seed: int = 0
    rate: float = 2.0  # page views per virtual second
    learn_seconds: float = 30.0  # virtual seconds between learner passes (in-process)
    wait_seconds: float = 120.0  # the experiment's reward window
    holdout: float = 0.1
    exploration: dict | None = None
    learning: dict | None = None
    key: str | None = None
    name: str | None = None
    curve_points: int = 20
    change_at: int | None = None  # drift: the event at which the segment's tastes change [half way]

    def validate(self) -> "SimulationSettings":
        if self.scenario not in SCENARIOS:
            raise InvalidField("scenario", f"must be one of {', '.join(SCENARIOS)}")
        _check(self.events, "events", 1, integer=True)
        _check(self.seed, "seed", 0, integer=True)
        _check(self.rate, "rate", 0, open_low=True)
        _check(self.learn_seconds, "learn_seconds", 0, open_low=True)
        _check(self.wait_seconds, "wait_seconds", 0)
        _check(self.curve_points, "curve_points", 1, integer=True)
        if not isinstance(self.holdout, Real) or not 0 <= self.holdout < 1:
            raise InvalidField("holdout", "must be a number in [0, 1)")
        if self.change_at is not None:
            if "drift" not in SCENARIOS[self.scenario]:
                raise InvalidField("change_at", "only the drift scenario changes during the run")
            _check(self.change_at, "change_at", 1, integer=True)
            if self.change_at > self.tail_start:
                raise InvalidField("change_at", f"must be at most {self.tail_start}: the change comes before the "
                                                "graded last 20% of events")
        return self

    @property
    def tail_start(self) -> int:
        """Return the index of the first event of the graded window (the last 20%)."""
        return self.events - max(1, round(self.events * TAIL_SHARE))

    @property
    def change_event(self) -> int | None:
        """Return the event at which a drift scenario changes (None for the others)."""
        drift = SCENARIOS[self.scenario].get("drift")
        if drift is None:
            return None
        return self.change_at if self.change_at is not None else round(self.events * drift["at_share"])


def _check(value, name, low, integer=False, open_low=False) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InvalidField(name, "must be a finite number")
    if integer and int(value) != value:
        raise InvalidField(name, "must be an integer")
    if value < low or open_low and value == low:
        raise InvalidField(name, f"must be {'>' if open_low else '>='} {low}")


def experiment_spec(sc: dict, settings: SimulationSettings) -> dict:
    """Return the spec of the simulated experiment: the scenario's, with the run's window and split."""
    reward = {**sc["spec"]["reward"], "wait_seconds": settings.wait_seconds}
    spec = {**sc["spec"], "status": "running", "reward": reward, "traffic": {"holdout": settings.holdout}}
    spec["key"] = settings.key or spec["key"]
    spec["name"] = settings.name or spec["name"]
    if settings.exploration is not None:
        spec["exploration"] = settings.exploration
    if settings.learning is not None:
        spec["learning"] = settings.learning
    return spec


# -- targets ---------------------------------------------------------------------------------------
class InProcessTarget:
    """The real service and learner on one SQLite file, on the simulation's virtual clock."""

    mode = "in-process"

    def __init__(self, db_path: str, clock, learn_seconds: float = 30.0, grace_seconds: float = GRACE_SECONDS):
        self.clock = clock
        self.learn_seconds = learn_seconds
        self.grace_seconds = grace_seconds
        self.store = open_store(db_path)
        self.service = Service(self.store, clock)
        self.learner = Learner(self.store, clock, grace_seconds=grace_seconds)
        self._next_pass = clock.now() + learn_seconds

    def create(self, spec: dict) -> dict:
        return self.service.create_experiment(spec, actor="simulate")

    def decide(self, key: str, body: dict) -> dict:
        return self.service.decide(key, body)

    def reward(self, event_id: str, body: dict) -> None:
        self.service.record_reward(event_id, body)

    def tick(self) -> None:
        """Make the learner passes that are due by now."""
        if self.clock.now() < self._next_pass:
            return
        self.learner.run_once()
        while self._next_pass <= self.clock.now():
            self._next_pass += self.learn_seconds

    def finish(self, wait_seconds: float) -> None:
        """Let every reward window close, learn the rest and publish the final model."""
        self.clock.advance(wait_seconds + self.grace_seconds + 1.0)
        self.learner.run_once(force_publish=True)

    def close(self) -> None:
        self.store.close()


# -- the run ---------------------------------------------------------------------------------------
class OutcomeQueue:
    """Outcomes waiting for their time, posted in time order once the clock passes them."""

    def __init__(self):
        self._heap: list = []
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, decided_at: float, event_id: str, index: int, outcomes) -> None:
        for n, outcome in enumerate(outcomes):
            heapq.heappush(self._heap, (decided_at + outcome.delay_seconds, self._count, event_id, index, n, outcome))
            self._count += 1

    def next_time(self) -> float:
        return self._heap[0][0]

    def due(self, now: float):
        """Yield (event_id, index, n, outcome) of every outcome due by ``now``, oldest first."""
        while self._heap and self._heap[0][0] <= now:
            _, _, event_id, index, n, outcome = heapq.heappop(self._heap)
            yield event_id, index, n, outcome


@dataclass
class Trace:
    """What happened on every page view, plus the graded window's views for the counterfactuals."""

    variant: np.ndarray
    clicks: np.ndarray
    expected: np.ndarray
    tail_start: int
    views: list = field(default_factory=list)  # (index, view, candidate ids) of bandit views in the window
    posted: dict = field(default_factory=dict)  # outcomes posted, by type
    log: list | None = None  # per decision: (context, candidate ids, [(index, p)], on-time [(slot, type)])
    drift: "DriftTrace | None" = None

    @classmethod
    def empty(cls, events: int, tail_start: int, keep_log: bool, drift: dict | None = None) -> "Trace":
        return cls(np.zeros(events, dtype=np.int8), np.zeros(events, dtype=np.int32), np.zeros(events),
                   tail_start, log=[] if keep_log else None, drift=DriftTrace.empty(events, drift) if drift else None)


@dataclass
class DriftTrace:
    """The changed segment's page views: which they were, and uniform's and the oracle's value on each."""

    segment: int
    mine: np.ndarray
    uniform: np.ndarray
    oracle: np.ndarray

    @classmethod
    def empty(cls, events: int, drift: dict) -> "DriftTrace":
        return cls(drift["segment"], np.zeros(events, dtype=bool), np.zeros(events), np.zeros(events))

    def record(self, world: dict, i: int, view, ids: list) -> None:
        if view.segment == self.segment:
            self.mine[i] = True
            self.uniform[i] = world["uniform"](view, ids)
            self.oracle[i] = world["oracle"](view, ids)[1]


def _candidate_ids(sc: dict, body: dict) -> list:
    return [c["id"] for c in body["candidates"]] if "candidates" in body else [a["id"] for a in sc["spec"]["arms"]]


def outcome_rng(seed: int, index: int):
    """Return the Generator of one page view's outcomes (shared by the counterfactual policies)."""
    return np.random.default_rng([seed, 2, index])


def run(settings: SimulationSettings, target, clock, on_progress=None, event_prefix: str = "sim-") -> dict:
    """Play the page views against ``target``; return the summary (see ``summarize``)."""
    sc, trace, spec = play(settings, target, clock, on_progress, event_prefix)
    return summarize(sc, settings, trace, spec, target.mode)


def play(settings: SimulationSettings, target, clock, on_progress=None, event_prefix: str = "sim-",
         keep_log: bool = False) -> tuple[dict, Trace, dict]:
    """Play the page views; return the scenario, the trace and the experiment's normalised spec."""
    settings.validate()
    sc = scenario(settings.scenario, seed=settings.seed)
    spec = target.create(experiment_spec(sc, settings))["spec"]
    trace = Trace.empty(settings.events, settings.tail_start, keep_log, sc.get("drift"))
    change_at = settings.change_event
    queue = OutcomeQueue()
    view_rng = np.random.default_rng([settings.seed, 0])
    request_rng = np.random.default_rng([settings.seed, 1])
    window = {}
    for i in range(settings.events):
        clock.advance(1.0 / settings.rate)
        _post_due(queue, target, clock.now(), trace, window)
        target.tick()
        world = world_at(sc, i, change_at)
        view = world["shop"].page_view(view_rng)
        body = {**world["request"](view, request_rng), "event_id": f"{event_prefix}{i}"}
        answer = target.decide(spec["key"], body)
        chosen = [s["id"] for s in answer["slate"]]
        outcomes = world["outcomes"](view, chosen, outcome_rng(settings.seed, i))
        queue.schedule(clock.now(), answer["event_id"], i, outcomes)
        window[answer["event_id"]] = clock.now() + spec["reward"]["wait_seconds"]
        _record(world, trace, i, view, body, answer, chosen, outcomes)
        if on_progress is not None:
            on_progress(1)
    while len(queue):
        clock.set(queue.next_time())
        _post_due(queue, target, clock.now(), trace, window)
        target.tick()
    target.finish(spec["reward"]["wait_seconds"])
    return sc, trace, spec


def _post_due(queue: OutcomeQueue, target, now: float, trace: Trace, window: dict) -> None:
    for event_id, index, n, outcome in queue.due(now):
        target.reward(event_id, {"type": outcome.type, "item": outcome.item, "id": f"{event_id}-{n}"})
        trace.posted[outcome.type] = trace.posted.get(outcome.type, 0) + 1
        if trace.log is not None and now <= window[event_id]:
            trace.log[index][3].append((outcome.slot, outcome.type))


def _record(sc: dict, trace: Trace, i: int, view, body: dict, answer: dict, chosen: list, outcomes) -> None:
    trace.variant[i] = VARIANT_CODES[answer["variant"]]
    trace.clicks[i] = sum(o.type == "click" for o in outcomes)
    trace.expected[i] = sc["value"](view, chosen)
    ids = _candidate_ids(sc, body)
    if i >= trace.tail_start and answer["variant"] == BANDIT:
        trace.views.append((i, view, ids))
    if trace.drift is not None and answer["variant"] == BANDIT:
        trace.drift.record(sc, i, view, ids)
    if trace.log is not None:
        position = {item: k for k, item in enumerate(ids)}
        slate = [(position[s["id"]], s["probability"]) for s in answer["slate"]]
        trace.log.append((view.context, ids, slate, []))


# -- grading ---------------------------------------------------------------------------------------
def measured_clicks(sc: dict, seed: int, index: int, view, chosen) -> int:
    """Count the clicks a slate gets from this page view's user, with the view's own random numbers."""
    return sum(o.type == "click" for o in sc["outcomes"](view, chosen, outcome_rng(seed, index)))


def reference_rates(sc: dict, settings: SimulationSettings, views: list) -> tuple[dict, dict]:
    """Measure and compute uniform, best fixed and oracle on the graded window's bandit views."""
    if not views:
        nan = float("nan")
        return dict.fromkeys(("uniform", "best_fixed", "oracle"), nan), dict.fromkeys(("uniform", "best_fixed",
                                                                                      "oracle"), nan)
    rng = np.random.default_rng([settings.seed, 3])
    slots = sc["slots"]
    ref = reference_values(sc, [v for _, v, _ in views], [ids for _, _, ids in views])
    ranking = ref.pop("best_fixed_ids")
    clicks = {"uniform": [], "best_fixed": [], "oracle": []}
    for index, view, ids in views:
        allowed = set(ids)
        uniform = [ids[k] for k in rng.permutation(len(ids))[:slots]]
        fixed = [item for item in ranking if item in allowed][:slots]
        oracle = sc["oracle"](view, ids)[0]
        for name, chosen in (("uniform", uniform), ("best_fixed", fixed), ("oracle", oracle)):
            clicks[name].append(measured_clicks(sc, settings.seed, index, view, chosen))
    measured = {name: float(np.mean(values)) for name, values in clicks.items()}
    truth = {name: float(ref[name]) for name in ("uniform", "best_fixed", "oracle")}
    return measured, truth


def learning_curve(trace: Trace, points: int) -> list[dict]:
    """Return the bandit's clicks per decision in ``points`` equal stretches of the run."""
    events = trace.variant.size
    edges = np.unique(np.linspace(0, events, min(points, events) + 1).round().astype(int))
    curve = []
    for low, high in zip(edges[:-1], edges[1:]):
        mine = trace.variant[low:high] == 0
        curve.append({"events": int(high), "ctr": _mean(trace.clicks[low:high][mine]),
                      "expected": _mean(trace.expected[low:high][mine])})
    return curve


def _mean(values) -> float | None:
    return round(float(np.mean(values)), 6) if len(values) else None


def summarize(sc: dict, settings: SimulationSettings, trace: Trace, spec: dict, mode: str) -> dict:
    """Build the JSON result: measured CTRs, normalized lift, the expected values and the curve."""
    tail = slice(trace.tail_start, None)
    variant, clicks, expected = trace.variant[tail], trace.clicks[tail], trace.expected[tail]
    measured, truth = reference_rates(world_at(sc, trace.tail_start, settings.change_event), settings, trace.views)
    ctr = {"bandit": _mean(clicks[variant == 0]), "holdout": _mean(clicks[variant == 1]),
           **{k: round(v, 6) for k, v in measured.items()}}
    truth = {"bandit": _mean(expected[variant == 0]), "holdout": _mean(expected[variant == 1]),
             **{k: round(v, 6) for k, v in truth.items()}}
    counts = {name: int((trace.variant == code).sum()) for name, code in VARIANT_CODES.items()}
    return {
        "scenario": settings.scenario, "events": settings.events, "seed": settings.seed, "slots": sc["slots"],
        "ctr": ctr, "normalized_lift": _lift(ctr),
        "expected": truth, "normalized_lift_expected": _lift(truth),
        "learning_curve": learning_curve(trace, settings.curve_points),
        "graded_events": settings.events - trace.tail_start, "decisions": counts, "outcomes": dict(trace.posted),
        "mode": mode,
        "experiment": {"key": spec["key"], "exploration": spec["exploration"], "learning": spec["learning"],
                       "reward": spec["reward"]},
        "virtual_time": {"rate": settings.rate, "learn_seconds": settings.learn_seconds},
        **({"drift": drift_summary(sc["drift"], settings, trace)} if trace.drift is not None else {}),
    }


def segment_lift(trace: Trace, change_at: int, points: int) -> list[dict]:
    """Return the changed segment's normalized lift (under the truth of the moment) as traffic grows.

    Each point covers the last ``DRIFT_WINDOW`` events before it, never reaching
    back across the change, and counts the segment's bandit decisions only.
    """
    drift, out = trace.drift, []
    for end in range(points, trace.variant.size + 1, points):
        start = max(end - DRIFT_WINDOW, change_at if end > change_at else 0)
        mine = drift.mine[start:end]
        if mine.sum() < DRIFT_MIN_DECISIONS:
            out.append({"events": end, "decisions": int(mine.sum()), "normalized_lift": None})
            continue
        bandit, uniform, oracle = (float(values[start:end][mine].mean())
                                   for values in (trace.expected, drift.uniform, drift.oracle))
        lift = normalized_lift(bandit, uniform, oracle)
        out.append({"events": end, "decisions": int(mine.sum()),
                    "normalized_lift": round(lift, 4) if math.isfinite(lift) else None})
    return out


def recovery_events(curve: list[dict], change_at: int, share: float = RECOVERY_SHARE) -> int | None:
    """Return the events after the change until the segment's lift reached ``share`` and stayed there a while.

    >>> curve = [{"events": e, "normalized_lift": v} for e, v in ((500, .9), (750, .1), (1000, .85), (1250, .7),
    ...          (1500, .82), (1750, .9), (2000, .81))]
    >>> recovery_events(curve, change_at=600, share=0.8)
    900
    """
    after = [p for p in curve if p["events"] > change_at]
    for k, point in enumerate(after):
        held = after[k:k + RECOVERY_HOLD]
        if len(held) == RECOVERY_HOLD and all(p["normalized_lift"] is not None and p["normalized_lift"] >= share
                                              for p in held):
            return point["events"] - change_at
    return None


def drift_summary(drift: dict, settings: SimulationSettings, trace: Trace) -> dict:
    """The drift's figures: the changed segment's lift over time and how long it took to recover."""
    change_at = settings.change_event
    curve = segment_lift(trace, change_at, DRIFT_STEP)
    return {"segment": f"s{drift['segment']}", "like": f"s{drift['like']}", "change_at": change_at,
            "window": DRIFT_WINDOW, "recovery_share": RECOVERY_SHARE,
            "recovery_events": recovery_events(curve, change_at), "segment_lift": curve}


def _lift(rates: dict) -> float | None:
    if rates["bandit"] is None:
        return None
    lift = normalized_lift(rates["bandit"], rates["uniform"], rates["oracle"])
    return round(lift, 4) if math.isfinite(lift) else None
