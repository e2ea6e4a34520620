"""The API's contract through the real HTTP server, started exactly as `make bench` starts it.

`rates api` processes follow a real Tansu broker on which the tests publish synthetic
rates.latest and venues.status records (devtools/apiserver.py), so every answer can be
predicted to the byte. Server ``fast`` has the v1 fast path on (the default); ``slow`` has
it off, so each v1 answer is compared between the fast path and the FastAPI route.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from api.stream import RESUME_MARGIN_MS
from devtools.apiserver import (
    PRICES,
    ApiProcess,
    latest_records,
    publish,
    republishing,
    run_api,
)
from devtools.embedded import start_postgres, start_tansu
from devtools.environment import clean_env
from devtools.waiting import wait_until
from rates.embedded import free_port
from schemas.records import Latest, VenueStatus
from schemas.settings import DEFAULT_DIRECTIONS
from schemas.venues import EXCHANGERS
from tests.integration.harness import unique_prefix

DIRECTIONS = DEFAULT_DIRECTIONS
STALE = ("ETH-RUB",)
#: A second venue quoting BTC-USD only: every other exchanger, plus one that is not one.
OTHERS = {name: {"BTC-USD": "94940.10"} for name in (*EXCHANGERS[1:], "kraken")}
CORS_ORIGIN = "https://app.example"
#: History rows live in a window of their own, so other tests' rows never mix in.
HISTORY_T0 = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC) + timedelta(
    minutes=int(time.time()) % 100_000
)


@dataclass
class Servers:
    fast: ApiProcess
    slow: ApiProcess
    #: Where ``slow`` expects PostgreSQL, which does not run there (yet).
    slow_db_port: int


def body_of(response: httpx.Response) -> Any:
    """The JSON body with numbers as Decimal: the exact digits the server printed."""
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


def fed(api: ApiProcess) -> bool:
    return httpx.get(f"{api.base}/api/v1/courses", timeout=2).status_code == 200


@pytest.fixture(scope="module")
def history_db(postgres: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "rates", "migrate"],
        env=clean_env(DATABASE_URL=postgres),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        (f"it-{HISTORY_T0.timestamp()}-{i}", "binance", "BTC-USD", f"9400{i}.1000{i}",
         HISTORY_T0 + timedelta(seconds=i), HISTORY_T0 + timedelta(seconds=i, milliseconds=5))
        for i in range(5)
    ]  # fmt: skip
    rows.append(
        (f"it-{HISTORY_T0.timestamp()}-eth", "binance", "ETH-USD", "3400.5", HISTORY_T0, HISTORY_T0)
    )
    with psycopg.connect(postgres) as conn:
        conn.cursor().executemany(
            "INSERT INTO quotes (id, venue, direction, value, ts, received_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )
    return postgres


@pytest.fixture(scope="module")
def servers(
    kafka: str, history_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    prefix = unique_prefix()
    logs = tmp_path_factory.mktemp("api")
    db_port = free_port()
    now = datetime.now(UTC)
    records: list[Latest | VenueStatus] = [
        *latest_records(DIRECTIONS, now=now, stale=STALE, others=OTHERS),
        VenueStatus("binance", "up", now - timedelta(minutes=1), now, "2 streams"),
    ]
    with (
        republishing(kafka, prefix, records),
        run_api(kafka, prefix, logs / "fast.log", DATABASE_URL=history_db,
                API_STREAM_MAX_S="0.5") as fast,
        run_api(kafka, prefix, logs / "slow.log", API_FAST_PATH="false",
                DATABASE_URL=f"postgresql://postgres@127.0.0.1:{db_port}/postgres",
                API_CORS_ORIGINS=CORS_ORIGIN) as slow,
    ):  # fmt: skip
        wait_until(lambda: fed(fast) and fed(slow), 30, "both servers to load the feed")
        yield Servers(fast, slow, db_port)


def both(servers: Servers, path: str, params: Any = None, **headers: str) -> httpx.Response:
    """GET from the fast path and from the FastAPI route: the same answer, byte for byte."""
    got = [
        httpx.get(f"{api.base}{path}", params=params, headers=headers, timeout=5)
        for api in (servers.fast, servers.slow)
    ]
    fast, slow = got
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content), params
    for name in ("content-type", "content-length", "etag", "cache-control", "retry-after"):
        assert fast.headers.get(name) == slow.headers.get(name), (name, params)
    return fast


# -- v1 -------------------------------------------------------------------------------------


def expected_v1(venue: str, asked: Sequence[str]) -> bytes:
    """The exact body, built from the feed's own price strings."""
    prices = {**{d: PRICES.get(d) for d in DIRECTIONS}, **OTHERS.get(venue, {})}
    courses = [
        f'{{"direction":"{d}","value":{_price(d, prices)}}}'
        for d in asked
        if (venue == "binance" and d not in STALE) or d in OTHERS.get(venue, {})
    ]
    return f'{{"exchanger":"{venue}","courses":[{",".join(courses)}]}}'.encode()


def _price(direction: str, prices: dict[str, str | None]) -> str:
    if prices.get(direction):
        return str(prices[direction])
    base = direction.split("-")[0]
    return str((Decimal(PRICES[f"{base}-USD"]) * Decimal("81.5046")).quantize(Decimal("0.01")))


DIRECTION_PARAMS: list[tuple[Any, list[str]]] = [
    (None, list(DIRECTIONS)),
    ("", list(DIRECTIONS)),
    ("BTC-USD", ["BTC-USD"]),
    ("btc-usd", ["BTC-USD"]),
    ("ETH-USD,BTC-USD", ["ETH-USD", "BTC-USD"]),
    (["eth-usd", "BTC-USD"], ["ETH-USD", "BTC-USD"]),
    (["usdttrc-rub, btc-usd ,BTC-USD", "Eth-Usd", "btc-usd"],
     ["USDTTRC-RUB", "BTC-USD", "ETH-USD"]),
    ("ETH-RUB,BTC-RUB", ["ETH-RUB", "BTC-RUB"]),
]  # fmt: skip
EXCHANGER_PARAMS: list[tuple[str | None, str]] = [
    (None, "binance"),
    ("", "binance"),
    ("binance", "binance"),
    (" BINANCE ", "binance"),
    *((name.upper(), name) for name in EXCHANGERS[1:]),
    *(("coingeko", "coingecko") for _ in [1] if "coingecko" in EXCHANGERS),
]


@pytest.mark.parametrize(("exchanger", "venue"), EXCHANGER_PARAMS)
def test_v1_every_parameter_combination(
    servers: Servers, exchanger: str | None, venue: str
) -> None:
    for direction, asked in DIRECTION_PARAMS:
        params = {
            k: v
            for k, v in {"exchanger": exchanger, "direction": direction}.items()
            if v is not None
        }
        response = both(servers, "/api/v1/courses", params)
        expected = expected_v1(venue, asked)
        if expected.endswith(b"[]}"):
            assert response.status_code == 503, params
            assert response.headers["retry-after"] == "1"
            assert f"{venue} has no fresh rate" in response.json()["detail"]
            continue
        assert response.status_code == 200, (params, response.text)
        assert response.content == expected, params
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "max-age=1"
        assert re.fullmatch(r'"[0-9a-f]{16}"', response.headers["etag"])


def test_v1_values_keep_their_digits(servers: Servers) -> None:
    response = both(servers, "/api/v1/courses", {"direction": "BTC-USD,ETH-USD,USDTTRC-USD"})
    values = [c["value"] for c in body_of(response)["courses"]]
    assert [str(v) for v in values] == ["94936.03000000", "3400.22000000", "1.00010000"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"exchanger": "mtgox"},
         f"unknown exchanger 'mtgox'; valid exchangers: {', '.join(EXCHANGERS)}"),
        ({"exchanger": "cbr"}, "valid exchangers: "),
        ({"direction": "BTC-EUR"},
         f"unknown direction BTC-EUR; valid directions: {', '.join(DIRECTIONS)}"),
        ({"direction": ["BTC-USD", "x,BTC-EUR"]}, "unknown direction X, BTC-EUR; valid directions"),
        ({"exchanger": "mtgox", "direction": "BTC-EUR"}, "unknown exchanger 'mtgox'"),
    ],
)  # fmt: skip
def test_v1_unknown_values_are_422_listing_the_valid_ones(
    servers: Servers, params: dict[str, Any], message: str
) -> None:
    response = both(servers, "/api/v1/courses", params)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert "retry-after" not in response.headers


def test_v1_conditional_requests(servers: Servers) -> None:
    first = both(servers, "/api/v1/courses", {"direction": "BTC-USD"})
    etag = first.headers["etag"]
    again = both(servers, "/api/v1/courses", {"direction": "BTC-USD"}, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = both(servers, "/api/v1/courses", {"direction": "ETH-USD"}, **{"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


# -- v2 -------------------------------------------------------------------------------------


def test_v2_courses_show_provenance(servers: Servers) -> None:
    response = httpx.get(
        f"{servers.fast.base}/api/v2/courses", params={"direction": "btc-rub,BTC-USD,ETH-RUB"}
    )
    assert response.status_code == 200 and response.headers["cache-control"] == "max-age=1"
    data = body_of(response)
    assert data["active"]["venue"] == "binance"
    rub, usd, stale = data["courses"]
    assert [c["direction"] for c in data["courses"]] == ["BTC-RUB", "BTC-USD", "ETH-RUB"]
    assert str(usd["value"]) == "94936.03000000" and usd["venue"] == "binance"
    assert usd["stale"] is False and usd["reason"] == "preferred venue"
    assert 0 <= usd["age_ms"] < 600_000 and usd["derived_from"] is None
    assert usd["ts"].endswith("Z") and usd["since"].endswith("Z")
    assert sorted(q["venue"] for q in usd["quotes"]) == sorted(OTHERS)
    assert {str(q["value"]) for q in usd["quotes"]} == {"94940.10"}
    assert [leg["venue"] for leg in rub["derived_from"]] == ["binance", "cbr"]
    assert str(rub["derived_from"][1]["value"]) == "81.5046"
    assert stale["stale"] is True and stale["quotes"] == []
    every = httpx.get(f"{servers.slow.base}/api/v2/courses").json()["courses"]
    assert [c["direction"] for c in every] == list(DIRECTIONS)
    bad = httpx.get(f"{servers.fast.base}/api/v2/courses", params={"direction": "XRP-USD"})
    assert bad.status_code == 422 and "valid directions" in bad.json()["detail"]


def test_v2_venues(servers: Servers) -> None:
    venues = httpx.get(f"{servers.fast.base}/api/v2/venues").json()["venues"]
    by_name = {v["venue"]: v for v in venues}
    assert venues[0]["venue"] == "binance"
    binance = by_name["binance"]
    assert (binance["state"], binance["detail"], binance["kind"]) == (
        "up",
        "2 streams",
        "exchanger",
    )
    assert binance["last_frame_age_ms"] >= 0 and binance["status_age_ms"] >= 0
    assert binance["directions"] == [d for d in DIRECTIONS if d not in STALE]
    assert by_name["kraken"]["directions"] == ["BTC-USD"]
    assert by_name["kraken"]["state"] is None


def sse_events(lines: Iterator[str], count: int | None) -> list[dict[str, str]]:
    """The next ``count`` events, or all until the stream ends (comments, retry skipped)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    if count is not None:
        raise AssertionError(f"stream ended after {events}")
    return events


#: Seconds between two publications of the stream test: more than the resume margin.
RESUME_GAP_S = RESUME_MARGIN_MS // 1000 + 1


def test_v2_stream_pushes_changes_and_resumes(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    now = datetime.now(UTC)
    publish(kafka, prefix, latest_records(DIRECTIONS, now=now))
    log = tmp_path / "api.log"
    with run_api(kafka, prefix, log, API_STREAM_MAX_S=str(RESUME_GAP_S + 2)) as api:
        wait_until(lambda: fed(api), 30, "the feed")
        url = f"{api.base}/api/v2/courses/stream"
        params = {"direction": "ETH-USD,btc-usd"}
        with httpx.stream("GET", url, params=params, timeout=10) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            first = sse_events(lines, 3)
            ids = [int(e["id"]) for e in first]
            assert ids == sorted(ids)  # oldest change first
            kinds = {(e["event"], json.loads(e["data"]).get("direction")) for e in first}
            assert kinds == {("active", None), ("course", "BTC-USD"), ("course", "ETH-USD")}
            assert metric(httpx.get(f"{api.base}/metrics").text, "rates_api_streams") == 1
            time.sleep(RESUME_GAP_S)
            changed = latest_records(DIRECTIONS, now=now, prices={"ETH-USD": "3500.01"})
            publish(kafka, prefix, changed)
            # Republished records that change nothing are not events: only ETH-USD is.
            (pushed,) = sse_events(lines, 1)
        assert pushed["event"] == "course" and int(pushed["id"]) > max(ids)
        # The client hung up: its stream is gone from the server too.
        wait_until(
            lambda: metric(httpx.get(f"{api.base}/metrics").text, "rates_api_streams") == 0,
            10,
            "the stream to close",
        )
        data = json.loads(pushed["data"], parse_float=Decimal)
        assert (data["direction"], str(data["value"])) == ("ETH-USD", "3500.01")
        # Reconnecting with the last id it saw, a client gets what changed since (the
        # resume margin sends that last change again), not the older state.
        resumed = {"Last-Event-ID": pushed["id"]}
        with httpx.stream("GET", url, params=params, headers=resumed, timeout=10) as response:
            rest = sse_events(response.iter_lines(), None)  # until the stream ends
        assert [(e["id"], e["event"]) for e in rest] == [(pushed["id"], "course")]
        again = json.loads(rest[0]["data"], parse_float=Decimal)
        assert {**again, "age_ms": 0} == {**data, "age_ms": 0}  # the same state, older now
        bad = httpx.get(url, params={"direction": "nope"})
        assert bad.status_code == 422


# -- history ----------------------------------------------------------------------------------


def history(api: ApiProcess, **params: Any) -> httpx.Response:
    return httpx.get(f"{api.base}/api/v2/courses/history", params=params, timeout=10)


def test_history_pages_through_a_window(servers: Servers) -> None:
    window = {
        "direction": "btc-usd",
        "since": HISTORY_T0.isoformat(),
        "until": (HISTORY_T0 + timedelta(seconds=4)).isoformat().replace("+00:00", "Z"),
    }
    seen: list[Any] = []
    cursor = None
    for _ in range(3):
        response = history(
            servers.fast, limit=2, **window, **({"cursor": cursor} if cursor else {})
        )
        assert response.status_code == 200, response.text
        data = body_of(response)
        seen += data["quotes"]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert [str(q["value"]) for q in seen] == [f"9400{i}.1000{i}" for i in range(4)]
    assert [q["ts"] for q in seen] == sorted(q["ts"] for q in seen)
    assert {q["direction"] for q in seen} == {"BTC-USD"} and seen[0]["derived_from"] is None
    response = history(servers.fast, direction="ETH-USD", since=window["since"], limit=1)
    assert [str(q["value"]) for q in body_of(response)["quotes"]] == ["3400.5"]
    assert response.headers["cache-control"] == "max-age=1"
    again = httpx.get(response.url, headers={"If-None-Match": response.headers["etag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"direction": "BTC-USD", "since": "yesterday"}, "since='yesterday' is not an RFC 3339"),
        ({"direction": "BTC-USD", "until": "2026-11-24T16:00:00"}, "until='2026-11-24T16:00:00'"),
        ({"direction": "BTC-USD", "since": "2026-01-02T00:00:00Z",
          "until": "2026-01-01T00:00:00Z"}, "since must be earlier"),
        ({"direction": "BTC-USD", "limit": 0}, "limit: Input should be greater than or equal"),
        ({"direction": "BTC-USD", "limit": 1001}, "limit: Input should be less than or equal"),
        ({"direction": "BTC-USD", "limit": "many"}, "limit: Input should be a valid integer"),
        ({"direction": "BTC-USD", "cursor": "nope"}, "cursor is not one this API returned"),
        ({"direction": "BTC-USD", "resolution": "1h"}, "resolution: Input should be 'raw' or '1m'"),
        ({"direction": "BTC-USD,ETH-USD"}, "one direction at a time"),
        ({"direction": "BTC-EUR"}, "valid directions"),
        ({}, "direction: Field required"),
    ],
)  # fmt: skip
def test_history_rejects_bad_parameters(
    servers: Servers, params: dict[str, Any], message: str
) -> None:
    response = history(servers.fast, **params)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_history_without_postgres_is_503_and_the_rest_serves(
    servers: Servers, logs_dir: Path
) -> None:
    response = history(servers.slow, direction="BTC-USD")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "history unavailable: PostgreSQL did not answer" in response.json()["detail"]
    assert httpx.get(f"{servers.slow.base}/api/v1/courses").status_code == 200
    assert httpx.get(f"{servers.slow.base}/readyz").status_code == 200
    metrics = httpx.get(f"{servers.slow.base}/metrics").text
    assert metric(metrics, "rates_api_history_errors_total") >= 1
    # PostgreSQL comes (back): the same process answers from it, no restart needed.
    pg = start_postgres(logs_dir / "pgdata-history", port=servers.slow_db_port)
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "rates", "migrate"],
            env=clean_env(DATABASE_URL=pg.address),
            capture_output=True,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr

        def answered() -> Any:
            got = history(servers.slow, direction="BTC-USD")
            return got.json() if got.status_code == 200 else None

        assert wait_until(answered, 30, "history to recover") == {
            "direction": "BTC-USD",
            "quotes": [],
            "next_cursor": None,
        }
    finally:
        pg.stop()


# -- health, metrics, CORS, docs ---------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_health_readiness_and_metrics(servers: Servers) -> None:
    base = servers.fast.base
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").json() == {"ready": True, "reason": "ok"}
    route = {"route": "/api/v1/courses"}
    before = httpx.get(f"{base}/metrics").text
    for params in ({"direction": "BTC-USD"}, {"direction": "nope"}, {"direction": "BTC-USD"}):
        httpx.get(f"{base}/api/v1/courses", params=params)
    httpx.get(f"{base}/no/such/page")
    after = httpx.get(f"{base}/metrics").text
    for status, count in (("200", 2), ("422", 1)):
        delta = metric(after, "rates_api_requests_total", **route, status=status) - metric(
            before, "rates_api_requests_total", **route, status=status
        )
        assert delta == count, status
    assert metric(after, "rates_api_requests_total", route="unmatched", status="404") >= 1
    assert metric(after, "rates_api_request_seconds_count", **route) >= 3
    assert 'rates_api_request_seconds_bucket{le="0.005",route="/api/v1/courses"}' in after
    assert 0 <= metric(after, "rates_api_snapshot_age_seconds") < 600
    assert metric(after, "rates_api_latest_records_total") >= len(DIRECTIONS) + 1


def test_cors_is_closed_by_default_and_configurable(servers: Servers) -> None:
    asked = {"Origin": CORS_ORIGIN}
    closed = httpx.get(f"{servers.fast.base}/api/v1/courses", headers=asked)
    assert closed.status_code == 200 and "access-control-allow-origin" not in closed.headers
    preflight = {**asked, "Access-Control-Request-Method": "GET"}
    refused = httpx.options(f"{servers.fast.base}/api/v1/courses", headers=preflight)
    assert refused.status_code == 405
    open_ = httpx.get(f"{servers.slow.base}/api/v1/courses", headers=asked)
    assert open_.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "etag" in open_.headers["access-control-expose-headers"].lower()
    allowed = httpx.options(f"{servers.slow.base}/api/v2/courses", headers=preflight)
    assert allowed.status_code == 200 and "GET" in allowed.headers["access-control-allow-methods"]
    other = httpx.get(
        f"{servers.slow.base}/api/v1/courses", headers={"Origin": "https://x.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_docs_pages_need_no_internet(servers: Servers) -> None:
    for page, kind in (("/docs", "swagger"), ("/redoc", "redoc")):
        html = httpx.get(f"{servers.fast.base}{page}").text
        assert kind in html.lower(), page
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert assets, html
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            answer = httpx.get(f"{servers.fast.base}{asset}")
            assert answer.status_code == 200 and len(answer.content) > 10_000, asset


def test_openapi_describes_every_parameter_error_and_example(servers: Servers) -> None:
    spec = httpx.get(f"{servers.fast.base}/openapi.json").json()
    routes = {path for path in spec["paths"] if path.startswith("/api/")}
    assert routes == {
        "/api/v1/courses",
        "/api/v2/courses",
        "/api/v2/courses/stream",
        "/api/v2/venues",
        "/api/v2/directions",
        "/api/v2/courses/history",
        "/api/v2/switches",
    }
    for path in routes:
        operation = spec["paths"][path]["get"]
        assert operation["summary"], path
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (path, parameter["name"])
            assert parameter.get("examples") or parameter["schema"].get("examples"), (
                path,
                parameter["name"],
            )
        for status, response in operation["responses"].items():
            if status in ("422", "503"):
                assert response["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/ErrorBody"
                ), (path, status)
                assert response["content"]["application/json"].get("examples"), (path, status)
            if status == "503":
                assert "Retry-After" in response["headers"], path


# -- processes --------------------------------------------------------------------------------


def test_api_before_any_data_then_following_the_topic(kafka: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    log = tmp_path / "api.log"
    with run_api(kafka, prefix, log, API_ACCESS_LOG="true", LOG_LEVEL="INFO") as api:
        for path in ("/api/v1/courses", "/api/v1/courses?exchanger=binance", "/api/v2/courses"):
            response = httpx.get(api.base + path)
            assert response.status_code == 503 and response.headers["retry-after"] == "1", path
            assert "no rates yet" in response.json()["detail"] or "binance" in response.text
        ready = httpx.get(f"{api.base}/readyz")
        assert ready.status_code == 503 and "snapshot not loaded" in ready.json()["reason"]
        publish(kafka, prefix, latest_records(DIRECTIONS))
        wait_until(lambda: fed(api), 30, "the API to load the records")
        assert httpx.get(f"{api.base}/readyz").status_code == 200
        etag = httpx.get(f"{api.base}/api/v1/courses").headers["etag"]
        publish(kafka, prefix, latest_records(DIRECTIONS, prices={"BTC-USD": "1.5"}))

        def changed() -> httpx.Response | None:
            response = httpx.get(f"{api.base}/api/v1/courses", headers={"If-None-Match": etag})
            return response if response.status_code == 200 else None

        response = wait_until(changed, 30, "the new price")
        assert b'{"direction":"BTC-USD","value":1.5}' in response.content
    assert '"GET /api/v1/courses?exchanger=binance HTTP/1.1" 503' in api.output()


def test_several_workers_share_the_port_and_add_up_their_metrics(
    kafka: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    publish(kafka, prefix, latest_records(DIRECTIONS))
    with run_api(kafka, prefix, tmp_path / "api.log", API_WORKERS="2") as api:
        wait_until(
            lambda: len(psutil.Process(api.popen.pid).children(recursive=True)) >= 2,
            30,
            "two workers",
        )
        asked = 40
        served = 0
        deadline = time.monotonic() + 30
        while served < asked and time.monotonic() < deadline:
            # A new connection per request: the kernel hands them to either worker.
            if httpx.get(f"{api.base}/api/v1/courses").status_code == 200:
                served += 1
        assert served == asked
        route = {"route": "/api/v1/courses", "status": "200"}
        counts = {
            metric(httpx.get(f"{api.base}/metrics").text, "rates_api_requests_total", **route)
            for _ in range(6)
        }
        # Whichever worker answers /metrics reports every worker's requests.
        assert counts == {float(asked)}, counts
    assert api.popen.returncode == 0, api.output()


def test_schemathesis_finds_no_nonconformance(servers: Servers, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{servers.fast.base}/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--max-examples", "25", "--seed", "5", "--workers", "2", "--request-timeout", "5",
            "--suppress-health-check", "too_slow", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    # Every operation of the schema was exercised: the six /api routes and the health ones.
    tested = re.search(r"Tested:\s+(\d+)", done.stdout)
    assert tested is not None and int(tested.group(1)) >= 8, tail


def test_broker_down_is_reported_and_stale_rates_are_not_served(tmp_path: Path) -> None:
    tansu = start_tansu(log=tmp_path / "tansu.log")
    try:
        prefix = unique_prefix()
        log = tmp_path / "api.log"
        with run_api(
            tansu.address,
            prefix,
            log,
            API_MAX_SILENCE_S="3",
            API_BROKER_AWAY_MAX_S="12",
            LOG_LEVEL="INFO",
        ) as api:
            with republishing(tansu.address, prefix, latest_records(DIRECTIONS)):
                wait_until(lambda: fed(api), 30, "the feed")
                assert httpx.get(f"{api.base}/readyz").status_code == 200
            tansu.stop()

            def reason() -> str | None:
                ready = httpx.get(f"{api.base}/readyz")
                said: str = ready.json()["reason"]
                return said if ready.status_code == 503 and "broker" in said else None

            said = wait_until(reason, 15, "readyz to name the broker")
            assert said.startswith("Kafka broker unreachable: 127.0.0.1:"), said

            # While the broker is away, v1 keeps the last rates past API_MAX_SILENCE_S (a
            # recycle of the embedded broker must not blank the API); v2 says how old they are.
            def silent() -> list[dict[str, object]] | None:
                courses: list[dict[str, object]] = httpx.get(f"{api.base}/api/v2/courses").json()[
                    "courses"
                ]
                return courses if all(int(str(c["age_ms"])) >= 3500 for c in courses) else None

            wait_until(silent, 15, "v2 to show rates older than API_MAX_SILENCE_S")
            kept = httpx.get(f"{api.base}/api/v1/courses")
            assert kept.status_code == 200, kept.text
            assert {c["direction"] for c in kept.json()["courses"]} == set(DIRECTIONS)

            # Past API_BROKER_AWAY_MAX_S they can no longer be vouched for.
            def refused() -> httpx.Response | None:
                response = httpx.get(f"{api.base}/api/v1/courses")
                return response if response.status_code == 503 else None

            stale = wait_until(refused, 20, "v1 to stop serving old rates")
            assert stale.headers["retry-after"] == "1"
            detail = stale.json()["detail"]
            assert "no rates from the pipeline for more than 12 s" in detail, detail
            assert "broker is away" in detail, detail
            # The rest keeps answering from memory, and says how old things are.
            assert httpx.get(f"{api.base}/healthz").status_code == 200
            courses = httpx.get(f"{api.base}/api/v2/courses").json()["courses"]
            assert all(c["age_ms"] >= 12000 for c in courses)
        assert "API on http://" in api.output()  # INFO is logged, and
        assert "GET /api/" not in api.output()  # the access log is off by default
    finally:
        tansu.stop()
