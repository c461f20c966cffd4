"""Property-based fuzzing of every operation in /openapi.json: no 5xx, every error in the documented shape.

The same driver as ``benchmarks/fuzz.py`` (which runs it longer against a live server),
here in process through Flask with a few cases per operation and pass, seeded.
"""
from benchmarks.fuzz import KEY_HEADER, SETUP, fuzz, load_schema, send_with_key
from tests.test_web_openapi import evaluations_finished
from web.openapi import document
from web.personalizer import personalizer

EXAMPLES = 4  # per operation and pass: positive and negative bodies, real and generated path parameters
SIZE = 4  # most entries of a generated list or object


def test_no_request_gets_a_5xx_and_errors_have_the_documented_shape(app, client):
    with app.app_context():
        key = personalizer().create_resource("news", slots=2)["key"]
    for method, path, body, is_personalizer in SETUP:
        answer = client.open(path, method=method, json=body, headers={KEY_HEADER: key} if is_personalizer else {})
        assert answer.status_code < 300, answer.get_json()
    schema = load_schema(document(), SIZE, app)
    tally = fuzz(schema, send_with_key(key), EXAMPLES, seed=0)
    summary = tally.summary()
    assert summary["server_errors"] == 0 and not tally.failures, tally.failures[:3]
    assert summary["requests"] > 350
    assert client.get("/healthz").status_code == 200
    evaluations_finished(app)
