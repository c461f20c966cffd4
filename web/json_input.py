"""Request bodies as JSON values: strict JSON (orjson, no NaN or Infinity), nested at most ``MAX_DEPTH`` deep.

Validators further in walk bodies recursively, so an answer to a body nested a
thousand levels deep would be Python's ``RecursionError``; the depth is refused
here, at the edge, with a 400, without recursion.
"""
from __future__ import annotations

import orjson

from experiments.errors import InvalidField

MAX_DEPTH = 32  # a spec or a slate request nests 5-6 levels; features may nest 8
_CONTAINERS = frozenset((dict, list))  # what orjson makes of objects and arrays (exact types: a hot path)


def parse_json(data: bytes, message: str = "must be valid JSON"):
    """Parse a body; raise ``InvalidField("body")`` when it is not JSON or nests deeper than ``MAX_DEPTH``."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidField("body", f"{message} ({exc})") from None
    check_depth(value)
    return value


def check_depth(value) -> None:
    """Refuse a value with objects or lists nested deeper than ``MAX_DEPTH``.

    >>> check_depth([[[]]])
    >>> check_depth(eval("[" * 40 + "]" * 40))
    Traceback (most recent call last):
    ...
    experiments.errors.InvalidField: body: nested deeper than 32 levels
    """
    stack = [(value, 1)] if type(value) in _CONTAINERS else []  # depth first; only containers are pushed
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidField("body", f"nested deeper than {MAX_DEPTH} levels")
        for inner in item.values() if type(item) is dict else item:
            if type(inner) in _CONTAINERS:
                stack.append((inner, depth + 1))
