"""Model snapshots as the store keeps them: what each is a function of, and the policy it loads into.

A snapshot row holds VW's model bytes, the VW command line (``args``) and, in
``features``, how numeric features were scaled for it (the scaling and, for
standardised features, the statistics observed). A model is a function of the
log and of these settings, so serving and the learner use a snapshot only when
its settings are the experiment's current ones. Rows from before scaling
existed scaled nothing.
"""
from __future__ import annotations

from bandit.policy import Policy, PolicySettings
from bandit.scaling import Scaling, parse_scaling
from experiments.store import dumps, loads

UNSCALED = Scaling().to_dict()


def _features(row: dict) -> dict:
    text = row.get("features")
    return loads(text) if text else {"scaling": UNSCALED, "statistics": None}


def identity(row: dict) -> tuple[str, dict]:
    """Return what a stored model is a function of besides the log (see ``PolicySettings.identity``)."""
    return row["args"], _features(row)["scaling"]


def matches(row: dict | None, settings: PolicySettings, rules: tuple | None = None) -> bool:
    """True when a stored model was made with these settings (and, given ``rules``, these forgetting rules).

    Serving asks without rules: a snapshot made before a rule changed still serves until the rebuilt one comes.
    """
    if row is None or identity(row) != settings.identity():
        return False
    return rules is None or forgetting(row) == rules


def forgetting(row: dict) -> tuple:
    """Return the forgetting rules a stored model was made with (``experiments.forgetting``)."""
    return tuple(tuple(rule) for rule in _features(row).get("forget", ()))


def load(row: dict, settings: PolicySettings) -> Policy:
    """Return the policy of a stored model, with the feature statistics it learned with."""
    return Policy(settings, row["model"], statistics(row))


def statistics(row: dict) -> dict | None:
    """Return the feature statistics a stored model observed (None when its scaling needs none)."""
    return _features(row)["statistics"]


def scaling(row: dict) -> Scaling:
    """Return how a stored model scales numeric features."""
    return parse_scaling(_features(row)["scaling"])


def features_column(settings: PolicySettings, statistics: dict | None = None, rules: tuple = ()) -> str:
    """Return the ``features`` column of a snapshot: the settings' scaling, the statistics observed and
    the forgetting rules (only when there are some, so older snapshots read the same)."""
    column = {"scaling": settings.scaling.to_dict(), "statistics": statistics}
    if rules:
        column["forget"] = [list(rule) for rule in rules]
    return dumps(column)
