"""The versions of Personalizer's API a client can speak, and which one a request spoke.

Clients of v1.0 and v1.1 put the version in the path (``/personalizer/v1.0/rank``);
clients of 2022-09-01-preview (the official Python SDK) send ``?api-version=``.
Documents whose shape changed between versions (evaluations, durations) are
written in the shape of the version the request spoke.
"""
from __future__ import annotations

V1_0 = "v1.0"
V1_1 = "v1.1"  # v1.1-preview.1 to .3 and stable v1.1 share the evaluation shape
V2022 = "2022-09-01-preview"
PATH_VERSIONS = ("v1.0", "v1.1-preview.1", "v1.1-preview.2", "v1.1-preview.3", "v1.1")


def version_of(path_version: str | None, api_version: str | None) -> str:
    """Return the shape a request asks for: its path version first, else its ``api-version``, else 2022's.

    >>> version_of("v1.1-preview.3", None), version_of(None, "v1.0"), version_of(None, "2022-09-01-preview")
    ('v1.1', 'v1.0', '2022-09-01-preview')
    """
    for text in (path_version, api_version):
        if text:
            text = text.lower()
            if text in ("v1.0", "1.0"):
                return V1_0
            if text.startswith(("v1.1", "1.1")):
                return V1_1
            return V2022
    return V2022


def is_v1(version: str) -> bool:
    return version in (V1_0, V1_1)
