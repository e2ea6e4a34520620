"""The API as `make bench` and the API contract tests run it.

`rates api` as its own process (optionally pinned to one core with taskset), following a
real Tansu broker on which the caller publishes synthetic rates.latest and venues.status
records, so that a measurement measures the API and not the pipeline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import httpx
from aiokafka import AIOKafkaProducer

from rates.embedded import free_port
from rates.kafka import ensure_topics
from schemas.records import Latest, Leg, VenueQuote, VenueStatus
from schemas.topics import ACTIVE_KEY, Topics

T = TypeVar("T")

#: Prices of the synthetic feed, with the digits a venue would send.
PRICES: dict[str, str] = {
    "BTC-USD": "94936.03000000",
    "ETH-USD": "3400.22000000",
    "USDTTRC-USD": "1.00010000",
    "USDTERC-USD": "1.00010000",
}
USD_RUB = Decimal("81.5046")

#: Variables of the project that must not leak from the caller's shell into the server.
_OWN = ("RATES_", "KAFKA_", "API_", "BINANCE_", "DATABASE_", "CONNECTOR_", "WORKER_", "LOG_")


def latest_records(
    directions: Sequence[str],
    venue: str = "binance",
    now: datetime | None = None,
    *,
    stale: Sequence[str] = (),
    others: Mapping[str, Mapping[str, str]] | None = None,
    prices: Mapping[str, str] | None = None,
) -> list[Latest]:
    """One rates.latest record per direction, then the active-venue record (key ``*``).

    ``venue`` quotes every direction (X-RUB derived from X-USD and a reference USD-RUB),
    fresh except the ``stale`` ones; ``others`` adds fresh quotes of other venues.
    """
    now = now or datetime.now(UTC)
    ts = now - timedelta(milliseconds=250)
    prices = {**PRICES, **(prices or {})}
    records = []
    for direction in directions:
        base, quote = direction.split("-")
        legs: tuple[Leg, ...] | None = None
        if quote == "RUB":
            usd = Decimal(prices.get(f"{base}-USD", "1"))
            legs = (
                Leg(venue, f"{base}-USD", usd, ts),
                Leg("cbr", "USD-RUB", USD_RUB, ts - timedelta(hours=3)),
            )
            value = Decimal(prices.get(direction, str((usd * USD_RUB).quantize(Decimal("0.01")))))
        else:
            value = Decimal(prices.get(direction, "100.5"))
        fresh = direction not in stale
        quotes = {venue: VenueQuote(value, ts, now, fresh)}
        for name, values in (others or {}).items():
            if direction in values:
                quotes[name] = VenueQuote(Decimal(values[direction]), ts, now, True)
        records.append(
            Latest(
                direction=direction,
                venue=venue,
                value=value,
                ts=ts,
                received_at=now,
                stale=not fresh,
                reason="preferred venue" if fresh else "no fresh quote: last value kept",
                since=now - timedelta(minutes=5),
                quotes=dict(sorted(quotes.items())),
                derived_from=legs,
            )
        )
    records.append(
        Latest(ACTIVE_KEY, venue, None, None, None, False, "preferred venue", now, {}, None)
    )
    return records


async def _send(
    bootstrap: str,
    prefix: str,
    records: Sequence[Latest | VenueStatus],
    every_s: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    topics = Topics(prefix)
    await ensure_topics(bootstrap, [topics.latest, topics.venues_status], 4)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        while True:
            for record in records:
                if isinstance(record, Latest):
                    topic, key = topics.latest, record.direction
                else:
                    topic, key = topics.venues_status, record.venue
                await producer.send(topic, record.to_json(), key=key.encode())
            await producer.flush()
            if every_s is None or stop is None or await asyncio.to_thread(stop.wait, every_s):
                return
    finally:
        await producer.stop()


def publish(bootstrap: str, prefix: str, records: Sequence[Latest | VenueStatus]) -> None:
    """Produce the records to their topics (created first), keyed like the pipeline does."""
    asyncio.run(_send(bootstrap, prefix, records))


@contextmanager
def republishing(
    bootstrap: str, prefix: str, records: Sequence[Latest | VenueStatus], every_s: float = 1.0
) -> Iterator[None]:
    """Publish the records now, then again every ``every_s`` (as the pipeline republishes)."""
    publish(bootstrap, prefix, records)
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(_send(bootstrap, prefix, records, every_s, stop)),
        name="republish",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def server_env(bootstrap: str, prefix: str, port: int, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN)}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        RATES_TOPIC_PREFIX=prefix,
        API_PORT=str(port),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1
) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
            result = None
        if result is not None and result is not False:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last error: {last})")


@dataclass
class ApiProcess:
    """A running `rates api`: where it answers and what it logged."""

    base: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def run_api(
    bootstrap: str,
    prefix: str,
    log: Path,
    *,
    cpu: int | None = None,
    **settings: str,
) -> Iterator[ApiProcess]:
    """`rates api` on a free port, pinned to ``cpu`` if given; yields once /healthz answers."""
    port = free_port()
    argv = [sys.executable, "-m", "rates", "api"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            argv,
            env=server_env(bootstrap, prefix, port, **settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = ApiProcess(f"http://127.0.0.1:{port}", popen, log)
    try:

        def healthy() -> bool:
            if popen.poll() is not None:
                raise RuntimeError(f"rates api exited ({popen.returncode}):\n{api.output()}")
            return httpx.get(f"{api.base}/healthz", timeout=1).status_code == 200

        wait_until(healthy, 30, "rates api to answer /healthz")
        yield api
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
