"""The websocket loop's handovers, in-process against the simulator (no broker needed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from connectors import connection
from connectors.connection import ConnectionContext, connect_once
from connectors.simulator.server import Simulator
from connectors.status import VenueTracker
from connectors.venues import binance
from schemas.records import RawFrame, VenueStatus


class ListSink:
    def __init__(self) -> None:
        self.frames: list[RawFrame] = []

    def frame(self, raw: RawFrame, key: str) -> None:
        self.frames.append(raw)

    def status(self, status: VenueStatus) -> None:
        pass

    def conns(self) -> list[str]:
        return list(dict.fromkeys(f.conn for f in self.frames))


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(["binance"], seed=2, tick_interval_s=0.05)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - polling what another task changes
            await asyncio.sleep(0.02)


async def test_a_failed_handover_keeps_the_working_connection(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(connection, "HANDOVER_RETRY_S", 0.3)
    sink = ListSink()
    ctx = ConnectionContext(
        venue=binance.VENUE,
        url=sim.env["BINANCE_WS_URL"],
        symbols=list(binance.MARKETS),
        sink=sink,
        tracker=VenueTracker("binance", 3.0, now()),
        clock=now,
        rotate_after_s=0.5,
    )
    caplog.set_level(logging.INFO, logger=connection.__name__)
    venue = sim.venues["binance"]
    task = asyncio.create_task(connect_once(ctx))
    try:
        await until(lambda: bool(sink.frames))
        venue.faults.update({"refuse": True})
        # While new connections are refused, every handover fails and the first connection
        # keeps delivering.
        await until(lambda: "keeping binance-" in caplog.text)
        await asyncio.sleep(0.5)
        assert len(sink.conns()) == 1
        assert len(venue.clients) == 1
        count = len(sink.frames)
        await asyncio.sleep(0.3)
        assert len(sink.frames) > count
        # Once the venue accepts again, the next try hands over, with an overlap.
        venue.faults.update({"refuse": False})
        await until(lambda: len(sink.conns()) >= 2)
        await until(lambda: "handed over from" in caplog.text)
        old, new = sink.conns()[:2]
        last_old = max(f.received_at for f in sink.frames if f.conn == old)
        first_new = min(f.received_at for f in sink.frames if f.conn == new)
        assert first_new < last_old
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await until(lambda: not venue.clients)  # cancelled: every connection closed
