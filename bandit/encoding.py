"""Encode JSON context and candidates to Vowpal Wabbit's multi-line text format.

Context objects become namespaces named after their key with the first letter
upper-cased (``user`` -> ``|User``, so ``-q UA`` crosses user and action
features); candidate features live in the ``|Action`` namespace together with
the candidate id. Strings are one-hot (``key=value``), numbers are values
(``key:1.5``), booleans one-hot (``key=true``), lists of strings one feature per
element, lists of numbers indexed values, nested objects dotted names. Every
name and value is escaped so no input can break the line format.
"""
from __future__ import annotations

import math
import re
from numbers import Real

ACTION_NAMESPACE = "Action"
SLOT_NAMESPACE = "Slot"
LOOSE_NAMESPACE = "Context"
MAX_DEPTH = 8

_UNSAFE = re.compile(r"[%|:\s]")


class FeatureError(ValueError):
    """A feature value VW cannot take; ``field`` names where it was found."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TooManyFeatures(FeatureError):
    """More features than the caller's ``limit``; encoding stops there, so a huge object costs little."""

    def __init__(self, field: str, limit: int):
        super().__init__(field, f"more than {limit} features")
        self.limit = limit


def _check_count(out: list, limit: int | None, field: str) -> None:
    if limit is not None and len(out) > limit:
        raise TooManyFeatures(field, limit)


def escape(text: str) -> str:
    """Percent-escape ``%``, ``|``, ``:`` and whitespace so text is one VW token.

    >>> escape("a b|c:d%")
    'a%20b%7Cc%3Ad%25'
    """
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: "%{:02X}".format(ord(m.group())), text)


def _number(value: float, field: str) -> str:
    if not math.isfinite(value):
        raise FeatureError(field, "must be a finite number (no NaN or infinity)")
    return repr(float(value))


def _token(name: str, value, field: str, key) -> str | None:
    """Return the feature of a plain string or number, or None for anything else (the common case, fast)."""
    kind = type(value)
    if kind is str:
        return f"{escape(name)}={escape(value)}"
    if kind is float or kind is int:
        if not math.isfinite(value):
            raise FeatureError(f"{field}.{key}", "must be a finite number (no NaN or infinity)")
        return f"{escape(name)}:{float(value)!r}"
    return None


def _flatten(name: str, value, field: str, out: list, depth: int = 0, limit: int | None = None) -> None:
    if depth > MAX_DEPTH:
        raise FeatureError(field, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool):
        out.append(f"{escape(name)}={'true' if value else 'false'}")
    elif isinstance(value, str):
        out.append(f"{escape(name)}={escape(value)}")
    elif isinstance(value, Real):
        out.append(f"{escape(name)}:{_number(value, field)}")
    elif isinstance(value, dict):
        _items(name + ".", value, field, out, depth + 1, limit)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            if isinstance(inner, str):
                out.append(f"{escape(name)}={escape(inner)}")
            elif isinstance(inner, Real) and not isinstance(inner, bool):
                out.append(f"{escape(name)}[{i}]:{_number(inner, f'{field}[{i}]')}")
            else:
                _flatten(f"{name}[{i}]", inner, f"{field}[{i}]", out, depth + 1, limit)
            _check_count(out, limit, field)
    else:
        raise FeatureError(
            field, "must be a string, number, boolean, list or object, not " + type(value).__name__
        )


def _items(prefix: str, features: dict, field: str, out: list, depth: int, limit: int | None) -> None:
    """Flatten an object's entries; the field an error names is built only when one happens."""
    for key, value in features.items():
        name = f"{prefix}{key}"
        token = _token(name, value, field, key)
        if token is None:
            _flatten(name, value, f"{field}.{key}", out, depth, limit)
        else:
            out.append(token)
        if limit is not None and len(out) > limit:
            raise TooManyFeatures(field, limit)


def _features(features: dict, field: str, out: list, limit: int | None) -> list[str]:
    if not isinstance(features, dict):
        raise FeatureError(field, "must be an object")
    _items("", features, field, out, 0, limit)
    return out


def features_text(features: dict, field: str = "features", limit: int | None = None) -> str:
    """Return the space-separated VW features of one flat or nested object (at most ``limit`` of them).

    >>> features_text({"category": "shoes", "price": 49, "tags": ["new", "red sale"]})
    'category=shoes price:49.0 tags=new tags=red%20sale'
    >>> features_text({"tags": ["a", "b", "c"]}, limit=2)
    Traceback (most recent call last):
    ...
    bandit.encoding.TooManyFeatures: features.tags: more than 2 features
    """
    return " ".join(_features(features, field, [], limit))


def namespace_name(key: str) -> str:
    """Name a context key's namespace so its first letter is upper case (for ``-q``)."""
    escaped = escape(str(key)) or "_"
    return escaped[0].upper() + escaped[1:]


def context_text(context: dict, field: str = "context", limit: int | None = None) -> str:
    """Return the namespaces of a context: objects become namespaces, loose values ``|Context``.

    At most ``limit`` features in all, else ``TooManyFeatures``.

    >>> context_text({"user": {"segment": "new"}, "page": {"type": "home"}, "hour": 9})
    '|User segment=new |Page type=home |Context hour:9.0'
    """
    if not isinstance(context, dict):
        raise FeatureError(field, "must be an object")
    parts, loose, used = [], [], 0
    for key, value in context.items():
        left = None if limit is None else limit - used
        if isinstance(value, dict):
            features = _features(value, f"{field}.{key}", [], None if left is None else left - len(loose))
            used += len(features)
            parts.append(f"|{namespace_name(key)} {' '.join(features)}".rstrip())
        else:
            _flatten(str(key), value, f"{field}.{key}", loose, 0, left)
            _check_count(loose, left, field)
    if loose:
        parts.append(f"|{LOOSE_NAMESPACE} " + " ".join(loose))
    return " ".join(parts)


def action_text(candidate: dict, field: str = "candidate", limit: int | None = None) -> str:
    """Return one candidate's action features, its id included so items are learnable.

    >>> action_text({"id": "sku 1", "features": {"price": 10}})
    '|Action id=sku%201 price:10.0'
    """
    feats = features_text(candidate.get("features") or {}, f"{field}.features", limit)
    return f"|{ACTION_NAMESPACE} id={escape(candidate['id'])} {feats}".rstrip()


def slot_text(features: dict | None, field: str = "slot", limit: int | None = None) -> str:
    """Return one slot's own features as the ``|Slot`` namespace (just ``|`` without any).

    >>> slot_text({"size": "large", "position": 1})
    '|Slot size=large position:1.0'
    """
    feats = features_text(features or {}, f"{field}.features", limit)
    return f"|{SLOT_NAMESPACE} {feats}" if feats else "|"


def feature_count(text: str) -> int:
    """Count the features of VW text: its tokens less its namespace names.

    >>> feature_count("|User a=1 b=2 |Page type=home"), feature_count("|User"), feature_count("")
    (3, 0, 0)
    """
    return text.count(" ") + 1 - text.count("|") if text else 0


def namespace_counts(text: str) -> dict[str, int]:
    """Count the features of VW text per namespace letter (what ``-q`` crosses).

    >>> namespace_counts("|User a=1 b=2 |Page type=home |Action id=x")
    {'U': 2, 'P': 1, 'A': 1}
    """
    counts: dict[str, int] = {}
    for part in text.split("|")[1:]:  # escaping keeps "|" out of names and values
        name, _, features = part.partition(" ")
        features = features.strip()
        if features:
            letter = name[:1] or " "
            counts[letter] = counts.get(letter, 0) + features.count(" ") + 1
    return counts


def validate_features(value, field: str) -> None:
    """Raise ``FeatureError`` naming the field when a features object cannot be encoded."""
    features_text(value, field)


def cb_lines(shared: str, actions: list[str], label: tuple[int, float, float] | None = None) -> list[str]:
    """Build a ``--cb_explore_adf`` example; ``label`` = (chosen index, cost, probability).

    >>> cb_lines("|User a=1", ["|Action id=x", "|Action id=y"], label=(1, -1.0, 0.5))
    ['shared |User a=1', '|Action id=x', '0:-1.0:0.5 |Action id=y']
    """
    lines = [f"shared {shared}"]
    for i, action in enumerate(actions):
        if label is not None and i == label[0]:
            lines.append(f"0:{label[1]!r}:{label[2]!r} {action}")
        else:
            lines.append(action)
    return lines


def ccb_lines(
    shared: str,
    actions: list[str],
    slots: int,
    labels: list[tuple[int, float, float]] | None = None,
    forced: list[int] | None = None,
    include: list[int] | None = None,
    slot_texts: list[str] | None = None,
) -> list[str]:
    """Build a ``--ccb_explore_adf`` example with ``slots`` slot lines.

    ``labels`` gives (chosen index, cost, probability) per slot when learning;
    ``forced`` pins the first slots to already-chosen actions and ``include``
    restricts the last slot, which is how a slate is sampled slot by slot.
    ``slot_texts`` gives each slot its own features (see ``slot_text``).

    >>> ccb_lines("|User a=1", ["|Action id=x", "|Action id=y"], 1, labels=[(1, -1.0, 0.5)])
    ['ccb shared |User a=1', 'ccb action |Action id=x', 'ccb action |Action id=y', 'ccb slot 1:-1.0:0.5 |']
    >>> ccb_lines("", ["|Action id=x"], 1, slot_texts=["|Slot size=big"])[-1]
    'ccb slot |Slot size=big'
    """
    texts = slot_texts or []

    def slot(k: int, head: str) -> str:
        tail = texts[k] if k < len(texts) else "|"
        return f"ccb slot {head} {tail}" if head else f"ccb slot {tail}"

    lines = [f"ccb shared {shared}"] + [f"ccb action {a}" for a in actions]
    if labels is not None:
        lines += [slot(k, f"{i}:{cost!r}:{p!r}") for k, (i, cost, p) in enumerate(labels)]
        return lines
    heads = [str(i) for i in forced or []]
    if include is not None and len(heads) < slots:
        heads.append(",".join(map(str, include)))
    heads += [""] * (slots - len(heads))
    lines += [slot(k, head) for k, head in enumerate(heads)]
    return lines
