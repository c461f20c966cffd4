"""The growth team's dashboard: server-rendered views, forms, SVG charts and their templates.

May import ``experiments``, ``bandit`` and ``web.auth``; the JSON API never imports from here.
"""
from web.dashboard.views import bp

__all__ = ["bp"]
