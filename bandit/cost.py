"""How much Vowpal Wabbit computes to pick one slate, counted in feature evaluations.

Serving refuses a request whose count is above a limit, so that no single
request holds a worker for long. The count follows VW's own loops and errs on
the high side: every action is scored once per slot a ``--ccb_explore_adf``
prediction covers (our slot-by-slot sampling predicts slot k with k+1 slot
lines, so a slate of s slots scores every action s(s+1)/2 times), each scoring
evaluates the example's own features plus, for every namespace crossing, the
product of the crossed namespaces' sizes (a ``:`` wildcard counts every
feature), and ensembles (``bag``, ``cover``) repeat all of it per policy.
"""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache

from bandit.exploration import Bag, Cover

ACTION, SLOT = "A", "S"  # the namespace letters of bandit.encoding's |Action and |Slot
INTERACTION_OPTIONS = {"-q": 2, "--quadratic": 2, "--cubic": 3, "--interactions": 0}  # 0: any length
ENSEMBLE_SIZE = {Bag: lambda e: e.bag, Cover: lambda e: e.cover + 1}


def _option_value(token: str, tokens: list[str], i: int) -> tuple[str | None, str | None]:
    """Return (option, value) for an interaction option at ``tokens[i]``, in VW's spellings."""
    name, eq, value = token.partition("=")
    if name in INTERACTION_OPTIONS:
        return name, value if eq else (tokens[i + 1] if i + 1 < len(tokens) else None)
    if token.startswith("-q") and len(token) > 2:
        return "-q", token[2:]
    return None, None


@lru_cache(maxsize=256)
def interaction_terms(interactions: tuple, vw_args: str = "") -> tuple[str, ...]:
    """Return every namespace crossing: the spec's plus those in extra VW arguments.

    >>> interaction_terms(("UA", "PA"), "-q UP --cubic=UPA -qSA")
    ('UA', 'PA', 'UP', 'UPA', 'SA')
    """
    terms = list(interactions)
    try:
        tokens = shlex.split(vw_args)
    except ValueError:  # the spec check refuses such arguments before they are served
        tokens = []
    for i, token in enumerate(tokens):
        option, value = _option_value(token, tokens, i)
        if option and value:
            terms.append(value)
    return tuple(terms)


def ensemble_size(exploration) -> int:
    """Return how many policies score each action: ``bag`` and ``cover`` keep several."""
    size = ENSEMBLE_SIZE.get(type(exploration))
    return size(exploration) if size else 1


def example_work(counts: Mapping[str, int], terms: tuple[str, ...]) -> int:
    """Feature evaluations of one scored example with ``counts`` features per namespace letter.

    >>> example_work({"U": 10, "A": 3}, ("UA", "::"))
    212
    """
    total = sum(counts.values())
    work = total
    for term in terms:
        product = 1
        for letter in term:
            product *= total if letter == ":" else counts.get(letter, 0)
        work += product
    return work


def slate_work(shared: Mapping[str, int], action_sizes: Mapping[int, int], slot_features: int,
               terms: tuple[str, ...], slots: int, policies: int = 1) -> int:
    """Feature evaluations to pick ``slots`` actions.

    ``shared`` counts the context's features per namespace letter; ``action_sizes``
    maps an action's feature count (its id included) to how many actions have it;
    ``slot_features`` is the largest slot's feature count.

    >>> slate_work({"U": 10}, {4: 50}, 0, ("UA",), slots=1)
    2700
    >>> slate_work({"U": 10}, {4: 50}, 0, ("UA",), slots=3)
    16200
    """
    counts = dict(shared)
    counts[SLOT] = counts.get(SLOT, 0) + slot_features
    shared_actions = counts.get(ACTION, 0)
    per_slot = 0
    for size, number in action_sizes.items():
        counts[ACTION] = shared_actions + size
        per_slot += number * example_work(counts, terms)
    return per_slot * (slots * (slots + 1) // 2) * policies


def slate_work_bound(features: int, actions: int, terms: tuple[str, ...], slots: int, policies: int = 1) -> int:
    """An upper bound of ``slate_work`` from the largest example's feature count alone (every crossing full).

    >>> slate_work_bound(14, 50, ("UA",), slots=1) >= slate_work({"U": 10}, {4: 50}, 0, ("UA",), slots=1)
    True
    """
    per_example = features + sum(features ** len(term) for term in terms)
    return actions * per_example * (slots * (slots + 1) // 2) * policies
