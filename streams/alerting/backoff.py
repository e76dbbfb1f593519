"""Waiting between attempts: exponential backoff with jitter, interruptible by shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random


class Halted(Exception):
    """Shutdown began while a record was in progress: leave it uncommitted."""


async def pause(halt: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, raising Halted as soon as shutdown begins."""
    if seconds > 0 and not halt.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), seconds)
    if halt.is_set():
        raise Halted


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Delay after failed attempt ``attempt`` (1-based): exponential, "equal jitter".

    Half the step is fixed so delays really grow; half is random so partitions retrying
    against the same receiver spread out instead of arriving together.
    """
    step = min(max_s, initial_s * 2 ** min(attempt - 1, 32))
    return step / 2 + random.uniform(0, step / 2)
