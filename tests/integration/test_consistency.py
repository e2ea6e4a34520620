"""Rates that agree with themselves, through the real stack (simulator, broker, two workers,
the API, the history writer on PostgreSQL): the first answer comes from the preferred venue,
aliases never differ, and a start records one choice per direction, not a burst of switches.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from devtools.processes import Procs
from devtools.waiting import wait_until
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import ACTIVE_KEY, Topics
from tests.integration.harness import (
    LatestWatcher,
    SimHandle,
    api_base,
    courses,
    pipeline_env,
)

VENUES = ["binance", "kraken", "okx", "coingecko", "cbr"]
ALIASES = (("USDTTRC-USD", "USDTERC-USD"), ("USDTTRC-RUB", "USDTERC-RUB"))
#: How long the stack runs before its switches are counted.
RUN_S = 30.0


def fresh_database(postgres: str) -> str:
    name = f"c_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


def test_a_start_serves_the_preferred_venue_aliases_agree_and_one_choice_is_stored(
    kafka: str, postgres: str, simulator: SimHandle, procs: Procs
) -> None:
    url = fresh_database(postgres)
    env = pipeline_env(
        kafka,
        procs,
        RATES_VENUES=",".join(VENUES),
        CBR_POLL_INTERVAL_S="1",
        DATABASE_URL=url,
        HISTORY_FLUSH_INTERVAL_S="0.2",
        **simulator.env,
    )
    procs.start("connect", ["connect", *VENUES], env)
    procs.start("worker1", ["worker"], env)
    procs.start("worker2", ["worker"], env)
    procs.start("history", ["history"], env)
    procs.start("api", ["api"], env)
    base = api_base(env)
    started = time.monotonic()
    watcher = LatestWatcher(kafka, Topics(env["RATES_TOPIC_PREFIX"]).latest)

    def first_answer() -> dict[str, Any] | None:
        try:
            status, body = courses(base)
        except httpx.TransportError:
            return None
        if status == 503:
            assert body["detail"]  # warming up, or nothing yet: says which
        return body if status == 200 else None

    first = wait_until(first_answer, 90, "the first 200 of v1", every_s=0.05)
    assert first["exchanger"] == "binance", first  # the preferred venue, never a first comer
    # and every direction: the RUB rates had their reference within the warm-up
    assert [c["direction"] for c in first["courses"]] == list(DEFAULT_DIRECTIONS), first
    print(f"first 200 after {time.monotonic() - started:.1f} s")

    with httpx.Client(base_url=base, timeout=5) as client:
        for _ in range(300):
            response = client.get("/api/v1/courses")
            body = json.loads(response.text, parse_float=Decimal)
            assert response.status_code == 200, body
            values = {c["direction"]: c["value"] for c in body["courses"]}
            for trc, erc in ALIASES:
                assert values.get(trc) == values.get(erc), body
    print(f"300 answers done after {time.monotonic() - started:.1f} s")
    v2 = httpx.get(f"{base}/api/v2/courses", timeout=5).json()["courses"]
    by_direction = {c["direction"]: c for c in v2}
    for trc, erc in ALIASES:
        a, b = by_direction[trc], by_direction[erc]
        assert (a["venue"], a["value"], a["ts"]) == (b["venue"], b["value"], b["ts"])

    # On rates.latest too: every alias record is its canonical direction's, under its key
    # (published right after it: the last second's may still be on their way). On a quiet
    # machine the 300 answers take well under a second: wait until every canonical direction
    # has a record that arrived more than a second ago.
    def canonical_arrived() -> bool:
        settled = time.monotonic() - 1.0
        arrived = watcher.records_since(started)
        return all(
            any(r.direction == trc and at <= settled for at, r in arrived) for trc, _ in ALIASES
        )

    wait_until(canonical_arrived, 30, "a record of every canonical alias direction on rates.latest")
    stopped = time.monotonic()
    watcher.stop()
    arrived = watcher.records_since(started)
    for trc, erc in ALIASES:

        def seen(direction: str, before: float = stopped) -> set[tuple[Any, ...]]:
            return {
                (r.venue, r.value, r.ts, r.since, r.stale)
                for at, r in arrived
                if r.direction == direction and at <= before
            }

        assert seen(erc) <= seen(trc), (erc, seen(erc) - seen(trc))
        assert seen(trc, stopped - 1.0) <= seen(erc), (trc, seen(trc, stopped - 1.0) - seen(erc))
        assert seen(trc, stopped - 1.0)

    time.sleep(max(0.0, started + RUN_S - time.monotonic()))

    def switches() -> dict[str, list[tuple[Any, ...]]] | None:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT direction, from_venue, to_venue, reason FROM switches ORDER BY at"
            ).fetchall()
        stored: dict[str, list[tuple[Any, ...]]] = {}
        for row in found:
            stored.setdefault(row[0], []).append(row)
        return stored if set(stored) == {*DEFAULT_DIRECTIONS, ACTIVE_KEY} else None

    stored = wait_until(switches, 30, "a choice of every direction stored")
    many = {d: rows for d, rows in stored.items() if len(rows) != 1}
    assert not many, many  # one choice per direction, no switch
    assert all(rows[0][1] is None for rows in stored.values())  # first choices
    assert Decimal(0) < Decimal(str(first["courses"][0]["value"]))
