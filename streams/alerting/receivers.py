"""Where alerts go: Alertmanager-style webhooks and PagerDuty Events v2 endpoints.

A ``Receiver`` turns an SlaAlert dict into its JSON body (the pure builders of
``tables.alerts``) and POSTs it. ``post`` never raises for the receiver's sake: it returns
an ``Attempt`` saying whether to count the record delivered, retry it, or give it up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from streams.alerting.config import AlertingConfig
from tables.alerts import alertmanager_payload, pagerduty_payload

ALERTMANAGER, PAGERDUTY = "alertmanager", "pagerduty"
# 408 and 429 mean "not now"; any other 4xx means the body is wrong and retrying cannot help.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # receiver down, slow or throttling: try again later
    REJECTED = "rejected"  # receiver answered that the request is invalid: give up now


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    detail: str  # "HTTP 503", "timeout after 10s", ... for logs


@dataclass(frozen=True)
class Receiver:
    kind: str  # ALERTMANAGER | PAGERDUTY
    url: str
    receiver_name: str = "fulfillment-oncall"
    external_url: str = ""
    routing_key: str = ""

    @property
    def name(self) -> str:
        """Readable and stable across restarts (it names the receiver's consumer group)."""
        parts = urlsplit(self.url)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:8]
        return f"{self.kind}-{parts.hostname or 'host'}-{digest}"

    def body(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        if self.kind == PAGERDUTY:
            return pagerduty_payload(alert, routing_key=self.routing_key)
        return alertmanager_payload(alert, receiver=self.receiver_name,
                                    external_url=self.external_url)


def receivers_from_config(config: AlertingConfig) -> list[Receiver]:
    key = config.pagerduty_routing_key.get_secret_value() if config.pagerduty_routing_key else ""
    return [
        *(Receiver(ALERTMANAGER, url, config.receiver_name, config.external_url)
          for url in config.alertmanager_urls),
        *(Receiver(PAGERDUTY, url, routing_key=key) for url in config.pagerduty_urls),
    ]


async def post(session: aiohttp.ClientSession, receiver: Receiver, body: dict[str, Any],
               timeout_s: float) -> Attempt:
    """One POST; connection errors and timeouts are ``RETRY`` like 5xx."""
    try:
        async with session.post(receiver.url, json=body,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            text = (await response.text())[:200]
            status = response.status
    except TimeoutError:
        return Attempt(Outcome.RETRY, f"timeout after {timeout_s}s")
    except aiohttp.ClientError as exc:
        return Attempt(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
    detail = f"HTTP {status}" + (f": {text}" if text and status >= 300 else "")
    if 200 <= status < 300:
        return Attempt(Outcome.DELIVERED, detail)
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return Attempt(Outcome.REJECTED, detail)
    return Attempt(Outcome.RETRY, detail)
