"""Caller text never reaches Vowpal Wabbit unless every option in it is on the allowlist.

The attack table holds every form the audit found (files written, truncated or probed,
outbound connections, process exits) and a few more; each entry point that hands text
to VW must answer it with a 400 naming the field and the option, while a watched folder
gets no new or changed file, a listening socket gets no connection, and the same
process goes on serving.
"""
import json
import os
import socket

import pytest

from bandit.exploration import SettingError
from bandit.vw_args import ALLOWED, MAX_BIT_PRECISION, parse_vw_args
from tests.live import Server, call
from tests.test_experiments_personalizer import Resource
from tests.test_web_dashboard import PASSWORD, Dashboard, Form
from web.cli import cli

# (caller text with {d} = the watched folder and {port} = the listening socket, what the error must name)
ATTACKS = [
    ("-f{d}/model.vw", "-f"), ("-f {d}/model.vw", "-f"), ("--final_regressor={d}/model.vw", "--final_regressor"),
    ("-fmodel.vw", "-f"), ("--power_t 0 -f{d}/model.vw", "-f"), ("--final_reg {d}/model.vw", "--final_reg"),
    ("-p{d}/existing.txt", "-p"), ("--predictions {d}/p.txt", "--predictions"),
    ("-r{d}/raw.txt", "-r"), ("--raw_predictions={d}/raw.txt", "--raw_predictions"),
    ("--extra_metrics {d}/metrics.json", "--extra_metrics"),
    ("--dump_json_weights_experimental {d}/weights.json", "--dump_json_weights_experimental"),
    ("--readable_model {d}/readable.txt", "--readable_model"), ("--invert_hash {d}/inverted.txt", "--invert_hash"),
    ("--audit_regressor {d}/audit.txt", "--audit_regressor"), ("--cache_file {d}/c.cache", "--cache_file"),
    ("-c", "-c"), ("-ct", "-c"), ("--save_per_pass", "--save_per_pass"),
    ("--output_feature_regularizer_text {d}/reg.txt", "--output_feature_regularizer_text"),
    ("--pid_file {d}/pid", "--pid_file"), ("--port_file {d}/port", "--port_file"),
    ("--sendto 127.0.0.1:{port}", "--sendto"), ("--sendto=127.0.0.1:{port}", "--sendto"),
    ("--daemon --port {port}", "--daemon"), ("--port {port}", "--port"),
    ("--span_server 127.0.0.1 --unique_id 1 --total 2 --node 0", "--span_server"),
    ("-i{d}/existing.txt", "-i"), ("-i {d}/missing.txt", "-i"), ("--initial_regressor={d}/existing.txt", "--initial_regressor"),
    ("-d{d}/existing.txt", "-d"), ("--data {d}/missing.txt", "--data"), ("{d}/existing.txt", "is not an option"),
    ("--cb_type mtr {d}/existing.txt", "is not an option"), ("--dictionary U:{d}/existing.txt", "--dictionary"),
    ("--feature_mask {d}/existing.txt", "--feature_mask"), ("--input_feature_regularizer {d}/existing.txt",
                                                             "--input_feature_regularizer"),
    ("--help", "--help"), ("-h", "-h"), ("--version", "--version"), ("--audit", "--audit"), ("-a", "-a"),
    ("--power_t '0 -f {d}/model.vw'", "--power_t"), ("--l2 nan", "--l2"), ("--l2=1e999", "--l2"),
    ("-b 30", "-b"), ("--bit_precision=31", "--bit_precision"), ("--ring_size 100000000", "--ring_size"),
    ("--num_children 8", "--num_children"), ("--passes 1000", "--passes"), ("--testonly", "--testonly"),
]
EXISTING = "a file the server must never read, truncate or reveal\n"


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """A folder (the working directory too) with one file in it, and a socket listening for VW."""
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "existing.txt").write_text(EXISTING)
    monkeypatch.chdir(folder)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield folder, listener


def attacks(watched):
    folder, listener = watched
    port = listener.getsockname()[1]
    return [(text.format(d=folder, port=port), name) for text, name in ATTACKS]


def assert_untouched(watched):
    folder, listener = watched
    assert sorted(os.listdir(folder)) == ["existing.txt"], "Vowpal Wabbit created a file"
    assert (folder / "existing.txt").read_text() == EXISTING, "Vowpal Wabbit touched an existing file"
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


def run_table(watched, attempt, field):
    """Send every attack through ``attempt(text) -> (status, field, message)``; all must be refused."""
    for text, option in attacks(watched):
        status, blamed, message = attempt(text)
        assert (status, blamed) == (400, field), (text, status, blamed, message)
        assert option in message, (text, message)
        assert "can't open" not in message and "No such file" not in message, (text, message)
        assert_untouched(watched)


# -- the parser itself ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("-l0.1 --power_t=0 -q UA -qUA -b 20", "--learning_rate 0.1 --power_t 0 --quadratic UA --bit_precision 20"),
    ("--cb_type mtr --cb_type mtr --l2 1e-6", "--cb_type mtr --l2 1e-6"),
    ("--interactions UAP --cubic ::: --ignore 'UA' --keep P -C -1", "--interactions UAP --cubic ::: --ignore UA "
                                                                    "--keep P --constant -1"),
    ("--adaptive --normalized --invariant --noconstant", "--adaptive --normalized --invariant --noconstant"),
])
def test_allowed_options_come_back_canonical(text, canonical):
    assert parse_vw_args(text).text == canonical


@pytest.mark.parametrize("text, fragment", [
    ("--cb_type mtr --cb_type dr", "twice with different values"),
    ("--adaptive=1", "takes no value"), ("--power_t", "needs a value"), ("-b 25", f"to {MAX_BIT_PRECISION}"),
    ("--interactions UAPX", "2-3 namespace letters"), ("-q 'U A'", "namespace letters"), ("-q -f", "namespace"),
    ("--loss_function hinge2", "must be one of"), ("'unbalanced", "cannot be parsed"), ("-1", "is not an option"),
    ("--epsilon 0x10", "needs a number"), ("--bag 2.5", "needs an integer"), ("x" * 1001, "at most 1000"),
])
def test_malformed_allowed_options_are_refused(text, fragment):
    with pytest.raises(SettingError) as info:
        parse_vw_args(text, "learning.vw_args")
    assert info.value.field == "learning.vw_args" and fragment in info.value.message


def test_ignored_options_are_read_with_their_value_and_dropped():
    parsed = parse_vw_args("--dsjson --cb_explore_adf --epsilon 0.2 --id x --quiet", ignore={"dsjson", "cb_explore_adf",
                                                                                            "id", "quiet"})
    assert parsed.text == "--epsilon 0.2" and parsed.values("epsilon") == ["0.2"]
    with pytest.raises(ValueError):
        parse_vw_args("", ignore={"no_such_option"})


def test_every_allowed_option_is_accepted_by_vowpal_wabbit():
    """The allowlist names only options VW knows, with values of a shape VW takes."""
    import vowpalwabbit

    samples = {"loss_function": "squared", "hash": "all", "cb_type": "mtr", "quadratic": "UA", "cubic": "UAP",
               "interactions": "UA", "ignore": "X", "ignore_linear": "X", "keep": "UAP"}
    exclusive = {"bag", "cover", "softmax", "squarecb", "first", "regcb", "regcbopt", "greedify", "nounif",
                 "psi", "lambda", "gamma_scale", "gamma_exponent", "mellowness", "first_only", "keep", "quantile_tau"}
    for name, option in ALLOWED.items():
        value = None if option.check is None else samples.get(name, "1")
        text = f"--{name}" + ("" if value is None else f" {value}")
        args = parse_vw_args(text).text
        if name in exclusive:  # these need their algorithm or conflict with others; VW knows each name
            args = {"psi": "--cover 2 ", "nounif": "--cover 2 ", "lambda": "--softmax ", "greedify": "--bag 2 ",
                    "gamma_scale": "--squarecb ", "gamma_exponent": "--squarecb ",
                    "mellowness": "--squarecb ", "quantile_tau": "--loss_function quantile "}.get(name, "") + args
        ws = vowpalwabbit.Workspace(f"--cb_explore_adf --quiet {args}")
        ws.finish()


# -- every entry point --------------------------------------------------------------------------------
def error_of(response):
    error = response.get_json()["error"]
    return response.status_code, error.get("field", error.get("target")), error["message"]


@pytest.fixture
def base(shop):
    shop.create("base", slots=2, traffic={"holdout": 0.0})
    return "base"


def test_native_api_create_patch_and_evaluations(client, base, watched):
    run_table(watched, lambda t: error_of(client.post("/v1/experiments", json={"key": "x", "learning": {"vw_args": t}})),
              "learning.vw_args")
    run_table(watched, lambda t: error_of(client.patch(f"/v1/experiments/{base}", json={"learning": {"vw_args": t}})),
              "learning.vw_args")
    run_table(watched, lambda t: error_of(client.post(f"/v1/experiments/{base}/evaluations",
                                                      json={"learning": {"vw_args": t}})), "learning.vw_args")
    for bad in (["U A"], ["UA -f/x"], ["--sendto"]):
        answer = client.post("/v1/experiments", json={"key": "y", "learning": {"interactions": bad}})
        assert error_of(answer)[:2] == (400, "learning.interactions")
    assert_untouched(watched)
    still_serving(client, base)


def still_serving(client, key):
    answer = client.post(f"/v1/experiments/{key}/slate", json={"candidates": [{"id": "a"}, {"id": "b"}]})
    assert answer.status_code == 200 and client.get("/healthz").status_code == 200
    assert client.get(f"/v1/experiments/{key}").get_json()["spec"]["learning"]["vw_args"] == ""


def test_dashboard_new_and_edit(app, client, base, watched):
    app.extensions["silent"]["access"].create_user("alice", PASSWORD)
    board = Dashboard(client)
    board.sign_in()

    def post(path, text):
        values = Form(board.get(path).text).values | {"key": "x", "learning.vw_args": text}
        response = client.post(path, data=values)
        errors = Form(response.text).errors
        return response.status_code, next(iter(errors)).replace("-", ".", 1), " ".join(errors.values())

    run_table(watched, lambda t: post("/new", t), "learning.vw_args")
    run_table(watched, lambda t: post(f"/experiments/{base}/edit", t), "learning.vw_args")
    still_serving(client, base)


def test_cli_create_and_evaluate(app, db_path, runner, base, watched, tmp_path):
    spec_file = tmp_path / "spec.json"

    def run(args, body):
        spec_file.write_text(json.dumps(body))
        result = runner.invoke(cli, [*args, str(spec_file), "--db", db_path])
        return (400 if result.exit_code == 1 else result.exit_code), "learning.vw_args" if "learning.vw_args" in \
            result.output else None, result.output

    run_table(watched, lambda t: run(["experiments", "create"], {"key": "x", "learning": {"vw_args": t}}),
              "learning.vw_args")
    run_table(watched, lambda t: run(["evaluate", base, "--spec"], {"learning": {"vw_args": t}}), "learning.vw_args")
    still_serving(client=app.test_client(), key=base)


def test_personalizer_policy_evaluations_and_model_reset(app, client, watched):
    resource = Resource(client, app)
    before = resource.json("GET", "/configurations/policy", 200)
    prefix = "--cb_explore_adf --epsilon 0.2 -q :: "

    def policy(text):
        return error_of(resource.call("PUT", "/configurations/policy", json={"name": "x", "arguments": prefix + text}))

    def evaluation(text):
        body = {"name": "e", "startTime": "2020-01-01T00:00:00Z", "endTime": "2020-01-02T00:00:00Z",
                "policies": [{"name": "p", "arguments": prefix + text}]}
        return error_of(resource.call("PUT", "/evaluations/e1", json=body))

    run_table(watched, policy, "arguments")
    run_table(watched, evaluation, "policies[0].arguments")
    assert resource.json("GET", "/configurations/policy", 200) == before
    resource.call("DELETE", "/model", 204)  # builds a workspace from the stored, allowlisted settings
    assert resource.rank()["rewardActionId"]
    assert_untouched(watched)


def test_a_real_worker_survives_help_and_version(tmp_path):
    """``--help`` and ``--version`` used to make VW end the gunicorn worker; the same process answers now."""
    server = Server(str(tmp_path / "live.db"), workers=1)
    try:
        assert call(server.base, "POST", "/v1/experiments", {"key": "live", "status": "running"})[0] == 201
        process = call(server.base, "GET", "/healthz")[1]["process"]
        for text in ("--help", "--version", "-h", "--cb_type mtr --help"):
            status, answer = call(server.base, "PATCH", "/v1/experiments/live", {"learning": {"vw_args": text}})
            assert status == 400 and answer["error"]["field"] == "learning.vw_args", answer
        assert call(server.base, "GET", "/healthz")[1]["process"] == process
        status, _ = call(server.base, "POST", "/v1/experiments/live/slate", {"candidates": [{"id": "a"}, {"id": "b"}]})
        assert status == 200
    finally:
        server.stop()


def test_an_old_database_loses_refused_vw_args_on_upgrade_and_says_so(db_path, client, base):
    """Specs saved before the allowlist could hold ``-p <path>``; the upgrade drops it, visibly."""
    import sqlite3

    from experiments.store import Store

    conn = sqlite3.connect(db_path)
    spec = json.loads(conn.execute("SELECT spec FROM experiments WHERE key = 'base'").fetchone()[0])
    spec["learning"]["vw_args"] = "--power_t 0 -p /tmp/predictions.txt"
    conn.execute("UPDATE experiments SET spec = ? WHERE key = 'base'", (json.dumps(spec),))
    conn.execute("DELETE FROM _migrations WHERE name = 'm011_vw_args_allowlist'")
    conn.commit()
    conn.close()
    Store(db_path).close()
    row = client.get("/v1/experiments/base").get_json()
    assert row["spec"]["learning"]["vw_args"] == "" and row["version"] == 2
    last = client.get("/v1/experiments/base/history").get_json()["history"][-1]
    assert last["change"] == {"learning": {"vw_args": ""}} and "-p (--predictions)" in last["actor"]


def test_elim_is_refused_as_a_field_and_as_a_vw_argument(client, base):
    """VW 9's elimination variant returns negative probabilities when candidates tie (see test_bandit_policy)."""
    answer = client.post("/v1/experiments", json={"key": "x", "exploration": {"algorithm": "squarecb", "elim": True}})
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "exploration.elim"
    assert "negative probabilities" in answer.get_json()["error"]["message"]
    answer = client.patch(f"/v1/experiments/{base}", json={"learning": {"vw_args": "--elim"}})
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "learning.vw_args"
    assert "option --elim is not allowed: Vowpal Wabbit 9's elimination" in answer.get_json()["error"]["message"]


def upgrade_stored_spec(db_path: str, key: str, edit, migration=("m014_squarecb", 6)) -> None:
    """Store ``edit(spec)`` as an older version of the code could have, then open the store: the migration
    (SQLite name, PostgreSQL version: that one and those after it, as PostgreSQL applies what follows its
    newest) runs again."""
    from experiments.store import open_store

    store = open_store(db_path)
    spec = store.existing_experiment(key)["spec"]
    edit(spec)
    store.conn.execute("UPDATE experiments SET spec = ? WHERE key = ?", (json.dumps(spec), key))
    name, version = migration
    store.conn.execute("DELETE FROM _migrations WHERE " + (f"version >= {version}" if "://" in db_path else
                                                           f"name = '{name}'"))
    store.close()
    open_store(db_path).close()


@pytest.mark.parametrize("db_path", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("exploration, vw_args, change, why", [
    ({"elim": True}, "", {"exploration": {"elim": False}}, "exploration.elim is off"),
    ({}, "--power_t 0 --elim", {"learning": {"vw_args": ""}}, "option --elim is not allowed"),
])
def test_an_experiment_that_had_elim_loses_it_on_upgrade_and_says_so(db_path, client, base, exploration, vw_args,
                                                                      change, why):
    def edit(spec):
        spec["exploration"].update(exploration)
        spec["learning"]["vw_args"] = vw_args

    upgrade_stored_spec(db_path, base, edit)
    row = client.get(f"/v1/experiments/{base}").get_json()
    assert row["spec"]["exploration"].get("elim", False) is False and row["spec"]["learning"]["vw_args"] == ""
    assert row["version"] == 2
    last = client.get(f"/v1/experiments/{base}/history").get_json()["history"][-1]
    assert last["change"] == change and last["actor"].startswith("upgrade:") and why in last["actor"]
    assert client.post(f"/v1/experiments/{base}/slate", json={"candidates": [{"id": "a"}, {"id": "b"}]}).status_code == 200


@pytest.mark.parametrize("db_path", ["sqlite", "postgresql"], indirect=True)
def test_a_squarecb_experiment_from_before_normalize_keeps_vw_probabilities_on_upgrade(db_path, client, base):
    """``normalize`` is on by default now; a spec stored without it ran VW's probabilities and goes on doing so."""
    def edit(spec):
        spec["exploration"] = {"algorithm": "squarecb", "gamma_scale": 50.0, "gamma_exponent": 0.5, "elim": False}

    upgrade_stored_spec(db_path, base, edit)
    row = client.get(f"/v1/experiments/{base}").get_json()
    assert row["spec"]["exploration"] == {"algorithm": "squarecb", "gamma_scale": 50.0, "gamma_exponent": 0.5,
                                          "elim": False, "normalize": False}
    assert row["version"] == 1  # the experiment does what it did: no new version


def test_docs_list_exactly_the_allowed_options_and_their_example_holds(client):
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    table = text[text.index("| group | options |"):text.index("Values must have")]
    assert set(re.findall(r"`--(\w+)`", table)) == set(ALLOWED)
    body, answer = re.search(r"-d '(\{[^\n]*vw_args[^\n]*\})'\n(\{[^\n]*\})\n", text).groups()
    response = client.post("/v1/experiments", json=json.loads(body))
    assert response.status_code == 400 and response.get_json() == json.loads(answer)
