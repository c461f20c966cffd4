"""The growth team's dashboard: server-rendered pages over the same service as the API.

Every page needs a signed-in user; every form carries a CSRF token. Views parse
the form, call one function of ``experiments`` with the user's name as the actor,
and show domain errors next to the field they blame.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from experiments import autotune, forgetting
from experiments.errors import Conflict, InvalidField, NotFound, ServiceError
from experiments.sign_in import Busy, TooManyAttempts
from experiments.spec import MUTABLE_FIELDS, TRANSITIONS
from web import auth
from web.dashboard import autotune_views, forgetting_views
from web.dashboard import evaluation_views
from web.dashboard import forms
from web.dashboard import report_views
from web.api import service
from web.dashboard.formatting import FILTERS

bp = Blueprint("dashboard", __name__, template_folder="templates")
for _name, _filter in FILTERS.items():
    bp.add_app_template_filter(_filter, _name)
ACTIONS = {
    "start": ("running", "Start", "The bandit serves its share of traffic and learns from the rewards; "
                                  "the holdout keeps getting the control policy."),
    "pause": ("paused", "Pause", "Everyone gets the control policy (logged as fallback) until you start it "
                                "again; rewards for earlier decisions are still learned."),
    "stop": ("stopped", "Stop", "Stopping is final: everyone gets the control policy and the experiment "
                               "cannot be started again. The log and the report stay."),
}


def actor() -> str:
    return auth.current_user()["name"]


@bp.before_request
def guard_forms():
    auth.check_csrf()


@bp.errorhandler(Exception)
def error_page(exc):
    """Render errors as a page in the dashboard's frame, never as JSON or a stack trace."""
    if isinstance(exc, ServiceError):
        status, message = exc.status, exc.message
    elif isinstance(exc, HTTPException):
        status, message = exc.code or 500, exc.description
    else:
        current_app.logger.exception("dashboard error")
        status, message = 500, "Something went wrong on our side; the error was logged."
    return render_template("error.html", status=status, message=message), status


# -- signing in and out ----------------------------------------------------------
def _safe_next(target: str | None) -> str:
    """Follow ``next`` only to a path on this site: ``/`` then no ``/``, no backslash, no control character.

    Browsers drop tabs and newlines from a Location and read a backslash as ``/``,
    so ``/<tab>/evil.example`` would be ``//evil.example``: another host.
    """
    if (target and target.startswith("/") and target[1:2] not in ("/", "\\")
            and not any(ord(c) < 0x21 or ord(c) == 0x7F or c == "\\" for c in target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("dashboard.experiments")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    error, name, status, headers = None, "", 200, {}
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        try:
            user = auth.check_sign_in(name, request.form.get("password", ""))
        except (TooManyAttempts, Busy) as exc:
            error, status, headers = exc.message, exc.status, {"Retry-After": str(exc.retry_after)}
        else:
            if user:
                auth.sign_in(user)
                return redirect(_safe_next(request.args.get("next")))
            error, status = "That name and password do not match.", 401
    page = render_template("sign_in.html", error=error, name=name, has_users=auth.access().has_users())
    return page, status, headers


@bp.post("/sign-out")
def sign_out():
    auth.sign_out()
    flash("You are signed out.")
    return redirect(url_for("dashboard.sign_in"))


# -- experiments -----------------------------------------------------------------
@bp.get("/")
@auth.login_required
def experiments():
    rows = service().list_experiments()
    return render_template("experiments.html", rows=[report_views.summary(row) for row in rows])


def _form_page(template_values: dict, values: dict, errors: dict, status: int = 200):
    return render_template("experiment_form.html", values=values, errors=errors, **forms.form_choices(),
                           **template_values), status


@bp.route("/new", methods=["GET", "POST"])
@auth.login_required
def create():
    page = {"mode": "create", "title": "New experiment"}
    if request.method == "GET":
        return _form_page(page, forms.form_from_spec({}), {})
    try:
        body = forms.spec_from_form(request.form)
        if request.form.get("start"):
            body["status"] = "running"
        row = service().create_experiment(body, actor=actor())
    except (InvalidField, Conflict) as exc:
        return _form_page(page, request.form, forms.errors_for(exc, request.form), 400)
    flash(f"Created {row['key']} ({row['status']}).")
    return redirect(url_for("dashboard.experiment", key=row["key"]))


def _changes(current: dict, body: dict) -> dict:
    """Keep only the settings the form changed, so the history shows what really moved."""
    changes = {}
    for name, value in body.items():
        old = current.get(name)
        merged = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        if name in MUTABLE_FIELDS and merged != old:
            changes[name] = value
    return changes


@bp.route("/experiments/<key>/edit", methods=["GET", "POST"])
@auth.login_required
def edit(key):
    row = service().get_experiment(key)
    page = {"mode": "edit", "title": f"Edit {key}", "row": row}
    if request.method == "GET":
        return _form_page(page, {**forms.form_from_spec(row["spec"]), "version": row["version"]}, {})
    try:
        if request.form.get("version") != str(row["version"]):
            raise Conflict("Someone changed this experiment while you were editing; the form now shows "
                           "their version, redo your change.", field="version")
        changes = _changes(row["spec"], forms.spec_from_form({**request.form, "key": key, "kind": row["kind"]}))
        if not changes:
            flash("Nothing changed.")
            return redirect(url_for("dashboard.experiment", key=key))
        service().update_experiment(key, changes, actor=actor())
    except (InvalidField, Conflict) as exc:
        values = request.form
        if exc.field == "version":
            values = {**forms.form_from_spec(row["spec"]), "version": row["version"]}
        return _form_page(page, values, forms.errors_for(exc, request.form), 409 if exc.status == 409 else 400)
    flash(f"Saved {key}: changed {', '.join(sorted(changes))}.")
    return redirect(url_for("dashboard.experiment", key=key))


@bp.route("/experiments/<key>/<action>", methods=["GET", "POST"])
@auth.login_required
def change_status(key, action):
    """Ask for confirmation (GET), then start, pause or stop the experiment (POST)."""
    if action not in ACTIONS:
        raise NotFound(f"no page {action!r} for an experiment")
    row = service().get_experiment(key)
    status, verb, consequence = ACTIONS[action]
    if status not in TRANSITIONS[row["status"]]:
        raise Conflict(f"{key} is {row['status']}; it cannot be {status} from there")
    if request.method == "GET":
        return render_template("confirm.html", row=row, action=action, verb=verb, consequence=consequence)
    service().update_experiment(key, {"status": status}, actor=actor())
    flash(f"{key} is now {status}.")
    return redirect(url_for("dashboard.experiment", key=key))


@bp.get("/experiments/<key>/history")
@auth.login_required
def history(key):
    row = service().get_experiment(key)
    return render_template("history.html", row=row, history=list(reversed(service().history(key))))


@bp.get("/experiments/<key>")
@auth.login_required
def experiment(key):
    row = service().get_experiment(key)
    actions = [name for name, (status, _, _) in ACTIONS.items() if status in TRANSITIONS[row["status"]]]
    entries = service().history(key)
    return render_template("experiment.html", row=row, actions=actions,
                           autotune=autotune_views.section(row, entries),
                           forgetting=forgetting_views.section(row, entries),
                           **report_views.report_page(row, request.args))


@bp.post("/experiments/<key>/autotune/undo")
@auth.login_required
def undo_autotune(key):
    """Undo one auto-tuning switch: its settings go back to what they were, and tuning turns off."""
    version = request.form.get("version", "")
    if not version.isdigit():
        raise InvalidField("version", "must be the version of an auto-tuning switch")
    autotune.undo(service(), key, int(version), actor())
    flash(f"Undid the auto-tuning switch of version {version}; auto-tuning is off until you turn it on again.")
    return redirect(url_for("dashboard.experiment", key=key))


@bp.post("/experiments/<key>/forget/add")
@auth.login_required
def forget(key):
    """Forget one group's decisions before a time (UTC): the model is rebuilt from the rest of the log."""
    feature, value = request.form.get("feature", "").strip(), request.form.get("value", "").strip()
    view = forgetting.forget_before(service(), key, feature, value, request.form.get("before_time", ""), actor())
    rules = view["spec"]["learning"]["forget"]
    before = next(r["before"] for r in rules if (r["feature"], r["value"]) == (feature, value))
    flash(f"The model forgets what {feature} = {value} did before decision #{before:,}; it is rebuilt from the log.")
    return redirect(url_for("dashboard.experiment", key=key))


@bp.post("/experiments/<key>/forget/remove")
@auth.login_required
def remember(key):
    """Drop one forgetting rule: the model is rebuilt with that group's earlier decisions again."""
    feature, value = request.form.get("feature", ""), request.form.get("value", "")
    forgetting.remember(service(), key, feature, value, actor())
    flash(f"The model learns what {feature} = {value} did before again; it is rebuilt from the log.")
    return redirect(url_for("dashboard.experiment", key=key))


@bp.route("/experiments/<key>/evaluate", methods=["GET", "POST"])
@auth.login_required
def evaluate(key):
    """Replay the log with alternative settings (POST starts a run) and show runs beside the live policy."""
    row = service().get_experiment(key)
    values, errors = evaluation_views.form_values(row["spec"]), {}
    if request.method == "POST":
        started, errors = evaluation_views.submit(key, request.form)
        if started:
            flash(f"Evaluation {started['id']} started; this page refreshes until it is done.")
            return redirect(url_for("dashboard.evaluate", key=key, run=started["id"]))
        values = request.form
    shown = evaluation_views.page(key, row["spec"], request.args.get("run", type=int))
    return render_template("evaluate.html", row=row, values=values, errors=errors, **forms.form_choices(),
                           **shown), 400 if errors else 200
