"""Drive a running Silent Customizer server over HTTP with the simulated shop.

The server keeps real time and its own learner; the simulation's virtual clock
only decides when each outcome is posted (after its simulated delay, counted in
page views at the run's ``rate``). Standard library only: one keep-alive
``http.client`` connection, reopened whenever the server closes it.
"""
from __future__ import annotations

import http.client
import json
import urllib.parse

from experiments.errors import ServiceError


class SimulationError(ServiceError):
    """The server refused a simulated request; the message carries its error."""

    status = 502
    code = "simulation_failed"


class HttpTarget:
    """The API of a running server: create the experiment (or reuse it), pick slates, post rewards."""

    mode = "http"

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        self.url = url
        self.api_key = api_key
        self.timeout = timeout
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SimulationError(f"url: {url!r} is not an http(s) address like http://127.0.0.1:8000",
                                  field="url")
        connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._conn = connection(parts.hostname, parts.port, timeout=timeout)
        self._base = parts.path.rstrip("/")
        self.reused = False

    def _call(self, method: str, path: str, body=None, expect=(200,)) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = None if body is None else json.dumps(body)
        try:
            self._conn.request(method, self._base + path, payload, headers)
            response = self._conn.getresponse()
            status, text = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise SimulationError(f"{method} {self.url}{path} failed: {exc}") from None
        data = json.loads(text) if text else {}
        if status not in expect:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise SimulationError(f"{method} {path} answered {status}: {error.get('message', text[:200])}",
                                  field=error.get("field"))
        return status, data

    def create(self, spec: dict) -> dict:
        """Create the experiment; an existing one with the same key is reused as it is."""
        key = urllib.parse.quote(spec["key"], safe="")
        status, data = self._call("POST", "/v1/experiments", spec, expect=(201, 409))
        if status == 201:
            return data
        self.reused = True
        _, data = self._call("GET", f"/v1/experiments/{key}")
        if data["kind"] != spec["kind"] or data["spec"]["slots"] != spec["slots"]:
            raise SimulationError(f"experiment {spec['key']!r} exists with other settings; pass another --key",
                                  field="key")
        if data["status"] != "running":
            raise SimulationError(f"experiment {spec['key']!r} exists and is {data['status']}; start it or pass "
                                  "another --key", field="key")
        return data

    def decide(self, key: str, body: dict) -> dict:
        return self._call("POST", f"/v1/experiments/{urllib.parse.quote(key, safe='')}/slate", body)[1]

    def reward(self, event_id: str, body: dict) -> None:
        self._call("POST", f"/v1/events/{urllib.parse.quote(event_id, safe='')}/rewards", body, expect=(202,))

    def tick(self) -> None:
        """Nothing to do: the server's own learner runs on real time."""

    def finish(self, wait_seconds: float) -> None:
        """Nothing to wait for: every outcome has been posted; the server learns on its own clock."""

    def close(self) -> None:
        self._conn.close()
