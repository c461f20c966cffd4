"""The delivery layer: ``create_app(config)`` wires the store, service and learner into Flask."""
from __future__ import annotations

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from experiments.clock import DatabaseClock, SystemClock
from experiments.learner import Learner
from experiments.limits import Limits
from experiments.personalizer import Personalizer
from experiments.service import Service
from experiments.serving_models import ServingModels
from experiments.store import is_url, open_store
from web.settings import MB, archive_from, learner_memory, resolve_settings


def create_app(config: dict | None = None) -> Flask:
    """Build the app; settings come from defaults, ``SILENT_*`` variables, then ``config``.

    Long-lived objects hang on ``app.extensions["silent"]``: the store, the
    service, the learner and the Personalizer facade over the service. The
    learner thread only runs when ``LEARNER_THREAD`` is set (``silent serve``
    sets it; tests drive ``learner.run_once`` themselves).
    """
    settings = resolve_settings(config or {}, os.environ)
    app = Flask(__name__)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    app.json.sort_keys = False

    store = open_store(settings["DATABASE"], wal_autocheckpoint=settings["WAL_AUTOCHECKPOINT"],
                       wal_limit_bytes=settings["WAL_LIMIT_MB"] * MB)
    # Hosts sharing a PostgreSQL database time reward windows by its clock, not each their own.
    clock = settings["CLOCK"] or (DatabaseClock(store) if is_url(settings["DATABASE"]) else SystemClock())
    limits = Limits(features=settings["MAX_REQUEST_FEATURES"], work=settings["MAX_REQUEST_WORK"],
                    rewards_per_event=settings["MAX_REWARDS_PER_EVENT"])
    models = ServingModels(store, clock, settings["MODEL_REFRESH_SECONDS"], settings["MODEL_CACHE_MB"] * MB,
                           settings["MODEL_IDLE_SECONDS"])
    service = Service(store, clock, spec_refresh_seconds=settings["SPEC_REFRESH_SECONDS"], limits=limits,
                      serving_models=models)
    archive = archive_from(store, settings)
    learner = Learner(store, clock, grace_seconds=settings["LEARNER_GRACE_SECONDS"], archive=archive,
                      **learner_memory(settings))
    app.extensions["silent"] = {"store": store, "service": service, "learner": learner, "clock": clock,
                                "personalizer": Personalizer(service), "archive": archive}

    from web import api, errors, metrics

    errors.register(app)
    metrics.register(app)
    app.register_blueprint(api.bp)
    from web import personalizer  # Personalizer's REST API under /personalizer

    app.register_blueprint(personalizer.bp)
    from web import reports_api  # reports and evaluations under /v1

    app.register_blueprint(reports_api.bp)
    app.add_url_rule("/healthz", "healthz", api.healthz)
    from web import openapi  # the OpenAPI document of everything above, at /openapi.json

    app.register_blueprint(openapi.bp)
    from web import auth, dashboard

    auth.register(app)
    app.register_blueprint(dashboard.bp)

    if settings["TRUSTED_PROXIES"]:  # client addresses and scheme as the proxies saw them
        hops = settings["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)
    if settings["LEARNER_THREAD"]:
        learner.start(settings["LEARNER_INTERVAL_SECONDS"])
    return app
