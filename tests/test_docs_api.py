"""docs/api.md is the Markdown rendering of the OpenAPI document the server serves, word for word."""
import pathlib

from web.cli import cli
from web.openapi.markdown import anchor, render

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_the_checked_in_reference_is_the_served_document_rendered(client):
    served = client.get("/openapi.json").get_json()
    assert DOC.read_text() == render(served), "run: silent openapi --format markdown -o docs/api.md"


def test_every_operation_has_a_section_its_index_links_to(client):
    served, text = client.get("/openapi.json").get_json(), DOC.read_text()
    for path, item in served["paths"].items():
        if "{apiVersion}" in path:
            continue
        for method in ("get", "put", "post", "patch", "delete"):
            if method in item:
                assert f"\n### {method.upper()} {path}\n" in text and f"(#{anchor(method, path)})" in text


def test_the_cli_prints_the_document_and_its_rendering(runner):
    rendered = runner.invoke(cli, ["openapi", "--format", "markdown"])
    assert rendered.exit_code == 0 and rendered.output == DOC.read_text()
    assert '"openapi": "3.1.0"' in runner.invoke(cli, ["openapi"]).output
