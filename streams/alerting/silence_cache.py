"""The silences a deliverer checks, re-read from the silences topic every few seconds.

A failed re-read keeps the silences already loaded: muting too little for a moment is better
than stopping delivery, and muting nothing because the broker blinked would page everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from streams.alerting.silences import load_silences
from tables.alerts import Silence

log = logging.getLogger(__name__)
_READ_TIMEOUT_S = 3.0


class SilenceCache:
    def __init__(self, bootstrap: str, topic: str,
                 on_refresh: Callable[[list[Silence]], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.on_refresh = on_refresh
        self.silences: list[Silence] = []

    async def refresh(self) -> None:
        # A short timeout: shutdown waits for this thread, and Ctrl-C should be quick.
        found = await asyncio.to_thread(load_silences, self.bootstrap, self.topic,
                                        timeout_s=_READ_TIMEOUT_S)
        self.silences = list(found.values())
        if self.on_refresh is not None:
            self.on_refresh(self.silences)

    async def keep_fresh(self, every_s: float, halt: asyncio.Event) -> None:
        while not halt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), every_s)
            if halt.is_set():
                return
            try:
                await self.refresh()
            except Exception as exc:  # broker unreachable for a moment
                log.warning("could not re-read silences; keeping the ones loaded",
                            extra={"topic": self.topic, "loaded": len(self.silences),
                                   "error": f"{type(exc).__name__}: {exc}"})
