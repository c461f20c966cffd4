"""The experiment page's forgetting section: the drift watch, the rules in effect with the evidence behind them."""
from __future__ import annotations

from experiments.forgetting import ACTOR


def section(row: dict, history: list[dict]) -> dict:
    """The watch's settings and each rule in effect, with the drift-watch entry that wrote it (if it did)."""
    learning = row["spec"]["learning"]
    evidence = {}
    for h in history:  # oldest first: a later entry for the same group wins
        drift = h["change"].get("drift") if h["actor"] == ACTOR and isinstance(h["change"], dict) else None
        if isinstance(drift, dict):
            evidence[(drift["feature"], drift["value"])] = {"version": h["version"], "at": h["at"], **drift}
    rules = [{**rule, "evidence": evidence.get((rule["feature"], rule["value"]))} for rule in learning["forget"]]
    return {"watch": learning["drift_watch"], "rules": rules}
