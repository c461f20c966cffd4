"""What a trained policy's weights say about each feature, by name.

VW hashes feature names away; ``--invert_hash`` makes it keep them and write the
model readably when the workspace finishes. ``traced_policy`` trains a policy
that keeps the names (in a private temporary file nobody else names), and
``feature_magnitudes`` reads that file back as one magnitude per model term:
|weight| times the largest |value| the feature had (VW's normalizer, 1 for a
one-hot feature), so a price given in cents weighs as much as the same price
in euros. Interaction terms list every feature they cross.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
from typing import Iterator
from urllib.parse import unquote

from bandit.policy import Policy, PolicySettings

# name:hash:weight, then (with VW's default adaptive, normalized updates) the adaptive sum and the normalizer
_LINE = re.compile(r"^(?P<name>[^\s:]*\^[^\s:]*):\d+:(?P<weight>\S+)(?:\s+\S+\s+(?P<scale>\S+))?")
_OFFSET = re.compile(r"\[\d+\]$")  # VW marks the weights of a reduction's extra models with [k]
_INDEX = re.compile(r"(\[\d+\])+$")  # the encoding names list elements name[i]


@dataclasses.dataclass(frozen=True)
class Term:
    """One weight of the model: the distinct (namespace, feature name) pairs it crosses and its magnitude."""

    features: tuple[tuple[str, str], ...]
    magnitude: float


@contextlib.contextmanager
def traced_policy(settings: PolicySettings) -> Iterator[tuple[Policy, list[Term]]]:
    """Yield a fresh policy that remembers feature names, and a list filled with its terms once done.

    The policy must only be trained inside the ``with``; leaving it finishes the
    workspace, reads its weights into the list and deletes the file.
    """
    terms: list[Term] = []
    with tempfile.TemporaryDirectory(prefix="silent-weights-") as folder:
        path = os.path.join(folder, "weights.txt")
        policy = Policy(settings, readable_weights=path)
        try:
            yield policy, terms
        finally:
            policy.close()
        terms.extend(feature_magnitudes(path))


def feature_magnitudes(path: str) -> Iterator[Term]:
    """Read a VW ``--invert_hash`` file; namespaces starting with ``_`` (VW's own) and the constant are left out."""
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = _LINE.match(line)
            if not match:
                continue
            features = tuple(_parts(match.group("name")))
            weight, scale = float(match.group("weight")), float(match.group("scale") or 1.0)
            if features and weight:
                yield Term(features, abs(weight) * (abs(scale) or 1.0))


def _parts(name: str) -> Iterator[tuple[str, str]]:
    """The distinct (namespace, feature name) pairs of a term, values and list indices dropped, unescaped.

    >>> list(_parts("User^segment=new*Action^price*_ccb_slot_index^index0"))
    [('User', 'segment'), ('Action', 'price')]
    >>> list(_parts("Action^tags=red%20sale*Context^scores[2]*Action^tags=new"))
    [('Action', 'tags'), ('Context', 'scores')]
    """
    seen = []
    for part in _OFFSET.sub("", name).split("*"):
        namespace, _, feature = part.partition("^")
        feature = _INDEX.sub("", feature.partition("=")[0])
        pair = (unquote(namespace), unquote(feature))
        if namespace and not namespace.startswith("_") and feature and pair not in seen:
            seen.append(pair)
    yield from seen
