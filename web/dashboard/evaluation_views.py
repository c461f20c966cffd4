"""The counterfactual evaluation page: a form of alternative settings, runs, and results beside live.

Runs go through the same ``Evaluations`` runner as ``POST /v1/.../evaluations``
(a background thread per run); the page refreshes itself while one is running.
"""
from __future__ import annotations

from experiments.errors import InvalidField
from web.dashboard import forms
from web.dashboard.report_views import estimate
from web.reports_api import evaluations

LEARNING_FIELDS = ("learning.learning_rate", "learning.interactions")
OPTION_FIELDS = ("limit", "from", "to")


def form_values(spec: dict) -> dict:
    """Prefill the form with the live settings, so one changes only what one wants to try."""
    values = forms.form_from_spec(spec)
    keep = {"exploration.algorithm", *LEARNING_FIELDS, *forms.exploration_fields()}
    return {name: value for name, value in values.items() if name in keep} | {name: "" for name in OPTION_FIELDS}


def request_body(form) -> dict:
    """Turn the posted form into an evaluation request (exploration, learning, limit, range)."""
    body = {"exploration": forms.exploration_from_form(form)}
    learning = {}
    if form.get("learning.learning_rate", "").strip():
        learning["learning_rate"] = forms.parse_number(form["learning.learning_rate"])
    if "learning.interactions" in form:
        learning["interactions"] = forms.interactions(form["learning.interactions"])
    if learning:
        body["learning"] = learning
    limit = form.get("limit", "").strip()
    if limit:
        body["limit"] = forms.parse_number(limit)
    for name in ("from", "to"):
        if form.get(name, "").strip():
            body[name] = form[name].strip()
    return body


def submit(key: str, form) -> tuple[dict | None, dict]:
    """Start an evaluation; on a bad input return the error placed next to its field."""
    try:
        return evaluations().submit(key, request_body(form)), {}
    except InvalidField as exc:
        return None, forms.errors_for(exc, form, OPTION_FIELDS)


def settings_text(policy: dict) -> str:
    exploration = ", ".join(f"{k} {str(v).lower() if isinstance(v, bool) else v}"
                            for k, v in policy["exploration"].items() if k != "algorithm")
    learning = policy["learning"]
    return (f"{policy['exploration']['algorithm']} ({exploration}); learning rate {learning['learning_rate']:g}, "
            f"interactions {' '.join(learning['interactions']) or 'none'}")


def result_rows(result: dict) -> list[dict]:
    """Candidate and live side by side, each with IPS, SNIPS and DR and their intervals."""
    names = {"candidate": "Alternative settings", "live": "Live settings"}
    return [{"name": names.get(p["policy"], p["policy"]), "settings": settings_text(p),
             **{k: estimate(p.get(k)) for k in ("ips", "snips", "dr")}} for p in result["policies"]]


def page(key: str, spec: dict, selected: int | None) -> dict:
    """The list of runs, and the chosen (or newest) run with its result."""
    runs = evaluations().list(key)
    chosen_id = selected if selected is not None else (runs[0]["id"] if runs else None)
    chosen = evaluations().get(key, chosen_id) if chosen_id is not None else None
    result = chosen and chosen["result"]
    return {"runs": runs, "chosen": chosen,
            "rows": result_rows(result) if result else [],
            "difference": result and {k: estimate(v, signed=True) for k, v in result["difference"].items()},
            "logged": result and estimate(result["logged"]["all"]),
            "refresh": bool(chosen and chosen["status"] in ("queued", "running"))}
