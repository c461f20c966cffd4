"""Azure AI Personalizer's REST semantics mapped onto the native service (one resource is one experiment).

May import ``bandit`` and the rest of ``experiments``; the HTTP views live in ``web.personalizer``.
"""
from experiments.personalizer.mapping import Personalizer

__all__ = ["Personalizer"]
