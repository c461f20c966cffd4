"""Keep VW's weight tables out of the C heap, so a dropped policy gives its memory back.

glibc serves allocations above a threshold with their own mmap, and raises that
threshold to the size of every such block freed. After the first policy is
dropped, later weight tables (4 MB at 18 bits) come from the heap instead:
``calloc`` there must zero them, so every page is resident from the start, and
the heap fragments between live policies. Measured with 100 live policies
churned through 1,200 loads: 532 MB resident with glibc's default, 124 MB with
the threshold pinned. Pinning it (``mallopt(M_MMAP_THRESHOLD)``) also turns the
dynamic raise off. Other C libraries are left as they are.
"""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value
_PROCESS = ctypes.CDLL(None)  # the symbols this process has loaded, the C library's among them


def _glibc(function: str):
    """Return a glibc function, or None under another C library (musl, macOS): nothing to tune there."""
    return getattr(_PROCESS, function, None)


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold for this process; return whether it took effect."""
    mallopt = _glibc("mallopt")
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Hand memory freed by dropped policies back to the OS (``malloc_trim``); glibc only.

    Freed heap pages between live allocations otherwise stay resident: a learner
    that loaded 300 policies in a pass and parked 200 kept 660 MB instead of 410 MB.
    Costs about 0.2 ms per MB released.
    """
    malloc_trim = _glibc("malloc_trim")
    return bool(malloc_trim and malloc_trim(0))
