"""How table values (order records, window aggregates) are stored: JSON text, through orjson.

A per-order record is ~4 KB of JSON written once per changed order per batch, and the
standard library's encoder took ~6% of a live worker's CPU (orjson: ~10x faster dumps). Same
JSON text model (str keys, ints, lists), so stores written by either read the same. Kept apart
from `streams.batching` so the bulk replay's job processes do not import Faust for it.
"""

from __future__ import annotations

import orjson

json_dumps = orjson.dumps
json_loads = orjson.loads
