"""The VW-backed policy: one choice with ``--cb_explore_adf``, slates with ``--ccb_explore_adf``.

The policy gets already encoded text (see ``bandit.encoding``) and returns, per
slot, the chosen candidate index and the probability it had; those probabilities
are what gets logged and later learned with. VW minimises cost, so a reward r is
learned as cost -r. With SquareCB's ``normalize`` the probabilities VW gives are
re-weighted (``bandit.igw``) before they are sampled and logged; the model is VW's
either way. A workspace is not thread-safe: every call holds the lock.
"""
from __future__ import annotations

import math
import os
import shlex
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
import vowpalwabbit
import pylibvw  # the compiled core that vowpalwabbit.pyvw wraps

from bandit.allocator import pin_mmap_threshold
from bandit.encoding import cb_lines, ccb_lines
from bandit.exploration import Epsilon, SettingError, check_number
from bandit.igw import normalized
from bandit.sampling import sample_index, uniform_draws
from bandit.scaling import Scaler, Scaling, Statistics
from bandit.vw_args import parse_vw_args

VW_POWER_T = 0.5  # VW's own learning-rate decay; not written out, so older models keep their command line
VW_DEFAULT_BITS = 18  # VW's own hash space: 2^18 weights


def sets_bits(vw_args: str) -> bool:
    """Say whether extra VW arguments choose the hash space themselves.

    >>> sets_bits("--power_t 0 -b 20"), sets_bits("--bit_precision=22"), sets_bits("-l 0.1")
    (True, True, False)
    """
    return bool(parse_vw_args(vw_args).values("bit_precision"))


@dataclass(frozen=True)
class PolicySettings:
    """What a policy needs from an experiment spec to build its VW workspace.

    ``hash_bits`` sizes the weight table (2^bits weights, 16 bytes each); VW's
    default of 18 is left out of the command line, so models made before the
    setting existed keep their arguments. A ``-b`` in ``vw_args`` wins.
    """

    slots: int = 1
    exploration: object = field(default_factory=Epsilon)
    interactions: tuple = ("UA", "PA")
    learning_rate: float = 0.5
    vw_args: str = ""
    decay: float = VW_POWER_T  # VW's --power_t: how fast the learning rate shrinks as evidence accumulates
    scaling: Scaling = field(default_factory=Scaling)
    hash_bits: int = VW_DEFAULT_BITS

    def __post_init__(self):
        """Refuse, before any workspace exists, every piece of the command line that is not allowlisted."""
        object.__setattr__(self, "_vw_args", parse_vw_args(self.vw_args).text)  # what VW gets
        for q in self.interactions:
            if not isinstance(q, str):
                raise SettingError("interactions", "must be strings of namespace letters")
            parse_vw_args(f"--interactions {shlex.quote(q)}", "interactions")
        check_number("learning_rate", self.learning_rate, 0, 100, low_open=True)

    @property
    def is_slate(self) -> bool:
        return self.slots > 1

    def identity(self) -> tuple[str, dict]:
        """Return what a model is a function of besides the log: the VW command line and the scaling."""
        return self.args(), self.scaling.to_dict()

    def args(self) -> str:
        """Return the full VW command line for these settings (computed once; settings are frozen)."""
        cached = self.__dict__.get("_args")
        if cached is not None:
            return cached
        parts = ["--ccb_explore_adf" if self.is_slate else "--cb_explore_adf"]
        parts.append(self.exploration.vw_args())
        parts += [f"{'-q' if len(q) == 2 else '--cubic'} {q}" for q in self.interactions]
        parts.append(f"-l {self.learning_rate!r}")
        if self.decay != VW_POWER_T:
            parts.append(f"--power_t {self.decay!r}")
        if self.hash_bits != VW_DEFAULT_BITS and not sets_bits(self._vw_args):
            parts.append(f"-b {self.hash_bits}")
        if self._vw_args:
            parts.append(self._vw_args)
        parts.append("--quiet")
        args = " ".join(parts)
        object.__setattr__(self, "_args", args)
        return args


def validate_settings(settings: PolicySettings) -> None:
    """Construct a throwaway workspace so VW itself vets the (already allowlisted) combination."""
    try:
        ws = vowpalwabbit.Workspace(settings.args())
    except Exception as exc:  # VW raises RuntimeError or its own errors
        raise SettingError("vw_args", f"rejected by Vowpal Wabbit: {exc}") from None
    ws.finish()


def with_slot(shared: str, slot_texts: list[str] | None) -> str:
    """Fold the one slot's features into the shared features, as CCB does for each slot."""
    if not slot_texts or slot_texts[0] == "|":
        return shared
    return f"{shared} {slot_texts[0]}".strip()


# VW keeps a pool of parsed examples, 256 by default, which costs ~7 MB per workspace whatever
# the model; the pool grows on demand, so a small one changes nothing but memory (not the model
# bytes, not a prediction) and a process can hold many more experiments' policies.
MEMORY_ARGS = "--ring_size 8"
pin_mmap_threshold()  # weight tables freed with their policy (bandit.allocator says why)
BASE_BYTES = 1_150_000  # a workspace with an empty model and the small pool, measured
PAGE_BYTES = 4096
SAVED_BYTES_PER_WEIGHT = 20  # roughly, in VW's model file


class Policy:
    """A VW workspace with seeded slate sampling; safe to share between threads.

    Feature text comes in as ``bandit.encoding`` writes it; the policy scales
    numeric features with its settings' ``scaling`` before VW sees them. While a
    standardised feature's statistics are being observed (the first
    ``bandit.scaling.OBSERVE`` examples), learned examples wait, then are learned
    in order; ``waiting`` says how many wait, and a model with waiting examples
    is not worth publishing.
    """

    def __init__(self, settings: PolicySettings, model: bytes | None = None, statistics: dict | None = None,
                 readable_weights: str | None = None):
        """``statistics`` are the standardised features' (see ``statistics()``); ``readable_weights`` is a path
        of ours, never caller text: VW writes the weights there by feature name when the policy closes
        (``bandit.feature_weights``)."""
        self.settings = settings
        self._lock = threading.Lock()
        names = f" --invert_hash {shlex.quote(readable_weights)}" if readable_weights else ""
        self._ws = self._load(model) if model else vowpalwabbit.Workspace(f"{settings.args()} {MEMORY_ARGS}{names}")
        self._model_bytes = len(model) if model else 0
        self._table_bytes = self._ws.num_weights() * self._ws.get_stride() * 4
        self._scaler = Scaler(settings.scaling, Statistics.from_dict(statistics) if statistics else None)
        self._waiting: list[tuple] = []
        self._normalize = getattr(settings.exploration, "normalize", False)

    @staticmethod
    def _load(model: bytes):
        with tempfile.NamedTemporaryFile(suffix=".vw", delete=False) as fh:
            fh.write(model)
        try:
            return vowpalwabbit.Workspace(f"--quiet {MEMORY_ARGS} -i {shlex.quote(fh.name)}")
        finally:
            os.unlink(fh.name)

    def footprint(self) -> int:
        """Estimate the resident bytes of this policy from its weight table and its last saved size.

        Weights live in one table of ``num_weights * stride`` floats that the OS maps in
        page by page; each learned weight lands on a random page, so n of them touch
        about ``pages * (1 - exp(-n / pages))`` pages.
        """
        table = self._table_bytes
        pages = max(1, table // PAGE_BYTES)
        learned = self._model_bytes / SAVED_BYTES_PER_WEIGHT
        return BASE_BYTES + int(table * (1 - math.exp(-learned / pages)))

    def save(self) -> bytes:
        """Return the model as bytes (VW's own format, loadable with ``vw -i``)."""
        fd, path = tempfile.mkstemp(suffix=".vw")
        os.close(fd)
        try:
            with self._lock:
                self._ws.save(path)
            with open(path, "rb") as fh:
                model = fh.read()
            self._model_bytes = len(model)
            return model
        finally:
            os.unlink(path)

    def close(self) -> None:
        with self._lock:
            self._ws.finish()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def statistics(self) -> dict | None:
        """Return the observed statistics of standardised features (None when the scaling needs none)."""
        return self._scaler.statistics.to_dict() if self.settings.scaling.needs_statistics else None

    # The pyvw wrappers build a Python ``Example`` object per line and look up
    # label types through enums on every call, which costs more than VW's own
    # work for 50 candidates. These two go straight to pylibvw; a test checks
    # they give exactly the probabilities of ``Workspace.predict``.
    def _predict(self, lines: list[str]):
        ws = self._ws
        examples = ws._parse("\n".join(lines))
        try:
            pylibvw.vw.predict_multi(ws, examples)
            first = examples[0]
            return first.get_decision_scores() if self.settings.is_slate else first.get_action_scores()
        finally:
            pylibvw.vw._finish_example_multi_ex(ws, examples)

    def _learn(self, lines: list[str]) -> None:
        ws = self._ws
        examples = ws._parse("\n".join(lines))
        try:
            pylibvw.vw.learn_multi(ws, examples)
        finally:
            pylibvw.vw._finish_example_multi_ex(ws, examples)

    def pmf(self, shared: str, actions: list[str]) -> np.ndarray:
        """Return the first slot's probability for every action, in action order."""
        shared, actions = self._scaler.text(shared), self._scaler.texts(actions)
        with self._lock:
            if not self.settings.is_slate:
                return np.asarray(self._explore(self._predict(cb_lines(shared, actions))), dtype=float)
            scores = self._predict(ccb_lines(shared, actions, 1))[0]
        pmf = np.zeros(len(actions))
        for (index, _), prob in zip(scores, self._explore([p for _, p in scores])):
            pmf[index] = prob
        return pmf

    def _explore(self, pmf):
        """Return the probabilities to sample and log: VW's, or normalized inverse-gap weights from them."""
        return normalized(pmf) if self._normalize else pmf

    def choose(self, shared: str, actions: list[str], slots: int, event_id: str,
               slot_texts: list[str] | None = None, slot_excluded: list | None = None) -> list[tuple[int, float]]:
        """Pick ``slots`` distinct actions; return (index, probability) per slot.

        Slot k's probability is conditional on the earlier slots' choices, which is
        what ``--ccb_explore_adf`` learns with. ``slot_texts`` are the slots' own
        features and ``slot_excluded`` the action indices each slot may not take;
        a slot left with no action ends the slate early.
        """
        draws = uniform_draws(event_id, slots)
        shared, actions = self._scaler.text(shared), self._scaler.texts(actions)
        slot_texts = self._scaler.texts(slot_texts) if slot_texts else slot_texts
        if not self.settings.is_slate:
            if slots != 1:
                raise ValueError("slots: this policy chooses one action")
            with self._lock:
                pmf = self._predict(cb_lines(with_slot(shared, slot_texts), actions))
            pmf = self._explore(pmf)
            index = sample_index(pmf, draws[0])
            return [(index, float(pmf[index]))]
        chosen: list[tuple[int, float]] = []
        remaining = list(range(len(actions)))
        for k in range(slots):
            forced = [i for i, _ in chosen]
            allowed = [i for i in remaining if not slot_excluded or i not in slot_excluded[k]]
            if not allowed:
                break
            include = allowed if k or len(allowed) < len(actions) else None
            lines = ccb_lines(shared, actions, k + 1, forced=forced, include=include, slot_texts=slot_texts)
            with self._lock:
                scores = sorted(self._predict(lines)[k])
            probs = self._explore([p for _, p in scores])
            pick = sample_index(probs, draws[k])
            index, prob = scores[pick][0], probs[pick]
            chosen.append((int(index), float(prob)))
            remaining.remove(index)
        return chosen

    def learn(self, shared: str, actions: list[str], chosen: list[tuple[int, float]], rewards: list[float],
              slot_texts: list[str] | None = None) -> None:
        """Learn from one logged decision: per slot (index, logged probability) and reward."""
        if self._scaler.observing:
            self._scaler.observe([shared, *actions, *(slot_texts or [])])
            self._waiting.append((shared, actions, chosen, rewards, slot_texts))
            if not self._scaler.observing:
                waiting, self._waiting = self._waiting, []
                for example in waiting:
                    self._learn_scaled(*example)
            return
        self._learn_scaled(shared, actions, chosen, rewards, slot_texts)

    def _learn_scaled(self, shared, actions, chosen, rewards, slot_texts) -> None:
        scaler = self._scaler
        shared, actions = scaler.text(shared), scaler.texts(actions)
        slot_texts = scaler.texts(slot_texts) if slot_texts else slot_texts
        labels = [(i, -float(r), max(float(p), 1e-6)) for (i, p), r in zip(chosen, rewards)]
        if self.settings.is_slate:
            lines = ccb_lines(shared, actions, len(labels), labels=labels, slot_texts=slot_texts)
        else:
            lines = cb_lines(with_slot(shared, slot_texts), actions, label=labels[0])
        with self._lock:
            self._learn(lines)


def empty_model(settings: PolicySettings) -> bytes:
    """Return a freshly made, untrained model for these settings (VW's own format)."""
    policy = Policy(settings)
    try:
        return policy.save()
    finally:
        policy.close()
