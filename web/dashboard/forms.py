"""The experiment form: spec <-> form fields, and each validation error mapped to its field.

Form inputs are named after spec paths (``traffic.holdout``), so an
``InvalidField("traffic.holdout", ...)`` from the domain lands next to its input.
Exploration settings are named ``exploration.<algorithm>.<setting>`` because each
algorithm has its own; only the chosen algorithm's inputs are read.
"""
from __future__ import annotations

import json
import re

from bandit.exploration import EXPLORATIONS, exploration_to_dict
from experiments.errors import InvalidField
from experiments.spec import AGGREGATIONS, DEFAULTS, KINDS, LEARNING_MODES, SWITCHED_NUMBERS

NUMBER_FIELDS = ["slots", "learning.learning_rate", "learning.decay", "learning.update_seconds",
                 "reward.wait_seconds", "reward.default", "traffic.holdout"]
PLAIN_FIELDS = ["key", "name", "kind", "learning.mode", "learning.vw_args", "reward.aggregation"]
TEXT_FIELDS = PLAIN_FIELDS + ["arms", "exploration.algorithm", "learning.interactions", "reward.events",
                              "traffic.control", "learning.scaling.default", "learning.scaling.features"]
AUTOTUNE_NUMBERS = [f"learning.autotune.{number}" for number in SWITCHED_NUMBERS["autotune"]]
AUTOTUNE_FIELDS = ["learning.autotune.enabled", *AUTOTUNE_NUMBERS]
DRIFT_NUMBERS = [f"learning.drift_watch.{number}" for number in SWITCHED_NUMBERS["drift_watch"]]
DRIFT_FIELDS = ["learning.drift_watch.enabled", *DRIFT_NUMBERS]
SCALING_MODES = ("log", "raw", "standard")
INTEGER = re.compile(r"^[+-]?\d+$")


def exploration_defaults() -> dict[str, dict]:
    """Return each algorithm's settings with their defaults, in registry order."""
    out = {}
    for name, cls in EXPLORATIONS.items():
        settings = exploration_to_dict(cls())
        settings.pop("algorithm")
        out[name] = settings
    return out


def exploration_fields() -> list[str]:
    return [f"exploration.{algo}.{name}" for algo, settings in exploration_defaults().items() for name in settings]


def all_fields() -> set[str]:
    return set(NUMBER_FIELDS) | set(TEXT_FIELDS) | set(exploration_fields()) | set(AUTOTUNE_FIELDS) | set(DRIFT_FIELDS)


def parse_number(text: str):
    """Parse a number input; leave text that is no number for the spec to reject by field."""
    text = text.strip()
    try:
        return int(text) if INTEGER.match(text) else float(text)
    except ValueError:
        return text


def _put(spec: dict, path: str, value) -> None:
    head, _, rest = path.partition(".")
    if rest:
        spec.setdefault(head, {})[rest] = value
    else:
        spec[head] = value


def _arms(text: str) -> list[dict]:
    """Read one arm per line: ``id`` or ``id {"feature": "value"}``."""
    arms = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        arm_id, _, features = line.partition(" ")
        arm = {"id": arm_id}
        if features.strip():
            try:
                arm["features"] = json.loads(features)
            except json.JSONDecodeError:
                raise InvalidField("arms", f"line {number}: features must be a JSON object like "
                                           '{"source": "popularity"}') from None
        arms.append(arm)
    return arms


def _events(text: str) -> dict:
    """Read one reward event per line: ``purchase = 10``."""
    events = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise InvalidField("reward.events", f"line {number}: write it as name = value, like purchase = 10")
        events[name.strip()] = parse_number(value)
    return events


def _scaled_features(text: str) -> dict:
    """Read one feature per line: ``action.price = standard`` or ``user.age = buckets 18 30 50``."""
    features = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        path, sep, mode = (part.strip() for part in line.partition("="))
        words = mode.split()
        if not sep or not path or not words:
            raise InvalidField("learning.scaling.features", f"line {number}: write it as path = mode, like "
                                                            "action.price = log or user.age = buckets 18 30 50")
        features[path] = {"buckets": [parse_number(w) for w in words[1:]]} if words[0] == "buckets" else mode
    return features


def _features_text(features: dict) -> str:
    return "\n".join(f"{path} = buckets {' '.join(f'{e:g}' for e in mode['buckets'])}" if isinstance(mode, dict)
                     else f"{path} = {mode}" for path, mode in features.items())


def _switched(form, enabled: str, numbers: list[str]) -> dict:
    """Return an opt-in object (auto-tuning, the drift watch): its checkbox and the numbers given."""
    out = {"enabled": form.get(enabled) in ("on", "true", "1")}
    for field in numbers:
        if form.get(field, "").strip():
            out[field.rsplit(".", 1)[1]] = parse_number(form[field])
    return out


def learning_extras(form) -> dict:
    """Return the scaling, auto-tuning and drift-watch objects of the learning settings from the form."""
    scaling = {"default": form.get("learning.scaling.default", "").strip(),
               "features": _scaled_features(form.get("learning.scaling.features", ""))}
    return {"scaling": scaling,
            "autotune": _switched(form, "learning.autotune.enabled", AUTOTUNE_NUMBERS),
            "drift_watch": _switched(form, "learning.drift_watch.enabled", DRIFT_NUMBERS)}


def exploration_from_form(form) -> dict:
    algorithm = form.get("exploration.algorithm", "").strip()
    out = {"algorithm": algorithm}
    for name, default in exploration_defaults().get(algorithm, {}).items():
        field = f"exploration.{algorithm}.{name}"
        if isinstance(default, bool):
            out[name] = form.get(field) in ("on", "true", "1")
        elif form.get(field, "").strip():
            out[name] = parse_number(form[field])
    return out


def interactions(text: str) -> list[str]:
    """Interactions as typed: separated by spaces and/or commas."""
    return text.replace(",", " ").split()


def spec_from_form(form) -> dict:
    """Turn posted form fields into a spec body; raise InvalidField for text no spec can hold."""
    spec: dict = {}
    for field in PLAIN_FIELDS:
        if field in form:
            _put(spec, field, form[field].strip())
    for field in NUMBER_FIELDS:
        if form.get(field, "").strip():
            _put(spec, field, parse_number(form[field]))
    if not spec.get("name"):
        spec.pop("name", None)
    spec["arms"] = _arms(form.get("arms", ""))
    spec["exploration"] = exploration_from_form(form)
    _put(spec, "learning.interactions", interactions(form.get("learning.interactions", "")))
    spec["learning"].update(learning_extras(form))
    _put(spec, "reward.events", _events(form.get("reward.events", "")))
    control = form.get("traffic.control", "").strip()
    _put(spec, "traffic.control", {"arm": control} if control and control != "uniform" else "uniform")
    return spec


def form_from_spec(spec: dict) -> dict:
    """Return the text of every input for a spec (defaults filled in for a new one)."""
    values = {"key": spec.get("key", ""), "name": spec.get("name", ""), "kind": spec.get("kind", "items")}
    values["slots"] = str(spec.get("slots", DEFAULTS["slots"]))
    values["arms"] = "\n".join(f"{arm['id']} {json.dumps(arm['features'])}" if arm.get("features") else arm["id"]
                               for arm in spec.get("arms", []))
    for section in ("learning", "reward", "traffic"):
        merged = {**DEFAULTS[section], **spec.get(section, {})}
        for name, value in merged.items():
            values[f"{section}.{name}"] = (value if isinstance(value, str) else "" if value is None  # by kind
                                           else json.dumps(value))
    learning = {**DEFAULTS["learning"], **spec.get("learning", {})}
    values["learning.interactions"] = " ".join(learning["interactions"])
    values["learning.scaling.default"] = learning["scaling"]["default"]
    values["learning.scaling.features"] = _features_text(learning["scaling"].get("features", {}))
    for name, numbers in (("autotune", AUTOTUNE_NUMBERS), ("drift_watch", DRIFT_NUMBERS)):
        switched = {**DEFAULTS["learning"][name], **learning[name]}
        values[f"learning.{name}.enabled"] = switched["enabled"]
        for field in numbers:
            values[field] = f"{switched[field.rsplit('.', 1)[1]]:g}"
    values["reward.events"] = "\n".join(f"{name} = {value:g}" for name, value in
                                        spec.get("reward", DEFAULTS["reward"])["events"].items())
    control = spec.get("traffic", DEFAULTS["traffic"])["control"]
    values["traffic.control"] = control["arm"] if isinstance(control, dict) else ""
    exploration = spec.get("exploration", DEFAULTS["exploration"])
    values["exploration.algorithm"] = exploration["algorithm"]
    for algorithm, settings in exploration_defaults().items():
        chosen = exploration if exploration["algorithm"] == algorithm else {}
        for name, default in settings.items():
            value = chosen.get(name, default)
            values[f"exploration.{algorithm}.{name}"] = value if isinstance(value, bool) else f"{value:g}"
    return values


def field_for(error_field: str | None, algorithm: str = "") -> str | None:
    """Map an ``InvalidField.field`` to the input it blames; None means the form as a whole."""
    if not error_field:
        return None
    known = all_fields()
    if error_field.startswith("exploration."):
        setting = error_field.split(".", 1)[1]
        candidate = f"exploration.{algorithm}.{setting}"
        return candidate if candidate in known else "exploration.algorithm"
    if error_field.startswith("learning.") and error_field not in known:
        return "learning.vw_args"  # VW refused the combined settings
    for path in _parents(error_field):
        if path in known:
            return path
    return None


def errors_for(exc: InvalidField, form, own_fields=()) -> dict:
    """Place a domain error next to its input, or at the top of the form (``_form``) when none fits."""
    field = exc.field if exc.field in own_fields else field_for(exc.field, form.get("exploration.algorithm", ""))
    return {field or "_form": message_for(exc, field)}


def message_for(exc: InvalidField, field: str | None) -> str:
    """Word an error for its input: drop the field name it repeats, name an arm by its line.

    >>> message_for(InvalidField("arms[1].id", "duplicate arm id 'a'"), "arms")
    "line 2: duplicate arm id 'a'"
    """
    message = exc.message
    if field and exc.field and message.startswith(f"{exc.field}: "):
        message = message[len(exc.field) + 2:]
        arm = re.match(r"^arms\[(\d+)\]", exc.field)
        if arm and field == "arms":
            message = f"line {int(arm.group(1)) + 1}: {message}"
        elif field != exc.field:
            message = f"{exc.field.split('.')[-1]}: {message}"
    return message


def _parents(path: str):
    """Yield a field path and each of its parents: ``arms[2].id``, ``arms[2]``, ``arms``."""
    while path:
        yield path
        parent = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path)
        if parent == path:
            return
        path = parent


def form_choices() -> dict:
    """Return the options of the form's select inputs."""
    return {"kinds": KINDS, "aggregations": AGGREGATIONS, "learning_modes": LEARNING_MODES,
            "scaling_modes": SCALING_MODES,
            "algorithms": list(EXPLORATIONS), "exploration_settings": exploration_defaults()}

