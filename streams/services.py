"""Per-worker services the agents share: schema source, decoders, encoders, sink, dead letters.

Built once per worker process. Output schemas are registered here, at start-up, so a registry
outage later never stops the stream (decoders cache writer schemas by id as well).
"""

from __future__ import annotations

from typing import Any

from streams.app import Pipeline
from streams.schema_source import RegistrySchemaSource, SchemaSource
from streams.serde import WireDecoder, WireEncoder
from streams.sink import OffsetGuard, OutputSink

DERIVED_RECORDS = {
    "fulfillment_states": "FulfillmentState",
    "reconciliation_mismatches": "ReconciliationMismatch",
    "sla_alerts": "SlaAlert",
    "fulfillment_metrics": "WindowedMetric",
}


def build_services(pipeline: Pipeline, source: SchemaSource | None = None) -> dict[str, Any]:
    from streams.dlq import DeadLetterSink

    settings, names = pipeline.settings, pipeline.names
    source = source or RegistrySchemaSource.from_settings(settings)
    decoders = {t: WireDecoder.for_record(source, names.record_of(t)) for t in names.inputs}
    encoders: dict[str, WireEncoder] = {}
    for attr, record in DERIVED_RECORDS.items():
        topic = getattr(names, attr)
        encoders[topic] = WireEncoder.for_topic(source, topic, record)
        encoders[topic].resolve()
    sink: OutputSink
    if settings.processing_guarantee == "exactly_once":
        from streams.exactly_once import TransactionalSink, transactional_id

        sink = TransactionalSink(settings.bootstrap_servers, group_id=settings.app_id,
                                 transactional_id=transactional_id(settings.app_id,
                                                                   settings.worker_id),
                                 client_id=f"{settings.worker_id}-outputs")
    else:
        sink = OutputSink(settings.bootstrap_servers, client_id=f"{settings.worker_id}-outputs")
    dead_letters = DeadLetterSink(settings.bootstrap_servers, source, names=names,
                                  worker_id=settings.worker_id)
    pipeline.app.sensors.add(OffsetGuard(sink, dead_letters))

    @pipeline.app.on_before_shutdown.connect
    async def _flush_outputs(app: Any, **kwargs: Any) -> None:
        sink.close()
        dead_letters.close()
    services = {"schema_source": source, "decoders": decoders, "encoders": encoders,
                "sink": sink, "dead_letters": dead_letters, "counters": {}}
    pipeline.services.update(services)
    return services
