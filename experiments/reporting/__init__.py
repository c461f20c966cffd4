"""Reporting: the report (lift, sample ratio, off-policy estimates, time series), evaluations and exports.

Reads the log through ``experiments.store``; may import ``bandit`` and the rest of ``experiments``.
"""
