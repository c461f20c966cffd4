"""Exploration settings: small validated dataclasses mapped to VW options.

Each algorithm is a dataclass in the ``EXPLORATIONS`` registry; ``parse_exploration``
turns the JSON object of a spec into one, rejecting unknown fields and bad values
with an error that names the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Real


class SettingError(ValueError):
    """A setting with a bad value; ``field`` names it relative to its object."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_number(name, value, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Return a finite number within bounds (as int or float), else raise naming it.

    >>> check_number("slots", 3, 1, 50, integer=True)
    3
    >>> check_number("holdout", 1.0, 0, 1, high_open=True)
    Traceback (most recent call last):
    ...
    bandit.exploration.SettingError: holdout: must be < 1
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise SettingError(name, "must be a finite number")
    if integer and int(value) != value:
        raise SettingError(name, "must be an integer")
    if low is not None and (value <= low if low_open else value < low):
        raise SettingError(name, f"must be {'>' if low_open else '>='} {low}")
    if high is not None and (value >= high if high_open else value > high):
        raise SettingError(name, f"must be {'<' if high_open else '<='} {high}")
    return int(value) if integer else float(value)


ELIM_REFUSED = ("is not supported: Vowpal Wabbit 9's elimination variant returns negative probabilities when "
                "candidates tie, so the logged probabilities would be false; normalize: true sends exploration to "
                "close contenders instead")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise SettingError(name, "must be true or false")


@dataclass(frozen=True)
class Epsilon:
    """Epsilon-greedy: the greedy action plus epsilon spread uniformly."""

    epsilon: float = 0.1

    def validate(self):
        check_number("epsilon", self.epsilon, 0, 1)

    def vw_args(self) -> str:
        return f"--epsilon {self.epsilon!r}"


@dataclass(frozen=True)
class SquareCB:
    """SquareCB (Foster & Rakhlin): exploration shrinks as the regression improves.

    ``normalize`` keeps VW's model and solves the probability scale instead of fixing
    it at the number of candidates (``bandit.igw``), so exploration goes to close
    contenders rather than spreading thin over every candidate. ``elim`` is still read
    (specs stored it false) but only false is allowed: VW 9's elimination variant
    returns negative probabilities when candidates tie.
    """

    gamma_scale: float = 1000.0  # with normalize; chosen on the simulated shop (docs/learning.md)
    gamma_exponent: float = 0.5
    normalize: bool = True  # specs stored before it existed say false (store migration m014 / v6)
    elim: bool = dataclasses.field(default=False, metadata={"retired": True})  # read, never written

    def validate(self):
        check_number("gamma_scale", self.gamma_scale, 0, low_open=True)
        check_number("gamma_exponent", self.gamma_exponent, 0)
        _check_bool("elim", self.elim)
        _check_bool("normalize", self.normalize)
        if self.elim:
            raise SettingError("elim", ELIM_REFUSED)

    def vw_args(self) -> str:
        return f"--squarecb --gamma_scale {self.gamma_scale!r} --gamma_exponent {self.gamma_exponent!r}"


@dataclass(frozen=True)
class Bag:
    """Online bootstrap: ``bag`` policies vote, disagreement explores."""

    bag: int = 5
    epsilon: float = 0.0
    greedify: bool = False

    def validate(self):
        check_number("bag", self.bag, 1, 100, integer=True)
        check_number("epsilon", self.epsilon, 0, 1)
        _check_bool("greedify", self.greedify)

    def vw_args(self) -> str:
        args = f"--bag {int(self.bag)} --epsilon {self.epsilon!r}"
        return args + (" --greedify" if self.greedify else "")


@dataclass(frozen=True)
class Softmax:
    """Softmax over scores with inverse temperature ``lambda``."""

    lambda_: float = 10.0

    def validate(self):
        check_number("lambda", self.lambda_, 0, low_open=True)

    def vw_args(self) -> str:
        return f"--softmax --lambda {self.lambda_!r}"


@dataclass(frozen=True)
class Cover:
    """Online cover: ``cover`` policies chosen to disagree, plus ``psi`` regularisation."""

    cover: int = 3
    psi: float = 1.0
    nounif: bool = False

    def validate(self):
        check_number("cover", self.cover, 1, 100, integer=True)
        check_number("psi", self.psi, 0)
        _check_bool("nounif", self.nounif)

    def vw_args(self) -> str:
        args = f"--cover {int(self.cover)} --psi {self.psi!r}"
        return args + (" --nounif" if self.nounif else "")


EXPLORATIONS = {
    "epsilon": Epsilon,
    "squarecb": SquareCB,
    "bag": Bag,
    "softmax": Softmax,
    "cover": Cover,
}

# JSON names that are Python keywords map to dataclass fields with a trailing underscore.
_FIELD_ALIASES = {"lambda": "lambda_"}


def parse_exploration(data: dict):
    """Build a validated exploration dataclass from its JSON object.

    >>> parse_exploration({"algorithm": "squarecb", "gamma_scale": 10}).vw_args()
    '--squarecb --gamma_scale 10 --gamma_exponent 0.5'
    >>> parse_exploration({"algorithm": "epsilon", "epsilon": 2})
    Traceback (most recent call last):
    ...
    bandit.exploration.SettingError: epsilon: must be <= 1
    """
    if not isinstance(data, dict):
        raise SettingError("", "must be an object")
    algorithm = data.get("algorithm", "epsilon")
    if not isinstance(algorithm, str) or algorithm not in EXPLORATIONS:
        raise SettingError("algorithm", f"must be one of {', '.join(EXPLORATIONS)}")
    cls = EXPLORATIONS[algorithm]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key == "algorithm":
            continue
        attr = _FIELD_ALIASES.get(key, key)
        if attr not in names:
            raise SettingError(key, f"unknown setting for {algorithm}")
        kwargs[attr] = value
    setting = cls(**kwargs)
    setting.validate()
    return setting


def exploration_to_dict(setting) -> dict:
    """Return the JSON object of an exploration dataclass (inverse of ``parse_exploration``)."""
    name = next(k for k, v in EXPLORATIONS.items() if isinstance(setting, v))
    reverse = {v: k for k, v in _FIELD_ALIASES.items()}
    out = {"algorithm": name}
    for f in dataclasses.fields(setting):
        if not f.metadata.get("retired"):
            out[reverse.get(f.name, f.name)] = getattr(setting, f.name)
    return out
