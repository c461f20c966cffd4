"""A bare VW replay of an experiment's log, to compare byte for byte with the model a learner published."""
import os

import vowpalwabbit

from bandit.encoding import action_text, cb_lines, context_text
from bandit.scaling import Scaler, parse_scaling
from experiments.store import loads


def bare_replay(store, experiment: str, items: list[dict], args: str, handed_over_at: int) -> bytes:
    """Learn the whole log in log order (the store's commit order) with a bare VW workspace.

    A learner that took over went on from the snapshot the dead one published last,
    so the replay saves and reloads its workspace at that point as the survivor did
    (VW does not keep every counter of a running workspace in its model file).
    Slot 0's clicks are the reward; the experiment's scaling is raw.
    """
    scaler = Scaler(parse_scaling({"default": "raw"}))
    ws = vowpalwabbit.Workspace(args)
    actions = scaler.texts([action_text(item) for item in items])
    path = f"/tmp/silent-replay-{os.getpid()}.vw"
    for i, row in enumerate(store.closed_decisions(experiment, 0, float("inf"), 1_000_000)):
        if i == handed_over_at:
            ws.save(path)
            ws.finish()
            ws = vowpalwabbit.Workspace(f"--quiet --ring_size 8 -i {path}")
        first = loads(row["slate"])[0]
        clicks = [r for r in store.rewards_for([row["seq"]]) if r["slot"] == 0]
        ws.learn(cb_lines(scaler.text(context_text(loads(row["context"]))), actions,
                          label=(first["index"], -sum(r["value"] for r in clicks), first["probability"])))
    ws.save(path)
    ws.finish()
    with open(path, "rb") as fh:
        data = fh.read()
    os.remove(path)
    return data
