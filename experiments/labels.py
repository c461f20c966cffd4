"""What the learner takes from one closed decision: whether to learn it, and with which labels.

A decision is skipped (never learned, the cursor passes it) when it waited for an
activation that never came, or when it was logged in ``logging_only`` mode. An
``apprentice`` decision served the baseline; the model learns from its own logged
choice with reward 1 where that choice matches the baseline and 0 elsewhere, so
it learns to imitate the baseline while the shop's rewards only go to the log
(Personalizer's Apprentice mode: Reward calls do not affect training).
``training_labels`` puts it together for the learner and every replay of the log.
"""
from __future__ import annotations

from collections import defaultdict

from bandit.encoding import slot_text
from experiments.request_options import APPRENTICE, LOGGING_ONLY
from experiments.store import loads

IMITATED, NOT_IMITATED = 1.0, 0.0


def learnable(row: dict) -> bool:
    """Return False for decisions that must not be learned."""
    if row.get("defer_activation") and row.get("activated_at") is None:
        return False
    return row.get("learning_mode") != LOGGING_ONLY


def imitation(row: dict, chosen: list, values: list, slate: list | None = None) -> tuple[list, list]:
    """Return the (index, probability) labels and rewards to learn for the decision's mode.

    ``slate`` is the decision's parsed slate, when the caller has it already.

    >>> row = {"learning_mode": "apprentice", "slate": '[{"index": 0, "probability": 1.0}]',
    ...        "model_slate": '[{"index": 2, "probability": 0.8}]'}
    >>> imitation(row, [(0, 1.0)], [0.3])
    ([(2, 0.8)], [0.0])
    """
    if row.get("learning_mode") != APPRENTICE:
        return chosen, values
    slate = loads(row["slate"]) if slate is None else slate
    served = [s["index"] for s in slate]
    model = loads(row["model_slate"]) if row.get("model_slate") else slate
    labels = [(m["index"], m["probability"]) for m in model]
    rewards = [IMITATED if k < len(served) and index == served[k] else NOT_IMITATED
               for k, (index, _) in enumerate(labels)]
    return labels, rewards


def slot_texts(row: dict) -> list[str] | None:
    """Return the VW features of each slot the decision described, or None."""
    context = loads(row["slot_context"]) if row.get("slot_context") else None
    if not context or not any(slot.get("features") for slot in context):
        return None
    return [slot_text(slot.get("features")) for slot in context]


AGGREGATE = {
    "sum": sum,
    "first": lambda values: values[0],
    "max": max,
}


def slot_rewards(rewards: list[tuple[int | None, float]], slots: int, aggregation: str, default: float) -> list[float]:
    """Aggregate (slot, value) rewards per slot; a slot without any gets the default.

    >>> slot_rewards([(0, 1.0), (0, 3.0), (None, 5.0)], 2, "sum", 0.0)
    [4.0, 0.0]
    """
    per_slot = defaultdict(list)
    for slot, value in rewards:
        if slot is not None and slot < slots:
            per_slot[slot].append(value)
    combine = AGGREGATE[aggregation]
    return [float(combine(per_slot[k])) if per_slot[k] else float(default) for k in range(slots)]


def training_labels(row: dict, rewards, reward_spec: dict, slots: int) -> tuple[list, list, list]:
    """Return (slot rewards, labels, rewards to learn) of a closed decision: what the learner learns.

    The slate is cut to the experiment's current ``slots`` (they may have been
    reduced since); the counterfactual replay uses this too, to learn the same.
    """
    logged = loads(row["slate"])
    slate = logged[:slots]
    values = slot_rewards(rewards, len(slate), reward_spec["aggregation"], reward_spec["default"])
    chosen, learned = imitation(row, [(s["index"], s["probability"]) for s in slate], values, logged)
    return values, chosen[:slots], learned[:slots]
