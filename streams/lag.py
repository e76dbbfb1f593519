"""Consumer lag of this worker's input partitions: end offset - next offset to process.

"Next to process" is what the fulfillment agent has processed (it keeps the positions in
`services["positions"]`); for a partition it has not read from since it was assigned, the
group's committed offset, where it resumes. The end offset is the highwater of the last fetch,
so nothing here calls the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.types import TP


def input_lag(app: Any, inputs: tuple[str, ...] | list[str],
              positions: Mapping[TP, int]) -> dict[TP, int]:
    """Lag per assigned input partition whose end offset is known."""
    consumer = app.consumer
    wanted = set(inputs)
    try:
        assigned = consumer.assignment()
    except Exception:  # the consumer is not started or is rebalancing: nothing assigned
        return {}
    lag: dict[TP, int] = {}
    for tp in assigned:
        if tp.topic not in wanted:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # partition just revoked
            continue
        if highwater is None:
            continue
        position = positions.get(tp)
        if position is None:
            position = consumer._committed_offset.get(tp) or 0
        lag[tp] = max(0, highwater - position)
    return lag
