"""The OpenAPI document at /openapi.json: valid, complete, and true to its examples."""
import re

import pytest
from openapi_spec_validator import validate

from tests.live import wait_for
from web.openapi import PERSONALIZER_VERSIONS, document
from web.personalizer import KEY_HEADER, personalizer

# Routes that are not the public JSON API: the dashboard's pages, static files, and the
# Personalizer catch-all that answers every other path with Personalizer's 404.
NOT_API = re.compile(r"^(dashboard\.|static$|personalizer\.unsupported$)")
VERSIONED = re.compile(r"^/personalizer/(v[^/]+)/")


def described_path(rule: str) -> str:
    """Write a Flask rule the way the document does: ``<int:x>`` -> ``{x}``, path versions -> ``{apiVersion}``."""
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
    version = VERSIONED.match(path)
    if version:
        assert version.group(1) in PERSONALIZER_VERSIONS, f"{rule}: path version missing from the document's enum"
        path = VERSIONED.sub("/personalizer/{apiVersion}/", path)
    return path


def api_routes(app):
    for rule in app.url_map.iter_rules():
        if NOT_API.match(rule.endpoint):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method.lower(), described_path(rule.rule), rule.endpoint


def test_the_document_is_valid_openapi_31_and_served(client):
    validate(document())
    served = client.get("/openapi.json")
    assert served.status_code == 200 and served.get_json()["openapi"] == "3.1.0"


def test_every_route_is_described_and_every_description_is_a_route(app):
    paths = document()["paths"]
    routes = set()
    for method, path, endpoint in api_routes(app):
        routes.add((method, path))
        assert method in paths.get(path, {}), (
            f"{method.upper()} {path} (Flask endpoint {endpoint}) is not described in the OpenAPI document: "
            "add it to web/openapi/native.py (or web/openapi/personalizer.py) with its responses and an example")
    for path, item in paths.items():
        for method in item:
            if method != "parameters":
                assert (method, path) in routes, f"{method.upper()} {path} is described but no route serves it"


# -- the examples, replayed as a story ---------------------------------------------------------
def matches(actual, example, where="answer"):
    """``example`` shows (part of) ``actual``: every key it names, lists element by element; "..." is any value."""
    if example == "...":
        return
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in example.items():
            assert key in actual, f"{where}.{key} is missing from the answer"
            matches(actual[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list) and len(actual) == len(example), f"{where}: {actual!r} vs {example!r}"
        for i, (a, e) in enumerate(zip(actual, example)):
            matches(a, e, f"{where}[{i}]")
    else:
        assert actual == example, f"{where}: answered {actual!r}, documented {example!r}"


def named_examples(operation):
    """Example names of an operation: request examples first, then answer-only ones.

    An operation without examples is called once plainly, unless it needs a body (nothing to send then).
    """
    names = list(operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {}))
    for response in operation["responses"].values():
        for name in response.get("content", {}).get("application/json", {}).get("examples", {}):
            if name not in names:
                names.append(name)
    return names or ([] if operation.get("requestBody", {}).get("required") else [None])


def expected(operation, name):
    """(status, example answer or None) documented for an example name."""
    for status, response in operation["responses"].items():
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        if name in examples:
            return int(status), examples[name]["value"]
    successes = [int(s) for s in operation["responses"] if s.isdigit() and s.startswith("2")]
    assert len(successes) == 1, f"say which status example {name!r} gets"
    return successes[0], None


def request_for(path, item, operation, name):
    values, query = {}, {}
    for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
        chosen = parameter.get("examples", {}).get(name, {}).get("value", parameter.get("example"))
        if parameter["in"] == "path":
            values[parameter["name"]] = chosen
        elif name in parameter.get("examples", {}):
            query[parameter["name"]] = chosen
    bodies = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {})
    return path.format(**values), query, bodies.get(name, {}).get("value")


@pytest.fixture
def resource_key(app):
    with app.app_context():
        return personalizer().create_resource("news", slots=2)["key"]


def evaluations_finished(app):
    """Wait for the background jobs the examples started, so none outlives the test's database."""
    store = app.extensions["silent"]["store"]
    wait_for(lambda: not store.query("SELECT id FROM evaluations WHERE status IN ('queued', 'running')") and not
             store.query("SELECT id FROM personalizer_feature_importances WHERE status = 'running'"), 60)


def test_every_example_is_answered_as_documented(app, client, resource_key):
    for path, item in document()["paths"].items():
        if "{apiVersion}" in path:
            continue  # the same views as the unversioned path
        headers = {KEY_HEADER: resource_key} if path.startswith("/personalizer/") else {}
        for method, operation in item.items():
            if method == "parameters":
                continue
            for name in named_examples(operation):
                url, query, body = request_for(path, item, operation, name)
                response = client.open(url, method=method.upper(), query_string=query, json=body, headers=headers)
                status, answer = expected(operation, name)
                label = f"{method.upper()} {path} example {name!r}"
                assert response.status_code == status, (label, response.get_data(as_text=True)[:500])
                if answer is not None:
                    matches(response.get_json(), answer, label)
    evaluations_finished(app)
