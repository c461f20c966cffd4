"""Azure AI Personalizer's REST semantics on the native service: one resource is one experiment.

A resource key (what Personalizer calls the subscription key) is a random token
stored as its SHA-256 next to the experiment it opens. Every call maps onto the
native service: Rank is ``Service.decide``, Reward is ``Service.record_reward``,
Activate is ``Service.activate``, the configurations are spec changes with their
history, the model is the newest published snapshot. Nothing here learns or
chooses; the learner and the policy are the native ones.
"""
from __future__ import annotations

import contextlib
import secrets

from bandit.encoding import context_text
from bandit.model_import import ModelImportError, inspect_model
from bandit.policy import empty_model
from experiments.personalizer import config
from experiments.personalizer import model_files
from experiments.personalizer import requests
from experiments.personalizer.errors import PersonalizerError
from experiments.personalizer.evaluations import PersonalizerEvaluations
from experiments.personalizer.feature_importances import PersonalizerFeatureImportances
from experiments.auth import Unauthorized, hash_key
from experiments.errors import Conflict, InvalidField, NotFound, ServiceError
from experiments.times import iso
from experiments.spec import check_id, parse_spec
from experiments.store import dumps, loads

ACTOR = "personalizer"
DEFAULT_MAX_SLOTS = 10  # a new resource ranks up to this many slots per multi-slot request
SIGNING_KEY = "personalizer-model-signing"
ACCESS_DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                 "valid key for an active subscription and use a correct regional API endpoint for your resource.")


@contextlib.contextmanager
def personalizer_fields():
    """Re-raise native errors so they blame Personalizer's field names."""
    try:
        yield
    except ServiceError as exc:
        raise requests.translated(exc) from None


class Personalizer:
    """Personalizer's calls for the experiments behind resource keys; safe to share between threads."""

    def __init__(self, service):
        self.service = service
        self.store = service.store
        self.clock = service.clock
        self.evaluations = PersonalizerEvaluations(self.store, self.clock)
        self.feature_importances = PersonalizerFeatureImportances(self.store, self.clock)

    # -- resources -------------------------------------------------------------
    def create_resource(self, experiment: str, slots: int | None = None, actor: str = "cli") -> dict:
        """Make a resource key for an experiment, creating it with Personalizer's defaults if needed."""
        row = self.store.get_experiment(experiment)
        if row is None:
            spec = {**config.DEFAULT_SPEC, "key": experiment, "slots": slots or DEFAULT_MAX_SLOTS, "status": "running"}
            self.service.create_experiment(spec, actor=actor)
        elif row["kind"] != "items":
            raise InvalidField("experiment", "Personalizer ranks the actions of each request: "
                                             "the experiment must be of kind items")
        elif slots is not None and slots != row["spec"]["slots"]:
            raise Conflict(f"experiment {experiment!r} already exists with {row['spec']['slots']} slots",
                           field="slots")
        key = secrets.token_hex(16)
        with self.store.write_lock():
            self.store.conn.execute(
                "INSERT INTO personalizer_resources (hash, experiment, hint, created_at) VALUES (?, ?, ?, ?)",
                (hash_key(key), experiment, key[-4:], self.clock.now()))
        return {"key": key, "experiment": experiment, "hint": key[-4:]}

    def list_resources(self) -> list[dict]:
        return self.store.query("SELECT experiment, hint, created_at FROM personalizer_resources ORDER BY created_at")

    def delete_resources(self, experiment: str) -> int:
        """Revoke every resource key of an experiment; return how many went."""
        with self.store.write_lock():
            return self.store.conn.execute("DELETE FROM personalizer_resources WHERE experiment = ?",
                                           (experiment,)).rowcount

    def experiment_for(self, key: str | None) -> str:
        """Return the experiment a resource key opens, or raise Unauthorized (401)."""
        row = self.store.query_one("SELECT experiment FROM personalizer_resources WHERE hash = ?",
                                   (hash_key(key),)) if key else None
        if row is None:
            raise Unauthorized(ACCESS_DENIED, field="Ocp-Apim-Subscription-Key")
        return row["experiment"]

    # -- rank ------------------------------------------------------------------
    def rank(self, key: str, body) -> dict:
        """Rank the actions for one context; the answer lists every action, excluded ones at 0."""
        native = requests.rank_request(body)
        with personalizer_fields():
            answer = self.service.decide(key, native)
        decision = self.store.get_decision(answer["event_id"])
        chosen = answer["slate"][0]
        return {"ranking": self._ranking(key, decision, native["exclude"]), "eventId": answer["event_id"],
                "rewardActionId": chosen["id"]}

    def _ranking(self, key: str, decision: dict, excluded: list[str]) -> list[dict]:
        cands = self.store.candidates(decision["candidate_set"])
        chosen = loads(decision["slate"])[0]
        probabilities = self._probabilities(key, decision, cands, chosen)
        ids = [c["id"] for c in cands]
        excluded = [x for x in dict.fromkeys(excluded) if x not in ids]
        return requests.ranking(ids, probabilities, chosen["index"], excluded)

    def _probabilities(self, key: str, decision: dict, cands: list[dict], chosen: dict) -> list[float]:
        """Return every candidate's probability: the model's distribution when it chose, else the control's."""
        p, n = chosen["probability"], len(cands)
        rest = [(1.0 - p) / (n - 1) if n > 1 else 0.0] * n
        if decision["variant"] == "bandit" and (decision.get("learning_mode") or "online") == "online":
            version, policy = self.service.models.get(key, self.service.spec(key).policy_settings())
            if version == decision["model_version"]:
                actions = self.store.actions(decision["candidate_set"])
                pmf = policy.pmf(context_text(loads(decision["context"])), actions)
                others = sum(pmf) - pmf[chosen["index"]]
                if others > 0:
                    rest = [float(q) * (1.0 - p) / others for q in pmf]
        rest[chosen["index"]] = p
        return rest

    def multislot_rank(self, key: str, body) -> dict:
        """Fill each slot with a distinct action; a slot left without one gets a null rewardActionId."""
        native = requests.multislot_request(body)
        most = self.service.spec(key).slots
        if native["slots"] > most:
            raise PersonalizerError(
                "InvalidMultiSlotApiAccess", f"this resource ranks at most {most} slot{'s' * (most > 1)}; raise "
                f"the slots of experiment {key!r} (PATCH /v1/experiments/{key}) to rank more", "slots")
        with personalizer_fields():
            answer = self.service.decide(key, native)
        slate = answer["slate"]
        slots = [{"id": slot["id"], "rewardActionId": slate[k]["id"] if k < len(slate) else None}
                 for k, slot in enumerate(native["slot_context"])]
        return {"slots": slots, "eventId": answer["event_id"]}

    # -- rewards and activation --------------------------------------------------
    def _decision(self, key: str, event_id: str) -> dict | None:
        """Return this resource's decision of an event id, or None when it never ranked it."""
        check_id(event_id, "eventId")
        decision = self.store.get_decision(event_id)
        return decision if decision is not None and decision["experiment"] == key else None

    def _unattributed(self, key: str, event_id: str, kind: str, values: list[tuple[str | None, float | None]]):
        """Keep what came for an event this resource never ranked: the retired service accepted it too."""
        now = self.clock.now()
        self.store.insert_unattributed([{"experiment": key, "event_id": event_id, "kind": kind, "slot_id": slot,
                                         "value": value, "received_at": now} for slot, value in values])

    def reward(self, key: str, event_id: str, body) -> None:
        """Record the reward of a single-slot event (of its first slot, for a multi-slot one)."""
        value = requests.single_reward(body)
        decision = self._decision(key, event_id)
        if decision is None:
            return self._unattributed(key, event_id, "reward", [(None, value)])
        slate = loads(decision["slate"])
        native = {"value": value} if len(slate) == 1 else {"value": value, "item": slate[0]["id"]}
        with personalizer_fields():
            self.service.record_reward(event_id, native)

    def multislot_reward(self, key: str, event_id: str, body) -> None:
        """Record per-slot rewards; each slot's value goes to the action shown in it."""
        rewards = requests.multislot_rewards(body)
        decision = self._decision(key, event_id)
        if decision is None:
            return self._unattributed(key, event_id, "reward", rewards)
        slate = loads(decision["slate"])
        position = {s["id"]: k for k, s in enumerate(loads(decision["slot_context"] or "[]"))}
        natives = []
        for i, (slot_id, value) in enumerate(rewards):
            k = position.get(slot_id)
            if k is None:
                raise InvalidField(f"reward[{i}].slotId", f"event {event_id!r} has no slot {slot_id!r}")
            natives.append({"value": value, "item": slate[k]["id"]} if k < len(slate) else {"value": value})
        with personalizer_fields():
            for native in natives:
                self.service.record_reward(event_id, native)

    def activate(self, key: str, event_id: str) -> None:
        """Activate a deferred event; after its reward wait time this is refused."""
        if self._decision(key, event_id) is None:
            return self._unattributed(key, event_id, "activate", [(None, None)])
        try:
            self.service.activate(event_id)
        except Conflict as exc:
            raise InvalidField("eventId", exc.message) from None

    # -- configurations ----------------------------------------------------------
    def _row(self, key: str) -> dict:
        row = self.store.get_experiment(key)
        if row is None:
            raise NotFound(f"the experiment {key!r} of this resource does not exist", field="experiment")
        return row

    def _spec(self, key: str):
        return parse_spec(self._row(key)["spec"], check_vw=False)

    def _stored(self, key: str) -> dict:
        row = self.store.query_one("SELECT settings FROM personalizer_settings WHERE experiment = ?", (key,))
        return loads(row["settings"]) if row else {}

    def _store(self, key: str, settings: dict) -> None:
        merged = {**self._stored(key), **settings}
        with self.store.write_lock():
            self.store.conn.execute(
                "INSERT INTO personalizer_settings (experiment, settings, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (experiment) DO UPDATE SET settings = excluded.settings,"
                " updated_at = excluded.updated_at",
                (key, dumps(merged), self.clock.now()))

    def service_configuration(self, key: str, version: str = "") -> dict:
        row = self._row(key)
        stored = {k: v for k, v in self._stored(key).items() if k in config.STORED_TYPES}
        document = config.service_configuration(row["spec"], stored, iso(row["updated_at"]), version)
        metrics = self._apprentice_metrics(key)
        if metrics:
            document["latestApprenticeModeMetrics"] = metrics
        return document

    def update_service_configuration(self, key: str, body, version: str = "") -> dict:
        """Apply a service configuration: the spec fields as one experiment change, the rest kept verbatim."""
        patch, stored = config.configuration_patch(body, self._row(key)["spec"], self._stored(key))
        if patch:
            with personalizer_fields():
                self.service.update_experiment(key, patch, actor=ACTOR)
        if stored:
            self._store(key, stored)
        return self.service_configuration(key, version)

    def _apprentice_metrics(self, key: str) -> dict | None:
        row = self.store.query_one(
            "SELECT count(*) AS events, min(d.created_at) AS started, max(d.created_at) AS last,"
            " sum(CASE WHEN json_extract(d.model_slate, '$[0].id') = json_extract(d.slate, '$[0].id')"
            "   THEN 1 ELSE 0 END) AS imitated,"
            " coalesce(sum(r.total), 0) AS rewards,"
            " coalesce(sum(CASE WHEN json_extract(d.model_slate, '$[0].id') = json_extract(d.slate, '$[0].id')"
            "   THEN r.total END), 0) AS imitated_rewards"
            " FROM decisions d LEFT JOIN (SELECT decision_seq, sum(value) AS total FROM rewards"
            "   WHERE experiment = ? GROUP BY decision_seq) r ON r.decision_seq = d.seq"
            " WHERE d.experiment = ? AND d.learning_mode = 'apprentice'", (key, key))
        if not row or not row["events"]:
            return None
        batch = {"numberOfEvents": row["events"], "numberOfImitatedEvents": row["imitated"] or 0,
                 "sumOfRewards": row["rewards"], "sumOfImitatedRewards": row["imitated_rewards"]}
        return {"startTime": iso(row["started"]), "lastProcessedEventTime": iso(row["last"]), **batch,
                "lastBatchMetrics": batch}

    def policy(self, key: str) -> dict:
        """Return the learning policy: a name and the VW command line the model is trained with.

        The command line reads back as it was sent while the settings are still the ones
        it set; once they changed elsewhere (the native API), the live command line shows.
        """
        command = config.policy_arguments(self._spec(key).policy_settings().args())
        stored = self._stored(key)
        sent = stored.get("policyArguments") if stored.get("policyCommand") == command else None
        return {"name": stored.get("policyName", key), "arguments": sent or command}

    def update_policy(self, key: str, body) -> dict:
        """Apply a VW command line; Vowpal Wabbit itself vets it, and its complaint comes back as a 400."""
        name, arguments = config.check_policy_body(body)
        patch = config.policy_patch(arguments)
        with personalizer_fields():
            self.service.update_experiment(key, patch, actor=ACTOR)
        command = config.policy_arguments(self._spec(key).policy_settings().args())
        self._store(key, {"policyName": name, "policyArguments": arguments, "policyCommand": command})
        return self.policy(key)

    def reset_policy(self, key: str) -> dict:
        with personalizer_fields():
            self.service.update_experiment(key, config.DEFAULT_POLICY, actor=ACTOR)
        self._store(key, {"policyName": key, "policyArguments": None, "policyCommand": None})
        return self.policy(key)

    # -- model and logs --------------------------------------------------------
    def model(self, key: str) -> bytes:
        """Return the newest published model (VW's own format), or an empty one before the first."""
        row = self.store.latest_model(key)
        if row is not None:
            return row["model"]
        return empty_model(self._spec(key).policy_settings())

    def signed_model(self, key: str) -> bytes:
        """Return the newest model as a zip archive signed with this database's key."""
        row = self.store.latest_model(key)
        metadata = {"experiment": key, "version": row["version"] if row else 0,
                    "createdAt": iso(row["created_at"] if row else self.clock.now()),
                    "arguments": self.policy(key)["arguments"]}
        return model_files.signed_archive(self.model(key), metadata, self._signing_key())

    def _signing_key(self) -> bytes:
        return bytes.fromhex(self.store.app_secret(SIGNING_KEY, secrets.token_hex(32), self.clock.now()))

    def import_model(self, key: str, blob: bytes) -> None:
        """Replace the model with one from a file, once a separate process loaded it; its options become the
        experiment's settings, and it learns on from decisions logged after the import."""
        row = self._row(key)
        model = model_files.unpack(blob, self._signing_key()) if model_files.is_archive(blob) else blob
        try:
            info = inspect_model(model)
        except ModelImportError as exc:
            raise PersonalizerError("InvalidModelImportFormat", f"Given model file format is invalid: {exc}.",
                                    "model") from None
        spec = row["spec"]
        patch = model_files.settings_patch(info, spec["slots"], DEFAULT_MAX_SLOTS)
        if _changes(spec, patch):
            try:
                self.service.update_experiment(key, patch, actor=ACTOR)
            except InvalidField as exc:
                raise PersonalizerError("InvalidModelImportFormat", f"the options stored in the model are refused: "
                                        f"{exc.message}", "model") from None
        self.service.reset_model(key, actor=f"{ACTOR} model import", model=model)

    def reset_model(self, key: str) -> None:
        self._row(key)
        self.service.reset_model(key, actor=ACTOR)

    def model_properties(self, key: str) -> dict:
        row = self._row(key)
        reset = self.store.query_one("SELECT at FROM model_resets WHERE experiment = ? ORDER BY id DESC LIMIT 1",
                                     (key,))
        created = reset["at"] if reset else row["created_at"]
        model = self.store.latest_model(key, with_blob=False)
        return {"creationTime": iso(created), "lastModifiedTime": iso(model["created_at"] if model else created)}

    def log_properties(self, key: str) -> dict:
        self._row(key)
        first, last = self.store.log_range(key)
        if first is None:
            raise PersonalizerError("LogsPropertiesNotFound", "Log properties not found: nothing is logged yet.",
                                    status=404)
        return {"dateRange": {"from": iso(first), "to": iso(last)}}

    def delete_logs(self, key: str) -> None:
        self._row(key)
        self.store.delete_log(key)

    # -- offline evaluations -------------------------------------------------------
    def create_evaluation(self, key: str, evaluation_id: str | None, body, version: str = "") -> dict:
        """Submit an evaluation of the live policy and of each custom policy over a time range."""
        self._row(key)
        made = self.evaluations.create(key, evaluation_id, body, self.policy(key))
        return self.evaluations.get(key, made, version)

    def evaluation(self, key: str, evaluation_id: str, version: str = "", query: dict | None = None) -> dict:
        return self.evaluations.get(key, evaluation_id, version, query)

    def list_evaluations(self, key: str, version: str = "", top: int | None = None, skip: int = 0,
                         page_size: int = 100, filter_text: str | None = None) -> tuple[list[dict], bool]:
        return self.evaluations.list(key, version, top, skip, page_size, filter_text)

    def delete_evaluation(self, key: str, evaluation_id: str) -> None:
        self.evaluations.delete(key, evaluation_id)

    def apply_from_evaluation(self, key: str, body) -> None:
        """Make a policy of a finished evaluation the live one; the model is rebuilt from the log with it."""
        body = requests.check_body(body, {"evaluationId", "policyName"}, where="policy reference")
        evaluation_id = requests.check_name(body.get("evaluationId"), "evaluationId")
        name, arguments = self.evaluations.policy_of(key, evaluation_id, requests.check_name(
            body.get("policyName"), "policyName"))
        self.update_policy(key, {"name": name, "arguments": arguments})

    # -- feature importances -------------------------------------------------------
    def create_feature_importance(self, key: str, feature_importance_id: str, body) -> None:
        """Start scoring the features the live settings learn from over a time range."""
        self._row(key)
        self.feature_importances.create(key, feature_importance_id, body)

    def feature_importance(self, key: str, feature_importance_id: str) -> dict:
        return self.feature_importances.get(key, feature_importance_id)

    def list_feature_importances(self, key: str, top: int | None = None, skip: int = 0,
                                 page_size: int = 100) -> tuple[list[dict], bool]:
        return self.feature_importances.list(key, top, skip, page_size)

    def delete_feature_importance(self, key: str, feature_importance_id: str) -> None:
        self.feature_importances.delete(key, feature_importance_id)


def _changes(spec: dict, patch: dict) -> bool:
    """Whether applying ``patch`` would change the spec's settings."""
    return any(spec.get(name) != value if not isinstance(value, dict) else
               any(spec[name].get(k) != v for k, v in value.items()) or
               (name == "exploration" and spec[name].get("algorithm") != value.get("algorithm"))
               for name, value in patch.items())
