"""Reading one input record: wire-format decode, then the fold's semantic checks.

The live agent and the bulk replay both read inputs through `read_input`, so they dead-letter
exactly the same records with the same stage. A registry outage is not bad input: it raises
`RegistryUnavailable` (retry), never `RejectedInput`.
"""

from __future__ import annotations

from typing import Any

from streams.serde import DecodeError, WireDecoder
from tables import fulfillment

STAGE_DECODE = "decode"
STAGE_VALIDATE = "validate"


class RejectedInput(Exception):
    """A record for the dead-letter topic: `cause` says why, `stage` where; `correlation_id`
    when the record could be decoded (for the log line that reports it)."""

    def __init__(self, stage: str, cause: Exception, correlation_id: str | None = None) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause
        self.correlation_id = correlation_id


def read_input(decoder: WireDecoder, kind: str, value: bytes | None) -> dict[str, Any]:
    try:
        record: dict[str, Any] = decoder.decode(value or b"")
    except DecodeError as exc:
        raise RejectedInput(STAGE_DECODE, exc) from exc
    reason = fulfillment.validate(kind, record)
    if reason is not None:
        # Schema-valid, but the fold refuses it (negative quantity, unknown currency, ...).
        raise RejectedInput(STAGE_VALIDATE, ValueError(reason), record.get("correlation_id"))
    return record
