"""The OpenAPI document as Markdown: ``docs/api.md`` is this rendering, checked in and kept equal by a test.

One section per operation (who may call it, parameters, request and answer examples) and
one per schema (its fields, their types and bounds), in the document's own order, so the
reference can never say something the served ``/openapi.json`` does not.
"""
from __future__ import annotations

import json

METHODS = ("get", "put", "post", "patch", "delete")
HEADER = ("<!-- Generated from the OpenAPI document (GET /openapi.json) by "
          "`silent openapi --format markdown -o docs/api.md`; edit web/openapi, not this file. -->")


def render(document: dict) -> str:
    """Return the whole reference as Markdown text."""
    paths = document["paths"]
    native = [p for p in paths if not p.startswith("/personalizer")]
    personalizer = [p for p in paths if p.startswith("/personalizer") and "{apiVersion}" not in p]
    versioned = [p for p in paths if "{apiVersion}" in p]
    out = [HEADER, "", f"# {document['info']['title']} API reference", "", document["info"]["description"], "",
           "## Authentication", ""]
    for name, scheme in document["components"]["securitySchemes"].items():
        out += [f"- **{name}**: {scheme['description']}"]
    out += ["", "## Operations", ""]
    out += [f"- [`{method.upper()} {path}`](#{anchor(method, path)}): {op['summary']}"
            for path in native + personalizer for method, op in _operations(paths[path])]
    out += ["", "## Native API", ""]
    for path in native:
        out += _path(path, paths[path])
    out += ["## Personalizer API", "",
            f"Every path below also answers under `/personalizer/{{apiVersion}}/...` ({len(versioned)} versioned "
            "forms; the versions are listed in each one's `apiVersion` parameter).", ""]
    for path in personalizer:
        out += _path(path, paths[path])
    out += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        out += _schema(name, schema)
    return "\n".join(out).rstrip() + "\n"


def anchor(method: str, path: str) -> str:
    """The GitHub heading anchor of an operation's ``### METHOD path`` heading."""
    text = f"{method} {path}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def _operations(item: dict):
    return [(method, item[method]) for method in METHODS if method in item]


def _who(op: dict) -> str:
    security = op.get("security")
    if security == []:
        return "anyone (no key)"
    if "x-roles" in op:
        return "API key with role " + ", ".join(f"`{role}`" for role in op["x-roles"])
    names = [name for entry in security or [] for name in entry]
    return ", ".join(f"`{name}`" for name in names) or "see Authentication"


def _path(path: str, item: dict) -> list[str]:
    out = []
    for method, op in _operations(item):
        out += [f"### {method.upper()} {path}", "", op["summary"] + ".", "", f"Who: {_who(op)}.", ""]
        parameters = item.get("parameters", []) + op.get("parameters", [])
        if parameters:
            out += ["| parameter | in | required | what |", "|---|---|---|---|"]
            out += [f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                    f"{_cell(p.get('description', _type(p.get('schema', {}))))} |" for p in parameters]
            out += [""]
        body = op.get("requestBody")
        if body:
            for media, content in body["content"].items():
                out += [f"Request body ({media}): {_type(content.get('schema', {}))}.", ""]
                out += _examples(content)
        out += ["Answers:", ""]
        for status, answer in op["responses"].items():
            kinds = [f"{media}: {_type(c['schema'])}" if "schema" in c else media
                     for media, c in answer.get("content", {}).items()]
            out += [f"- **{status}** {answer['description']}" + (f" ({'; '.join(kinds)})" if kinds else "")]
        out += [""]
        for status, answer in op["responses"].items():
            for content in answer.get("content", {}).values():
                out += _examples(content, f"{status} ")
    return out


def _examples(content: dict, prefix: str = "") -> list[str]:
    out = []
    for label, example in content.get("examples", {}).items():
        value = example["value"]
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out += [f"{prefix}example `{label}`:", "", "```json" if not isinstance(value, str) else "```", text,
                "```", ""]
    return out


def _type(schema: dict) -> str:
    """A short type text: a schema link, a type with its bounds, an enum."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_type(s) for s in schema.get("anyOf") or schema["oneOf"])
    kind = schema.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in schema:
        kind = f"array of {_type(schema['items'])}"
    bounds = [f"{word} {schema[key]}" for key, word in (
        ("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
        ("minLength", "length ≥"), ("maxLength", "length ≤"), ("minItems", "items ≥"), ("maxItems", "items ≤"))
        if key in schema]
    if "pattern" in schema:
        bounds.append(f"pattern `{schema['pattern']}`")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _schema(name: str, schema: dict) -> list[str]:
    out = [f"### {name}", ""]
    if schema.get("description"):
        out += [schema["description"], ""]
    properties = schema.get("properties")
    if not properties:
        return out + [f"{_type(schema)}.", ""]
    required = set(schema.get("required", []))
    out += ["| field | type | required | what |", "|---|---|---|---|"]
    for field, sub in properties.items():
        what = sub.get("description", "")
        if sub.get("type") == "object" and sub.get("properties"):
            what = (what + " " if what else "") + "Fields: " + ", ".join(
                f"`{k}` {_type(v)}" for k, v in sub["properties"].items()) + "."
        out += [f"| `{field}` | {_cell(_type(sub))} | {'yes' if field in required else 'no'} | {_cell(what)} |"]
    return out + [""]


def _cell(text: str) -> str:
    """Text safe inside a table cell: no line breaks, escaped pipes."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("\\\\|", "\\|")
