"""Dropped policies give their memory back: a process that churns through models stays flat."""
import gc
import sys

import pytest

from bandit.allocator import pin_mmap_threshold, release_free_memory
from bandit.encoding import action_text, context_text
from bandit.policy import Policy, PolicySettings

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not pin_mmap_threshold(),
                                reason="the allocator tuning is for glibc only")


def resident_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def trained_policy(i: int) -> Policy:
    policy = Policy(PolicySettings(hash_bits=18))
    actions = [action_text({"id": f"a{j}", "category": f"c{j % 8}", "price": j}) for j in range(20)]
    for k in range(3):
        policy.learn(context_text({"user": {"segment": f"s{i}-{k}"}}), actions, [(k, 0.05)], [1.0])
    return policy


@glibc_only
def test_churning_policies_keeps_memory_flat():
    """20 live policies while 300 are loaded and dropped in turn (what the model cache does).

    With glibc's dynamic mmap threshold every weight table after the first drop was
    calloc'ed on the heap and fully resident: ~100 MB more here. Pinned, it stays near 20 live ones.
    """
    live = [trained_policy(i) for i in range(20)]
    gc.collect()
    release_free_memory()
    before = resident_mb()
    for i in range(300):
        live.append(trained_policy(i))
        live.pop(0)
    gc.collect()
    release_free_memory()
    assert resident_mb() - before < 30
