"""The embedded broker recycled at its memory cap, then killed -9, under `rates up`.

One stack (`rates up --source simulator`, RATES_BROKER_MAX_MB=64) for both: the test pushes
the broker over its cap with ballast records on a topic of its own (the cap is reached in
seconds, whatever the machine's load, and the pipeline keeps the demo's pace), then kills
the new broker with SIGKILL. Through both, `/api/v1/courses` is polled every 0.1 s.

What the connector received is known from the simulator: its Binance trades of one symbol
carry sequential ids (one per tick), and the connector's one Binance connection stays open
throughout (its reconnect counter says so), so every id from the first stored to the last
must reach PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from devtools.environment import clean_env
from devtools.processes import Proc, Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.settings import DEFAULT_DIRECTIONS
from tests.integration.harness import metric_values
from tests.reliability import REPORT, Row

#: Values must move again within this long after the broker is replaced. The target is
#: 15 s: the test prints the time each direction took (`pytest -s`), the README quotes it;
#: the bound leaves room for a busy machine, where a worker alone may take 10 s to start.
BACK_WITHIN_S = 60.0
#: The simulator's Binance trade ids: 100_000_000 + tick * 100_000 + the symbol's index.
TRADE_ID = re.compile(r"^binance:BTCUSDT:t(\d+)/BTC-USD$")


@dataclass
class Poller:
    """Asks /api/v1/courses every 0.1 s in a thread; keeps every status after the first 200
    that served every direction."""

    base: str
    statuses: list[tuple[float, int]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self.base}/api/v1/courses")
                    status = response.status_code
                    if status == 200 and len(response.json()["courses"]) == len(DEFAULT_DIRECTIONS):
                        self.full.set()
                except httpx.HTTPError:
                    status = -1  # refused or timed out: as bad as a 503
                if self.full.is_set():
                    self.statuses.append((time.monotonic(), status))
                self._stop.wait(0.1)

    @property
    def bad(self) -> list[tuple[float, int]]:
        return [(at, status) for at, status in self.statuses if status != 200]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture
def pollers() -> Iterator[list[Poller]]:
    """Pollers the test starts; stopped whatever happens."""
    started: list[Poller] = []
    yield started
    for poller in started:
        poller.stop()


def broker(up: psutil.Process) -> psutil.Process:
    found = [c for c in up.children() if c.cmdline() and c.cmdline()[0].endswith("/tansu")]
    assert len(found) == 1, found
    return found[0]


def listener(process: psutil.Process) -> str:
    return next(arg for arg in process.cmdline() if arg.startswith("tcp://"))


def stack_metric(port: int, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    return metric_values(text).get((name, frozenset(labels.items())), 0.0)


def logged_at(log: str, text: str) -> float:
    """The wall-clock time of the first log line containing ``text``."""
    index = log.index(text)
    start = log.rindex("\n", 0, index) + 1
    stamp = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", log[start:index])
    assert stamp is not None, log[start:index]
    return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


def fresh_since(base: str, moment: float) -> set[str]:
    """The directions v2 serves fresh, received after ``moment``."""
    courses = httpx.get(f"{base}/api/v2/courses", timeout=5).json()["courses"]
    return {
        c["direction"]
        for c in courses
        if not c["stale"]
        and c["received_at"] is not None
        and datetime.fromisoformat(c["received_at"]).timestamp() > moment
    }


def ballast(bootstrap: str, megabytes: int) -> None:
    """Records the pipeline never reads, uncompressed: the broker keeps every byte."""

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, max_request_size=2 << 20, linger_ms=5
        )
        await producer.start()
        try:
            for _ in range(megabytes * 10):
                await producer.send("test.ballast", os.urandom(100_000))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def stored_ticks(database: str) -> set[int]:
    with psycopg.connect(database) as conn:
        ids = conn.execute(
            "SELECT id FROM quotes WHERE venue = 'binance' AND direction = 'BTC-USD'"
        ).fetchall()
    found = {TRADE_ID.match(row[0]) for row in ids}
    return {(int(m.group(1)) - 100_000_000) // 100_000 for m in found if m is not None}


def missing_ticks(database: str, upto: int) -> list[int]:
    ticks = stored_ticks(database)
    return sorted(set(range(min(ticks), upto + 1)) - ticks)


def wait_back(proc: Proc, base: str, moment: float, what: str) -> float:
    """Seconds from ``moment`` until every direction has been served fresh, with a value
    received after ``moment``; each direction's time is printed."""
    back: dict[str, float] = {}

    def all_back() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"rates up exited:\n{proc.output()[-3000:]}")
        for direction in fresh_since(base, moment):
            back.setdefault(direction, time.time() - moment)
        return len(back) == len(DEFAULT_DIRECTIONS)

    wait_until(all_back, BACK_WITHIN_S, f"fresh rates after {what}", every_s=0.2)
    print(f"after {what}: " + ", ".join(f"{d} {s:.1f} s" for d, s in sorted(back.items())))
    return max(back.values())


def test_the_broker_is_recycled_at_its_cap_and_after_a_kill_without_losing_a_quote(
    state_dir: Path, procs: Procs, pollers: list[Poller]
) -> None:
    api, stack_port, connector_port = free_port(), free_port(), free_port()
    kafka_port, postgres_port = free_port(), free_port()
    base = f"http://127.0.0.1:{api}"
    database = f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres"
    env = clean_env(
        RATES_STATE_DIR=str(state_dir),
        API_PORT=str(api),
        STACK_METRICS_PORT=str(stack_port),
        CONNECTOR_METRICS_PORT=str(connector_port),
        RATES_BROKER_PORT=str(kafka_port),
        RATES_POSTGRES_PORT=str(postgres_port),
        RATES_BROKER_MAX_MB="64",
        # Two websocket venues and the RUB references: the pipeline keeps pace on a busy machine.
        RATES_VENUES="binance,kraken,coingecko,cbr",
    )
    proc = procs.start("up", ["up", "--source", "simulator"], env)
    up = psutil.Process(proc.popen.pid)
    poller = Poller(base).start()
    pollers.append(poller)
    assert poller.full.wait(120), "rates up did not serve every direction:\n" + proc.output()
    first = broker(up)
    address = listener(first)
    assert address == f"tcp://127.0.0.1:{kafka_port}"
    assert stack_metric(stack_port, "rates_stack_broker_max_rss_bytes") == 64 << 20

    # 1. Over the cap: the supervisor recycles the broker on the same port.
    ballast(f"127.0.0.1:{kafka_port}", 48)
    wait_until(
        lambda: stack_metric(stack_port, "rates_stack_broker_recycles_total", reason="cap") == 1,
        30,
        "a recycle at the cap",
    )
    recycled_at = logged_at(proc.output(), "over its cap of 64 MB: recycling it")
    back_s = wait_back(proc, base, recycled_at, "the recycle")
    print(f"fresh rates {back_s:.1f} s after the recycle")
    second = broker(up)
    assert second.pid != first.pid and listener(second) == address

    # 2. Killed: the same path, counted as a death.
    killed_at = time.time()
    second.send_signal(signal.SIGKILL)
    wait_until(
        lambda: stack_metric(stack_port, "rates_stack_broker_recycles_total", reason="died") == 1,
        30,
        "the broker's death to be counted",
    )
    back_after_kill_s = wait_back(proc, base, killed_at, "the kill")
    print(f"fresh rates {back_after_kill_s:.1f} s after kill -9")
    third = broker(up)
    assert third.pid != second.pid and listener(third) == address
    output = proc.output()
    assert re.search(r"kafka uses [\d.]+ MB, over its cap of 64 MB", output)
    assert "kafka exited with code -9" in output

    # v1 never answered anything but 200 after its first full answer.
    time.sleep(2)
    poller.stop()
    assert len(poller.statuses) > 100 and not poller.bad, poller.bad[:20]

    # Nothing the connector received is missing from PostgreSQL.
    connector = httpx.get(f"http://127.0.0.1:{connector_port}/", timeout=5).text
    reconnects = sum(
        value
        for (name, labels), value in metric_values(connector).items()
        if name == "rates_connector_reconnects_total" and ("venue", "binance") in labels
    )
    assert reconnects == 0, "the Binance connection was replaced: the test cannot tell"
    replaced = metric_values(connector)[("rates_connector_broker_replaced_total", frozenset())]
    assert replaced >= 2
    upto = max(stored_ticks(database))
    deadline = time.monotonic() + 60
    while (missing := missing_ticks(database, upto)) and time.monotonic() < deadline:
        time.sleep(1)
    first_tick = min(stored_ticks(database))
    assert not missing, f"{len(missing)} of the ticks {first_tick}..{upto} missing: {missing[:50]}"
    with psycopg.connect(database) as conn:
        span = conn.execute(
            "SELECT min(ts), max(ts) FROM quotes WHERE venue = 'binance' AND direction = 'BTC-USD'"
        ).fetchone()
    assert span is not None
    assert span[0].timestamp() < recycled_at and span[1].timestamp() > killed_at + 1
    REPORT.add(
        Row(
            "kill -9 of the embedded broker (`rates up`)",
            "Kafka (Tansu)",
            f"the supervisor started a new broker on the same port; v1 answered 200 throughout "
            f"({len(poller.statuses)} polls, last values); fresh rates after "
            f"{back_after_kill_s:.1f} s (a recycle at the memory cap: {back_s:.1f} s); "
            f"all {upto - first_tick + 1} Binance BTC-USD trades in PostgreSQL",
            round(back_after_kill_s, 1),
        )
    )
    print(
        f"{upto - first_tick + 1} Binance BTC-USD trades from {span[0]:%H:%M:%S} to "
        f"{span[1]:%H:%M:%S} (recycled {datetime.fromtimestamp(recycled_at):%H:%M:%S}, killed "
        f"{datetime.fromtimestamp(killed_at):%H:%M:%S}), none missing"
    )
