"""Access in the web layer: bearer keys on ``/v1``, sessions and CSRF for the dashboard, safe binding.

The ``/v1`` rule: ``shop`` keys may only pick slates, post rewards and activate a
deferred slate; ``public`` keys the same from a browser, within what they name
(``web.public_keys``); ``admin`` keys may call everything. With no key created at all the
API stays open, which is what ``silent demo`` and a first local try rely on;
``check_bind`` then keeps ``silent serve`` on loopback so an open API is never
reachable from the network.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import secrets

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from experiments.auth import PUBLIC, Access, Unauthorized
from experiments.sign_in import AttemptLimiter, HashingSlots, Limits, Sessions
from web import public_keys
from web.errors import error_response

# The shop's side of the loop: pick a slate, report outcomes, and activate a slate it deferred.
SHOP_ENDPOINTS = public_keys.PUBLIC_ENDPOINTS
ADMIN_ONLY = ("admin",)
SHOP_ROLES = ("shop", "admin", PUBLIC)
OPS_OR_ADMIN = ("ops", "admin")
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class BindRefused(Exception):
    """Binding a non-loopback address while the API is open (no keys)."""


def access() -> Access:
    return current_app.extensions["silent"]["access"]


# -- API keys ------------------------------------------------------------------
def bearer_token() -> str | None:
    """Return the token of an ``Authorization: Bearer <key>`` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def roles_for(endpoint: str | None) -> tuple[str, ...]:
    """Return the key roles allowed to call an API endpoint."""
    return SHOP_ROLES if endpoint in SHOP_ENDPOINTS else ADMIN_ONLY


def check_api_key():
    """Before each ``/v1`` and ``/metrics`` request: missing or unknown key -> 401, wrong role -> 403."""
    if request.path == "/v1" or request.path.startswith("/v1/"):
        token, in_url = bearer_token(), False
        if token is None and request.endpoint in SHOP_ENDPOINTS and "key" in request.args:
            token, in_url = request.args["key"], True  # a public key, so browsers send a simple request
        key = access().authorize(token, roles_for(request.endpoint))
        if in_url and key is not None and key["role"] != PUBLIC:
            raise Unauthorized(f"only public keys may be sent in the URL (?key=), which ends up in logs: send this "
                               f"{key['role']} key as 'Authorization: Bearer <key>', and replace it", field="key")
        g.api_key = key
        if key is not None and key["role"] == PUBLIC:
            public_keys.check(key)
    elif request.path == "/metrics" and not metrics_open_to(request.remote_addr):
        g.api_key = access().authorize(bearer_token(), OPS_OR_ADMIN)


def metrics_open_to(address: str | None) -> bool:
    """Tell whether ``METRICS_OPEN_TO`` lets this client address scrape without a key."""
    allowed = {a.strip() for a in current_app.config["METRICS_OPEN_TO"].split(",") if a.strip()}
    return address in allowed


def api_actor() -> str:
    """Name the caller in the experiment history: the key that made the change."""
    key = g.get("api_key")
    if key is None:
        return "api"
    return f"api key {key['id']}" + (f" ({key['label']})" if key["label"] else "")


def unauthorized(exc: Unauthorized):
    response = error_response(exc.status, exc.code, exc.message, exc.field)
    response.headers["WWW-Authenticate"] = 'Bearer realm="silent"'
    return response


# -- dashboard sessions ----------------------------------------------------------
def _guards() -> dict:
    return current_app.extensions["silent"]["sign_in"]


def current_user() -> dict | None:
    """Return the signed-in user, or None: an ended or idle session, or a deleted user, signs nobody in."""
    if "user" not in g:
        user_id = _guards()["sessions"].user_id(session.get("sid"))
        g.user = access().get_user(user_id) if user_id is not None else None
    return g.user


def check_sign_in(name: str, password: str) -> dict | None:
    """Check a password within the attempt limits and the hashing slots; return the user or None.

    Raises ``TooManyAttempts`` (429) or ``Busy`` (503) before any hashing when over a limit.
    """
    guards, address = _guards(), request.remote_addr or "unknown"
    guards["limiter"].check(address, name)
    with guards["slots"].hold():
        user = access().check_password(name, password)
    if user is None:
        guards["limiter"].failed(address, name)
    else:
        guards["limiter"].succeeded(name)
    return user


def sign_in(user: dict) -> None:
    """Start a new server-side session (a fresh token: a session id known before sign-in is worthless)."""
    session.clear()
    session["sid"] = _guards()["sessions"].start(user["id"])
    csrf_token()


def sign_out() -> None:
    """End the session on the server, so a copy of the cookie stops working too."""
    _guards()["sessions"].end(session.get("sid"))
    session.clear()


def login_required(view):
    """Send visitors who are not signed in to the sign-in page, then back."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)
    return wrapped


def csrf_token() -> str:
    """Return this session's CSRF token, making one on first use."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Reject a form post whose CSRF token is missing or does not match the session's (400)."""
    if request.method in SAFE_METHODS:
        return
    sent, expected = request.form.get(CSRF_FIELD, ""), session.get("csrf", "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        abort(400, "The form's security token is missing or out of date. Go back, reload the page and try again.")


# -- binding -------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, store) -> str:
    """Return the line ``silent serve`` prints about API access; refuse an open API off loopback."""
    gate = Access(store)
    if gate.keys_configured():
        active = sum(1 for key in gate.list_keys() if key["revoked_at"] is None)
        return f"API keys required on /v1 ({active} active); shop and public keys may only call slate, rewards and activate"
    if not is_loopback(host):
        raise BindRefused(
            f"refusing to listen on {host}: no API keys exist, so the API is open to anyone who can reach it. "
            "Create keys first (silent keys create --role admin, silent keys create --role shop) "
            "or listen on 127.0.0.1.")
    return (f"no API keys yet: the API is open, so it listens on loopback ({host}) only; "
            "create keys with 'silent keys create --role shop|admin' to serve other hosts")


class CookieSessions(SecureCookieSessionInterface):
    """Skip the signing machinery on requests without a session cookie: every shop API call."""

    def open_session(self, app, request):
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def sign_in_guards(app) -> dict:
    """The attempt limiter, the hashing slots and the session table, from the app's settings."""
    silent, config = app.extensions["silent"], app.config
    limits = Limits(per_user=config["SIGN_IN_LIMIT_PER_USER"], per_address=config["SIGN_IN_LIMIT_PER_ADDRESS"],
                    window_seconds=config["SIGN_IN_WINDOW_SECONDS"], slots=max(1, config["SIGN_IN_SLOTS"]),
                    idle_seconds=config["SESSION_IDLE_MINUTES"] * 60)
    return {"limiter": AttemptLimiter(silent["store"], silent["clock"], limits),
            "slots": HashingSlots(config["DATABASE"], limits.slots),
            "sessions": Sessions(silent["store"], silent["clock"], limits.idle_seconds)}


def register(app) -> None:
    """Hang ``Access`` on the app, set the secret key and cookie flags, and guard ``/v1``."""
    silent = app.extensions["silent"]
    silent["access"] = Access(silent["store"], silent["clock"])
    silent["sign_in"] = sign_in_guards(app)
    app.secret_key = app.config["SECRET_KEY"] or silent["access"].secret_key()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=app.config["SECURE_COOKIES"], SESSION_COOKIE_NAME="silent_session")
    app.session_interface = CookieSessions()
    app.register_error_handler(Unauthorized, unauthorized)
    public_keys.register(app)  # its CORS preflights are answered before any key is asked for
    app.before_request(check_api_key)
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user, csrf_field=CSRF_FIELD)
