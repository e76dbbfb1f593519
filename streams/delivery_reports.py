"""What a successful delivery report proves.

A report from the broker for a record it wrote carries the record's offset. librdkafka's
idempotent producer also reports success *without* an offset, when it infers delivery instead
of being told: a later batch to the partition succeeded, so it acknowledges the records queued
before it ("implicitly acked by subsequent batch success"), or the broker answered
DUPLICATE_SEQUENCE_NUMBER. The inference holds when the earlier request timed out after being
written. It does not always hold, and records are lost when it fails:

  Seen here (librdkafka 2.16 debug log, Kafka 4.1, a topic created a moment before): a new
  producer sent two batches to one partition back to back (seq 0-2, seq 3-16). The broker
  refused the first with NOT_LEADER_OR_FOLLOWER (its metadata already named it the leader;
  the partition was not ready yet), and librdkafka requeued those records as not persisted.
  9 ms later the broker accepted the second batch at offset 0 (a producer it has no state
  for may start at any sequence). librdkafka took that success as proof that the first batch
  was written and reported its three records delivered, with no offset. They were never
  written. This happened in about 1 run in 12 of a bench feeding fresh topics, and once in CI.

So a success without an offset does not prove delivery. Where order does not matter (input
events: consumers deduplicate by event id and converge in any order), the record is sent
again. Where order matters (a worker's outputs and changelog), the record counts as not
delivered and the batch is recomputed from the last committed offsets.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message


def unconfirmed(err: KafkaError | None, msg: Message) -> bool:
    """A success the client inferred (no offset), not one the broker reported."""
    return err is None and msg.offset() is None


def describe(msg: Message) -> str:
    return (f"{msg.topic()} [{msg.partition()}] key {msg.key()!r}: reported delivered without "
            "an offset (inferred by the client from a later batch, not acknowledged by the "
            "broker)")


def reason(err: KafkaError | None, msg: Message) -> str:
    """Why a report that is not a proof of delivery (an error, or no offset) is not."""
    if err is not None:
        return f"{msg.topic()} [{msg.partition()}]: {err.str()}"
    return describe(msg)


def failure(err: KafkaError | None, msg: Message) -> str | None:
    """Why this report does not prove its record written, or None when it does."""
    return reason(err, msg) if err is not None or msg.offset() is None else None
