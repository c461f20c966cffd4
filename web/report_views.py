"""Turn reports into what the dashboard shows (interim: filled in once experiments.reports lands)."""
from __future__ import annotations


def split_text(spec: dict) -> str:
    holdout = spec["traffic"]["holdout"]
    return f"{(1 - holdout) * 100:.0f}% bandit · {holdout * 100:.0f}% holdout"


def summary(row: dict) -> dict:
    return {"row": row, "split": split_text(row["spec"]), "decisions_today": None, "lift": None,
            "lift_note": "no report yet", "warnings": []}


def report_page(row: dict, args) -> dict:
    return {"report": None}


def evaluation_page(row: dict, request) -> dict:
    return {}
