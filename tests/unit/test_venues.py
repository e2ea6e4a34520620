"""What venue modules declare: subscribe messages within limits, request URLs, symbol checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.http import decode_body, retry_after_s
from connectors.symbols import check_answer
from connectors.venues import binance, bybit, cbr, coinbase, coingecko, kraken, okx
from connectors.venues.base import millis, missing_symbols, seconds, unquoted
from schemas.errors import FrameError

NOW = datetime(2026, 11, 24, 16, tzinfo=UTC)


def test_binance_subscribes_by_url_and_caps_streams() -> None:
    assert binance.connect_url("wss://h/", ["BTCUSDT", "ETHUSDT"]) == (
        "wss://h/stream?streams=btcusdt@trade/ethusdt@trade"
    )
    assert binance.subscribe(["BTCUSDT"]) == []
    with pytest.raises(ValueError, match="1024"):
        binance.connect_url("wss://h", [f"S{i}" for i in range(1025)])


def test_bybit_subscribes_at_most_ten_topics_per_request() -> None:
    messages = [json.loads(m) for m in bybit.subscribe([f"S{i}USDT" for i in range(23)])]
    assert [len(m["args"]) for m in messages] == [10, 10, 3]
    assert all(m["op"] == "subscribe" for m in messages)
    assert messages[0]["args"][0] == "tickers.S0USDT"
    assert bybit.VENUE.heartbeat is not None
    assert json.loads(bybit.VENUE.heartbeat.message)["op"] == "ping"
    assert bybit.VENUE.heartbeat.interval_s == 20


def test_subscribe_messages_of_the_other_venues() -> None:
    (message,) = kraken.subscribe(["BTC/USD", "ETH/USD"])
    assert json.loads(message) == {
        "method": "subscribe",
        "params": {"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"]},
    }
    (message,) = okx.subscribe(["BTC-USDT"])
    assert json.loads(message) == {
        "op": "subscribe",
        "args": [{"channel": "tickers", "instId": "BTC-USDT"}],
    }
    assert okx.VENUE.heartbeat is not None and okx.VENUE.heartbeat.message == "ping"
    ticker, beats = (json.loads(m) for m in coinbase.subscribe(["BTC-USD"]))
    assert ticker == {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "ticker"}
    assert beats == {"type": "subscribe", "channel": "heartbeats"}
    assert kraken.VENUE.heartbeat is None and coinbase.VENUE.heartbeat is None


def test_connect_limits_follow_the_venues() -> None:
    assert okx.VENUE.max_connects.per_second == 3
    assert binance.VENUE.max_connects.per_second == 1  # 300 per 5 minutes
    assert kraken.VENUE.max_connects.count == 150 and kraken.VENUE.max_connects.per_s == 600
    assert binance.VENUE.max_messages_per_s == 5


def test_coingecko_asks_for_every_coin_and_currency_once() -> None:
    url = coingecko.request_url("https://api.coingecko.com/api/v3/", list(coingecko.MARKETS))
    parts = urlsplit(url)
    assert parts.path == "/api/v3/simple/price"
    assert parse_qs(parts.query) == {
        "ids": ["bitcoin,ethereum,tether"],
        "vs_currencies": ["usd,rub"],
        "include_last_updated_at": ["true"],
        "precision": ["full"],
    }


# -- symbol checks, from the venues' documented REST shapes --------------------------------


def test_binance_exchange_info() -> None:
    # The whole spot listing at once: one request whatever the number of directions.
    assert binance.symbol_paths(["BTCUSDT", "ETHUSDT"]) == ["/api/v3/exchangeInfo?permissions=SPOT"]
    body = '{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],"exchangeFilters":[],"symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH"},{"symbol":"BTCRUB","status":"BREAK"}]}'  # noqa: E501
    assert binance.listed(200, body) == {"ETHBTC": True, "BTCRUB": False}
    assert binance.listed(400, '{"code":-1121,"msg":"Invalid symbol."}') == {}
    with pytest.raises(FrameError):
        binance.listed(418, '{"code":-1003,"msg":"banned"}')


def test_kraken_asset_pairs_use_v1_codes() -> None:
    body = '{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD","status":"online"},"USDTZUSD":{"altname":"USDTUSD","wsname":"USDT/USD","status":"cancel_only"},"XDGUSD":{"altname":"XDGUSD","wsname":"XDG/USD"}}}'  # noqa: E501
    assert kraken.listed(200, body) == {"BTC/USD": True, "USDT/USD": False, "DOGE/USD": True}
    with pytest.raises(FrameError):
        kraken.listed(200, '{"error":["EGeneral:Too many requests"]}')


def test_okx_bybit_and_coinbase_listings() -> None:
    okx_body = '{"code":"0","msg":"","data":[{"instType":"SPOT","instId":"BTC-USDT","state":"live"},{"instType":"SPOT","instId":"ETH-USDT","state":"suspend"}]}'  # noqa: E501
    assert okx.listed(200, okx_body) == {"BTC-USDT": True, "ETH-USDT": False}
    bybit_body = '{"retCode":0,"retMsg":"OK","result":{"category":"spot","list":[{"symbol":"BTCUSDT","status":"Trading"},{"symbol":"USDCUSDT","status":"PreLaunch"}]},"retExtInfo":{},"time":1}'  # noqa: E501
    assert bybit.listed(200, bybit_body) == {"BTCUSDT": True, "USDCUSDT": False}
    with pytest.raises(FrameError):
        bybit.listed(200, '{"retCode":10006,"retMsg":"Too many visits!"}')
    product = '{"product_id":"BTC-USD","status":"online","trading_disabled":false}'
    assert coinbase.listed(200, product) == {"BTC-USD": True}
    products = f'{{"products":[{product}],"num_products":1}}'
    assert coinbase.listed(200, products) == {"BTC-USD": True}
    assert coinbase.listed(404, "not found") == {}
    disabled = '{"product_id":"USDT-USD","status":"online","trading_disabled":true}'
    assert coinbase.listed(200, disabled) == {"USDT-USD": False}


def test_missing_symbols_say_why() -> None:
    listed = {"BTCUSDT": True, "ETHUSDT": False}
    assert missing_symbols(["BTCUSDT", "ETHUSDT", "USDCUSDT"], listed) == [
        ("ETHUSDT", "is listed but not trading"),
        ("USDCUSDT", "is not listed"),
    ]
    assert missing_symbols(["BTCUSDT"], listed) == []


def test_a_polled_answer_is_the_symbol_check_of_its_source() -> None:
    answer = '{"ethereum":{"usd":3001.5,"rub":240120.5,"last_updated_at":1711356300}}'
    assert check_answer(coingecko.VENUE, coingecko.MARKETS, answer, NOW) == [
        "bitcoin/usd",
        "bitcoin/rub",
        "tether/usd",
        "tether/rub",
    ]
    assert unquoted(["bitcoin/usd"], coingecko.MARKETS, []) == [("bitcoin/usd", "is not quoted")]
    euro_only = (
        '<ValCurs Date="24.11.2026" name="Foreign Currency Market"><Valute ID="R01239">'
        "<CharCode>EUR</CharCode><Nominal>1</Nominal><Value>94,1000</Value></Valute></ValCurs>"
    )
    assert check_answer(cbr.VENUE, cbr.MARKETS, euro_only, NOW) == ["USD"]
    with_usd = euro_only.replace("EUR", "USD")
    assert check_answer(cbr.VENUE, cbr.MARKETS, with_usd, NOW) == []
    # A malformed answer says nothing about the symbols: the check waits for the next one.
    assert check_answer(coingecko.VENUE, coingecko.MARKETS, '{"bitcoin":', NOW) is None


# -- HTTP helpers ---------------------------------------------------------------------------


def test_bodies_decode_with_their_charset() -> None:
    xml = '<?xml version="1.0" encoding="windows-1251"?><ValCurs><Name>Доллар США</Name>'
    raw = xml.encode("windows-1251")
    assert decode_body(raw, "windows-1251") == xml
    assert decode_body(raw, None) == xml  # from the XML declaration
    assert decode_body(b"{}", None) == "{}"
    assert decode_body(b"\xff{}", "no-such-charset") == "\ufffd{}"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s("119", NOW, default=1) == 119
    assert retry_after_s("Tue, 24 Nov 2026 16:00:30 GMT", NOW, default=1) == 30
    assert retry_after_s("Tue, 24 Nov 2026 15:00:00 GMT", NOW, default=1) == 0
    assert retry_after_s(None, NOW, default=5) == 5
    assert retry_after_s("soon", NOW, default=5) == 5


@pytest.mark.parametrize(
    ("read", "value"),
    [(seconds, 253402300800), (seconds, 10**30), (millis, 253402300800000), (millis, str(10**40))],
)
def test_an_epoch_time_past_the_year_9999_is_a_frame_error(read: object, value: object) -> None:
    # Found by the chaos tier's hostile frames: datetime raised OverflowError, not FrameError.
    assert callable(read)
    with pytest.raises(FrameError, match="past the year 9999"):
        read(value, "test")


def test_epoch_times_are_read_exactly() -> None:
    assert seconds(1764900000, "t") == datetime(2025, 12, 5, 2, 0, tzinfo=UTC)
    assert millis("1764900000123", "t") == datetime(2025, 12, 5, 2, 0, 0, 123000, tzinfo=UTC)
