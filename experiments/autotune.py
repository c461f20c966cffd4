"""Auto-tuning: the experiment's own recent log picks better learning settings, switching only on evidence.

Opt-in per experiment (``learning.autotune.enabled``). The learner calls
``Tuner.after_pass`` after it learned an experiment's closed decisions. A round
replays the last ``window`` closed decisions through fresh learners, one with
the live settings and one per alternative near them (``alternatives``: the
interactions, the learning rate and its decay, exploration strength, numeric
scaling), with the counterfactual evaluation of
``experiments.reporting.evaluation``: every learner learns the first half (a
warm-up, so the estimates are of trained learners, not of guesses), then each
decision of the second half is scored before it is learned. When the round ends, the alternative
whose doubly robust gain over the live settings is largest among those whose
confidence interval lies above zero (Bonferroni-corrected for the alternatives
tried) and whose estimates rest on at least ``MIN_EFFECTIVE`` effective
decisions becomes a candidate. It is switched to only if the next round, on a later
window of the log, finds it better again (a replay of a few thousand decisions
through fresh learners is noisy, and one lucky window must not steer a model
that learned from all of them): a history entry by ``autotune`` with every
alternative's estimates and the round it confirms. Each setting (interactions,
learning rate, decay, exploration, scaling) is switched at most once while
auto-tuning stays on, so tuning cannot walk a setting step by step to an
extreme. The learner then rebuilds the model from the log, as after any
settings change. ``undo`` restores what a switch changed and turns auto-tuning off.

CPU is bounded in work, not seconds: a round advances only as the learner
learns, by at most ``budget`` decision replays (one learner scoring and learning
one decision) per decision the learner took, spread over its passes. Tuning
never costs more than ``budget`` times the learner's own work, a pass never
waits long for it, and simulations stay reproducible bit for bit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from experiments.errors import Conflict, InvalidField, NotFound
from experiments.reporting.evaluation import Replay, Track, compare_with_live, decisions_between
from experiments.service import Service
from experiments.spec import apply_patch

log = logging.getLogger(__name__)

ACTOR = "autotune"
ALPHA = 0.05  # family-wise: each of a round's k alternatives is tested at ALPHA / k
PER_ROUND = 4  # alternatives replayed per round; rounds go round the list
MIN_DECISIONS = 200  # a round over fewer scored decisions never switches
MIN_EFFECTIVE = 100  # nor one whose estimates rest on fewer effective decisions (normal intervals need them)
STEP = 500  # decisions read from the log at a time


# -- the alternatives ----------------------------------------------------------------------------
def _cubic(interactions: list[str]) -> str | None:
    """Return the cubic crossing of two context namespaces with the action, from the pairs already crossed."""
    context = [q[0] for q in interactions if len(q) == 2 and q[1] == "A" and q[0] not in "A:"]
    return f"{context[0]}{context[1]}A" if len(context) >= 2 else None


def _interactions(learning: dict) -> list[tuple[str, dict]]:
    current = learning["interactions"]
    if any(len(q) == 3 for q in current):
        return [("pairs only", {"learning": {"interactions": [q for q in current if len(q) == 2]}})]
    cubic = _cubic(current)
    return [(f"add {cubic}", {"learning": {"interactions": current + [cubic]}})] if cubic else []


def _exploration_strength(exploration: dict) -> list[tuple[str, dict]]:
    """Half and double the one knob that sets how much each algorithm explores."""
    knob = {"epsilon": "epsilon", "squarecb": "gamma_scale", "bag": "bag", "softmax": "lambda", "cover": "cover"}
    name = knob[exploration["algorithm"]]
    value = exploration[name]
    more_is_less = name in ("gamma_scale", "lambda")  # larger gamma or lambda: more greedy
    out = []
    for label, factor in (("less exploration", 2.0 if more_is_less else 0.5),
                          ("more exploration", 0.5 if more_is_less else 2.0)):
        new = value * factor
        if name in ("bag", "cover"):
            new = int(round(new))
        if name == "epsilon" and new > 1 or new == value or new <= 0:
            continue
        out.append((f"{label} ({name} {new:g})", {"exploration": {**exploration, name: new}}))
    return out


def alternatives(spec: dict) -> list[tuple[str, dict]]:
    """Return the settings near the live ones to try, each as (label, spec patch), in a fixed order.

    >>> from experiments.spec import parse_spec
    >>> [label for label, _ in alternatives(parse_spec({"key": "k"}, check_vw=False).data)]
    ['add UPA', 'forget faster (decay 0.3)', 'less exploration (gamma_scale 2000)', \
'learning rate 1', 'scaling raw', 'learning rate 0.25', 'more exploration (gamma_scale 500)']
    """
    learning, exploration = spec["learning"], spec["exploration"]
    decay, rate = learning["decay"], learning["learning_rate"]
    faster, slower = round(max(decay - 0.2, 0.0), 6), round(min(decay + 0.2, 0.5), 6)
    if "--power_t" in learning["vw_args"]:
        faster = slower = decay  # the decay is the extra VW arguments': leave it to them
    scaling = learning["scaling"]
    other = "raw" if scaling["default"] != "raw" else "log"
    found = [
        *_interactions(learning),
        *([(f"forget faster (decay {faster:g})", {"learning": {"decay": faster}})] if faster != decay else []),
        *_exploration_strength(exploration)[:1],
        (f"learning rate {rate * 2:g}", {"learning": {"learning_rate": rate * 2}}),
        (f"scaling {other}", {"learning": {"scaling": {**scaling, "default": other}}}),
        (f"learning rate {rate / 2:g}", {"learning": {"learning_rate": rate / 2}}),
        *_exploration_strength(exploration)[1:],
        *([(f"forget slower (decay {slower:g})", {"learning": {"decay": slower}})] if slower != decay else []),
    ]
    return found


def setting(patch: dict) -> str:
    """Return the one setting an alternative's patch changes: ``exploration`` or the learning field's name.

    >>> setting({"learning": {"decay": 0.3}}), setting({"exploration": {"algorithm": "squarecb", "gamma_scale": 25}})
    ('decay', 'exploration')
    """
    return "exploration" if "exploration" in patch else next(iter(patch["learning"]))


def switched_settings(history: list[dict]) -> set[str]:
    """The settings auto-tuning switched since it was last turned on, reconfigured or undone (newest back)."""
    out = set()
    for entry in reversed(history):
        change = entry["change"] if isinstance(entry["change"], dict) else {}
        if entry["actor"] == ACTOR and "autotune" in change:
            out.add(setting({k: change[k] for k in ("learning", "exploration") if k in change}))
        elif "autotune" in change.get("learning", {}) or "undo" in change:
            break
    return out


# -- rounds --------------------------------------------------------------------------------------
@dataclass
class _Round:
    """One round in progress: the window of the log, the learners replaying it, and the work it may do."""

    key: str
    spec_version: int
    number: int
    after_seq: int
    until_seq: int
    scored_after: int  # decisions up to this seq only warm the learners up; later ones are scored
    tried: list  # (label, patch) per alternative track
    replay: Replay
    position: int = 0
    credit: float = 0.0
    done: bool = False

    @property
    def tracks(self) -> int:
        return len(self.replay.tracks)


@dataclass
class _State:
    """What the tuner remembers of one experiment between passes."""

    rounds: int = 0
    began: bool = False  # a round was due once: later ones wait for ``every`` decisions
    since: int = 0  # decisions learned since the last round started
    current: _Round | None = None
    last: dict | None = None  # the last finished round's summary
    candidate: dict | None = None  # the last round's winner, switched to if the next round confirms it
    offered: int = 0  # alternatives tried so far: rounds go round the list
    learned: int = 0  # decisions the learner took while a round was running
    replays: int = 0  # decision replays (one learner, one decision) the rounds did: at most budget * learned


class Tuner:
    """Auto-tune the experiments of one store whose spec asks for it; driven by the learner."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self._states: dict[str, _State] = {}

    def last_round(self, key: str) -> dict | None:
        """Return the summary of the experiment's last finished round in this process, if any."""
        state = self._states.get(key)
        return state.last if state else None

    def work(self, key: str) -> dict:
        """Return how much the learner learned while rounds ran, and how many replays the rounds did."""
        state = self._states.get(key) or _State()
        return {"learned": state.learned, "replays": state.replays, "rounds": state.rounds}

    def after_pass(self, experiment: dict, spec, cursor: int, learned: int) -> dict | None:
        """Advance the experiment's round by the work the learner just did; return a switch made, if any."""
        settings = spec.learning["autotune"]
        key = experiment["key"]
        if not settings["enabled"] or experiment["status"] != "running":
            self._close(self._states.pop(key, None))
            return None
        state = self._states.setdefault(key, _State())
        state.since += learned
        current = state.current
        if current is not None and current.spec_version != experiment["version"]:
            self._close(state)  # the settings changed under the round: its live track is not live any more
            current = None
        if current is None:
            if state.since < settings["every"] and state.began:
                return None
            current = state.current = self._start(experiment, spec, cursor, state)
            if current is None:
                return None
        current.credit += settings["budget"] * learned
        state.learned += learned
        state.replays += self._advance(current)
        if not current.done:
            return None
        return self._finish(experiment, spec, state)

    def _start(self, experiment: dict, spec, cursor: int, state: _State) -> _Round | None:
        window = spec.learning["autotune"]["window"]
        until = self.store.learned_through_seq(experiment["key"], cursor)  # a cursor is not a seq on PostgreSQL
        start, middle = (self.store.query_one(
            "SELECT seq FROM decisions WHERE experiment = ? AND seq <= ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (experiment["key"], until, offset)) for offset in (window, window // 2))
        if start is None:
            return None  # not enough log yet
        state.began, state.since = True, 0
        done = switched_settings(self.store.history(experiment["key"]))
        options = [(label, patch) for label, patch in alternatives(spec.data) if setting(patch) not in done]
        candidate = state.candidate
        if candidate is not None and candidate["spec_version"] != experiment["version"]:
            candidate = state.candidate = None  # proposed for settings that are not live any more
        tried = [(candidate["label"], candidate["patch"])] if candidate else []
        others = [option for option in options if not candidate or option[0] != candidate["label"]]
        while others and len(tried) < min(PER_ROUND, len(others) + bool(candidate)):
            tried.append(others[state.offered % len(others)])
            state.offered += 1
        if not tried:
            return None  # every setting was switched once already
        tracks = [Track("live", spec)] + [Track(label, apply_patch(spec.data, patch)[0]) for label, patch in tried]
        state.rounds += 1
        return _Round(experiment["key"], experiment["version"], state.rounds, start["seq"], until, middle["seq"],
                      tried, Replay(self.store, tracks, spec.reward), position=start["seq"])

    def _advance(self, current: _Round) -> int:
        """Replay as many decisions as the credit pays for (every track scores and learns each); return replays."""
        replays = 0
        while not current.done and current.credit >= current.tracks:
            limit = min(STEP, int(current.credit // current.tracks))
            rows, rewards = decisions_between(self.store, current.key, current.position, current.until_seq, limit)
            for row in rows:
                current.replay.step(row, rewards.get(row["seq"], []), score=row["seq"] > current.scored_after)
            current.credit -= len(rows) * current.tracks
            replays += len(rows) * current.tracks
            if rows:
                current.position = rows[-1]["seq"]
            current.done = len(rows) < limit or current.position >= current.until_seq
        return replays

    def _finish(self, experiment: dict, spec, state: _State) -> dict | None:
        current, state.current = state.current, None
        self._close_round(current)
        alpha = ALPHA / max(len(current.tried), 1)
        live, compared = compare_with_live(current.replay.tracks, current.replay.logged, alpha)
        summary = {"round": current.number,
                   "window": {"after_seq": current.after_seq, "scored_after_seq": current.scored_after,
                              "until_seq": current.until_seq, "scored": len(current.replay.logged["reward"])},
                   "alpha": alpha, "live": {"dr": live["dr"], "effective_decisions": live["effective_decisions"]},
                   "alternatives": [{"label": c["policy"], "patch": dict(current.tried)[c["policy"]], "dr": c["dr"],
                                     "gain": c["difference"]["dr"], "effective_decisions": c["effective_decisions"]}
                                    for c in compared]}
        winner = _winner(summary)
        candidate, state.candidate = state.candidate, None
        confirmed = candidate is not None and _confirmed(summary, candidate["label"])
        summary["chosen"] = candidate["label"] if confirmed else None
        if confirmed:
            summary["confirms"] = {"round": candidate["round"], "gain": candidate["gain"]}
        elif winner is not None:
            summary["candidate"] = winner["label"]  # to be confirmed by the next round
            state.candidate = {"label": winner["label"], "patch": winner["patch"], "gain": winner["gain"],
                               "round": current.number, "spec_version": current.spec_version}
        state.last = summary
        if not confirmed:
            return None
        return self._switch(experiment, candidate["patch"], summary)

    def _switch(self, experiment: dict, patch: dict, summary: dict) -> dict | None:
        try:
            view = Service(self.store, self.clock).update_experiment(experiment["key"], patch, actor=ACTOR,
                                                                      note={"autotune": summary})
        except (Conflict, InvalidField) as exc:
            log.info("auto-tuning of %s did not switch: %s", experiment["key"], exc)
            return None
        log.info("auto-tuning switched %s to %s", experiment["key"], summary["chosen"])
        return view

    @staticmethod
    def _close_round(current: _Round | None) -> None:
        if current is not None:
            for track in current.replay.tracks:
                track.policy.close()

    def _close(self, state: _State | None) -> None:
        if state is not None:
            self._close_round(state.current)
            state.current = None


def _better(summary: dict) -> list[dict]:
    """The alternatives whose DR gain interval excludes a loss, from enough decisions.

    Enough counts effectively (``bandit.estimators.effective_decisions``), for the alternative and the live
    settings alike: where they would choose what the log rarely explored, a handful of decisions carry the
    estimate, its normal interval understates the uncertainty, and a lucky handful must not switch a model.
    """
    if summary["window"]["scored"] < MIN_DECISIONS or summary["live"].get("effective_decisions", 0) < MIN_EFFECTIVE:
        return []
    return [a for a in summary["alternatives"] if a["gain"]["low"] is not None and a["gain"]["low"] > 0
            and a.get("effective_decisions", 0) >= MIN_EFFECTIVE]


def _winner(summary: dict) -> dict | None:
    """The alternative with the largest DR gain among those surely better."""
    return max(_better(summary), key=lambda a: a["gain"]["value"], default=None)


def _confirmed(summary: dict, label: str) -> bool:
    return any(a["label"] == label for a in _better(summary))


# -- undo ----------------------------------------------------------------------------------------
def undo(service, key: str, version: int, actor: str) -> dict:
    """Restore the settings an auto-tuning switch changed (as they were before it) and turn tuning off."""
    current = service.store.existing_experiment(key)["spec"]["learning"]["autotune"]
    history = service.store.history(key)
    entry = next((h for h in history if h["version"] == version), None)
    if entry is None:
        raise NotFound(f"version {version} of experiment {key!r} does not exist", field="version")
    if entry["actor"] != ACTOR or "autotune" not in entry["change"]:
        raise InvalidField("version", f"version {version} is not an auto-tuning switch")
    before = next(h for h in history if h["version"] == version - 1)["spec"]
    patch = {section: {name: before[section][name] for name in entry["change"][section]}
             for section in ("learning", "exploration") if section in entry["change"]}
    patch.setdefault("learning", {})["autotune"] = {**current, "enabled": False}
    return service.update_experiment(key, patch, actor=actor, note={"undo": {"version": version}})
