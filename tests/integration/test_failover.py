"""Failover through the real pipeline: venues, a RUB reference, two workers, the API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from devtools.processes import Procs
from devtools.waiting import wait_until
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import Topics
from tests.integration.harness import LatestWatcher, SimHandle, api_base, courses, pipeline_env


@pytest.fixture
def sim(simulator: SimHandle) -> Iterator[SimHandle]:
    """The session simulator, with every fault cleared afterwards."""
    yield simulator
    for venue in simulator.state()["venues"]:
        simulator.faults(venue, silent=False)


def start(
    procs: Procs, kafka: str, sim: SimHandle, venues: list[str], workers: int, **extra: str
) -> tuple[str, dict[str, str]]:
    env = pipeline_env(
        kafka,
        procs,
        RATES_VENUES=",".join(venues),
        CBR_POLL_INTERVAL_S="1",
        **sim.env,
        **extra,
    )
    procs.start("connect", ["connect", *venues], env)
    for index in range(workers):
        procs.start(f"worker{index + 1}", ["worker"], env)
    procs.start("api", ["api"], env)
    return api_base(env), env


def answer(base: str) -> dict[str, Any] | None:
    status, body = courses(base)
    return body if status == 200 else None


def test_one_venue_and_a_reference_serve_all_eight_directions(
    kafka: str, sim: SimHandle, procs: Procs
) -> None:
    base, _ = start(procs, kafka, sim, ["binance", "cbr"], workers=1)

    def everything() -> dict[str, Any] | None:
        body = answer(base)
        return body if body and len(body["courses"]) == len(DEFAULT_DIRECTIONS) else None

    body = wait_until(everything, 90, "all eight directions from binance")
    assert body["exchanger"] == "binance"
    values = {c["direction"]: c["value"] for c in body["courses"]}
    assert list(values) == list(DEFAULT_DIRECTIONS)
    usd_rub = sim.state()["prices"]["USD-RUB"]
    for base_asset in ("BTC", "ETH", "USDTTRC", "USDTERC"):
        ratio = values[f"{base_asset}-RUB"] / values[f"{base_asset}-USD"]
        # derived from the CBR reference of the simulator (which moves): near its level
        assert abs(ratio / Decimal(usd_rub) - 1) < Decimal("0.01"), (base_asset, ratio)
        assert values[f"{base_asset}-RUB"] == values[f"{base_asset}-RUB"].quantize(
            Decimal("0.00000001")
        )
    # one token on two chains: the same market price (each direction updates on its own)
    trc, erc = values["USDTTRC-USD"], values["USDTERC-USD"]
    # Binance has no USDT-USD market: its USDC-USDT inverted (it may print as exactly 1.0000)
    usdc_usdt = Decimal(sim.state()["prices"]["USDC-USDT"])
    assert abs(trc * usdc_usdt - 1) < Decimal("0.002"), (trc, usdc_usdt)
    assert abs(trc / erc - 1) < Decimal("0.001")


def test_a_silent_venue_fails_over_and_returns_after_hysteresis(
    kafka: str, sim: SimHandle, procs: Procs
) -> None:
    hysteresis = 4.0
    base, env = start(
        procs,
        kafka,
        sim,
        ["binance", "kraken", "cbr"],
        workers=2,
        RATES_HYSTERESIS_S=str(hysteresis),
    )
    watcher = LatestWatcher(kafka, Topics(env["RATES_TOPIC_PREFIX"]).latest)
    try:

        def from_venue(venue: str) -> dict[str, Any] | None:
            body = answer(base)
            if body is None or len(body["courses"]) != len(DEFAULT_DIRECTIONS):
                return None
            return body if body["exchanger"] == venue else None

        wait_until(lambda: from_venue("binance"), 90, "binance to serve every direction")

        sim.faults("binance", silent=True)
        silenced = time.monotonic()
        silenced_at = datetime.now(UTC)
        wait_until(lambda: from_venue("kraken"), 30, "kraken to take over", every_s=0.05)
        took_over = time.monotonic()
        print(f"kraken serves {took_over - silenced:.2f} s after binance went silent")

        sim.faults("binance", silent=False)

        def binance_fresh_again() -> float | None:
            for at, record in watcher.records_since(took_over):
                quote = record.quotes.get("binance")
                if record.direction == "BTC-USD" and quote is not None and quote.fresh:
                    return at
            return None

        wait_until(binance_fresh_again, 30, "binance to be healthy again")
        wait_until(lambda: from_venue("binance"), 30, "binance to be preferred again", 0.05)

        # The worker's own times (the watcher may read late on a busy machine): the switch
        # back came no sooner than the hysteresis after binance's data resumed.
        def back_on_binance() -> Any:
            for _, record in watcher.records_since(took_over):
                since = record.since
                chosen = record.direction == "BTC-USD" and record.venue == "binance"
                if chosen and since is not None and since > silenced_at:
                    return record
            return None

        record = wait_until(back_on_binance, 10, "the BTC-USD record back on binance")
        resumed = record.quotes["binance"].fresh_since
        assert resumed is not None and record.since is not None
        waited = (record.since - resumed).total_seconds()
        print(f"binance's data resumed, preferred {waited:.2f} s later")
        assert waited >= hysteresis

        # The watcher reads rates.latest on its own; it may be a record behind the API.
        def whole_answer_on_binance() -> Any:
            active = watcher.latest("*")
            return active if active is not None and active.venue == "binance" else None

        active = wait_until(whole_answer_on_binance, 10, "the '*' record to name binance")
        assert active.reason == f"binance preferred again after {hysteresis:g} s healthy"
    finally:
        watcher.stop()
