"""The learning-quality table in docs/learning.md and benchmarks/README.md is the recorded grid of ``benchmarks/learning.py``.

The grid itself (80 runs at 20,000 page views) is far too slow for the test suite; its runs are
recorded in ``benchmarks/learning-runs.jsonl`` (``--runs``). These tests keep the published tables equal
to those records and the records true to the current defaults, so changing a default without
re-running the grid fails here.
"""
import pathlib

from benchmarks.learning import GOALS, build_report, comparison_table, markdown_table, recorded_rows, recorded_runs
from bandit.exploration import parse_exploration
from bandit.simulation import SCENARIOS
from experiments.spec import DEFAULTS, parse_spec
from experiments.store.migrations import WATCH_BEFORE_DEFAULT

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = ROOT / "benchmarks" / "learning-runs.jsonl"
SETTINGS_RUNS = ROOT / "benchmarks" / "learning-settings-runs.jsonl"  # other settings, auto-tuning off
HELDOUT_RUNS = ROOT / "benchmarks" / "learning-heldout-runs.jsonl"  # seeds 10-19: defaults not chosen on them
PUBLISHED = ("README.md", "docs/learning.md", "benchmarks/README.md")


def recorded_report() -> dict:
    return build_report(recorded_runs(str(RUNS)), 20_000, list(range(10)), list(GOALS), {})


def test_every_published_learning_table_is_the_recorded_grid():
    table = markdown_table(recorded_report())
    for name in PUBLISHED:
        assert table in (ROOT / name).read_text(), f"{name}: learning table differs from {RUNS.name} (--table)"


def test_the_published_comparison_of_learning_settings_is_the_recorded_runs():
    table = comparison_table(recorded_rows(str(RUNS)) + recorded_rows(str(SETTINGS_RUNS)))
    for name in ("docs/learning.md", "benchmarks/README.md"):
        assert table in (ROOT / name).read_text(), f"{name}: comparison differs from the run files (--compare)"


def test_the_published_check_on_held_out_seeds_is_the_recorded_runs():
    table = comparison_table(recorded_rows(str(HELDOUT_RUNS)))
    assert "| defaults | 10–19 |" in table
    for name in ("docs/learning.md", "benchmarks/README.md"):
        assert table in (ROOT / name).read_text(), f"{name}: held-out comparison differs from {HELDOUT_RUNS.name}"


def current_defaults(scenario: str, learning: dict | None = None, exploration: dict | None = None) -> dict:
    """The spec defaults a run of ``scenario`` gets (some are by kind), with ``learning`` and ``exploration`` over them."""
    kind = SCENARIOS[scenario]["kind"]
    return parse_spec({"key": "d", "kind": kind, "arms": [{"id": "a"}, {"id": "b"}] if kind == "strategies" else [],
                       "learning": learning or {}, **({"exploration": exploration} if exploration else {})}).data


def same_exploration(a: dict, b: dict) -> bool:
    """Compare as settings: a field added later, absent from an older record, means its default."""
    return parse_exploration(a["exploration"]) == parse_exploration(b["exploration"])


ABSENT = {"drift_watch": WATCH_BEFORE_DEFAULT}  # a record from before a field whose default changed since


def same_learning(recorded: dict, expected: dict) -> bool:
    """Compare as settings: a field added later, absent from an older record, means what a spec stored
    without it is upgraded to (its first default; the expected run must have that there). ``hash_bits`` is
    sized per experiment; ``forget`` is written by the run itself where the drift watch is on."""
    fields = set(recorded) - {"hash_bits", "forget"}
    later = set(expected) - set(recorded) - {"hash_bits", "forget"}
    return ({k: recorded[k] for k in fields} == {k: expected.get(k) for k in fields}
            and all(expected[k] == ABSENT.get(k, DEFAULTS["learning"][k]) for k in later))


def test_recorded_runs_used_the_current_defaults_and_replayed_identically():
    runs = recorded_runs(str(RUNS))
    assert runs
    for run in runs:
        settings = run["final_settings"]
        assert run["replay"] and all(check["identical"] for check in run["replay"]), run["seed"]
        if not run["autotune"]:  # an auto-tuned run ends on settings it chose
            defaults = current_defaults(run["scenario"])
            assert same_exploration(settings, defaults) and same_learning(settings["learning"], defaults["learning"]), (
                f"{run['scenario']} seed {run['seed']} ran other defaults: re-run the grid")


def test_runs_of_other_settings_differ_from_the_current_defaults_only_in_those_settings():
    for row in recorded_rows(str(SETTINGS_RUNS)) + recorded_rows(str(HELDOUT_RUNS)):
        case, settings = row["case"], row["run"]["final_settings"]
        expected = current_defaults(case["scenario"], case["learning"], case.get("exploration"))
        assert not case["autotune"] and same_exploration(settings, expected), case
        assert same_learning(settings["learning"], expected["learning"]), (
            f"{case}: ran other settings than these over the current defaults: re-run it")
