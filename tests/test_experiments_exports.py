"""CSV and DSJSON exports on a real SQLite log, read back by csv and by Vowpal Wabbit itself."""
import csv
import io
import json
import math

import pytest
import vowpalwabbit

from bandit.encoding import action_text, context_text
from bandit.exploration import Softmax
from bandit.policy import Policy, PolicySettings
from bandit.scaling import parse_scaling
from experiments.errors import InvalidField, NotFound
from experiments.reporting.exports import CSV_COLUMNS, export
from tests.test_experiments_reports import T0, create, log_decisions, log_rewards, store  # noqa: F401

CONTEXTS = [{"user": {"segment": "new", "age": 31}, "page": {"type": "home"}, "hour": 9},
            {"user": {"segment": "loyal | vip", "tags": ["a b", "c:d"]}}]


def one_slot_log(store, n=40):
    create(store, reward={"default": 0.0}, learning={"scaling": {"default": "log"}})
    log_decisions(store, "exp", [{"seq": i + 1, "variant": "bandit" if i % 3 else "holdout", "at": i * 60,
                                  "slate": [(i % 4, 0.25 + 0.5 * (i % 2))], "context": CONTEXTS[i % 2]}
                                 for i in range(n)])
    log_rewards(store, "exp", [(i + 1, "click", 0, 1.0, 0, 0) for i in range(0, n, 3)]
                + [(2, "purchase", 0, 10.0, 1, 0), (5, "review", None, 2.0, 0, 0)])


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_joins_each_decision_with_its_rewards(store):
    one_slot_log(store)
    out = io.StringIO()
    assert export(store, "exp", "csv", out) == 40
    rows = read_csv(out.getvalue())
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 40
    first, second, fifth = rows[0], rows[1], rows[4]
    assert first["event_id"] == "exp-1" and first["created_at"] == "2026-01-01T00:00:00.000Z"
    assert json.loads(first["slate"]) == ["sku-0"] and json.loads(first["probabilities"]) == [0.25]
    assert float(first["reward"]) == 1.0 and first["rewarded"] == "1"
    assert json.loads(first["reward_types"]) == {"click": 1}
    assert float(second["reward"]) == 0.0 and second["late_rewards"] == "1" and second["rewarded"] == "0"
    assert fifth["unattributed_rewards"] == "1" and json.loads(fifth["reward_types"]) == {"review": 1}
    assert json.loads(first["context"]) == CONTEXTS[0] and first["candidates"] == "4"


def test_export_range_and_errors(store):
    one_slot_log(store)
    out = io.StringIO()
    assert export(store, "exp", "csv", out, start=T0 + 600, end=T0 + 1200) == 10
    with pytest.raises(InvalidField) as err:
        export(store, "exp", "xlsx", io.StringIO())
    assert err.value.field == "format"
    with pytest.raises(InvalidField) as err:
        export(store, "exp", "csv", io.StringIO(), start="soon")
    assert err.value.field == "from"
    with pytest.raises(NotFound):
        export(store, "missing", "csv", io.StringIO())


def test_dsjson_is_read_by_vw_one_example_per_decision(store, tmp_path):
    one_slot_log(store)
    path = tmp_path / "log.json"
    progress = []
    with open(path, "w") as fh:
        export(store, "exp", "dsjson", fh, progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (40, 40)
    lines = path.read_text().splitlines()
    assert len(lines) == 40
    line = json.loads(lines[0])
    assert line["_label_cost"] == -1.0 and line["_label_probability"] == 0.25 and line["_label_Action"] == 1
    # numbers are exported as the service learns them: log-scaled here
    assert line["c"]["User"] == {"segment=new": 1, "age": math.log1p(31.0)}
    assert line["c"]["Context"] == {"hour": math.log1p(9.0)}
    assert line["c"]["_multi"][2] == {"Action": {"id=sku-2": 1, "category=c0": 1}}
    ws = vowpalwabbit.Workspace("--dsjson --cb_explore_adf -q UA --quiet")
    for text in lines:
        example = ws.parse(text)
        ws.learn(example)
        ws.finish_example(example)
    assert ws.get_weighted_examples() == 40
    ws.finish()
    ws = vowpalwabbit.Workspace(f"--dsjson --cb_explore_adf --quiet -d {path}")
    ws.run_parser()
    assert ws.get_weighted_examples() == 40
    ws.finish()


def test_dsjson_features_are_the_ones_the_service_learns(store):
    """A VW model trained on the export predicts exactly like one trained on the service's own encoding."""
    one_slot_log(store)
    out = io.StringIO()
    export(store, "exp", "dsjson", out)
    settings = PolicySettings(exploration=Softmax(lambda_=5.0), interactions=("UA",),
                              scaling=parse_scaling({"default": "log"}))
    ours, theirs = Policy(settings), vowpalwabbit.Workspace(settings.args() + " --dsjson")
    candidates = [{"id": f"sku-{i}", "features": {"category": f"c{i % 2}"}} for i in range(4)]
    actions = [action_text(c) for c in candidates]
    for text in out.getvalue().splitlines():
        line = json.loads(text)
        context = CONTEXTS[0] if "Page" in line["c"] else CONTEXTS[1]
        ours.learn(context_text(context), actions, [(line["_labelIndex"], line["_label_probability"])],
                   [-line["_label_cost"]])
        example = theirs.parse(text)
        theirs.learn(example)
        theirs.finish_example(example)
    probe = json.loads(out.getvalue().splitlines()[0])
    example = theirs.parse(json.dumps(probe))
    assert theirs.predict(example) == pytest.approx(list(ours.pmf(context_text(CONTEXTS[0]), actions)), abs=1e-6)
    theirs.finish_example(example)
    theirs.finish()


def test_dsjson_slates_are_read_by_vw_ccb(store, tmp_path):
    create(store, slots=2, reward={"default": 0.0})
    log_decisions(store, "exp", [{"seq": i + 1, "variant": "bandit", "at": i, "context": CONTEXTS[0],
                                  "slate": [(i % 4, 0.4), ((i + 1) % 4, 0.5)]} for i in range(12)])
    log_rewards(store, "exp", [(1, "click", 1, 1.0, 0, 0)])
    path = tmp_path / "slates.json"
    with open(path, "w") as fh:
        assert export(store, "exp", "dsjson", fh) == 12
    first = json.loads(path.read_text().splitlines()[0])
    assert [o["_label_cost"] for o in first["_outcomes"]] == [0.0, -1.0]
    assert [o["_a"] for o in first["_outcomes"]] == [[0], [1]] and len(first["c"]["_slots"]) == 2
    ws = vowpalwabbit.Workspace(f"--dsjson --ccb_explore_adf -q UA --quiet -d {path}")
    ws.run_parser()
    assert ws.get_weighted_examples() == 12
    ws.finish()
