"""Prometheus metrics: request counts and latency per route, decisions, rewards, learner state.

Under gunicorn every worker is its own process, so counters use
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
``silent serve``). Learner lag and model version and age are read from the
database at scrape time, which is right whichever process learns.
"""
from __future__ import annotations

import os
import time

from flask import Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("silent_http_requests_total", "HTTP requests by route, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("silent_http_request_duration_seconds", "Request latency by route.", ["route"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DECISIONS = Counter("silent_decisions_total", "Decisions served by experiment and variant.",
                    ["experiment", "variant"])
REWARDS = Counter("silent_rewards_total", "Rewards accepted by experiment and type.", ["experiment", "type"])


class LearnerCollector:
    """Learner lag and model version/age per experiment and the WAL's size, read from the store when scraped."""

    def __init__(self, store, clock):
        self.store, self.clock = store, clock

    def collect(self):
        now = self.clock.now()
        lag = GaugeMetricFamily("silent_learner_lag_decisions",
                                "Closed decisions not yet in a published model.", labels=["experiment"])
        lag_age = GaugeMetricFamily("silent_learner_lag_seconds",
                                    "Age of the oldest closed decision not yet in a published model.",
                                    labels=["experiment"])
        version = GaugeMetricFamily("silent_model_version", "Newest published model version.", labels=["experiment"])
        age = GaugeMetricFamily("silent_model_age_seconds", "Seconds since the newest model was published.",
                                labels=["experiment"])
        for row in self.store.learner_state(now):
            key = row["experiment"]
            lag.add_metric([key], row["unlearned"])
            lag_age.add_metric([key], max(0.0, now - row["oldest_closed"]) if row["oldest_closed"] else 0.0)
            version.add_metric([key], row["version"] or 0)
            age.add_metric([key], now - row["published_at"] if row["published_at"] else 0.0)
        wal = GaugeMetricFamily("silent_wal_bytes", "Size of the database's write-ahead log file.")
        wal.add_metric([], self.store.wal_bytes())
        yield from (lag, lag_age, version, age, wal)


_children: dict = {}


def child(metric, *labels):
    """Return a labelled metric child, cached: ``labels()`` takes a lock and builds a key each call."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def _route() -> str:
    return request.url_rule.rule if request.url_rule else "unmatched"


def before_request() -> None:
    g.started = time.perf_counter()


def after_request(response):
    route = _route()
    if route != "/metrics" and hasattr(g, "started"):
        child(REQUESTS, route, request.method, str(response.status_code)).inc()
        child(LATENCY, route).observe(time.perf_counter() - g.started)
    return response


def metrics_view():
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    silent = current_app.extensions["silent"]
    text = generate_latest(registry) + generate_latest(_learner_registry(silent["store"], silent["clock"]))
    return Response(text, mimetype=CONTENT_TYPE_LATEST)


def _learner_registry(store, clock) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LearnerCollector(store, clock))
    return registry


def register(app) -> None:
    app.before_request(before_request)
    app.after_request(after_request)
    app.add_url_rule("/metrics", "metrics", metrics_view)
