"""``GET /api/v2/switches`` through `rates api` on a real PostgreSQL: filtered by direction
and time, paged like history, and in the OpenAPI document."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from devtools.apiserver import latest_records, publish, run_api
from rates import migrate
from schemas.records import format_time
from schemas.settings import DEFAULT_DIRECTIONS
from tests.integration.harness import unique_prefix

T0 = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def fresh_database(postgres: str) -> str:
    name = f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


def test_switches_are_served_in_pages(kafka: str, postgres: str, tmp_path: Path) -> None:
    url = fresh_database(postgres)
    migrate.apply(url)
    rows: list[tuple[Any, ...]] = [
        ("BTC-USD", None, "binance", "most preferred fresh venue", T0),
        ("*", None, "binance", "fresh in 8 of 8 directions", T0),
        ("BTC-USD", "binance", "kraken", "binance silent", T0 + timedelta(seconds=30)),
        ("*", "binance", "kraken", "binance silent", T0 + timedelta(seconds=30)),
        ("BTC-USD", "kraken", "binance", "binance preferred again after 10 s healthy",
         T0 + timedelta(seconds=50)),
        ("ETH-USD", None, "okx", "most preferred fresh venue", T0 + timedelta(seconds=60)),
    ]  # fmt: skip
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO switches (direction, from_venue, to_venue, reason, at) "
            "VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
    prefix = unique_prefix()
    publish(kafka, prefix, latest_records(DEFAULT_DIRECTIONS))
    with run_api(kafka, prefix, tmp_path / "api.log", DATABASE_URL=url) as api:

        def get(**params: Any) -> httpx.Response:
            return httpx.get(f"{api.base}/api/v2/switches", params=params, timeout=10)

        everything = get().json()
        assert [(s["direction"], s["to_venue"]) for s in everything["switches"]] == [
            (r[0], r[2]) for r in rows
        ]
        assert everything["next_cursor"] is None
        first = everything["switches"][0]
        assert first == {
            "direction": "BTC-USD",
            "from_venue": None,
            "to_venue": "binance",
            "reason": "most preferred fresh venue",
            "at": format_time(T0),
        }

        # One direction and the active venue, repeated or comma-separated: the same answer.
        asked = get(direction=["btc-usd", "*"]).json()
        assert asked == get(direction="BTC-USD,*").json()
        assert [s["to_venue"] for s in asked["switches"]] == ["binance"] * 2 + ["kraken"] * 2 + [
            "binance"
        ]

        # Pages of two, following next_cursor, in a window.
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"since": "2026-11-24t16:00:30z", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = get(**params).json()
            seen += page["switches"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [s["reason"] for s in seen] == [r[3] for r in rows[2:]]
        until = get(until=format_time(T0 + timedelta(seconds=30))).json()["switches"]
        assert len(until) == 2

        for params, message in (
            ({"direction": "BTC-EUR"}, "unknown direction BTC-EUR"),
            ({"cursor": "nonsense"}, "cursor is not one this API returned"),
            ({"limit": "1", "since": "x"}, "is not an RFC 3339 time"),
            ({"since": format_time(T0), "until": format_time(T0)}, "since must be earlier"),
        ):
            bad = get(**params)
            assert bad.status_code == 422 and message in bad.json()["detail"], params
        twice = httpx.get(f"{api.base}/api/v2/switches?limit=1&limit=2", timeout=5)
        assert twice.status_code == 422 and "limit is given 2 times" in twice.text

        spec = httpx.get(f"{api.base}/openapi.json", timeout=5).json()
        operation = spec["paths"]["/api/v2/switches"]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert {"direction", "since", "until", "limit", "cursor"} <= names
        assert "SwitchesPage" in str(operation["responses"]["200"])
