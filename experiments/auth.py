"""Who may do what: API keys with roles, dashboard users, and the shared secret key.

API keys are random 256-bit tokens, shown once when created and stored only as
their SHA-256 (a fast hash is enough for a high-entropy secret; a slow one would
cost every API call). Passwords are people's choices, so they get a slow salted
hash from ``werkzeug.security`` (scrypt). Once any key has been created the API
counts as keyed for good: revoking every key closes it rather than opening it.

A ``public`` key is meant to be seen: it ships in a storefront's JavaScript. So it
names the experiments it may ask slates for and post rewards and activations to,
and the browser origins it is accepted from; everything else refuses it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import time
from urllib.parse import urlsplit

from werkzeug.security import check_password_hash, generate_password_hash

from experiments.clock import SystemClock
from experiments.errors import Conflict, InvalidField, NotFound, ServiceError
from experiments.spec import KEY_PATTERN
from experiments.store import DuplicateKey

ROLES = ("shop", "admin", "ops", "public")  # ops: /metrics only; public: a browser's slates and rewards
PUBLIC = "public"
MAX_SCOPE = 50  # experiments, and origins, one public key may name
DEFAULT_PORTS = {"http": 80, "https": 443}
KEY_PREFIX = "sk_"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
# Key checks run on every API call, so their answers are kept this long; a key
# created or revoked in another process takes effect here within that time.
CACHE_SECONDS = 1.0
SECRET_KEY_NAME = "secret_key"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


@functools.cache
def _dummy_hash() -> str:
    """Hash a throwaway password, so an unknown user name costs as long as a wrong password."""
    return generate_password_hash(secrets.token_hex(16))


def hash_key(secret: str) -> str:
    """Return the stored form of an API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(role: str) -> str:
    """Make a fresh API key; the role in its prefix helps people and secret scanners tell keys apart."""
    return f"{KEY_PREFIX}{role}_{secrets.token_urlsafe(32)}"


def _key_view(row: dict) -> dict:
    return {"id": row["id"], "role": row["role"], "label": row["label"], "hint": row["hint"],
            "created_at": row["created_at"], "revoked_at": row["revoked_at"],
            "experiments": json.loads(row.get("experiments") or "[]"),
            "origins": json.loads(row.get("origins") or "[]")}


def parse_origin(text, field: str = "origin") -> str:
    """Return an origin as browsers send it (``scheme://host[:port]``, lower case, default port dropped)."""
    if not isinstance(text, str) or len(text) > 300:
        raise InvalidField(field, "must be an origin such as https://shop.example (at most 300 characters)")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise InvalidField(field, "must be an origin such as https://shop.example") from None
    scheme = parts.scheme.lower()
    if (scheme not in DEFAULT_PORTS or not parts.hostname or parts.username or parts.password
            or parts.path not in ("", "/") or parts.query or parts.fragment or "*" in parts.netloc):
        raise InvalidField(field, "must be an origin such as https://shop.example: http or https, a host and "
                                  "an optional port, no path, no wildcard")
    host = parts.hostname.lower()
    if not host.isascii():  # browsers send international names in their ASCII (punycode) form
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidField(field, "must be an origin such as https://shop.example: the host name is not "
                                      "a valid international domain name") from None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}")


def check_public_call(key: dict, origin: str | None, experiment: str | None) -> None:
    """Refuse a public key outside what it names: its origins, and (when known) its experiments."""
    if not origin:
        raise Forbidden("a public key is only accepted from a web page on one of its origins; this request "
                        "sent no Origin header (servers use a shop key)", field="Origin")
    if origin not in key["origins"]:
        raise Forbidden(f"this public key is not accepted from this origin; it names {', '.join(key['origins'])}",
                        field="Origin")
    if experiment is not None and experiment not in key["experiments"]:
        raise Forbidden(f"this public key may only be used for experiment(s) {', '.join(key['experiments'])}",
                        field="experiment")


class Access:
    """API keys, users and the secret key over one store; safe to share between threads."""

    def __init__(self, store, clock=None):
        self.store = store
        self.clock = clock or SystemClock()
        self._keyed = False  # once true it stays true: keys are revoked, never deleted
        self._open_until = 0.0  # "no keys" is re-checked at most every CACHE_SECONDS
        self._keys: dict[str, tuple[dict, float]] = {}  # hash -> (key, valid until), for the hot path
        self._public: tuple[list[dict], float] = ([], 0.0)  # active public keys' scopes, for preflights

    # -- API keys ------------------------------------------------------------
    def create_key(self, role: str, label: str = "", experiments=(), origins=()) -> dict:
        """Create a key and return it with its secret, which is never shown again.

        A public key must name at least one experiment (which must exist) and one origin;
        other roles name none.
        """
        if role not in ROLES:
            raise InvalidField("role", f"must be one of {', '.join(ROLES)}")
        if not isinstance(label, str) or len(label) > 200:
            raise InvalidField("label", "must be a string of at most 200 characters")
        experiments, origins = self._scope(role, list(experiments), list(origins))
        secret = new_key(role)
        row = {"hash": hash_key(secret), "hint": secret[:len(KEY_PREFIX) + len(role) + 5] + "…",
               "role": role, "label": label, "created_at": self.clock.now(), "revoked_at": None,
               "experiments": json.dumps(experiments) if role == PUBLIC else None,
               "origins": json.dumps(origins) if role == PUBLIC else None}
        key_id = self.store.insert_api_key(row)
        self._keyed = True
        self._public = ([], 0.0)
        return {**_key_view({**row, "id": key_id}), "key": secret}

    def _scope(self, role: str, experiments: list, origins: list) -> tuple[list[str], list[str]]:
        """Validate what a key names: a public key its experiments and origins, any other key nothing."""
        if role != PUBLIC:
            if experiments or origins:
                raise InvalidField("experiments" if experiments else "origins",
                                   "only public keys name experiments and origins")
            return [], []
        if not 1 <= len(experiments) <= MAX_SCOPE:
            raise InvalidField("experiments", f"a public key names 1 to {MAX_SCOPE} experiments it may be used for")
        if not 1 <= len(origins) <= MAX_SCOPE:
            raise InvalidField("origins", f"a public key names 1 to {MAX_SCOPE} origins (such as "
                                          "https://shop.example) it is accepted from")
        for i, key in enumerate(experiments):
            if not isinstance(key, str) or not KEY_PATTERN.match(key):
                raise InvalidField(f"experiments[{i}]", "must be an experiment key")
            if self.store.get_experiment(key) is None:
                raise NotFound(f"experiment {key!r} does not exist; create it first", field=f"experiments[{i}]")
        origins = [parse_origin(origin, f"origins[{i}]") for i, origin in enumerate(origins)]
        return list(dict.fromkeys(experiments)), list(dict.fromkeys(origins))

    def list_keys(self) -> list[dict]:
        return [_key_view(row) for row in self.store.api_keys()]

    def revoke_key(self, key_id: int) -> dict:
        """Revoke a key for good; its next call gets a 401."""
        row = self.store.api_key(key_id)
        if row is None:
            raise NotFound(f"API key {key_id} does not exist", field="id")
        if row["revoked_at"] is None:
            row["revoked_at"] = self.clock.now()
            self.store.revoke_api_key(key_id, row["revoked_at"])
        self._keys.clear()
        self._public = ([], 0.0)
        return _key_view(row)

    def public_keys(self) -> list[dict]:
        """The active public keys (their scopes), re-read at most every CACHE_SECONDS."""
        keys, until = self._public
        if time.monotonic() >= until:
            keys = [_key_view(row) for row in self.store.active_api_keys(PUBLIC)]
            self._public = (keys, time.monotonic() + CACHE_SECONDS)
        return keys

    def origin_allowed(self, origin: str | None, experiment: str | None = None) -> bool:
        """Tell whether some active public key names this origin (and this experiment, when given)."""
        return bool(origin) and any(
            origin in key["origins"] and (experiment is None or experiment in key["experiments"])
            for key in self.public_keys())

    def keys_configured(self) -> bool:
        """Tell whether any key was ever created; without one the API is open (loopback only)."""
        if not self._keyed and time.monotonic() >= self._open_until:
            self._keyed = self.store.has_api_keys()
            self._open_until = time.monotonic() + CACHE_SECONDS
        return self._keyed

    def key_for(self, secret: str | None) -> dict:
        """Return the active key behind a bearer token, or raise Unauthorized."""
        if not secret:
            raise Unauthorized("this call needs an API key: send 'Authorization: Bearer <key>'",
                               field="Authorization")
        digest = hash_key(secret)
        cached = self._keys.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        row = self.store.active_api_key(digest)
        if row is None:
            raise Unauthorized("the API key is unknown or revoked", field="Authorization")
        if len(self._keys) > 10_000:
            self._keys.clear()
        view = _key_view(row)
        self._keys[digest] = (view, time.monotonic() + CACHE_SECONDS)
        return view

    def authorize(self, secret: str | None, allowed_roles) -> dict | None:
        """Check a bearer token against the roles a route allows; open when no key exists."""
        if not self.keys_configured():
            return None
        key = self.key_for(secret)
        if key["role"] not in allowed_roles:
            if key["role"] == PUBLIC:
                raise Forbidden("a public key may only ask for slates and post rewards and activations, for the "
                                "experiments it names; this call needs an admin key")
            needed = " or ".join(allowed_roles)
            raise Forbidden(f"a {key['role']} key may not make this call; it needs "
                            f"{'an' if needed[0] in 'aeiou' else 'a'} {needed} key")
        return key

    # -- users ---------------------------------------------------------------
    def create_user(self, name: str, password: str) -> dict:
        """Create a dashboard user with a salted slow hash of the password."""
        if not isinstance(name, str) or not USER_NAME.match(name):
            raise InvalidField("name", "must be 1-64 characters of letters, digits, '.', '_', '@' or '-'")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise InvalidField("password", f"must be at least {MIN_PASSWORD} characters")
        now = self.clock.now()
        try:
            user_id = self.store.insert_user(name, generate_password_hash(password), now)
        except DuplicateKey:
            raise Conflict(f"user {name!r} already exists", field="name") from None
        return {"id": user_id, "name": name, "created_at": now}

    def list_users(self) -> list[dict]:
        return self.store.users()

    def has_users(self) -> bool:
        return self.store.has_users()

    def get_user(self, user_id) -> dict | None:
        return self.store.user(user_id)

    def check_password(self, name: str, password: str) -> dict | None:
        """Return the user when the password matches, else None (in about the same time)."""
        row = self.store.user_by_name(name)
        if row is None:
            check_password_hash(_dummy_hash(), password or "")
            return None
        if not check_password_hash(row["password_hash"], password or ""):
            return None
        return {"id": row["id"], "name": row["name"], "created_at": row["created_at"]}

    # -- the secret key ------------------------------------------------------
    def secret_key(self) -> str:
        """Return the database's secret key, creating it once, so every worker signs alike."""
        return self.store.app_secret(SECRET_KEY_NAME, secrets.token_hex(32), self.clock.now())
