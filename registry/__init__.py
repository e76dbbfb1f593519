"""Confluent-compatible Avro schema registry for fulfillment-streams.

A standalone aiohttp service that keeps its state in a compacted Kafka topic. It depends only on
its own modules and on Kafka/HTTP libraries so it can ship on its own.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
