"""A small Python client for a shop's servers: slates within a latency budget, rewards that arrive once.

Standard library only, so a shop can vendor it or install it without pulling in the
service's dependencies; it imports nothing from ``bandit``, ``experiments`` or ``web``.
"""
from silent_client.client import RewardResult, SilentClient, Slate

__all__ = ["SilentClient", "Slate", "RewardResult"]
