"""Settings of the connector process (``rates connect``): venues, their URLs, backoff."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from connectors.venues.base import PollingVenue, SymbolCheck, Venue, WebsocketVenue
from connectors.venues.coingecko import PLAN_URLS
from schemas.settings import CommaList, PollSettings


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a {'/'.join(schemes)} URL, got {value!r}")
    return value


class ConnectorSettings(PollSettings):
    """Which venues to connect to, and where each one is."""

    binance_ws_url: str = Field(
        default="wss://data-stream.binance.vision",
        description="Binance websocket base without path; the connector adds /stream?streams=",
    )
    binance_api_url: str = Field(
        default="https://data-api.binance.vision",
        description="Binance REST base (symbol check: /api/v3/exchangeInfo)",
    )
    binance_rotate_after_s: float = Field(
        default=23.5 * 3600,
        gt=0,
        le=24 * 3600,
        description="age at which a Binance connection is replaced, the new one opened "
        "before the old one closes (Binance ends connections at 24 h)",
    )
    kraken_ws_url: str = Field(
        default="wss://ws.kraken.com/v2", description="Kraken websocket v2 URL"
    )
    kraken_api_url: str = Field(
        default="https://api.kraken.com",
        description="Kraken REST base (symbol check: /0/public/AssetPairs)",
    )
    okx_ws_url: str = Field(
        default="wss://ws.okx.com:8443/ws/v5/public", description="OKX public websocket v5 URL"
    )
    okx_api_url: str = Field(
        default="https://www.okx.com",
        description="OKX REST base (symbol check: /api/v5/public/instruments)",
    )
    bybit_ws_url: str = Field(
        default="wss://stream.bybit.com/v5/public/spot",
        description="Bybit public spot websocket v5 URL",
    )
    bybit_api_url: str = Field(
        default="https://api.bybit.com",
        description="Bybit REST base (symbol check: /v5/market/instruments-info)",
    )
    coinbase_ws_url: str = Field(
        default="wss://advanced-trade-ws.coinbase.com",
        description="Coinbase Advanced Trade market-data websocket URL",
    )
    coinbase_api_url: str = Field(
        default="https://api.coinbase.com",
        description="Coinbase REST base (symbol check: /api/v3/brokerage/market/products)",
    )
    coingecko_api_key: SecretStr | None = Field(
        default=None,
        description="CoinGecko API key, sent as a header and never logged; unset: keyless",
    )
    coingecko_plan: Literal["demo", "pro"] = Field(
        default="demo",
        description="demo (key header x-cg-demo-api-key, api.coingecko.com) or pro "
        "(x-cg-pro-api-key, pro-api.coingecko.com; needs COINGECKO_API_KEY)",
    )
    coingecko_api_url: str = Field(
        default=None,
        validate_default=True,
        description="CoinGecko REST base ending in /api/v3; unset: the plan's",
    )
    coingecko_ids: CommaList = Field(
        default=(),
        description="CoinGecko coin ids of assets, ASSET=id comma-separated (SOL=solana); "
        "adds to or overrides the built-in ids of common assets; an asset named by neither "
        "is looked up in CoinGecko's coin list (README: adding a pair)",
    )
    cbr_url: str = Field(
        default="https://www.cbr.ru/scripts/XML_daily.asp",
        description="the Central Bank of Russia's daily rates document (USD-RUB reference)",
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
    connector_window_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="records delivered within this many seconds (and the newest of each key) "
        "are sent again when the broker turns out to be replaced (the embedded one restarted "
        "or recycled): it must cover the pipeline's lag from the connector to PostgreSQL",
    )
    connector_window_mb: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="most memory (MB of keys and values) those records may take",
    )

    @field_validator(
        "binance_ws_url", "kraken_ws_url", "okx_ws_url", "bybit_ws_url", "coinbase_ws_url"
    )
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return check_url(value, ("ws", "wss"))

    @field_validator(
        "binance_api_url",
        "kraken_api_url",
        "okx_api_url",
        "bybit_api_url",
        "coinbase_api_url",
        "cbr_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_url(value, ("http", "https"))

    @field_validator("coingecko_api_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("coingecko_ids")
    @classmethod
    def _coin_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            asset, sep, coin = item.partition("=")
            if not sep or not asset.strip() or not coin.strip():
                raise ValueError(f"expected ASSET=coin-id, got {item!r}")
        return value

    @property
    def coin_ids(self) -> dict[str, str]:
        """COINGECKO_IDS as asset -> coin id (assets upper-case, as in directions)."""
        pairs = (item.partition("=") for item in self.coingecko_ids)
        return {asset.strip().upper(): coin.strip() for asset, _, coin in pairs}

    @field_validator("coingecko_plan")
    @classmethod
    def _plan(cls, value: str, info: ValidationInfo) -> str:
        if value == "pro" and info.data.get("coingecko_api_key") is None:
            raise ValueError("the pro plan needs COINGECKO_API_KEY")
        return value

    @field_validator("coingecko_api_url", mode="before")
    @classmethod
    def _coingecko_url(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return PLAN_URLS[info.data.get("coingecko_plan", "demo")]
        return check_url(value, ("http", "https")) if isinstance(value, str) else value

    def url(self, venue: Venue) -> str:
        """The configured URL of a venue (websocket URL, or REST URL of a polled venue)."""
        url: str = getattr(self, venue.url_setting)
        return url

    def api_url(self, check: SymbolCheck) -> str:
        url: str = getattr(self, check.api_setting)
        return url

    def rotate_after_s(self, venue: WebsocketVenue) -> float | None:
        if venue.rotate_setting is None:
            return None
        age: float = getattr(self, venue.rotate_setting)
        return age

    def interval_s(self, venue: PollingVenue) -> float:
        return self.poll_interval_s(venue.interval_setting)

    def headers(self, venue: PollingVenue) -> dict[str, str]:
        """The HTTP headers a polled venue needs (its API key under the plan's header)."""
        if venue.auth is None:
            return {}
        key: SecretStr | None = getattr(self, venue.auth.key_setting)
        if key is None:
            return {}
        plan: str = getattr(self, venue.auth.plan_setting)
        return {venue.auth.headers[plan]: key.get_secret_value()}
