"""Cap glibc's malloc arenas in the worker process, and hand freed heap back after a burst.

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
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def _glibc(function: str) -> Any:
    """A glibc function, or None on another C library (musl, macOS): nothing to tune there."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def limit(arenas: int) -> bool:
    """At most `arenas` malloc arenas for threads that allocate from now on (0: glibc's
    default). Returns whether the C library took the setting (glibc only)."""
    mallopt = _glibc("mallopt") if arenas > 0 else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.warning("could not cap malloc arenas", extra={"arenas": arenas})
    return done


def trim() -> bool:
    """Give the heap freed after a burst (a bulk restore's hundreds of MB of fetched and
    decompressed records) back to the system: glibc keeps it, so RSS would stay at the
    burst's peak for the life of the process. Returns whether memory was released."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
