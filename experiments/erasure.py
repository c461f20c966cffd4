"""Erasure of one shopper: delete a unit's decisions and rewards from the log, and say what stays.

The log is the source of truth for reports, exports and rebuilt models, so once a
unit's decisions are gone none of those shows them again. What cannot be undone
is said in every answer: a model that already learned from them keeps it.
"""
from __future__ import annotations

import pyarrow.compute as pc

from experiments.reporting.archive import unit_key
from experiments.spec import check_id

NOT_UNDONE = ("Models already trained on these decisions keep what they learned from them: they are not "
              "unlearned, only a model rebuilt from the log (after a change of learning settings) no longer "
              "sees them. Files exported and backups taken before now still hold them.")


def forget_unit(store, unit, archive=None) -> dict:
    """Delete every decision of ``unit`` in every experiment, with its rewards; say what went and what stays.

    With an ``archive`` its Parquet files are rewritten without the unit's rows too
    (matched on ``unit_key``, then on the unit itself).
    """
    check_id(unit, "unit")
    counts = store.forget_unit(unit)
    if archive is not None:
        key = unit_key(unit)
        archived = archive.delete_rows(None, ["unit_key", "unit"], lambda table: pc.and_(
            pc.equal(table["unit_key"], key), pc.equal(table["unit"], unit)))
        counts["archived"] = archived
    deleted = {"decisions": counts["decisions"], "rewards": counts["rewards"]}
    if "archived" in counts:
        deleted["archived_decisions"] = counts["archived"]["decisions"]
    return {"unit": unit, "deleted": deleted, "experiments": counts["experiments"], "not_undone": NOT_UNDONE}
