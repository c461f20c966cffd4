"""Learning settings in the spec: numeric scaling, forgetting (decay), auto-tuning; and what the learner makes of them."""
import json
import math
import os
import pathlib
import re
import tempfile

import pytest
import vowpalwabbit

from bandit.encoding import action_text, cb_lines, context_text
from bandit.scaling import OBSERVE, Scaler, parse_scaling
from experiments.errors import InvalidField
from experiments.spec import apply_patch, parse_spec
from experiments.store import Store, dumps, loads
from tests.conftest import ITEMS
from tests.test_experiments_learner import drive


def test_learning_defaults_log_scale_numbers_keep_vw_decay_and_autotuning_off():
    learning = parse_spec({"key": "k"}).data["learning"]
    assert learning["scaling"] == {"default": "log", "features": {}}
    given = parse_spec({"key": "k", "learning": {"scaling": {"features": {"action.price": "standard"}}}})
    assert given.data["learning"]["scaling"] == {"default": "log", "features": {"action.price": "standard"}}
    assert parse_spec({"key": "k", "kind": "strategies", "arms": [{"id": "a"}, {"id": "b"}]}).data["learning"][
        "learning_rate"] == 0.25 and learning["learning_rate"] == 0.5
    assert learning["decay"] == 0.5
    assert learning["autotune"] == {"enabled": False, "window": 3000, "every": 3000, "budget": 4.0}
    settings = parse_spec({"key": "k", "learning": {"decay": 0.25}}).policy_settings()
    assert "--power_t 0.25" in settings.args()


@pytest.mark.parametrize("learning, field", [
    ({"decay": 1.5}, "learning.decay"),
    ({"decay": "fast"}, "learning.decay"),
    ({"vw_args": "--power_t 0", "decay": 0.2}, "learning.decay"),
    ({"scaling": "log"}, "learning.scaling"),
    ({"scaling": {"default": "cube"}}, "learning.scaling.default"),
    ({"scaling": {"features": {"price": "log"}}}, "learning.scaling.features.price"),
    ({"scaling": {"features": {"action.price": {"buckets": [3, 1]}}}}, "learning.scaling.features.action.price.buckets"),
    ({"autotune": True}, "learning.autotune"),
    ({"autotune": {"enabled": "yes"}}, "learning.autotune.enabled"),
    ({"autotune": {"window": 10}}, "learning.autotune.window"),
    ({"autotune": {"every": 2.5}}, "learning.autotune.every"),
    ({"autotune": {"budget": 0}}, "learning.autotune.budget"),
    ({"autotune": {"speed": 1}}, "learning.autotune.speed"),
])
def test_bad_learning_settings_name_the_field(learning, field):
    with pytest.raises(InvalidField) as err:
        parse_spec({"key": "k", "learning": learning})
    assert err.value.field == field


def test_stored_experiments_keep_raw_numbers_and_vw_decay(tmp_path):
    """Experiments from before scaling existed are migrated to what they did: nothing changes for them."""
    path = str(tmp_path / "old.db")
    store = Store(path)
    old = parse_spec({"key": "old"}).data
    for name in ("decay", "scaling", "autotune"):
        old["learning"].pop(name)
    old["learning"]["vw_args"] = "--power_t 0.1 --cb_type mtr"
    store.conn.execute("INSERT INTO experiments (key, name, kind, status, version, spec, created_at, updated_at)"
                       " VALUES ('old', 'old', 'items', 'running', 1, ?, 0, 0)", (dumps(old),))
    store.conn.execute("DELETE FROM _migrations WHERE name = 'm009_model_scaling'")
    store.close()
    store = Store(path)
    learning = parse_spec(store.existing_experiment("old")["spec"], check_vw=False).data["learning"]
    assert learning["scaling"] == {"default": "raw", "features": {}} and learning["decay"] == 0.5
    assert learning["vw_args"] == "--power_t 0.1 --cb_type mtr" and learning["autotune"]["enabled"] is False
    store.close()


def test_changing_the_scaling_rebuilds_the_model_with_the_new_transform(shop, rng, app):
    shop.create("scaled", reward={"wait_seconds": 1}, learning={"update_seconds": 1, "scaling": {"default": "log"}},
                traffic={"holdout": 0.0})
    drive(shop, "scaled", 30, rng, learn_every=1000)
    shop.learn(seconds=2)
    store = app.extensions["silent"]["store"]
    old = store.latest_model("scaled")
    assert loads(old["features"]) == {"scaling": {"default": "log", "features": {}}, "statistics": None}
    scaling = {"default": "raw", "features": {"action.price": {"buckets": [12, 14]}}}
    shop.client.patch("/v1/experiments/scaled", json={"learning": {"scaling": scaling}})
    shop.learn(seconds=2)
    new = store.latest_model("scaled")
    assert new["version"] == old["version"] + 1 and new["learned"] == 30 and new["args"] == old["args"]
    assert loads(new["features"])["scaling"] == scaling
    assert new["model"] == bare_replay(store, "scaled", parse_scaling(scaling), new["args"])


def bare_replay(store, key, scaling, args, skip=lambda seq, context: False) -> bytes:
    """Feed the logged decisions in log order, scaled with ``scaling``, to a bare VW workspace (except
    those ``skip`` names)."""
    scaler = Scaler(scaling)
    ws = vowpalwabbit.Workspace(args)
    actions = scaler.texts([action_text(item) for item in ITEMS])
    for row in store.query("SELECT seq, context, slate FROM decisions WHERE experiment = ? ORDER BY seq", (key,)):
        if skip(row["seq"], loads(row["context"])):
            continue
        first = loads(row["slate"])[0]
        clicks = [r for r in store.rewards_for([row["seq"]]) if r["slot"] == 0]
        label = (first["index"], -sum(r["value"] for r in clicks), first["probability"])
        ws.learn(cb_lines(scaler.text(context_text(loads(row["context"]))), actions, label=label))
    with tempfile.TemporaryDirectory() as folder:  # store.path is a URL on PostgreSQL
        path = os.path.join(folder, "replay.vw")
        ws.save(path)
        ws.finish()
        with open(path, "rb") as fh:
            return fh.read()


def test_standardised_features_are_learned_and_served_with_the_observed_statistics(shop, rng, app):
    shop.create("standard", reward={"wait_seconds": 1}, learning={"update_seconds": 1, "scaling": {
        "default": "log", "features": {"action.price": "standard"}}}, traffic={"holdout": 0.0})
    store = app.extensions["silent"]["store"]
    drive(shop, "standard", OBSERVE - 10, rng, learn_every=10_000)
    shop.learn(seconds=2)
    assert store.latest_model("standard") is None  # still observing: nothing learned, nothing published
    drive(shop, "standard", 20, rng, learn_every=10_000, start=OBSERVE)
    shop.learn(seconds=2)
    model = store.latest_model("standard")
    assert model["learned"] == OBSERVE + 10
    count, total, squares = loads(model["features"])["statistics"]["moments"]["Action.price"]
    prices = [item["features"]["price"] for item in ITEMS]
    assert count == OBSERVE * len(ITEMS) and total == pytest.approx(OBSERVE * sum(prices))
    mean = sum(prices) / len(prices)
    assert math.sqrt(squares / count - mean * mean) == pytest.approx(math.sqrt(sum((p - mean) ** 2 for p in prices)
                                                                               / len(prices)))
    served = shop.slate("standard", candidates=ITEMS, context={"user": {"segment": "new"}})
    assert served["model_version"] == model["version"]


def test_exploration_and_learning_patches_merge_the_new_objects(shop):
    row = shop.create("merge")
    spec, _ = apply_patch(row["spec"], {"learning": {"autotune": {"enabled": True}}})
    assert spec.learning["autotune"] == {"enabled": True, "window": 3000, "every": 3000, "budget": 4.0}
    assert spec.learning["scaling"] == row["spec"]["learning"]["scaling"]


def test_a_model_row_without_features_is_unscaled(tmp_path):
    """Snapshots published before scaling existed load with raw numbers, as they were learned."""
    from experiments import models

    store = Store(str(tmp_path / "rows.db"))
    assert "features" in {c[1] for c in store.conn.execute("PRAGMA table_info(models)")}
    assert models.scaling({"args": "--cb_explore_adf", "features": None}).is_identity
    store.close()


def test_the_learning_docs_examples_are_valid_patches(shop, client):
    """Every JSON example of docs/learning.md is a PATCH body the API takes."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "learning.md").read_text()
    examples = re.findall(r"```json\n(.*?)```", text, re.S)
    assert len(examples) == 7
    shop.create("documented")
    for example in examples:
        response = client.patch("/v1/experiments/documented", json=json.loads(example))
        assert response.status_code == 200, response.get_json()
