"""Everything the simulator says on the wire passes the venue parsers (in-process, loopback).

Not only ticks: acks, status frames, heartbeats, pongs, notices, REST answers and symbol
listings go through each venue module's classify(), parse() and symbol check, so the
simulator cannot drift from the protocols the connectors speak.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
import websockets

from connectors import http, registry
from connectors.settings import ConnectorSettings
from connectors.simulator.server import Simulator
from connectors.symbols import check_answer
from connectors.venues import kraken
from connectors.venues.base import (
    FrameKind,
    PollingVenue,
    WebsocketVenue,
    missing_symbols,
)
from schemas.errors import FrameError, RateLimited, VenueError

RECEIVED_AT = datetime(2026, 11, 24, 16, tzinfo=UTC)

WEBSOCKET = [n for n, v in registry.VENUES.items() if isinstance(v, WebsocketVenue)]
POLLED = [n for n, v in registry.VENUES.items() if isinstance(v, PollingVenue)]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=3, tick_interval_s=0.05, ping_interval_s=0.2)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def settings(sim: Simulator) -> ConnectorSettings:
    """The simulator's URL settings only (model_validate reads no environment)."""
    return ConnectorSettings.model_validate({k.lower(): v for k, v in sim.env.items()})


def check(venue_name: str, text: str) -> tuple[FrameKind, set[str]]:
    """The frame's kind and the markets it quotes; fails on anything the parser rejects."""
    venue = registry.VENUES[venue_name]
    kind = venue.classify(text).kind
    assert kind is not FrameKind.MALFORMED, text
    quotes = venue.parse(text, RECEIVED_AT)
    if kind is not FrameKind.DATA:
        assert quotes == [], text
    return kind, {q.market for q in quotes}


async def read_until(
    ws: websockets.ClientConnection, venue_name: str, done: set[FrameKind], timeout_s: float = 5
) -> tuple[set[FrameKind], set[str]]:
    """Read (and check) frames until every kind in ``done`` and every market was seen."""
    venue = registry.VENUES[venue_name]
    kinds: set[FrameKind] = set()
    markets: set[str] = set()
    async with asyncio.timeout(timeout_s):
        while not (done <= kinds and markets == set(venue.markets.values())):
            received = await ws.recv()
            assert isinstance(received, str)
            kind, quoted = check(venue_name, received)
            kinds.add(kind)
            markets |= quoted
    return kinds, markets


@pytest.mark.parametrize("venue_name", WEBSOCKET)
async def test_websocket_protocol_passes_the_parsers(sim: Simulator, venue_name: str) -> None:
    venue = registry.VENUES[venue_name]
    assert isinstance(venue, WebsocketVenue)
    config = settings(sim)
    symbols = list(venue.markets)
    async with websockets.connect(venue.connect_url(config.url(venue), symbols)) as ws:
        for message in venue.subscribe(symbols):
            await ws.send(message)
        expected = {FrameKind.DATA}
        if venue.heartbeat is not None:
            await ws.send(venue.heartbeat.message)  # answered by a pong
            expected.add(FrameKind.CONTROL)
        if venue_name in ("kraken", "coinbase"):
            expected.add(FrameKind.CONTROL)  # acks
        if venue_name == "coinbase":
            expected.add(FrameKind.HEARTBEAT)  # Kraken's come in quiet seconds only (below)
        kinds, _ = await read_until(ws, venue_name, expected)
        assert expected <= kinds
        # Notices that ask for a reconnect are recognised as such.
        notice = {"binance": "shutdown", "okx": "upgrade"}.get(venue_name)
        if notice is not None:
            await sim.venues[venue_name].action(notice)
            kinds, _ = await read_until(ws, venue_name, {FrameKind.RECONNECT})
            assert FrameKind.RECONNECT in kinds


async def test_kraken_heartbeats_fill_quiet_seconds() -> None:
    quiet = Simulator(["kraken"], seed=3, tick_interval_s=30)
    await quiet.start()
    try:
        url = settings(quiet).kraken_ws_url
        async with websockets.connect(url) as ws:
            for message in kraken.subscribe(["BTC/USD"]):
                await ws.send(message)
            kinds: list[FrameKind] = []
            async with asyncio.timeout(5):
                while FrameKind.HEARTBEAT not in kinds:
                    received = await ws.recv()
                    assert isinstance(received, str)
                    kinds.append(check("kraken", received)[0])
        # status, ack, snapshot, then a heartbeat in the quiet second that follows
        assert kinds[:3] == [FrameKind.CONTROL, FrameKind.CONTROL, FrameKind.DATA]
    finally:
        await quiet.stop()


@pytest.mark.parametrize("venue_name", POLLED)
async def test_rest_answers_pass_the_parsers(sim: Simulator, venue_name: str) -> None:
    venue = registry.VENUES[venue_name]
    assert isinstance(venue, PollingVenue)
    config = settings(sim)
    url = venue.request_url(config.url(venue), list(venue.markets))
    async with http.session() as client:
        _, text = await http.get_text(client, url, config.headers(venue), 5)
    kind, markets = check(venue_name, text)
    assert kind is FrameKind.DATA
    assert markets == set(venue.markets.values())


@pytest.mark.parametrize("venue_name", POLLED)
async def test_polled_answers_pass_the_symbol_check(sim: Simulator, venue_name: str) -> None:
    venue = registry.VENUES[venue_name]
    assert isinstance(venue, PollingVenue)
    config = settings(sim)
    symbols = list(venue.markets)
    url = venue.request_url(config.url(venue), symbols)

    async def unquoted_now() -> list[str] | None:
        async with http.session() as client:
            _, text = await http.get_text(client, url, config.headers(venue), 5)
        return check_answer(venue, venue.markets, text, RECEIVED_AT)

    assert await unquoted_now() == []
    sim.venues[venue_name].faults.update({"delisted": True})
    first = symbols[0].split("/")[0]
    assert await unquoted_now() == [s for s in symbols if s.split("/")[0] == first]


@pytest.mark.parametrize("venue_name", WEBSOCKET)
async def test_symbol_listings_pass_the_symbol_checks(sim: Simulator, venue_name: str) -> None:
    venue = registry.VENUES[venue_name]
    assert isinstance(venue, WebsocketVenue) and venue.symbol_check is not None
    symbol_check = venue.symbol_check
    base = settings(sim).api_url(symbol_check)
    symbols = list(venue.markets)

    async def listed() -> dict[str, bool]:
        found: dict[str, bool] = {}
        async with http.session() as client:
            for path in symbol_check.paths([*symbols, "NOPE"]):
                status, text = await http.get_text(
                    client, f"{base}{path}", {}, 5, ok=(200, 400, 404)
                )
                found.update(symbol_check.listed(status, text))
        return found

    assert missing_symbols(symbols, await listed()) == []
    sim.venues[venue_name].faults.update({"delisted": True})
    assert missing_symbols(symbols, await listed()) == [
        (symbols[0], "is listed but not trading"),
        (symbols[1], "is not listed"),
    ]
    with pytest.raises(FrameError):
        symbol_check.listed(500, "<html>oops</html>")


async def test_refusals_and_rate_limits_are_http_answers(sim: Simulator) -> None:
    config = settings(sim)
    venue = registry.VENUES["coingecko"]
    assert isinstance(venue, PollingVenue)
    url = venue.request_url(config.url(venue), list(venue.markets))
    faults = sim.venues["coingecko"].faults
    async with http.session() as client:
        faults.update({"http_429": True, "retry_after_s": 7})
        with pytest.raises(RateLimited) as limited:
            await http.get_text(client, url, {}, 5)
        assert limited.value.retry_after_s == 7
        faults.update({"http_429": False, "refuse": True})
        with pytest.raises(VenueError, match="HTTP 503"):
            await http.get_text(client, url, {}, 5)
        faults.update({"refuse": False})
        await sim.venues["coingecko"].action("close")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.get_text(client, url, {}, 5)
        _, text = await http.get_text(client, url, {}, 5)
    assert check("coingecko", text)[0] is FrameKind.DATA


async def test_a_client_that_does_not_answer_pings_is_dropped() -> None:
    strict = Simulator(["okx"], seed=3, ping_interval_s=0.1, pong_timeout_s=0.3)
    await strict.start()
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(settings(strict).okx_ws_url, autoping=False) as ws,
        ):
            async with asyncio.timeout(5):
                async for msg in ws:
                    assert msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.TEXT)
            assert ws.close_code == 1008
    finally:
        await strict.stop()


async def test_binance_refuses_more_streams_than_a_connection_may_carry(sim: Simulator) -> None:
    from connectors.venues import binance

    base = settings(sim).binance_ws_url
    streams = "/".join(f"s{i}usdt@trade" for i in range(binance.MAX_STREAMS + 1))
    async with (
        http.session() as client,
        client.get(f"{base.replace('ws://', 'http://')}/stream?streams={streams}") as got,
    ):
        assert got.status == 400
