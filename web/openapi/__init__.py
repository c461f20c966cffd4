"""The OpenAPI 3.1 document of the public API (``/v1``, ``/personalizer``, ``/healthz``), served at ``/openapi.json``.

The document is data in ``native``, ``personalizer`` and ``schemas``; a test checks
that every registered route is described there and that every example is answered
as documented, and a fuzzer drives every operation from it. Adding a route means
describing it here, and then `silent openapi --format markdown -o docs/api.md` (a test keeps
that reference equal to this document).

May import ``experiments`` and ``bandit`` (for the bounds they enforce), ``web.api`` and
``web.personalizer`` (for the path versions); nothing imports from here but ``create_app`` and the
CLI's ``silent openapi``, which prints it (``markdown`` renders it as ``docs/api.md``).
"""
from __future__ import annotations

import functools

from flask import Blueprint

from web.openapi import native, personalizer
from web.api import jsonify
from web.openapi.schemas import SCHEMAS
from web.personalizer import VERSIONS

bp = Blueprint("openapi", __name__)
PERSONALIZER_VERSIONS = [v.strip("/") for v in VERSIONS if v]
INTRO = ("Silent Customizer: a self-hosted contextual-bandit experimentation service. The native API lives "
         "under /v1; Personalizer's REST API under /personalizer. Errors of /v1 always have the shape "
         '{"error": {"code", "message", "field"}}; bodies over the size limit get 413, JSON nested deeper '
         "than 32 levels 400. See docs/security.md for key roles and limits.")


@functools.lru_cache(maxsize=1)
def document() -> dict:
    """Build the document once per process."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Silent Customizer", "version": "1", "description": INTRO},
        "paths": {**native.PATHS, **personalizer.PATHS,
                  **personalizer.versioned(personalizer.PATHS, PERSONALIZER_VERSIONS)},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (silent keys "
                           "create); each operation's x-roles names the roles that may call it. A public key (silent "
                           "keys create --role public --experiment KEY --origin URL) ships in a storefront's "
                           "pages: it is accepted only from the origins it names (CORS for exactly those), for "
                           "the experiments it names, and each client address gets a token bucket (429 with "
                           "Retry-After past it). With no key created the API is open and the server listens "
                           "on loopback only."},
                "publicKeyInUrl": {"type": "apiKey", "in": "query", "name": "key",
                                   "description": "A public key only, on the slate, reward and activate "
                                                  "operations: browsers then send a simple CORS request (a "
                                                  "text/plain JSON body) without a preflight. Any other key "
                                                  "in the URL is a 401."},
                "personalizerKey": {"type": "apiKey", "in": "header", "name": "Ocp-Apim-Subscription-Key",
                                    "description": "A Personalizer resource key (silent personalizer "
                                                   "create-resource); it names the experiment."},
            },
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
