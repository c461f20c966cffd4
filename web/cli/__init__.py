"""The ``silent`` command line: one module per command group, thin click commands over ``experiments``.

May import ``experiments``, ``bandit`` and the rest of ``web`` (``silent serve`` composes it all).
"""
from web.cli.main import cli

__all__ = ["cli"]
