"""Every venue against the simulator, through every fault: the connector recovers by itself.

One simulator process and one `rates connect` process (all seven venues: five websocket
protocols and two polled REST sources) serve the whole module, with a millisecond backoff,
0.5 s polls and Binance rotating every 3 s. Each test switches a fault on for every venue at
once, waits until the connector saw it (metrics), switches it off and waits until every venue
delivers data again. The last test stops the connector and decodes everything it published.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import registry
from connectors.venues.base import FrameKind
from devtools.environment import clean_env
from devtools.processes import Proc, Procs
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.errors import FrameError, UnknownSymbol
from schemas.records import RawFrame, VenueStatus
from schemas.topics import Topics
from tests.integration.harness import (
    SimHandle,
    metric_values,
    read_ports_file,
    read_topics,
    unique_prefix,
)

WEBSOCKET = ["binance", "kraken", "okx", "bybit", "coinbase"]
POLLED = ["coingecko", "cbr"]
ALL = WEBSOCKET + POLLED
SECRET = "CG-integration-secret-key"
#: What venues subscribed with BTC's market not trading and ETH's not listed at start (the
#: rest: their default markets). Kraken serves both through its USDT markets.
SUBSCRIBED = {
    "binance": {"USDC-USDT"},
    "okx": {"USDC-USDT"},
    "bybit": {"USDC-USDT"},
    "kraken": {"BTC-USDT", "ETH-USDT", "USDT-USD"},
}
#: Reasons a connection ends on a failure (rotations and requested handovers are not).
FAILURES = ("error", "closed", "silent", "limited")


class Metrics:
    """One scrape of the connector's metrics."""

    def __init__(self, text: str) -> None:
        self._values = metric_values(text)

    def get(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self._values.items() if n == name and wanted <= ls)

    def data(self, venue: str) -> float:
        return self.get("rates_connector_frames_total", venue=venue, kind="data")

    def reconnects(self, venue: str, *reasons: str) -> float:
        return sum(
            self.get("rates_connector_reconnects_total", venue=venue, reason=r) for r in reasons
        )

    def up(self, venue: str) -> bool:
        return self.get("rates_connector_state", venue=venue, state="up") == 1


@dataclass
class Stack:
    sim: SimHandle
    connector: Proc
    procs: Procs
    metrics_url: str
    topics: Topics
    kafka: str
    #: The metrics once every venue's start checks were logged, before the faults are cleared
    #: (a polled source checks its first answer again after it reconnects).
    at_start: Metrics | None = None

    def metrics(self) -> Metrics:
        return Metrics(httpx.get(self.metrics_url, timeout=5).text)

    def faults(self, venues: list[str], **changes: Any) -> None:
        for venue in venues:
            self.sim.faults(venue, **changes)

    def actions(self, venues: list[str], name: str) -> None:
        for venue in venues:
            self.sim.action(venue, name)

    def wait_each(
        self, venues: list[str], check: Callable[[Metrics, str], bool], what: str, timeout_s: float
    ) -> None:
        pending = set(venues)

        def done() -> bool:
            metrics = self.metrics()
            pending.difference_update({v for v in pending if check(metrics, v)})
            return not pending

        wait_until(done, timeout_s, f"{what} ({', '.join(sorted(pending))} pending)")

    def through(
        self,
        venues: list[str],
        reason: str,
        *,
        on: dict[str, Any] | None = None,
        off: dict[str, Any] | None = None,
        action: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Fault on (and a close or other action), until every venue counted ``attempts``
        reconnects for ``reason``; fault off; until every venue delivers data again."""
        before = self.metrics()
        self.faults(venues, **(on or {}))
        try:
            if action is not None:
                self.actions(venues, action)
            self.wait_each(
                venues,
                lambda m, v: m.reconnects(v, reason) >= before.reconnects(v, reason) + attempts,
                f"{attempts} reconnect(s) for {reason}",
                20,
            )
        finally:
            self.faults(venues, **(off or {}))
        self.recovered(venues)

    def recovered(self, venues: list[str], timeout_s: float = 20) -> None:
        """Each venue up again and delivering fresh data."""
        before = self.metrics()
        self.wait_each(
            venues,
            lambda m, v: m.up(v) and m.data(v) >= before.data(v) + 3,
            "data to flow again",
            timeout_s,
        )


@pytest.fixture(scope="module")
def stack(kafka: str, logs_dir: Path) -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="venues-", dir=logs_dir))
    procs = Procs(directory)
    ports = directory / "simulator.json"
    # Pings every 0.5 s, and a client that leaves one unanswered for 2 s is dropped.
    args = ["--tick-interval", "0.1", "--ping-interval", "0.5", "--pong-timeout", "2"]
    procs.start(
        "simulate", ["simulate", "--ports-file", str(ports), *args, "--seed", "5"], clean_env()
    )
    try:
        wait_until(ports.exists, 30, "the simulator to listen")
        sim = read_ports_file(ports)
        # At start: four venues list a symbol as not trading and omit another, the polled
        # sources leave a coin or currency out of their answers; Coinbase answers 429
        # (symbol check and handshake alike).
        for venue in [*WEBSOCKET[:-1], *POLLED]:
            sim.faults(venue, delisted=True)
        sim.faults("coinbase", http_429=True, retry_after_s=1)
        prefix = unique_prefix()
        port = free_port()
        env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=kafka,
            RATES_TOPIC_PREFIX=prefix,
            CONNECTOR_METRICS_PORT=str(port),
            CONNECTOR_BACKOFF_BASE_S="0.05",
            CONNECTOR_BACKOFF_CAP_S="0.5",
            COINGECKO_POLL_INTERVAL_S="0.5",
            CBR_POLL_INTERVAL_S="0.5",
            BINANCE_ROTATE_AFTER_S="3",
            COINGECKO_PLAN="pro",
            COINGECKO_API_KEY=SECRET,
            **sim.env,
        )
        connector = procs.start("connect", ["connect"], env)
        connector.wait_for("coinbase: cannot read the symbol listing", 60)
        for venue in ("binance", "okx", "bybit"):
            connector.wait_for(f"{venue}: cannot serve", 10)
        for venue in POLLED:
            connector.wait_for(f"{venue}: configured symbol", 10)
        stack = Stack(sim, connector, procs, f"http://127.0.0.1:{port}", Topics(prefix), kafka)
        stack.at_start = stack.metrics()
        stack.faults(ALL, delisted=False, http_429=False)
        stack.recovered(ALL, timeout_s=30)
        yield stack
    finally:
        procs.stop_all()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def show_logs(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.procs.dump())


def test_symbols_checked_at_start_and_the_key_never_logged(stack: Stack) -> None:
    log = stack.connector.output()
    # A market that is not trading or not listed is not subscribed: the venue serves the
    # asset through its next candidate market, or not at all.
    for venue in ("binance", "okx", "bybit"):
        first, second, _ = registry.VENUES[venue].markets
        words = f"{venue}: cannot serve BTC: {first} is not trading; ETH: {second} is not listed"
        assert words in log
    assert "kraken: subscribing BTC/USDT, ETH/USDT, USDT/USD" in log
    assert "coinbase: subscribing BTC-USD, ETH-USD, USDT-USD (unchecked)" in log
    for symbol in ("bitcoin/usd", "bitcoin/rub"):
        assert f"coingecko: configured symbol {symbol} is not quoted on the venue" in log
    assert "cbr: configured symbol USD is not quoted on the venue" in log
    assert "coingecko: configured symbol ethereum/usd" not in log
    assert "coinbase: cannot read the symbol listing at http://127.0.0.1" in log
    assert "(rate limited (HTTP 429, retry after 1 s)); subscribing unchecked" in log
    assert "no enabled venue lists" not in log
    assert stack.at_start is not None
    at_start = stack.at_start
    assert at_start.get("rates_connector_symbols_missing", venue="binance") == 2
    assert at_start.get("rates_connector_symbols_missing", venue="coinbase") == -1
    assert at_start.get("rates_connector_symbols_missing", venue="coingecko") == 2
    assert at_start.get("rates_connector_symbols_missing", venue="cbr") == 1
    metrics = stack.metrics()
    # Its handshake was answered 429 as well: it waited, then connected by itself.
    assert metrics.reconnects("coinbase", "limited") >= 1
    # CoinGecko's pro key went in the pro header, and nowhere into the logs.
    headers = stack.sim.state()["venues"]["coingecko"]["key_headers"]
    assert set(headers) == {"x-cg-pro-api-key"}
    assert "coingecko: pro plan, with an API key" in log
    assert SECRET not in log


def test_silence_is_a_dead_connection(stack: Stack) -> None:
    stack.through(ALL, "silent", on={"silent": True}, off={"silent": False})
    assert "kraken: no frame for 3 s (silence limit); reconnecting in" in stack.connector.output()


def test_closed_connections_reconnect(stack: Stack) -> None:
    stack.through(ALL, "closed", action="close")
    assert "okx: the venue closed the connection" in stack.connector.output()


def test_refused_connections_are_retried_with_backoff(stack: Stack) -> None:
    on, off = {"refuse": True}, {"refuse": False}
    stack.through(ALL, "error", on=on, off=off, action="close", attempts=2)
    log = stack.connector.output()
    for venue in ALL:
        assert f"{venue}: the server answered HTTP 503; reconnecting in" in log


def test_malformed_frames_are_counted_logged_and_skipped(stack: Stack) -> None:
    before = stack.metrics()
    stack.faults(ALL, malformed_every=3)
    try:
        stack.wait_each(
            ALL,
            lambda m, v: (
                m.get("rates_connector_malformed_frames_total", venue=v)
                > before.get("rates_connector_malformed_frames_total", venue=v)
            ),
            "a malformed frame",
            20,
        )
    finally:
        stack.faults(ALL, malformed_every=0)
    after = stack.metrics()
    for venue in ALL:
        assert after.reconnects(venue, *FAILURES) == before.reconnects(venue, *FAILURES)
        assert f"{venue}: malformed frame skipped" in stack.connector.output()


def test_unknown_symbols_do_not_disturb_the_known_ones(stack: Stack) -> None:
    before = stack.metrics()
    stack.faults(ALL, unknown_symbols=True)
    try:
        stack.recovered(ALL)  # data keeps coming
    finally:
        stack.faults(ALL, unknown_symbols=False)
    after = stack.metrics()
    for venue in ALL:
        assert after.reconnects(venue, *FAILURES) == before.reconnects(venue, *FAILURES)


def test_a_slow_venue_stays_connected(stack: Stack) -> None:
    before = stack.metrics()
    stack.faults(ALL, delay_s=0.4)
    try:
        stack.recovered(ALL)
    finally:
        stack.faults(ALL, delay_s=0.0)
    after = stack.metrics()
    for venue in ALL:
        assert after.reconnects(venue, *FAILURES) == before.reconnects(venue, *FAILURES)


def test_shutdown_and_upgrade_notices_hand_over_at_once(stack: Stack) -> None:
    before = stack.metrics()
    stack.sim.action("binance", "shutdown")
    stack.sim.action("okx", "upgrade")
    stack.wait_each(
        ["binance", "okx"],
        lambda m, v: m.reconnects(v, "requested") > before.reconnects(v, "requested"),
        "a requested handover",
        10,
    )
    stack.connector.wait_for("okx: handed over from okx-", 10)
    time.sleep(2.5)  # the simulator closes the warned connections after 2 s
    after = stack.metrics()
    # The new connection was open before the old one went: OKX never failed.
    assert after.reconnects("okx", *FAILURES) == before.reconnects("okx", *FAILURES)
    assert "okx: the venue asked to reconnect; handing okx-" in stack.connector.output()
    stack.recovered(["binance", "okx"])


def test_http_429_waits_for_retry_after(stack: Stack) -> None:
    on, off = {"http_429": True, "retry_after_s": 1}, {"http_429": False}
    stack.through(ALL, "limited", on=on, off=off, action="close")
    log = stack.connector.output()
    for venue in ALL:
        assert f"{venue}: rate limited (HTTP 429, retry after 1 s); reconnecting in 1.0 s" in log


def test_binance_rotates_before_its_limit(stack: Stack) -> None:
    stack.wait_each(["binance"], lambda m, v: m.reconnects(v, "rotated") >= 2, "two rotations", 15)
    assert "binance: rotation age reached; handing binance-" in stack.connector.output()


def test_everything_published_decodes(stack: Stack) -> None:
    """Stop the connector (cleanly), then read back and check every record it published."""
    assert stack.connector.stop(signal.SIGTERM) == 0
    assert "Traceback" not in stack.connector.output()
    simulator = stack.procs.started[0]
    assert simulator.popen.poll() is None, "the simulator crashed"
    assert "did not answer pings" not in simulator.output()
    raw_topics = {stack.topics.raw(v): v for v in ALL}
    found: dict[str, list[tuple[bytes, bytes]]] = {}
    for record in read_topics(stack.kafka, [*raw_topics, stack.topics.venues_status]):
        found.setdefault(record.topic, []).append((record.key or b"", record.value or b""))
    for topic, venue in raw_topics.items():
        records = found.get(topic, [])
        assert records, f"nothing published for {venue}"
        module = registry.VENUES[venue]
        markets: set[str] = set()
        unknown = 0
        by_conn: dict[str, list[RawFrame]] = {}
        for key, value in records:
            raw = RawFrame.from_json(value)
            assert raw.venue == venue and key
            assert module.classify(raw.frame).kind is not FrameKind.MALFORMED, raw.frame
            by_conn.setdefault(raw.conn, []).append(raw)
            try:
                markets |= {q.market for q in module.parse(raw.frame, raw.received_at)}
            except UnknownSymbol:
                unknown += 1
            except FrameError as exc:  # pragma: no cover - the assertion explains
                raise AssertionError(f"{venue} published an unusable frame: {raw.frame}") from exc
        # Parsers read any market by rule: the unknown-symbol fault's markets are NOPE-*.
        nope = {m for m in markets if m.startswith("NOPE")}
        assert markets - nope == SUBSCRIBED.get(venue, set(module.markets.values())), venue
        if venue in WEBSOCKET:
            assert nope, f"{venue}: the unknown-symbol frames did not arrive"
        assert len(by_conn) >= 3, f"{venue}: expected reconnects, saw {len(by_conn)} connection(s)"
    statuses = [VenueStatus.from_json(value) for _, value in found[stack.topics.venues_status]]
    for venue in ALL:
        states = {s.state for s in statuses if s.venue == venue}
        assert {"up", "down"} <= states, (venue, states)
    assert_binance_handovers_overlap(found[stack.topics.raw("binance")])


def assert_binance_handovers_overlap(records: list[tuple[bytes, bytes]]) -> None:
    """A rotation opens the new connection before the old one closes: their frames overlap,
    and the duplicates the overlap creates carry the same quote ids."""
    module = registry.VENUES["binance"]
    spans: dict[str, tuple[float, float]] = {}
    ids: dict[str, set[str]] = {}
    for _, value in records:
        raw = RawFrame.from_json(value)
        at = raw.received_at.timestamp()
        first, last = spans.get(raw.conn, (at, at))
        spans[raw.conn] = (min(first, at), max(last, at))
        try:
            quotes = module.parse(raw.frame, raw.received_at)
        except UnknownSymbol:
            continue
        ids.setdefault(raw.conn, set()).update(q.id for q in quotes)
    ordered = sorted(spans.items(), key=lambda item: item[1][0])
    overlapping = [
        (old, new)
        for (old, (_, old_last)), (new, (new_first, _)) in itertools.pairwise(ordered)
        if new_first < old_last
    ]
    assert len(overlapping) >= 2, ordered
    assert all(ids.get(old, set()) & ids.get(new, set()) for old, new in overlapping)
