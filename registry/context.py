"""Everything a request handler needs, stored once on the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from registry.auth import Authenticator
from registry.election import WriterElection
from registry.forwarding import Forwarder
from registry.metrics import RegistryMetrics
from registry.service import RegistryService
from registry.store import KafkaStore


@dataclass
class RegistryContext:
    service: RegistryService
    store: KafkaStore
    election: WriterElection
    forwarder: Forwarder
    metrics: RegistryMetrics
    authenticator: Authenticator | None = None


CONTEXT = web.AppKey("registry_context", RegistryContext)
