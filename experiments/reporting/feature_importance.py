"""Feature importance: which context, candidate and slot features carry the live learner's scores.

A fresh learner with the experiment's live settings learns the closed decisions
of a window exactly as the live learner learns them (the last ``MAX_DECISIONS``
of it, so the result describes the model as it stood at the window's end),
keeping feature names (``bandit.feature_weights``). Each kind of model term (a
feature alone, or crossed with others) counts the mean over its values of
|weight| x largest |value|, shared evenly among the features it crosses; a
feature's score sums its shares, divided by the largest score so the most
important feature scores 1. The mean, not the sum, over values keeps a feature
with many rare values (a session id, a timestamp) from outweighing one with few
strong ones: it approximates how much the feature moves one score.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable

from bandit.encoding import ACTION_NAMESPACE, LOOSE_NAMESPACE, SLOT_NAMESPACE, context_text, namespace_name
from bandit.feature_weights import Term, traced_policy
from experiments.labels import learnable, slot_texts
from experiments.labels import training_labels
from experiments.reporting.evaluation import closed_chunks, count_closed
from experiments.reporting.logdata import Window
from experiments.spec import parse_spec
from experiments.store import loads

MAX_DECISIONS = 200_000  # bounds the work (and the feature names VW keeps) of one request
MAX_FEATURES = 1000  # the most important features kept; the rest are left out of the answer
SOURCES = {ACTION_NAMESPACE: "candidate", SLOT_NAMESPACE: "slot"}


def feature_importance(store, window: Window, closed_by: float,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """Train the live settings on the window's closed decisions; return each feature's normalized score."""
    spec = parse_spec(store.existing_experiment(window.key)["spec"], check_vw=False)
    total = count_closed(store, window, closed_by)
    skip = max(0, total - MAX_DECISIONS)
    namespaces: dict[str, str] = {}
    learned = done = 0
    with traced_policy(spec.policy_settings()) as (policy, terms):
        for rows, rewards in closed_chunks(store, window, closed_by, total, skip=skip):
            for row in rows:
                if not learnable(row):
                    continue  # the live learner skips these too
                context = loads(row["context"])
                namespaces.update({namespace_name(k): k for k, v in context.items() if isinstance(v, dict)})
                _, chosen, values = training_labels(row, rewards.get(row["seq"], []), spec.reward, spec.slots)
                policy.learn(context_text(context), store.actions(row["candidate_set"]), chosen, values,
                             slot_texts=slot_texts(row))
                learned += 1
            done += len(rows)
            if progress:
                progress(done, total - skip)
    return {"decisions": learned, "features": scores(terms, namespaces)}


def scores(terms: list[Term], namespaces: dict[str, str]) -> list[dict]:
    """Sum each feature's shares of the term kinds, normalize by the largest, most important first.

    ``namespaces`` maps VW namespace names back to the context keys they came from.

    >>> ranked = scores([Term((("User", "segment"), ("Action", "id")), 2.0), Term((("Action", "price"),), 0.5)],
    ...                 {"User": "user"})
    >>> [(f["source"], f["namespace"], f["feature"], f["score"]) for f in ranked]
    [('candidate', None, 'id', 1.0), ('context', 'user', 'segment', 1.0), ('candidate', None, 'price', 0.5)]
    """
    groups: dict[tuple, list[float]] = defaultdict(list)
    for term in terms:
        groups[tuple(sorted(term.features))].append(term.magnitude)
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for features, magnitudes in groups.items():
        for pair in features:
            totals[pair] += sum(magnitudes) / len(magnitudes) / len(features)
    top = max(totals.values(), default=0.0) or 1.0
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:MAX_FEATURES]
    return [{**_origin(namespace, namespaces), "feature": feature, "score": round(total / top, 6)}
            for (namespace, feature), total in ranked]


def _origin(namespace: str, namespaces: dict[str, str]) -> dict:
    """Where a VW namespace's features came from: the context (under which key), the candidates or the slots."""
    if namespace in SOURCES:
        return {"source": SOURCES[namespace], "namespace": None}
    if namespace == LOOSE_NAMESPACE:
        return {"source": "context", "namespace": None}
    return {"source": "context", "namespace": namespaces.get(namespace, namespace)}
