"""The API as `make bench` and the API contract tests run it: on a synthetic feed.

`rates api` as its own process (optionally pinned to one core with taskset), following a
real Tansu broker on which the caller publishes synthetic rates.latest and venues.status
records, so that a measurement measures the API and not the pipeline.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from devtools.environment import clean_env
from devtools.processes import RATES, Proc, running
from devtools.waiting import wait_until
from rates.embedded import free_port
from rates.kafka import ensure_topics
from schemas.records import Latest, Leg, VenueQuote, VenueStatus
from schemas.topics import ACTIVE_KEY, Topics

#: Prices of the synthetic feed, with the digits a venue would send.
PRICES: dict[str, str] = {
    "BTC-USD": "94936.03000000",
    "ETH-USD": "3400.22000000",
    "USDTTRC-USD": "1.00010000",
    "USDTERC-USD": "1.00010000",
}
USD_RUB = Decimal("81.5046")


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


@dataclass
class ApiProcess(Proc):
    """A running `rates api`: where it answers, its process and what it logged."""

    base: str


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
    argv = [*RATES, "api"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    env = clean_env(
        **{
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RATES_TOPIC_PREFIX": prefix,
            "API_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            **settings,
        }
    )
    with running("api", argv, env, log, timeout_s=15) as proc:
        api = ApiProcess(proc.name, proc.popen, log, f"http://127.0.0.1:{port}")

        def healthy() -> bool:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"rates api exited ({proc.popen.returncode}):\n{api.output()}")
            return httpx.get(f"{api.base}/healthz", timeout=1).status_code == 200

        wait_until(healthy, 30, "rates api to answer /healthz")
        yield api
