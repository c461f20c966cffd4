"""The decide/reward service: what the shop and the admin API call.

``decide`` parses a slate request once into a ``SlateRequest``, assigns the unit
to a variant, asks the policy (or the control) for a slate, and commits the
decision to the log before it answers. ``record_reward`` parses a reward the
same way, attributes it to its decision and slot and stores it exactly once per
idempotency key. ``update_experiment`` applies a parsed ``SpecPatch``.
"""
from __future__ import annotations

import logging
import threading

from bandit.policy import empty_model
from bandit.sampling import uniform_slate
from experiments import models
from experiments.assignment import BANDIT, FALLBACK, variant_for
from experiments.candidates import CandidateSets
from experiments.catalog import CatalogCache
from experiments.clock import SystemClock
from experiments.errors import Conflict, InvalidField, NotFound
from experiments.ids import new_id
from experiments.limits import Limits
from experiments.request_options import record_fields, serve, slate_entries
from experiments.reward_request import parse_reward_request
from experiments.serving_models import ServingModels
from experiments.slate_request import parse_slate_request
from experiments.spec import check_transition, parse_patch, parse_spec, with_rule_positions
from experiments.store import DuplicateKey, dumps, loads
from experiments.times import iso

log = logging.getLogger(__name__)


class Service:
    """Experiments, decisions and rewards over one store; safe to share between threads."""

    def __init__(self, store, clock=None, model_refresh_seconds: float = 1.0, spec_refresh_seconds: float = 1.0,
                 limits: Limits = Limits(), serving_models: ServingModels | None = None):
        self.store = store
        self.clock = clock or SystemClock()
        self.models = serving_models or ServingModels(store, self.clock, model_refresh_seconds)
        self.catalog = CatalogCache(store, self.clock, spec_refresh_seconds)
        self.limits = limits
        self.candidates = CandidateSets(self.catalog, limits)
        self.spec_refresh_seconds = spec_refresh_seconds
        self._experiments: dict[str, tuple[dict, object]] = {}
        self._checked_at = float("-inf")
        self._cache_lock = threading.Lock()

    # -- experiments ---------------------------------------------------------
    def _experiment(self, key: str):
        """Return (row, Spec) of an experiment, cached and re-checked every few seconds."""
        with self._cache_lock:
            now = self.clock.now()
            if now - self._checked_at >= self.spec_refresh_seconds:
                versions = self.store.experiment_versions()
                self._experiments = {k: v for k, v in self._experiments.items() if versions.get(k) == v[0]["version"]}
                self._checked_at = now
            cached = self._experiments.get(key)
        if cached:
            return cached
        row = self.store.existing_experiment(key)
        cached = (row, parse_spec(row["spec"], check_vw=False))
        with self._cache_lock:
            self._experiments[key] = cached
        return cached

    def spec(self, key: str):
        """Return an experiment's parsed spec, from the same cache serving uses."""
        return self._experiment(key)[1]

    def _view(self, row: dict, counts: bool = True) -> dict:
        view = {
            "key": row["key"],
            "name": row["name"],
            "kind": row["kind"],
            "status": row["status"],
            "version": row["version"],
            "spec": row["spec"],
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
        }
        if counts:
            view["counts"] = self.store.counts(row["key"])
            model = self.store.latest_model(row["key"], with_blob=False)
            view["model"] = {"version": model["version"], "learned": model["learned"],
                             "published_at": iso(model["created_at"])} if model else None
        return view

    def create_experiment(self, body, actor: str = "api") -> dict:
        """Validate a spec and create the experiment as a draft (or with the given status)."""
        status = "draft"
        if isinstance(body, dict) and "status" in body:
            body = dict(body)
            status = body.pop("status")
            if status not in ("draft", "running"):
                raise InvalidField("status", "a new experiment starts as draft or running")
        spec = parse_spec(with_rule_positions(body, lambda moment: 1, self.clock.now()))  # nothing logged yet
        if self.store.get_experiment(spec.key):
            raise Conflict(f"experiment {spec.key!r} already exists", field="key")
        now = self.clock.now()
        row = {"key": spec.key, "name": spec.data["name"], "kind": spec.data["kind"], "status": status,
               "version": 1, "spec": spec.data, "created_at": now, "updated_at": now}
        try:
            self.store.save_experiment(row, {"created": True, "status": status}, actor, expected_version=None)
        except DuplicateKey:
            raise Conflict(f"experiment {spec.key!r} already exists", field="key") from None
        return self._view(row)

    def list_experiments(self) -> list[dict]:
        return [self._view(row) for row in self.store.list_experiments()]

    def get_experiment(self, key: str) -> dict:
        return self._view(self.store.existing_experiment(key))

    def history(self, key: str) -> list[dict]:
        self.get_experiment(key)
        return [{"version": h["version"], "status": h["status"], "change": h["change"], "actor": h["actor"],
                 "at": iso(h["at"]), "spec": h["spec"]} for h in self.store.history(key)]

    def update_experiment(self, key: str, body, actor: str = "api", note: dict | None = None) -> dict:
        """Change settings and/or status; every change becomes a new version in the history.

        ``note`` joins the change in the history (auto-tuning keeps the estimates that justified a switch there).
        """
        row = self.store.existing_experiment(key)
        patch = parse_patch(with_rule_positions(
            body, lambda moment: self.store.first_seq_since(key, moment), self.clock.now()))
        spec = patch.apply(row["spec"])
        status = patch.status or row["status"]
        check_transition(row["status"], status)
        new = {**row, "name": spec.data["name"], "spec": spec.data, "status": status,
               "version": row["version"] + 1, "updated_at": self.clock.now()}
        try:
            self.store.save_experiment(new, {**patch.fields, **(note or {})}, actor, expected_version=row["version"])
        except DuplicateKey:
            raise Conflict("the experiment changed meanwhile; read it again and retry", field="version") from None
        with self._cache_lock:
            self._experiments.pop(key, None)
        return self._view(new)

    # -- decisions -----------------------------------------------------------
    def decide(self, key: str, body) -> dict:
        """Pick a slate for one page view and commit the decision before answering."""
        row, spec = self._experiment(key)
        if row["status"] == "draft":
            raise Conflict(f"experiment {key!r} is a draft; start it first", field="status")
        request = parse_slate_request(body, spec, row["version"], self.candidates, self.limits)
        event_id = request.event_id
        if event_id is None:
            event_id = new_id(self.clock.now())  # fresh, so there is no earlier decision to look up
        else:
            previous = self.store.get_decision(event_id)
            if previous is not None:
                return self._replay_answer(previous, key)
        unit = event_id if request.unit is None else request.unit
        variant, model_version, chosen = self._choose(key, row, spec, request, unit, event_id)
        mode = spec.learning["mode"]
        chosen, model_chosen = serve(mode, chosen, request.options)
        slate = slate_entries(chosen, request.candidates)
        digest, new_set = self.store.new_candidate_set(request.candidates, request.candidate_digest)
        now = self.clock.now()
        record = {
            "event_id": event_id, "experiment": key, "unit": unit, "variant": variant,
            "model_version": model_version, "spec_version": row["version"], "context": dumps(request.context),
            "candidate_set": digest, "excluded": dumps(request.exclude), "slate": dumps(slate), "created_at": now,
            "window_closes_at": now + spec.reward["wait_seconds"],
            **record_fields(request.options, mode, model_chosen, request.candidates),
        }
        try:
            self.store.insert_decision(record, new_set)
        except DuplicateKey:  # the same event id raced in from another request
            return self._replay_answer(self.store.get_decision(event_id), key)
        return self._answer(event_id, key, variant, model_version, slate)

    def _choose(self, key: str, row: dict, spec, request, unit: str, event_id: str):
        """Return (variant, model version, chosen slate): the model's pick, else the control's."""
        variant = BANDIT if row["status"] == "running" else FALLBACK
        if variant == BANDIT:
            variant = variant_for(key, unit, spec.traffic["holdout"])
        if variant == BANDIT:
            try:
                model_version, policy = self.models.get(key, spec.policy_settings())
                chosen = policy.choose(request.shared, request.actions, request.slots, event_id,
                                       **request.options.policy_kwargs())
                return variant, model_version, chosen
            except Exception:  # a failing model must never cost the shop its slate
                log.exception("model of %s failed; serving the control policy", key)
                variant = FALLBACK
        chosen = uniform_slate(len(request.candidates), request.slots, event_id,
                               self._control_arm(spec, request.candidates), request.options.excluded)
        return variant, 0, chosen

    @staticmethod
    def _answer(event_id, key, variant, model_version, slate) -> dict:
        return {"event_id": event_id, "experiment": key, "variant": variant, "model_version": model_version,
                "slate": [{"slot": s["slot"], "id": s["id"], "probability": s["probability"]} for s in slate]}

    def _replay_answer(self, decision: dict, key: str) -> dict:
        """Answer a repeated event id with the decision already logged (idempotent retry)."""
        if decision["experiment"] != key:
            raise Conflict("event_id is already used by another experiment", field="event_id")
        return self._answer(decision["event_id"], key, decision["variant"], decision["model_version"],
                            loads(decision["slate"]))

    @staticmethod
    def _control_arm(spec, candidates) -> int | None:
        control = spec.traffic["control"]
        if isinstance(control, dict):
            for i, cand in enumerate(candidates):
                if cand["id"] == control["arm"]:
                    return i
        return None  # uniform, or the fixed arm was excluded from this request

    # -- rewards -------------------------------------------------------------
    def record_reward(self, event_id: str, body) -> dict:
        """Attribute an outcome to its decision and slot; the same ``id`` counts once."""
        reward = parse_reward_request(body)
        decision = self.store.get_decision(event_id)
        if decision is None:
            raise NotFound(f"event {event_id!r} does not exist", field="event_id")
        _, spec = self._experiment(decision["experiment"])
        value = reward.value_for(spec.reward["events"])
        slate = loads(decision["slate"])
        slot = next((s["slot"] for s in slate if s["id"] == reward.item), None)
        if reward.item is None and len(slate) == 1:
            slot = 0
        now = self.clock.now()
        stored, duplicate = self.store.insert_reward({
            "event_id": event_id, "experiment": decision["experiment"], "decision_seq": decision["seq"],
            "reward_key": new_id(now) if reward.id is None else reward.id, "type": reward.type or "reward",
            "item": reward.item, "slot": slot, "value": value,
            "received_at": now, "late": int(now > decision["window_closes_at"]),
        }, max_per_event=self.limits.rewards_per_event)
        if stored is None:
            raise self.limits.too_many_rewards(event_id)
        return {"event_id": event_id, "experiment": decision["experiment"], "id": stored["reward_key"],
                "type": stored["type"], "item": stored["item"],
                "slot": stored["slot"], "value": stored["value"], "late": bool(stored["late"]),
                "duplicate": duplicate, "received_at": iso(stored["received_at"])}

    def event_experiment(self, event_id: str) -> str | None:
        """The experiment an event's decision belongs to, or None for an unknown event."""
        decision = self.store.get_decision(event_id)
        return None if decision is None else decision["experiment"]

    # -- activation and model resets -----------------------------------------
    def activate(self, event_id: str) -> dict:
        """Say a deferred decision was shown, so it gets learned; refused once its window closed."""
        decision = self.store.get_decision(event_id)
        if decision is None:
            raise NotFound(f"event {event_id!r} does not exist", field="event_id")
        if not self.store.activate_decision(event_id, self.clock.now()):
            raise Conflict(f"event {event_id!r} can no longer be activated: its reward window closed at "
                           f"{iso(decision['window_closes_at'])}", field="event_id")
        decision = self.store.get_decision(event_id)
        return {"event_id": event_id, "experiment": decision["experiment"],
                "activated_at": iso(decision["activated_at"])}

    def reset_model(self, key: str, actor: str = "api", model: bytes | None = None) -> dict:
        """Publish an empty model (or a vetted imported one); the learner goes on from decisions logged after this."""
        row, spec = self._experiment(key)
        settings = spec.policy_settings()
        model = model or empty_model(settings)
        published = self.store.reset_model({
            "experiment": key, "args": settings.args(), "features": models.features_column(settings),
            "spec_version": row["version"],
            "created_at": self.clock.now(), "learner": f"reset by {actor}", "model": model,
        })
        log.info("model of %s reset by %s (version %d)", key, actor, published["version"])
        return {"version": published["version"], "learned": 0, "published_at": iso(published["created_at"])}
