"""Personalizer's configuration documents, translated to and from an experiment spec.

The service configuration maps field by field onto the spec (``rewardWaitTime``
is ``reward.wait_seconds``, ``explorationPercentage`` the epsilon of epsilon
exploration, and so on); the learning policy ``{name, arguments}`` is a VW
command line split into exploration, interactions, learning rate and extra VW
arguments. ``logRetentionDays`` is the spec's ``retention.days``. Fields that have
no native meaning (``modelRetrainDays`` ...) are kept verbatim next to the experiment.
Pure functions: no store, no Flask.
"""
from __future__ import annotations

import math
import re

from bandit.exploration import SettingError, exploration_to_dict, parse_exploration
from bandit.vw_args import VwArgs, parse_vw_args
from experiments.errors import InvalidField
from experiments.personalizer.errors import PersonalizerError
from experiments.personalizer.requests import check_body, check_name, finite_number
from experiments.personalizer.versions import V1_0

MAX_DURATION_SECONDS = 30 * 86400
REWARD_WAIT_RANGE = (5.0, 2 * 86400.0)  # the spec's "between 5 seconds and 2 days"
AGGREGATIONS = {"earliest": "first", "sum": "sum", "max": "max"}
MODES = {"Online": "online", "Apprentice": "apprentice", "LoggingOnly": "logging_only"}
STORED_DEFAULTS = {"logRetentionDays": -1, "modelRetrainDays": 0, "isAutoOptimizationEnabled": False}
STORED_TYPES = {"logRetentionDays": int, "modelRetrainDays": int, "isAutoOptimizationEnabled": bool,
                "autoOptimizationFrequency": str, "autoOptimizationStartDate": str, "logMirrorEnabled": bool,
                "logMirrorSasUri": str}
READ_ONLY = {"lastConfigurationEditDate", "latestApprenticeModeMetrics"}
SERVICE_FIELDS = {"rewardWaitTime", "defaultReward", "rewardAggregation", "explorationPercentage",
                  "modelExportFrequency", "learningMode", *STORED_TYPES, *READ_ONLY}
VW_EPSILON_DEFAULT = 0.05  # what --cb_explore_adf explores with when no --epsilon is given
# What VW does when a policy names an algorithm without these options (SquareCB: VW's gamma, VW's probabilities).
VW_EXPLORATION_DEFAULTS = {"epsilon": {"epsilon": VW_EPSILON_DEFAULT},
                           "squarecb": {"gamma_scale": 10.0, "normalize": False}}

# A new resource's experiment: Personalizer's defaults (10 minute wait, earliest reward,
# 20% exploration, all namespace pairs crossed) on a model that learns at VW's own rate.
DEFAULT_POLICY = {"exploration": {"algorithm": "epsilon", "epsilon": 0.2},
                  "learning": {"interactions": ["::"], "learning_rate": 0.5, "vw_args": ""}}
DEFAULT_SPEC = {
    "kind": "items",
    "exploration": DEFAULT_POLICY["exploration"],
    # Personalizer hands VW the numbers as sent, so an exported model ranks Personalizer's own way
    "learning": {**DEFAULT_POLICY["learning"], "update_seconds": 60.0, "mode": "online",
                 "scaling": {"default": "raw", "features": {}}},
    "reward": {"wait_seconds": 600.0, "default": 0.0, "aggregation": "first"},
    "traffic": {"holdout": 0.0},
}

_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d+):(?P<minutes>\d\d):(?P<seconds>\d\d(?:\.\d+)?)$")


def parse_duration(text, field: str) -> float:
    """Read an ISO 8601 duration (or a .NET ``d.hh:mm:ss`` time span) as seconds.

    >>> parse_duration("PT10M", "rewardWaitTime"), parse_duration("P1DT0.5S", "x"), parse_duration("00:00:05", "x")
    (600.0, 86400.5, 5.0)
    """
    if not isinstance(text, str):
        raise InvalidField(field, "must be an ISO 8601 duration such as PT10M")
    match = _DURATION.match(text.strip().upper()) or _TIMESPAN.match(text.strip())
    if not match or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise InvalidField(field, f"{text!r} is not an ISO 8601 duration such as PT10M or PT5S")
    parts = {name: float(value or 0) for name, value in match.groupdict().items()}
    seconds = parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidField(field, "must be at most 30 days")
    return seconds


def format_timespan(seconds: float) -> str:
    """Write seconds as a .NET time span, the form v1.0 clients read (``[d.]hh:mm:ss[.fffffff]``).

    >>> format_timespan(600), format_timespan(90061.5), format_timespan(0)
    ('00:10:00', '1.01:01:01.5000000', '00:00:00')
    """
    ticks = round(float(seconds) * 10_000_000)
    days, ticks = divmod(ticks, 864_000_000_000)
    hours, ticks = divmod(ticks, 36_000_000_000)
    minutes, ticks = divmod(ticks, 600_000_000)
    secs, ticks = divmod(ticks, 10_000_000)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}" + (f".{ticks:07d}" if ticks else "")
    return f"{days}.{text}" if days else text


def duration_text(seconds: float, version: str) -> str:
    """Write a duration the way clients of ``version`` read it."""
    return format_timespan(seconds) if version == V1_0 else format_duration(seconds)


def format_duration(seconds: float) -> str:
    """Write seconds as an ISO 8601 duration.

    >>> format_duration(600), format_duration(90061.5), format_duration(0)
    ('PT10M', 'P1DT1H1M1.5S', 'PT0S')
    """
    days, rest = divmod(float(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    secs = round(secs, 3)
    date = f"{int(days)}D" if days else ""
    clock = "".join(f"{int(v)}{unit}" for v, unit in ((hours, "H"), (minutes, "M")) if v)
    if secs:
        clock += f"{int(secs) if secs == int(secs) else secs}S"
    if not date and not clock:
        return "PT0S"
    return "P" + date + ("T" + clock if clock else "")


# -- service configuration ---------------------------------------------------------
def exploration_percentage(exploration: dict) -> float:
    """Return the share of explored ranks that a spec's exploration stands for, as the spec's fraction 0-1."""
    return round(exploration.get("epsilon", 0.0), 6) if "epsilon" in exploration else 0.0


def service_configuration(spec: dict, stored: dict, edited_at: str | None, version: str = "") -> dict:
    """Return the service configuration document of an experiment spec, durations as ``version`` reads them."""
    reward, learning = spec["reward"], spec["learning"]
    aggregation = {v: k for k, v in AGGREGATIONS.items()}[reward["aggregation"]]
    config = {
        "rewardWaitTime": duration_text(reward["wait_seconds"], version),
        "defaultReward": reward["default"],
        "rewardAggregation": aggregation,
        "explorationPercentage": exploration_percentage(spec["exploration"]),
        "modelExportFrequency": duration_text(learning["update_seconds"], version),
        "learningMode": {v: k for k, v in MODES.items()}[learning.get("mode", "online")],
        **{**STORED_DEFAULTS, **stored},
        "logRetentionDays": _retention_days(spec),
        "lastConfigurationEditDate": edited_at,
    }
    return config


def _exploration_patch(share, exploration: dict) -> dict | None:
    if isinstance(share, (int, float)) and not isinstance(share, bool) and 1 < share <= 100:
        raise InvalidField("explorationPercentage", f"is a fraction from 0 to 1 (0.2 for 20%), not {share:g}")
    epsilon = finite_number(share, "explorationPercentage", 0, 1)
    if "epsilon" in exploration:
        return None if exploration["epsilon"] == epsilon else {**exploration, "epsilon": epsilon}
    if epsilon == exploration_percentage(exploration):
        return None
    return {"algorithm": "epsilon", "epsilon": epsilon}  # a new percentage means epsilon-greedy


def _stored(body: dict) -> dict:
    stored = {}
    for name, kind in STORED_TYPES.items():
        if name in body and body[name] is not None:
            value = body[name]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidField(name, f"must be {'an integer' if kind is int else kind.__name__}")
            stored[name] = value
    return stored


def _retention_days(spec: dict) -> int:
    """Personalizer's ``logRetentionDays`` is the spec's ``retention.days``; -1 keeps the log forever."""
    days = spec.get("retention", {}).get("days")
    return -1 if days is None else days


def _check_retention(days: int, wait_seconds: float) -> None:
    least = math.ceil(wait_seconds / 86400) + 1
    if days != -1 and days < least:
        raise PersonalizerError("InvalidLogRetentionDays", f"must be -1 (keep forever) or at least the reward "
                                f"wait time plus one day, rounded up ({least})", "logRetentionDays")


def _check_retrain(days: int, retention: int) -> None:
    if days < 0 or (retention != -1 and days > retention):
        raise PersonalizerError("InvalidModelRetrainDays", "must be between 0 and the number of log retention "
                                f"days ({retention})", "modelRetrainDays")


def _reward_wait(text) -> float:
    seconds = parse_duration(text, "rewardWaitTime")
    low, high = REWARD_WAIT_RANGE
    if not low <= seconds <= high:
        raise PersonalizerError("InvalidRewardWaitTime", f"must be between 5 seconds and 2 days, not {text}",
                                "rewardWaitTime")
    return seconds


def _check_mode_change(body: dict, reward: dict, spec: dict, mode: str | None) -> None:
    """Refuse changing the learning mode and the reward settings in one call, as the spec does."""
    if mode is None or mode == spec["learning"].get("mode", "online"):
        return
    changed = [name for name, value in reward.items() if value != spec["reward"][name]]
    if changed:
        raise PersonalizerError(
            "InvalidLearningModeServiceConfiguration", "change learningMode first, then defaultReward, "
            "rewardWaitTime and rewardAggregation in a second call", "learningMode")


def configuration_patch(body, spec: dict, stored_now: dict | None = None) -> tuple[dict, dict]:
    """Translate a service configuration into (spec patch, fields kept verbatim)."""
    body = check_body(body, SERVICE_FIELDS, where="service configuration")
    reward, learning = {}, {}
    if "rewardWaitTime" in body:
        reward["wait_seconds"] = _reward_wait(body["rewardWaitTime"])
    if "defaultReward" in body:
        reward["default"] = finite_number(body["defaultReward"], "defaultReward", -1, 1)
    if "rewardAggregation" in body:
        name = body["rewardAggregation"]
        if not isinstance(name, str) or name.lower() not in AGGREGATIONS:
            raise InvalidField("rewardAggregation", "must be earliest or sum")
        reward["aggregation"] = AGGREGATIONS[name.lower()]
    if "modelExportFrequency" in body:
        learning["update_seconds"] = parse_duration(body["modelExportFrequency"], "modelExportFrequency")
    if "learningMode" in body:
        modes = {k.lower(): v for k, v in MODES.items()}
        if not isinstance(body["learningMode"], str) or body["learningMode"].lower() not in modes:
            raise InvalidField("learningMode", "must be Online, Apprentice or LoggingOnly")
        learning["mode"] = modes[body["learningMode"].lower()]
    patch = {name: part for name, part in (("reward", reward), ("learning", learning)) if part}
    if "explorationPercentage" in body:
        exploration = _exploration_patch(body["explorationPercentage"], spec["exploration"])
        if exploration is not None:
            patch["exploration"] = exploration
    _check_mode_change(body, reward, spec, learning.get("mode"))
    stored = _stored(body)
    given = "logRetentionDays" in stored
    retention = stored.pop("logRetentionDays", _retention_days(spec))  # the spec's retention.days
    if given:
        _check_retention(retention, reward.get("wait_seconds", spec["reward"]["wait_seconds"]))
        if retention != _retention_days(spec):  # acted on by the learner, like the native setting
            patch["retention"] = {"days": None if retention == -1 else retention}
    if given or "modelRetrainDays" in stored:
        current = {**STORED_DEFAULTS, **(stored_now or {}), **stored}
        _check_retrain(current["modelRetrainDays"], retention)
    return patch, stored


# -- learning policy ----------------------------------------------------------------
# What the retired service wrote into its policies and exports to choose the input format, the
# reduction or its output: this service decides those itself, so they are read (with any value)
# and dropped. Everything else must pass the VW-args allowlist (``bandit.vw_args``); options that
# touch files, sockets or the process stay refused.
RETIRED_SERVICE_FLAGS = frozenset({"dsjson", "json", "quiet", "cb_explore_adf", "ccb_explore_adf", "cb_adf",
                                   "save_resume", "preserve_performance_counters", "id"})
_ALGORITHM_FLAGS = {"squarecb": "squarecb", "bag": "bag", "softmax": "softmax", "cover": "cover"}
EXPLORATION_OPTIONS = {  # per algorithm: VW option -> (field, type); a type of None is a switch
    "epsilon": {"epsilon": ("epsilon", float)},
    "squarecb": {"squarecb": (None, None), "gamma_scale": ("gamma_scale", float),
                 "gamma_exponent": ("gamma_exponent", float)},
    "bag": {"bag": ("bag", int), "epsilon": ("epsilon", float), "greedify": ("greedify", None)},
    "softmax": {"softmax": (None, None), "lambda": ("lambda", float)},
    "cover": {"cover": ("cover", int), "psi": ("psi", float), "nounif": ("nounif", None)},
}


def _options(arguments) -> tuple:
    """Parse a policy's command line once, as VW would, through the allowlist."""
    if not isinstance(arguments, str) or not arguments.strip():
        raise InvalidField("arguments", "must be a Vowpal Wabbit command line such as "
                                        "\"--cb_explore_adf --epsilon 0.2 -q ::\"")
    try:
        return parse_vw_args(arguments, "arguments", ignore=RETIRED_SERVICE_FLAGS).options
    except SettingError as exc:
        raise InvalidField("arguments", exc.message) from None


def policy_patch(arguments) -> dict:
    """Split a VW command line into the spec's exploration and learning settings.

    >>> policy_patch("--cb_explore_adf --epsilon 0.2 --dsjson --power_t 0 -l 0.001 --cb_type mtr -q ::")
    {'exploration': {'algorithm': 'epsilon', 'epsilon': 0.2}, 'learning': {'interactions': ['::'], \
'learning_rate': 0.001, 'vw_args': '--power_t 0 --cb_type mtr'}}
    """
    options = _options(arguments)
    algorithm = next((_ALGORITHM_FLAGS[name] for name, _ in options if name in _ALGORITHM_FLAGS), "epsilon")
    table = EXPLORATION_OPTIONS[algorithm]
    exploration = dict(VW_EXPLORATION_DEFAULTS.get(algorithm, {}))
    interactions, learning_rate, rest = [], 0.5, []
    for name, value in options:
        if name in table:
            field, kind = table[name]
            if field:
                exploration[field] = True if kind is None else kind(value)
        elif name == "learning_rate":
            learning_rate = float(value)
        elif name == "quadratic":
            interactions.append(value)
        else:
            rest.append((name, value))
    try:
        setting = parse_exploration({"algorithm": algorithm, **exploration})
    except SettingError as exc:
        raise InvalidField("arguments", f"{exc.field}: {exc.message}") from None
    return {"exploration": exploration_to_dict(setting),
            "learning": {"interactions": interactions, "learning_rate": learning_rate,
                         "vw_args": VwArgs(tuple(rest)).text}}


def policy_arguments(vw_command: str) -> str:
    """Return a spec's VW command line as Personalizer shows it (without ``--quiet``)."""
    return " ".join(token for token in vw_command.split() if token != "--quiet")


def check_policy_body(body) -> tuple[str, str]:
    """Validate a ``{name, arguments}`` policy document; return (name, arguments)."""
    check_body(body, {"name", "arguments"}, "the body must be a JSON object with name and arguments")
    return check_name(body.get("name")), body.get("arguments")
