"""Statuses that tell the truth, through `rates api` on a real broker: /readyz is 503 with
the reason whenever v1 without parameters cannot answer 200, v1 waits for the active venue
at start, and a venue's last frame age is its data's, not its status report's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from devtools.apiserver import latest_records, publish, run_api
from devtools.waiting import wait_until
from schemas.records import Latest, VenueStatus
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.topics import ACTIVE_KEY
from tests.integration.harness import unique_prefix


def test_readiness_follows_what_v1_answers(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    now = datetime.now(UTC)
    records = latest_records(DEFAULT_DIRECTIONS, now=now)
    directions, active = records[:-1], records[-1]
    with run_api(kafka, prefix, tmp_path / "api.log") as api:

        def answers(status: int, text: str) -> tuple[httpx.Response, httpx.Response] | None:
            v1 = httpx.get(f"{api.base}/api/v1/courses", timeout=5)
            ready = httpx.get(f"{api.base}/readyz", timeout=5)
            if v1.status_code == status and text in v1.text:
                return v1, ready
            return None

        # The directions' rates arrived, the active venue not yet: warming up.
        publish(kafka, prefix, directions)
        v1, ready = wait_until(lambda: answers(503, "warming up"), 30, "v1 to say warming up")
        assert v1.headers["retry-after"] == "1"
        assert ready.status_code == 503 and "warming up" in ready.json()["reason"]
        pinned = httpx.get(f"{api.base}/api/v1/courses?exchanger=binance", timeout=5)
        assert pinned.status_code == 200  # a named venue's rates are there already

        # The policy finds no venue with fresh rates: v1 cannot answer, nor is the API ready.
        nobody = Latest(ACTIVE_KEY, None, None, None, None, True, "no venue has fresh quotes", None)
        publish(kafka, prefix, [nobody])
        v1, ready = wait_until(lambda: answers(503, "no venue"), 30, "v1 to say no venue")
        assert ready.status_code == 503
        assert ready.json()["reason"] == f"GET /api/v1/courses answers 503: {v1.json()['detail']}"

        publish(kafka, prefix, [active])
        wait_until(lambda: answers(200, "binance"), 30, "v1 to serve binance")
        assert httpx.get(f"{api.base}/readyz", timeout=5).json() == {"ready": True, "reason": "ok"}


def test_last_frame_age_is_the_age_of_the_venues_data(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    now = datetime.now(UTC)
    # The connector reported a minute ago (its status republished every 5 s says so), while
    # binance's quotes on rates.latest arrived just now.
    status = VenueStatus("binance", "up", now - timedelta(hours=1), now - timedelta(minutes=1))
    publish(kafka, prefix, [*latest_records(DEFAULT_DIRECTIONS, now=now), status])
    with run_api(kafka, prefix, tmp_path / "api.log") as api:

        def binance() -> dict[str, object] | None:
            venues = httpx.get(f"{api.base}/api/v2/venues", timeout=5).json()["venues"]
            found = next(v for v in venues if v["venue"] == "binance")
            return found if found["state"] == "up" else None

        found = wait_until(binance, 30, "binance's status")
        age = found["last_frame_age_ms"]
        assert isinstance(age, int) and age < 60_000, found
        assert found["last_frame_at"] != "" and found["last_frame_at"] is not None


def test_parameters_are_treated_one_way(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    publish(kafka, prefix, latest_records(DEFAULT_DIRECTIONS))
    with (
        run_api(kafka, prefix, tmp_path / "fast.log") as fast,
        run_api(kafka, prefix, tmp_path / "slow.log", API_FAST_PATH="false") as slow,
    ):
        for api in (fast, slow):
            base = api.base

            def fed(base: str = base) -> bool:
                return httpx.get(f"{base}/api/v1/courses").status_code == 200

            wait_until(fed, 30, "the feed")
            twice = httpx.get(f"{api.base}/api/v1/courses?exchanger=okx&exchanger=binance")
            assert twice.status_code == 422
            assert twice.json()["detail"].startswith("exchanger is given 2 times")
            both = httpx.get(f"{api.base}/api/v1/courses?direction=BTC-USD&direction=ETH-USD")
            comma = httpx.get(f"{api.base}/api/v1/courses?direction=BTC-USD,ETH-USD")
            assert both.status_code == 200 and both.content == comma.content
            for query in ("direction=BTC-USD&direction=ETH-USD", "direction=BTC-USD,ETH-USD"):
                several = httpx.get(f"{api.base}/api/v2/courses/history?{query}")
                assert several.status_code == 422, query
                assert several.json()["detail"] == "history takes one direction at a time"
            v2 = httpx.get(f"{api.base}/api/v2/courses?direction=BTC-USD&direction=eth-usd")
            assert [c["direction"] for c in v2.json()["courses"]] == ["BTC-USD", "ETH-USD"]
            limits = httpx.get(
                f"{api.base}/api/v2/courses/history?direction=BTC-USD&limit=1&limit=2"
            )
            assert limits.status_code == 422 and "limit is given 2 times" in limits.text
            # Lower-case t and z are RFC 3339: accepted (no PostgreSQL here: 503, not 422).
            lower = httpx.get(
                f"{api.base}/api/v2/courses/history",
                params={"direction": "BTC-USD", "since": "2026-11-24t16:00:00z"},
            )
            assert lower.status_code == 503, lower.text
        httpx.get(f"{fast.base}/openapi.json").raise_for_status()
        metrics = httpx.get(f"{fast.base}/metrics").text
        assert 'rates_api_requests_total{route="/openapi.json",status="200"}' in metrics
        assert 'route="unmatched",status="200"' not in metrics
