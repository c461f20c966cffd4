"""Extra Vowpal Wabbit arguments from a caller: parsed like VW parses them, checked against an allowlist.

VW acts on whatever its command line says: ``-f<path>`` writes a file, ``--sendto``
opens a socket, a bare word is read as a data file, ``--help`` ends the process.
So caller text never reaches VW as it was written. ``parse_vw_args`` reads it the
way VW's own parser does (``--opt value``, ``--opt=value``, ``-xVALUE``, repeats,
bare words), accepts only the learning options in ``ALLOWED`` with values of a
checked shape, and returns the canonical command line (long names, one option
per value) that is what VW then gets. Anything else raises ``SettingError``
naming the option as the caller wrote it. VW 9 takes no abbreviations
(``--final_reg`` is not ``--final_regressor``), and neither does this parser.
"""
from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from typing import Callable

from bandit.exploration import SettingError

MAX_BIT_PRECISION = 24  # 2**24 weights: 256 MB of address space per workspace; VW's default is 18
MAX_INTERACTION_ORDER = 3  # pairs and triples; every extra order multiplies the work per example
MAX_LENGTH = 1000

_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


# -- value shapes ------------------------------------------------------------------------------
def number(low: float | None = None, high: float | None = None, integer: bool = False) -> Callable[[str], str]:
    """A checker for a number written in plain decimal (no nan, inf or hex) within bounds."""

    def check(text: str) -> str:
        if not _NUMBER.match(text) or (integer and not re.match(r"^\+?\d+$", text)):
            raise ValueError(f"needs {'an integer' if integer else 'a number'}, not {text!r}")
        value = float(text)
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"must be from {low} to {high}, not {text}")
        return str(int(text)) if integer else text

    return check


def choice(*values: str) -> Callable[[str], str]:
    """A checker for one of a few words."""

    def check(text: str) -> str:
        if text not in values:
            raise ValueError(f"must be one of {', '.join(values)}, not {text!r}")
        return text

    return check


def namespaces(low: int, high: int) -> Callable[[str], str]:
    """A checker for namespace letters (``UA``, ``::``): letters, digits, ``_`` or ``:``."""

    def check(text: str) -> str:
        if not low <= len(text) <= high or not all(c.isalnum() or c in "_:" for c in text):
            size = f"{low}" if low == high else f"{low}-{high}"
            raise ValueError(f"needs {size} namespace letters (letters, digits, '_' or ':'), not {text!r}")
        return text

    return check


@dataclass(frozen=True)
class Option:
    """One VW option: its long name, short letter, value checker (None: a switch) and repeatability."""

    name: str
    check: Callable[[str], str] | None = None
    short: str | None = None
    repeats: bool = False


_ORDER = namespaces(2, MAX_INTERACTION_ORDER)
ALLOWED = {option.name: option for option in [
    # learning rate and its schedule
    Option("learning_rate", number(0, 100), short="l"),
    Option("power_t", number(0, 10)),
    Option("initial_t", number(0, 1e9)),
    Option("decay_learning_rate", number(0, 10)),
    Option("adaptive"), Option("normalized"), Option("invariant"), Option("sgd"),
    Option("loss_function", choice("squared", "classic", "logistic", "hinge", "quantile", "poisson")),
    Option("quantile_tau", number(0, 1)),
    # features: interactions, namespaces ignored or kept, hashing, the constant
    Option("quadratic", namespaces(2, 2), short="q", repeats=True),
    Option("cubic", namespaces(3, 3), repeats=True),
    Option("interactions", _ORDER, repeats=True),
    Option("leave_duplicate_interactions"),
    Option("ignore", namespaces(1, 64), repeats=True),
    Option("ignore_linear", namespaces(1, 64), repeats=True),
    Option("keep", namespaces(1, 64), repeats=True),
    Option("noconstant"),
    Option("constant", number(-1e6, 1e6), short="C"),
    Option("hash", choice("strings", "all")),
    Option("bit_precision", number(1, MAX_BIT_PRECISION, integer=True), short="b"),
    Option("random_seed", number(0, 2**31 - 1, integer=True)),
    # regularisation
    Option("l1", number(0, 1e3)), Option("l2", number(0, 1e3)), Option("no_bias_regularization"),
    # exploration and the contextual-bandit estimator
    Option("cb_type", choice("ips", "dm", "dr", "mtr", "sm")),
    Option("epsilon", number(0, 1)),
    Option("first", number(1, 1e6, integer=True)),
    Option("first_only"),
    Option("bag", number(1, 100, integer=True)), Option("greedify"),
    Option("cover", number(1, 100, integer=True)), Option("psi", number(0, 1e3)), Option("nounif"),
    Option("softmax"), Option("lambda", number(-1e3, 1e3)),
    Option("squarecb"), Option("gamma_scale", number(0, 1e6)), Option("gamma_exponent", number(0, 10)),
    Option("mellowness", number(0, 1e3)),
    Option("cb_min_cost", number(-1e6, 1e6)), Option("cb_max_cost", number(-1e6, 1e6)),
    Option("regcb"), Option("regcbopt"),
]}

# Options refused with a reason (anything else unknown is refused too). They are also what
# ``ignore`` may name: an ignored option is read with its value and dropped.
_FILE = "it reads or writes files on the server"
_REFUSED = {
    "final_regressor": (True, _FILE, "f"), "initial_regressor": (True, _FILE, "i"), "data": (True, _FILE, "d"),
    "predictions": (True, _FILE, "p"), "raw_predictions": (True, _FILE, "r"), "cache_file": (True, _FILE, None),
    "cache": (False, _FILE, "c"), "readable_model": (True, _FILE, None), "invert_hash": (True, _FILE, None),
    "extra_metrics": (True, _FILE, None), "dump_json_weights_experimental": (True, _FILE, None),
    "audit_regressor": (True, _FILE, None), "dictionary": (True, _FILE, None),
    "dictionary_path": (True, _FILE, None), "feature_mask": (True, _FILE, None),
    "input_feature_regularizer": (True, _FILE, None), "output_feature_regularizer_binary": (True, _FILE, None),
    "output_feature_regularizer_text": (True, _FILE, None), "pid_file": (True, _FILE, None),
    "port_file": (True, _FILE, None), "save_per_pass": (False, _FILE, None),
    "sendto": (True, "it opens network connections", None), "daemon": (False, "it opens a server socket", None),
    "port": (True, "it opens a server socket", None), "span_server": (True, "it opens network connections", None),
    "help": (False, "it ends the server process", "h"), "version": (False, "it ends the server process", None),
    "audit": (False, "it writes to the server's output", "a"),
    "dsjson": (False, "the service chooses the example format", None),
    "json": (False, "the service chooses the example format", None),
    "cb_explore_adf": (False, "the service chooses the reduction from the experiment's slots", None),
    "ccb_explore_adf": (False, "the service chooses the reduction from the experiment's slots", None),
    "cb_adf": (False, "the service chooses the reduction from the experiment's slots", None),
    "quiet": (False, "the service sets it", None),
    "testonly": (False, "it stops learning", "t"),
    "elim": (False, "Vowpal Wabbit 9's elimination variant returns negative probabilities when candidates tie", None),
    "save_resume": (False, "the service saves models its own way", None),
    "preserve_performance_counters": (False, "the service saves models its own way", None),
    "id": (True, "the service names models its own way", None),
    # reductions VW stacks under the contextual-bandit ones and records in every saved model
    "csoaa_ldf": (True, "the service chooses the reduction from the experiment's slots", None),
    "csoaa_rank": (False, "the service chooses the reduction from the experiment's slots", None),
    "cb_sample": (False, "the service chooses the reduction from the experiment's slots", None),
}
_SHORT = {option.short: name for name, option in ALLOWED.items() if option.short}
_SHORT.update({short: name for name, (_, _, short) in _REFUSED.items() if short})


@dataclass(frozen=True)
class VwArgs:
    """Parsed, allowed options in the caller's order: (long name, canonical value or None)."""

    options: tuple[tuple[str, str | None], ...] = ()

    @property
    def text(self) -> str:
        """The canonical command line: long names, ``--name value`` per value."""
        return " ".join(f"--{name}" if value is None else f"--{name} {value}" for name, value in self.options)

    def values(self, name: str) -> list[str]:
        """Every value given for an option (switches give ``[None]``)."""
        return [value for option, value in self.options if option == name]


def parse_vw_args(text: str, field: str = "vw_args", ignore=frozenset()) -> VwArgs:
    """Parse caller text into allowed VW options; raise ``SettingError(field, ...)`` naming any other.

    ``ignore`` names options (long names of allowed or refused ones) that are read with
    their value and dropped, for command lines written for another service.

    >>> parse_vw_args("-l0.1 --power_t=0 -q UA -qUA -b 20").text
    '--learning_rate 0.1 --power_t 0 --quadratic UA --bit_precision 20'
    >>> parse_vw_args("--cb_type mtr -f/tmp/model")
    Traceback (most recent call last):
    ...
    bandit.exploration.SettingError: vw_args: option -f (--final_regressor) is not allowed: it reads or writes files on the server
    """
    unknown = set(ignore) - set(ALLOWED) - set(_REFUSED)
    if unknown:
        raise ValueError(f"ignore names options this parser does not know: {sorted(unknown)}")
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise SettingError(field, f"must be a string of at most {MAX_LENGTH} characters")
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise SettingError(field, f"cannot be parsed: {exc}") from None
    options: list[tuple[str, str | None]] = []
    i = 0
    while i < len(tokens):
        spelled, name, attached = _split(tokens[i], field)
        i += 1
        takes_value = _takes_value(name)
        value = attached
        if takes_value and value is None:
            if i >= len(tokens):
                raise SettingError(field, f"option {spelled} needs a value")
            value, i = tokens[i], i + 1
        if name in ignore:
            continue
        _refuse_unless_allowed(spelled, name, field)
        options.append((name, _checked(spelled, ALLOWED[name], value, field)))
    return VwArgs(_merge(options, field))


def _split(token: str, field: str) -> tuple[str, str, str | None]:
    """Return (the option as written, its long name, an attached value or None)."""
    if token.startswith("--") and len(token) > 2:
        name, eq, attached = token[2:].partition("=")
        return f"--{name}", name, attached if eq else None
    if token.startswith("-") and len(token) > 1 and not _NUMBER.match(token):
        letter, attached = token[1], token[2:]
        name = _SHORT.get(letter)
        if name is None:
            raise SettingError(field, f"option -{letter} is not allowed")
        return f"-{letter}", name, attached or None
    raise SettingError(field, f"{token!r} is not an option: Vowpal Wabbit would read a bare word as a data "
                              "file, so none is allowed")


def _takes_value(name: str) -> bool:
    if name in ALLOWED:
        return ALLOWED[name].check is not None
    return _REFUSED.get(name, (False,))[0]


def _refuse_unless_allowed(spelled: str, name: str, field: str) -> None:
    if name in ALLOWED:
        return
    label = spelled if spelled == f"--{name}" else f"{spelled} (--{name})"
    reason = _REFUSED.get(name)
    if reason:
        raise SettingError(field, f"option {label} is not allowed: {reason[1]}")
    raise SettingError(field, f"option {label} is not allowed: the Vowpal Wabbit options allowed here are "
                              f"{', '.join('--' + n for n in ALLOWED)}")


def _checked(spelled: str, option: Option, value: str | None, field: str) -> str | None:
    if option.check is None:
        if value is not None:
            raise SettingError(field, f"option {spelled} is a switch and takes no value")
        return None
    try:
        return option.check(value)
    except ValueError as exc:
        raise SettingError(field, f"option {spelled} {exc}") from None


def _merge(options: list[tuple[str, str | None]], field: str) -> tuple:
    """Drop exact repeats; a single-valued option given twice with different values is an error."""
    seen: dict[str, str | None] = {}
    out = []
    for name, value in options:
        if name in seen and not ALLOWED[name].repeats:
            if seen[name] != value:
                raise SettingError(field, f"option --{name} is given twice with different values "
                                          f"({seen[name]} and {value})")
            continue
        if (name, value) in out:
            continue
        seen[name] = value
        out.append((name, value))
    return tuple(out)
