"""Settings of the connector process (``rates connect``): venues, their URLs, backoff."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from connectors.venues.base import WebsocketVenue
from schemas.settings import CommonSettings


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a {'/'.join(schemes)} URL, got {value!r}")
    return value


class ConnectorSettings(CommonSettings):
    """Which venues to connect to, and where each one is."""

    binance_ws_url: str = Field(
        default="wss://data-stream.binance.vision",
        description="Binance websocket base without path; the connector adds /stream?streams=",
    )
    binance_api_url: str = Field(
        default="https://data-api.binance.vision", description="Binance REST base"
    )
    connector_metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Prometheus port of the connector; 0: off"
    )
    connector_backoff_base_s: float = Field(
        default=0.5, gt=0, le=60, description="first reconnect delay (doubles, jittered)"
    )
    connector_backoff_cap_s: float = Field(
        default=30.0, gt=0, le=3600, description="longest reconnect delay"
    )
    connector_buffer: int = Field(
        default=50_000,
        ge=100,
        le=10_000_000,
        description="records buffered while Kafka is away; the oldest are dropped beyond it",
    )

    @field_validator("binance_ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return check_url(value, ("ws", "wss"))

    @field_validator("binance_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_url(value, ("http", "https"))

    def ws_url(self, venue: WebsocketVenue) -> str:
        url: str = getattr(self, venue.url_setting)
        return url
