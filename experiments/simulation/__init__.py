"""Driving the simulated shop (``bandit.simulation``) through the service, in process or over HTTP.

May import ``bandit`` and the rest of ``experiments``.
"""
