"""Settings of alert delivery: environment ``FSTREAMS_ALERTING_*`` (and explicit overrides).

URL lists are comma-separated, e.g.
``FSTREAMS_ALERTING_ALERTMANAGER_URLS=http://am-1:9093/hook,http://am-2:9093/hook``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

UrlList = Annotated[list[str], NoDecode]


class AlertingConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FSTREAMS_ALERTING_", extra="ignore")

    alertmanager_urls: UrlList = Field(
        default_factory=list, description="webhook receivers sent Alertmanager (v4) bodies")
    pagerduty_urls: UrlList = Field(
        default_factory=list, description=f"PagerDuty Events v2 endpoints ({PAGERDUTY_EVENTS_URL})")
    pagerduty_routing_key: SecretStr | None = Field(
        None, description="integration key of the PagerDuty service")
    receiver_name: str = Field("fulfillment-oncall", description="`receiver` in webhook bodies")
    external_url: str = Field("", description="`externalURL` in webhook bodies")
    group_id: str | None = Field(
        None, description="consumer group base (default <app_id>-alert-delivery); one group "
        "per receiver is derived from it")
    start_from: Literal["latest", "earliest"] = Field(
        "latest", description="where a receiver's new consumer group starts: latest = alerts "
        "from now on; earliest = the whole retained topic (pages all of it again)")
    request_timeout_s: float = Field(10.0, gt=0, description="per HTTP attempt")
    backoff_initial_s: float = Field(0.5, gt=0, description="first retry delay (before jitter)")
    backoff_max_s: float = Field(60.0, gt=0, description="retry delays grow up to this")
    give_up_after_s: float = Field(
        3600.0, gt=0, description="stop retrying a record this long after its first attempt")
    breaker_failures: int = Field(
        5, ge=1, description="consecutive failures that open a receiver's circuit")
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="how long an open circuit waits before one probe")
    silences_refresh_s: float = Field(10.0, gt=0, description="re-read silences this often")
    stats_interval_s: float = Field(60.0, gt=0, description="log the counters this often")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve the delivery counters as Prometheus metrics "
        "at GET /metrics on this port (unset = off)")
    metrics_host: str = Field("127.0.0.1", description="address the metrics port binds to")

    @field_validator("alertmanager_urls", "pagerduty_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("alertmanager_urls", "pagerduty_urls")
    @classmethod
    def _http_only(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return urls

    @model_validator(mode="after")
    def _routing_key_for_pagerduty(self) -> AlertingConfig:
        if self.pagerduty_urls and self.pagerduty_routing_key is None:
            raise ValueError("PagerDuty URLs are set but no routing key: set "
                             "FSTREAMS_ALERTING_PAGERDUTY_ROUTING_KEY (the service's "
                             "Events v2 integration key)")
        return self

    def consumer_group(self, app_id: str) -> str:
        return self.group_id or f"{app_id}-alert-delivery"
