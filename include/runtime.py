"""Process settings for the heavy tasks: feature builds, training and scoring.

A feature build over ten million receivable lines allocates and frees arrays of tens to hundreds of
megabytes hundreds of times. With the defaults of glibc's ``malloc`` each such array is a fresh
``mmap``: the kernel hands out zeroed pages again on every use, and, because NumPy asks for
transparent huge pages on large arrays, the first use in a process can stall in memory compaction.
Measured on the benchmark's receivables family (10M lines, 2 cores): 7.5 s in a fresh process with the
defaults, of which 3.5 s in the kernel, against 4.5 s with :func:`tune_batch_memory` (0.4 s in the
kernel), and 5.0 s against 4.1 s on a repeat.

:func:`tune_batch_memory` makes a task's process keep what it frees and reuse it. The cost: the
process's resident memory stays at its peak until it ends, which an Airflow task's process does when
the task does. ``HOLDCAST_BATCH_MEMORY=system`` leaves the defaults alone.

Only the main thread's heap gains: glibc gives every other thread an arena of its own, which maps an
array over 64 MiB afresh whatever the threshold. Sharing one arena between all threads
(``M_ARENA_MAX=1``) would cure that but doubles a LightGBM predict on two cores (its threads then
queue for the one arena's lock), so the feature build keeps the arrays it reuses most on the main thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from include import config

logger = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# mallopt takes an int: 2 GiB - 1 is the largest threshold it accepts. Arrays up to that size then come
# from the heap, and up to that much free memory at its top is kept instead of given back.
_KEEP_BYTES = 2**31 - 1

_tuned = False


def tune_batch_memory() -> bool:
    """Keep freed memory for reuse in this process (see the module's documentation); idempotent.

    Returns whether the allocator was tuned: false when ``HOLDCAST_BATCH_MEMORY`` is ``system``, or
    when the C library is not glibc (``mallopt`` is glibc's), in which case nothing changes.
    """
    global _tuned
    if _tuned:
        return True
    if config.HOLDCAST_BATCH_MEMORY.get() != "reuse":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.info("C library without mallopt: memory allocation left at its defaults")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1 and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1
    # Huge pages asked for array by array cost a compaction stall on first use; reused heap memory
    # gains little from them.
    import numpy as np

    core = getattr(np, "_core", None)
    set_huge = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if set_huge is not None:
        set_huge(False)
    _tuned = ok
    logger.info("Batch memory: freed memory is kept for reuse%s", "" if ok else " (mallopt refused)")
    return ok
