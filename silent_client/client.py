"""``SilentClient``: ask for a slate within a time budget, fall back to the shop's order, post rewards once.

A shop's page must render whether or not personalization answers, so ``slate`` never
raises: within ``timeout`` seconds (50 ms by default, for connecting, sending and
reading together) it returns the service's slate, or else the shop's own order with
``fallback=True`` and the reason, logged on the ``silent_client`` logger. ``reward``
and ``activate`` retry network failures, 429 and 5xx with backoff (honouring
``Retry-After``); every try of one reward carries the same ``id``, so the service
counts it once however many tries got through. Nothing is queued in memory: a reward
is sent when ``reward`` is called, so a process that stops loses nothing it had
acknowledged.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

log = logging.getLogger("silent_client")

DEFAULT_TIMEOUT = 0.05
REWARD_TIMEOUT = 2.0
RETRIES = 3
BACKOFF = 0.25
MAX_WAIT = 10.0
RETRY_STATUSES = {408, 429}  # and every 5xx


@dataclass
class Slate:
    """What to show: ``items`` are ids in slate order, the service's or (``fallback``) the shop's own."""

    experiment: str
    items: list[str]
    event_id: str | None = None
    variant: str | None = None
    model_version: int | None = None
    slate: list[dict] = field(default_factory=list)
    fallback: bool = False
    reason: str | None = None
    elapsed_ms: float = 0.0


@dataclass
class RewardResult:
    """``ok`` with the service's answer, or the reason of the last failed try; ``attempts`` made."""

    ok: bool
    answer: dict | None = None
    reason: str | None = None
    status: int | None = None
    attempts: int = 0


class _Failed(Exception):
    def __init__(self, reason: str, status: int | None = None, answer=None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.status, self.answer, self.retry_after = reason, status, answer, retry_after


class SilentClient:
    """One service endpoint and key; safe to share between threads (each call has its own connection).

    ``endpoint`` is the service's base URL (``http://127.0.0.1:8000``); ``key`` a shop key
    (servers never hold public keys' limits, and browsers never hold shop keys).
    """

    def __init__(self, endpoint: str, key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 reward_timeout: float = REWARD_TIMEOUT, retries: int = RETRIES, backoff: float = BACKOFF):
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("endpoint must be an http(s) URL such as http://127.0.0.1:8000")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.key, self.timeout, self.reward_timeout = key, timeout, reward_timeout
        self.retries, self.backoff = retries, backoff

    # -- slates ----------------------------------------------------------------
    def slate(self, experiment: str, request: dict, timeout: float | None = None,
              fallback: list | None = None) -> Slate:
        """Ask for a slate within ``timeout`` seconds; on any failure return the shop's order. Never raises."""
        started = time.monotonic()
        budget = self.timeout if timeout is None else timeout
        try:
            answer = self._call("POST", f"/v1/experiments/{quote(experiment, safe='')}/slate", request,
                                deadline=started + budget)
            return Slate(experiment=experiment, items=[s["id"] for s in answer["slate"]],
                         event_id=answer["event_id"], variant=answer["variant"],
                         model_version=answer.get("model_version"), slate=answer["slate"],
                         elapsed_ms=(time.monotonic() - started) * 1000)
        except _Failed as failure:
            reason = failure.reason
        except Exception as exc:  # a page must render whatever went wrong here
            reason = f"client error: {type(exc).__name__}"
        elapsed = (time.monotonic() - started) * 1000
        order = _ids(fallback if fallback is not None else request.get("candidates", []))
        slots = request.get("slots")
        items = order[:slots] if isinstance(slots, int) and slots > 0 else order
        log.warning("silent slate fallback: experiment=%s reason=%s elapsed_ms=%.1f", experiment, reason, elapsed)
        return Slate(experiment=experiment, items=items, fallback=True, reason=reason, elapsed_ms=elapsed,
                     slate=[{"slot": i, "id": item, "probability": None} for i, item in enumerate(items)])

    # -- rewards and activations -----------------------------------------------
    def reward(self, event_id: str | None, type: str = "click", item: str | None = None,
               value: float | None = None, id: str | None = None) -> RewardResult:
        """Post an outcome, retried under one reward ``id`` (made here unless given). Never raises."""
        if not event_id:
            return RewardResult(ok=False, reason="no event: the slate was the shop's own order")
        body = {"type": type, "id": id or uuid.uuid4().hex}
        if item is not None:
            body["item"] = item
        if value is not None:
            body["value"] = value
        return self._send("reward", f"/v1/events/{quote(event_id, safe='')}/rewards", body)

    def activate(self, event_id: str | None) -> RewardResult:
        """Say a slate asked for with ``defer_activation`` was shown; activating twice is harmless."""
        if not event_id:
            return RewardResult(ok=False, reason="no event: the slate was the shop's own order")
        return self._send("activate", f"/v1/events/{quote(event_id, safe='')}/activate", {})

    def _send(self, call: str, path: str, body: dict) -> RewardResult:
        failure = _Failed("not sent")
        for attempt in range(1, self.retries + 2):
            try:
                answer = self._call("POST", path, body, deadline=time.monotonic() + self.reward_timeout)
                return RewardResult(ok=True, answer=answer, attempts=attempt)
            except _Failed as exc:
                failure = exc
            if failure.status is not None and failure.status < 500 and failure.status not in RETRY_STATUSES:
                break  # the request itself is wrong: sending it again cannot help
            if attempt <= self.retries:
                wait = self.backoff * 2 ** (attempt - 1)
                if failure.retry_after:
                    wait = min(failure.retry_after, MAX_WAIT)
                time.sleep(wait)
        log.warning("silent %s failed: path=%s reason=%s attempts=%d", call, path, failure.reason, attempt)
        return RewardResult(ok=False, reason=failure.reason, status=failure.status, attempts=attempt,
                            answer=failure.answer)

    # -- one HTTP exchange, bounded by a deadline ------------------------------
    def _call(self, method: str, path: str, body: dict, deadline: float) -> dict:
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=_left(deadline))
        try:
            connection.request(method, self._prefix + path, body=payload, headers=headers)
            sock = connection.sock  # the response keeps reading it after the connection lets go of it
            sock.settimeout(_left(deadline))
            response = connection.getresponse()
            sock.settimeout(_left(deadline))
            data = response.read()
        except (socket.timeout, TimeoutError):
            raise _Failed("timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Failed(f"network: {type(exc).__name__}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        if not 200 <= response.status < 300:
            raise _Failed(f"http {response.status}", response.status, answer,
                          _seconds(response.getheader("Retry-After")))
        if not isinstance(answer, dict):
            raise _Failed("bad answer: not a JSON object", response.status)
        return answer


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Failed("timeout")
    return left


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _ids(candidates) -> list[str]:
    return [c if isinstance(c, str) else c["id"] for c in candidates]
