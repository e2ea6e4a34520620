"""Venue faults through the simulator, end to end: connector, workers, API.

Faults that end connections hit every venue but a survivor (an exchanger and a reference
source, a different pair each time): v1 fails over to a survivor, returns to binance once
the fault is off (RATES_HYSTERESIS_S=1 here), and each faulted venue counts the fault in
its metrics. Faults of the frames hit every venue at once and end no connection. Throughout,
a watcher asks v1 and v2 every 0.2 s: no absurd value is ever served, v1 answers 200 or
a clear 503. The last test reads the topics back: every quote of a well-formed frame the
connector published reached rates.normalized (no data lost).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from devtools.waiting import wait_until
from tests.chaos.stack import ALL, WEBSOCKET, Stack
from tests.reliability import Row

EXCHANGERS = ("binance", "kraken", "okx", "bybit", "coinbase", "coingecko")


def survivors_of(keep: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in ALL if v not in keep)


def connection_fault(
    chaos: Stack,
    fault: str,
    keep: tuple[str, ...],
    on: Mapping[str, Any] | None = None,
    action: str | None = None,
    repeat: int = 1,
) -> None:
    """Fault every venue but ``keep``; v1 fails over to a kept one; recovery measured."""
    faulted = survivors_of(keep)
    before = chaos.connector_scrape()
    began = time.monotonic()
    chaos.faults(faulted, **(on or {}))
    try:
        for _ in range(repeat):
            if action is not None:
                chaos.actions(faulted, action)
                time.sleep(0.05)
        kept = {v for v in keep if v in EXCHANGERS}
        failover_s = chaos.wait_active(kept, 20, f"v1 to fail over to {kept}")

        def counted() -> bool:
            metrics = chaos.connector_scrape()
            return all(chaos.failures(metrics, v) > chaos.failures(before, v) for v in faulted)

        wait_until(counted, 20, f"every faulted venue to count {fault}")
        after = chaos.connector_scrape()
    finally:
        chaos.faults(faulted, **{k: type(v)() for k, v in (on or {}).items()})
    recovery_s = chaos.recovered(faulted)
    chaos.alive()
    counts = {v: int(chaos.failures(after, v) - chaos.failures(before, v)) for v in faulted}
    chaos.report.add(
        Row(
            fault,
            f"all but {', '.join(keep)}",
            f"v1 failed over to {chaos.watch.active_during(began)} in {failover_s} s; "
            f"reconnects counted: {sum(counts.values())} "
            f"({min(counts.values())}-{max(counts.values())} per venue)",
            recovery_s,
        )
    )


def assert_served_sane(chaos: Stack) -> None:
    assert not chaos.watch.absurd, chaos.watch.absurd[:10]
    assert set(chaos.watch.statuses) <= {200, 503}, chaos.watch.statuses


def test_silence(chaos: Stack) -> None:
    connection_fault(chaos, "silence", ("okx", "cbr"), on={"silent": True})
    assert_served_sane(chaos)


def test_disconnect_storm(chaos: Stack) -> None:
    connection_fault(
        chaos, "disconnect storm (30 closes)", ("bybit", "coingecko"), action="close", repeat=30
    )
    assert_served_sane(chaos)


def test_refused_connections(chaos: Stack) -> None:
    connection_fault(
        chaos,
        "refused connections (HTTP 503)",
        ("coinbase", "cbr"),
        on={"refuse": True},
        action="close",
    )
    assert_served_sane(chaos)


def test_http_429_with_retry_after(chaos: Stack) -> None:
    on = {"http_429": True, "retry_after_s": 1}
    connection_fault(
        chaos, "HTTP 429 with Retry-After", ("kraken", "coingecko"), on=on, action="close"
    )
    assert "rate limited (HTTP 429, retry after 1 s)" in chaos.connector.output()
    assert_served_sane(chaos)


def test_http_429_without_retry_after(chaos: Stack) -> None:
    on = {"http_429": True, "retry_after": False}
    connection_fault(chaos, "HTTP 429 without Retry-After", ("okx", "cbr"), on=on, action="close")
    chaos.faults(ALL, retry_after_s=2)
    assert "rate limited (HTTP 429, retry after 1 s)" in chaos.connector.output()
    assert_served_sane(chaos)


def frame_fault(
    chaos: Stack, fault: str, on: Mapping[str, Any], metric: str, hold_s: float = 2.5
) -> dict[str, float]:
    """Switch a frame fault on every venue; no connection may fail; counted per venue."""
    before, worker_before = chaos.connector_scrape(), chaos.worker_scrape()
    chaos.faults(ALL, **on)
    try:
        time.sleep(hold_s)
    finally:
        chaos.faults(ALL, **{k: type(v)() for k, v in on.items()})
    after, worker_after = chaos.connector_scrape(), chaos.worker_scrape()
    recovery_s = chaos.recovered(ALL)
    chaos.alive()
    name, _, reason = metric.partition(":")
    source = (worker_before, worker_after) if name.startswith("rates_pipeline") else (before, after)
    labels = {"reason": reason} if reason else {}
    counted = {
        v: source[1].get(name, venue=v, **labels) - source[0].get(name, venue=v, **labels)
        for v in ALL
    }
    failed = {v: chaos.failures(after, v) - chaos.failures(before, v) for v in ALL}
    chaos.report.add(
        Row(
            fault,
            "all",
            f"counted in {name}{'{' + reason + '}' if reason else ''}: "
            f"{int(sum(counted.values()))}; connections lost: {int(sum(failed.values()))}; "
            f"v1 stayed on {chaos.watch.venue()}",
            recovery_s,
        )
    )
    assert_served_sane(chaos)
    return counted


def reconnect_lines(chaos: Stack) -> list[str]:
    return [line for line in chaos.connector.output().splitlines() if "reconnecting in" in line]


def test_malformed_frames(chaos: Stack) -> None:
    counted = frame_fault(
        chaos,
        "malformed frames (1 in 2)",
        {"malformed_every": 2},
        "rates_connector_malformed_frames_total",
    )
    assert all(counted[v] > 0 for v in ALL), counted


def test_truncated_frames(chaos: Stack) -> None:
    counted = frame_fault(
        chaos,
        "truncated frames (1 in 2)",
        {"truncated_every": 2},
        "rates_connector_malformed_frames_total",
    )
    assert all(counted[v] > 0 for v in ALL), counted


def test_unknown_symbols(chaos: Stack) -> None:
    counted = frame_fault(
        chaos,
        "frames for unknown symbols",
        {"unknown_symbols": True},
        "rates_pipeline_bad_frames_total:unknown_symbol",
    )
    assert all(counted[v] > 0 for v in WEBSOCKET), counted


def test_slow_frames(chaos: Stack) -> None:
    before = chaos.connector_scrape()
    frame_fault(
        chaos, "slow frames (+0.4 s each)", {"delay_s": 0.4}, "rates_connector_frames_total:"
    )
    after = chaos.connector_scrape()
    lost = {v: chaos.failures(after, v) - chaos.failures(before, v) for v in ALL}
    assert not any(lost.values()), (lost, reconnect_lines(chaos))


def test_a_venue_clock_minutes_off(chaos: Stack) -> None:
    chaos.faults(["binance"], clock_skew_s=300.0)
    chaos.faults(["kraken"], clock_skew_s=-300.0)
    try:

        def skewed() -> bool:
            courses = httpx.get(f"{chaos.api}/api/v2/courses", timeout=5).json()["courses"]
            btc = next(c for c in courses if c["direction"] == "BTC-USD")
            ts = datetime_of(btc["ts"]) - datetime_of(btc["received_at"])
            return btc["venue"] == "binance" and not btc["stale"] and 290 < ts < 310

        wait_until(skewed, 10, "binance's skewed time to show, its quote still fresh")
        time.sleep(2)
        assert chaos.watch.venue() == "binance"
    finally:
        chaos.faults(["binance", "kraken"], clock_skew_s=0.0)
    recovery_s = chaos.recovered(["binance", "kraken"])
    chaos.report.add(
        Row(
            "venue clock 5 min ahead / behind",
            "binance, kraken",
            "quotes stay fresh (ages use the local receive time), ts shows the venue's clock; "
            "v1 stayed on binance",
            recovery_s,
        )
    )
    assert_served_sane(chaos)


def datetime_of(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_bad_prices_are_frame_errors(chaos: Stack) -> None:
    """Zero, negative, NaN, Infinity and 1e400 from the active venue: counted, never served."""
    texts = ["0", "-1", "NaN", "Infinity", "1e400"]
    before = chaos.worker_scrape()
    for text in texts:
        chaos.faults(["binance"], price_text=text)
        time.sleep(1.5)
    chaos.faults(["binance"], price_text="")
    after = chaos.worker_scrape()
    recovery_s = chaos.recovered(["binance"])
    name = "rates_pipeline_bad_frames_total"
    counted = after.get(name, venue="binance", reason="malformed") - before.get(
        name, venue="binance", reason="malformed"
    )
    assert counted > 0
    chaos.report.add(
        Row(
            "prices 0, -1, NaN, Infinity, 1e400",
            "binance (active)",
            f"frame errors counted in {name}{{malformed}}: {int(counted)}; never served",
            recovery_s,
        )
    )
    assert_served_sane(chaos)


def test_exponent_notation_is_read_exactly(chaos: Stack) -> None:
    market = "BTC-USDT"
    value = Decimal(chaos.sim.state()["prices"][market]).quantize(Decimal("0.01"))
    text = f"{value:E}"  # 9.508808E+4
    chaos.sim.pin(market, str(value))  # the other venues stay within the outlier bound
    chaos.faults(["binance"], price_text=text, price_markets=market)
    try:

        def served() -> bool:
            courses = httpx.get(f"{chaos.api}/api/v2/courses", timeout=5).json()["courses"]
            btc = next(c for c in courses if c["direction"] == "BTC-USD")
            return btc["venue"] == "binance" and Decimal(str(btc["value"])) == value

        wait_until(served, 10, f"binance's {text} to be served as {value}")
    finally:
        chaos.faults(["binance"], price_text="", price_markets="")
        chaos.sim.release(market)
    recovery_s = chaos.recovered(["binance"])
    chaos.report.add(
        Row(
            f"price in exponent notation ({text})",
            "binance",
            f"read exactly, served as {value}",
            recovery_s,
        )
    )
    assert_served_sane(chaos)


def test_an_absurd_price_is_an_outlier(chaos: Stack) -> None:
    before = chaos.worker_scrape()
    began = time.monotonic()
    chaos.faults(["binance"], price_factor=1000.0)
    try:
        failover_s = chaos.wait_active(set(EXCHANGERS) - {"binance"}, 20, "v1 to leave binance")
        wait_until(
            lambda: (
                chaos.worker_scrape().get("rates_pipeline_outliers_total", venue="binance")
                > before.get("rates_pipeline_outliers_total", venue="binance")
            ),
            10,
            "binance's outliers to be counted",
        )
    finally:
        chaos.faults(["binance"], price_factor=1.0)
    after = chaos.worker_scrape()
    recovery_s = chaos.recovered(["binance"])
    outliers = after.get("rates_pipeline_outliers_total", venue="binance") - before.get(
        "rates_pipeline_outliers_total", venue="binance"
    )
    chaos.report.add(
        Row(
            "absurd prices (x1000 the others)",
            "binance (active)",
            f"excluded as outliers ({int(outliers)} counted); v1 failed over to "
            f"{chaos.watch.active_during(began)} in {failover_s} s",
            recovery_s,
        )
    )
    assert_served_sane(chaos)


def test_oversized_frames(chaos: Stack) -> None:
    before = chaos.connector_scrape()
    chaos.actions(ALL, "oversized")

    def counted(venue: str, metrics: object) -> bool:
        assert isinstance(metrics, type(before))
        return chaos.failures(metrics, venue) > chaos.failures(before, venue) or metrics.get(
            "rates_connector_malformed_frames_total", venue=venue
        ) > before.get("rates_connector_malformed_frames_total", venue=venue)

    wait_until(
        lambda: all(counted(v, chaos.connector_scrape()) for v in ALL),
        20,
        "every venue to count its 10 MB frame",
    )
    recovery_s = chaos.recovered(ALL)
    chaos.alive()
    chaos.report.add(
        Row(
            "oversized frames (10 MB)",
            "all",
            "websocket venues: the connection refuses it (8 MiB limit) and reconnects; "
            "polled: counted as malformed",
            recovery_s,
        )
    )
    assert_served_sane(chaos)
