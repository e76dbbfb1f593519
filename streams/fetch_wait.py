"""The live consumer's fetch long-poll: a short wait instead of Faust's hard-coded 1,500 ms.

Faust creates its aiokafka consumer with `fetch_max_wait_ms=1500` and no way to change it.
aiokafka keeps one fetch request in flight per broker, for the partitions that have nothing
buffered; the broker answers it as soon as any of them has data, or when the wait runs out.
When some inputs are quiet (a settlement feed between its reports, the orders topic at night)
the request in flight can name only quiet partitions while records arrive on busy ones that
were still being drained when it was sent: those records then wait out the 1.5 s. Measured
on the latency bench (1,600 events/s), where the inputs go quiet one by one at the end of the
feed: the last second's states came 1.3-1.8 s after their events were produced and the p99
was 1.5-1.85 s; with a 100 ms wait, 0.4-0.55 s and 0.30-0.34 s. An idle worker then sends
~10 small fetches a second per broker instead of ~1.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def install(app: Any, wait_ms: int) -> bool:
    """Make `app`'s consumer (aiokafka driver) fetch with `wait_ms`; call before it starts.
    False (and Faust's wait kept) for another driver."""
    thread = getattr(app.consumer, "_thread", None)
    create = getattr(thread, "_create_worker_consumer", None)
    if create is None:
        log.warning("fetch wait not set: the consumer is not Faust's aiokafka driver")
        return False

    def create_with_wait(transport: Any) -> Any:
        consumer = create(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher (the constructor
        # argument, stored as is).
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._create_worker_consumer = create_with_wait
    return True
