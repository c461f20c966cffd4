"""Public keys in the web layer: CORS for exactly their origins and routes, their scope, their rate limit.

A storefront's browser calls the service directly with a ``public`` key, so the
three shop routes (slate, rewards, activate) answer CORS preflights for the origins
some public key names (for a slate: names together with its experiment), and their
answers carry ``Access-Control-Allow-Origin`` only for an origin the calling key
names. No other route answers CORS, so a browser page can never read anything else;
a disallowed origin gets a 403 and no CORS headers. Calls with a public key are
rate-limited per client address (``experiments.rate_limit``) before any other work.

A public key may also come as ``?key=`` on these routes (``web.auth``), with a
``text/plain`` body: a CORS "simple" request, which browsers send without a
preflight, so a first slate and every reward (each has its own URL, so its own
preflight) cost one round trip, not two. The origin check is the same either way,
and a refused origin's request changes nothing.
"""
from __future__ import annotations

from flask import Response, current_app, g, request

from experiments.auth import PUBLIC, check_public_call
from experiments.rate_limit import Rate, RateLimited, StoreBuckets, TokenBuckets
from experiments.store import is_url
from web.errors import error_response

PUBLIC_ENDPOINTS = {"api.slate", "api.reward", "api.activate"}
ALLOW_METHODS = "POST"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Retry-After"
CLIENT_SCRIPT = "silent.js"  # the browser client, loaded as a module from the shop's pages


def _access():
    return current_app.extensions["silent"]["access"]


def _route_experiment() -> str | None:
    """The experiment a public route names in its path (slates); events name theirs in the log."""
    return (request.view_args or {}).get("key") if request.endpoint == "api.slate" else None


def preflight():
    """Before each request: answer a CORS preflight of a public route (204), or refuse its origin (403)."""
    if (request.method != "OPTIONS" or request.endpoint not in PUBLIC_ENDPOINTS
            or "Access-Control-Request-Method" not in request.headers):
        return None
    origin = request.headers.get("Origin")
    if not _access().origin_allowed(origin, _route_experiment()):
        response = error_response(403, "forbidden", "no public key accepts calls to this route from this origin "
                                                    "(silent keys create --role public --origin ...)", "Origin")
        response.vary.add("Origin")
        return response
    response = Response(status=204)
    response.headers.update({
        "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(current_app.config["PUBLIC_PREFLIGHT_MAX_AGE"])})
    response.vary.add("Origin")
    return response


def check(key: dict) -> None:
    """A call made with a public key: its address's rate first, then its origin and experiment."""
    current_app.extensions["silent"]["rate_limit"].take(request.remote_addr or "unknown")
    if request.endpoint == "api.slate":
        experiment = _route_experiment()
    else:  # an event: its decision says which experiment (an unknown event is the view's 404)
        experiment = current_app.extensions["silent"]["service"].event_experiment(request.view_args["event_id"])
    check_public_call(key, request.headers.get("Origin"), experiment)


def cors_headers(response: Response) -> Response:
    """After each request: CORS headers on a public route's answer when the origin may read it."""
    if request.endpoint == "static" and (request.view_args or {}).get("filename") == CLIENT_SCRIPT:
        response.headers["Access-Control-Allow-Origin"] = "*"  # public code, loaded by any shop's page
        return response
    if request.endpoint not in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return response
    if "Vary" in response.headers:
        response.vary.add("Origin")
    else:
        response.headers["Vary"] = "Origin"  # the same, without parsing an absent header (a hot path)
    origin, key = request.headers.get("Origin"), g.get("api_key")
    if not origin:
        return response  # not a browser's cross-origin call: nothing to allow
    if key is None:  # refused before a key was known (401): readable where a public key would be
        readable = _access().keys_configured() and _access().origin_allowed(origin, _route_experiment())
    else:
        readable = key["role"] == PUBLIC and origin in key["origins"]
    if origin and readable:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    return response


def rate_limited(exc: RateLimited):
    response = error_response(exc.status, exc.code, exc.message, exc.field)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def rate_file(config) -> str | None:
    """Where a file of buckets lives: ``PUBLIC_RATE_FILE``, else beside a SQLite file."""
    database = config["DATABASE"]
    if config["PUBLIC_RATE_FILE"]:
        return config["PUBLIC_RATE_FILE"]
    if database == ":memory:":
        return None  # one process, nothing to share
    return f"{database}.public-rate"


def register(app) -> None:
    """Hang the shared token buckets on the app and hook preflights and CORS headers in (before key checks).

    On PostgreSQL the buckets are in the database, shared by every host; on SQLite in a file that
    every process of the database maps (``PUBLIC_RATE_FILE`` chooses a file on either).
    """
    rate = Rate(per_second=app.config["PUBLIC_RATE_PER_SECOND"], burst=app.config["PUBLIC_RATE_BURST"])
    if is_url(app.config["DATABASE"]) and not app.config["PUBLIC_RATE_FILE"]:
        app.extensions["silent"]["rate_limit"] = StoreBuckets(app.extensions["silent"]["store"], rate)
    else:
        app.extensions["silent"]["rate_limit"] = TokenBuckets(rate_file(app.config), rate,
                                                              app.extensions["silent"]["clock"])
    app.register_error_handler(RateLimited, rate_limited)
    app.before_request(preflight)
    app.after_request(cors_headers)
