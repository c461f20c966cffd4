"""The experiment page's auto-tuning section: its settings, every switch with its estimates, and undo."""
from __future__ import annotations

from experiments.autotune import ACTOR
from web.dashboard.report_views import estimate


def switches(history: list[dict]) -> list[dict]:
    """Return the auto-tuning switches of an experiment's history, newest first, marking undone ones."""
    undone = {h["change"]["undo"]["version"]: h for h in history
              if isinstance(h["change"], dict) and isinstance(h["change"].get("undo"), dict)}
    out = []
    for h in history:
        if h["actor"] != ACTOR or not isinstance(h["change"], dict) or "autotune" not in h["change"]:
            continue
        summary = h["change"]["autotune"]
        chosen = next(a for a in summary["alternatives"] if a["label"] == summary["chosen"])
        out.append({"version": h["version"], "at": h["at"], "chosen": summary["chosen"],
                    "gain": estimate(chosen["gain"], signed=True), "window": summary["window"],
                    "alpha": summary["alpha"], "undone_by": undone.get(h["version"]),
                    "alternatives": [{"label": a["label"], "gain": estimate(a["gain"], signed=True)}
                                     for a in summary["alternatives"]]})
    return list(reversed(out))


def section(row: dict, history: list[dict]) -> dict:
    """Everything the page shows about auto-tuning."""
    return {"settings": row["spec"]["learning"]["autotune"], "switches": switches(history)}
