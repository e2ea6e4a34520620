"""Settings load from the environment and name the setting in every error."""

from __future__ import annotations

import pytest

from api.settings import ApiSettings
from connectors import registry
from connectors.settings import ConnectorSettings
from connectors.venues import coingecko, okx
from connectors.venues.base import WebsocketVenue
from pipeline.settings import WorkerSettings
from rates.settings import StackSettings
from schemas.errors import ConfigError
from schemas.settings import DEFAULT_DIRECTIONS, CommonSettings, load
from schemas.topics import Topics
from schemas.venues import EXCHANGERS, VENUES

VENUE_PREFIXES = tuple(f"{venue.upper()}_" for venue in VENUES)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))  # no .env from the checkout
    for name in list(__import__("os").environ):
        if name.startswith(("RATES_", "KAFKA_", "API_", "DATABASE_", "LOG_", *VENUE_PREFIXES)):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load(StackSettings)
    assert s.kafka_bootstrap_servers is None
    assert s.kafka_connect_timeout_s == 30
    assert s.api_host == "127.0.0.1"
    assert s.api_port == 8000
    assert s.rates_directions == DEFAULT_DIRECTIONS
    assert s.rates_venues == VENUES
    assert s.rates_priority == EXCHANGERS
    assert s.rates_reference_priority == ("coingecko", "cbr")
    assert s.rates_topic_prefix == ""
    assert s.log_level == "INFO"
    assert s.binance_ws_url == "wss://data-stream.binance.vision"


def test_comma_lists_and_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATES_DIRECTIONS", " btc-usd, ETH-usd,,BTC-USD,sol-rub,1inch-usd ")
    monkeypatch.setenv("RATES_VENUES", "binance")
    monkeypatch.setenv("RATES_PRIORITY", "binance")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    s = load(WorkerSettings)
    assert s.rates_directions == ("BTC-USD", "ETH-USD", "SOL-RUB", "1INCH-USD")
    assert s.rates_priority == ("binance",)
    assert s.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "cls", "expected"),
    [
        ("RATES_VENUES", "binance,nosuch", CommonSettings, "RATES_VENUES='binance,nosuch'"),
        ("RATES_VENUES", "", CommonSettings, "no venue enabled"),
        ("RATES_PRIORITY", "kraken2", WorkerSettings, "RATES_PRIORITY"),
        ("RATES_DIRECTIONS", "BTCUSD", CommonSettings, "RATES_DIRECTIONS"),
        ("RATES_DIRECTIONS", "SOL-USD,SOL/RUB", CommonSettings, "malformed direction 'SOL/RUB'"),
        ("RATES_DIRECTIONS", "SOL-EUR", CommonSettings, "expected ASSET-USD or ASSET-RUB"),
        ("RATES_DIRECTIONS", "BTC-USD,USD-RUB", CommonSettings, "unsupported direction 'USD-RUB'"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", CommonSettings, "KAFKA_BOOTSTRAP_SERVERS"),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:99999", CommonSettings, "KAFKA_BOOTSTRAP_SERVERS"),
        ("DATABASE_URL", "mysql://x@y/z", CommonSettings, "DATABASE_URL"),
        ("DATABASE_URL", "postgresql://x@y:port/z", CommonSettings, "DATABASE_URL"),
        ("DATABASE_URL", "postgresql://x@y:5432", CommonSettings, "names no database"),
        ("LOG_LEVEL", "LOUD", CommonSettings, "LOG_LEVEL"),
        ("API_PORT", "70000", ApiSettings, "API_PORT"),
        ("RATES_TOPIC_PREFIX", "bad prefix!", CommonSettings, "RATES_TOPIC_PREFIX"),
        ("BINANCE_WS_URL", "http://x", ConnectorSettings, "BINANCE_WS_URL"),
        ("KRAKEN_WS_URL", "https://ws.kraken.com/v2", ConnectorSettings, "KRAKEN_WS_URL"),
        ("OKX_API_URL", "wss://www.okx.com", ConnectorSettings, "OKX_API_URL"),
        ("CBR_URL", "cbr.ru", ConnectorSettings, "CBR_URL"),
        ("COINGECKO_API_URL", "ftp://x/api/v3", ConnectorSettings, "COINGECKO_API_URL"),
        ("COINGECKO_PLAN", "free", ConnectorSettings, "COINGECKO_PLAN"),
        ("COINGECKO_PLAN", "pro", ConnectorSettings, "pro plan needs COINGECKO_API_KEY"),
        ("COINGECKO_POLL_INTERVAL_S", "0", ConnectorSettings, "COINGECKO_POLL_INTERVAL_S"),
        ("BINANCE_ROTATE_AFTER_S", "90000", ConnectorSettings, "BINANCE_ROTATE_AFTER_S"),
        ("KAFKA_CONNECT_TIMEOUT_S", "-1", CommonSettings, "KAFKA_CONNECT_TIMEOUT_S"),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    cls: type[CommonSettings],
    expected: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load(cls)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_valid_urls_and_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:9092, b:9093")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/rates")
    s = load(CommonSettings)
    assert s.bootstrap == "a:9092,b:9093"
    assert s.database == "postgresql://postgres@127.0.0.1:5432/rates"


def test_missing_broker_and_database_are_explained() -> None:
    s = load(CommonSettings)
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        _ = s.bootstrap
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        _ = s.database


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    with open(f"{tmp_path}/.env", "w") as env:
        env.write("API_PORT=8123\n")
    assert load(ApiSettings).api_port == 8123


def test_topics_follow_the_prefix() -> None:
    topics = Topics("replay.")
    assert topics.raw("binance") == "replay.ticks.raw.binance"
    assert topics.normalized == "replay.rates.normalized"
    assert topics.latest == "replay.rates.latest"
    assert topics.venues_status == "replay.venues.status"
    assert topics.app_id == "replay.rates-pipeline"
    assert Topics().all(["binance"]) == [
        "ticks.raw.binance",
        "rates.normalized",
        "rates.latest",
        "venues.status",
        "rates.reference",
    ]
    with pytest.raises(ConfigError, match="RATES_TOPIC_PREFIX"):
        Topics("no spaces")


def test_venue_urls_default_to_the_documented_ones() -> None:
    s = load(ConnectorSettings)
    assert s.kraken_ws_url == "wss://ws.kraken.com/v2"
    assert s.okx_ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert s.bybit_ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert s.coinbase_ws_url == "wss://advanced-trade-ws.coinbase.com"
    assert s.cbr_url == "https://www.cbr.ru/scripts/XML_daily.asp"
    assert s.url(registry.get("okx")) == s.okx_ws_url
    assert s.url(registry.get("cbr")) == s.cbr_url
    binance = registry.get("binance")
    assert isinstance(binance, WebsocketVenue) and binance.symbol_check is not None
    assert s.api_url(binance.symbol_check) == "https://data-api.binance.vision"
    assert s.rotate_after_s(binance) == 23.5 * 3600
    assert s.rotate_after_s(okx.VENUE) is None


def test_coingecko_plan_chooses_base_url_and_key_header(monkeypatch: pytest.MonkeyPatch) -> None:
    keyless = load(ConnectorSettings)
    assert keyless.coingecko_api_url == "https://api.coingecko.com/api/v3"
    assert keyless.headers(coingecko.VENUE) == {}
    monkeypatch.setenv("COINGECKO_API_KEY", "CG-demo-secret")
    demo = load(ConnectorSettings)
    assert demo.headers(coingecko.VENUE) == {"x-cg-demo-api-key": "CG-demo-secret"}
    monkeypatch.setenv("COINGECKO_PLAN", "pro")
    pro = load(ConnectorSettings)
    assert pro.coingecko_api_url == "https://pro-api.coingecko.com/api/v3"
    assert pro.headers(coingecko.VENUE) == {"x-cg-pro-api-key": "CG-demo-secret"}
    # The key never shows in a repr, a dump or an error message.
    assert "CG-demo-secret" not in repr(pro) + str(pro.model_dump())
    monkeypatch.setenv("COINGECKO_API_URL", "http://127.0.0.1:9/api/v3")
    assert load(ConnectorSettings).coingecko_api_url == "http://127.0.0.1:9/api/v3"
    monkeypatch.setenv("COINGECKO_POLL_INTERVAL_S", "-1")
    with pytest.raises(ConfigError) as info:
        load(ConnectorSettings)
    assert "CG-demo-secret" not in str(info.value)


def test_state_topics_are_compacted_streams_kept_a_week() -> None:
    from schemas.topics import topic_config

    topics = Topics("p.")
    for name in (topics.latest, topics.venues_status, topics.reference):
        assert topic_config(name)["cleanup.policy"] == "compact"
    for name in (topics.raw("binance"), topics.normalized):
        assert topic_config(name) == {"cleanup.policy": "delete", "retention.ms": "604800000"}
