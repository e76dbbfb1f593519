"""Cap glibc's malloc arenas in the worker process.

glibc gives threads their own malloc arenas (up to 8 per core) and rarely returns their freed
memory to the system. The worker's threads (Faust's consumer thread, RocksDB's flushes and
compactions, librdkafka's brokers) each end up touching an arena of their own, and the
worker's RSS crept up by tens of MB over a run with RocksDB's memory flat at its budget.
A couple of arenas shared by all threads keeps the memory freed by one thread reusable by
the others: RSS then follows what is actually in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def limit(arenas: int) -> bool:
    """At most `arenas` malloc arenas for threads that allocate from now on (0: glibc's
    default). Returns whether the C library took the setting (glibc only)."""
    if arenas <= 0:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.warning("could not cap malloc arenas", extra={"arenas": arenas})
    return done
