"""The pure API answers: parameters, exact bodies, caching, errors, v2, events, history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from api.answers import Answer, ApiError, matches
from api.feed import FeedState
from api.history import Cursor, make_query, page
from api.params import parse_directions, parse_exchanger, parse_rfc3339, v1_params
from api.readiness import readiness
from api.render.v1 import V1Answers, answer_v1, courses_v1
from api.render.v2 import course, courses_v2, venues_v2
from api.snapshot import Changes, Snapshot
from api.stream import RESUME_MARGIN_MS, event, resume_keys
from schemas.records import Latest, Leg, VenueQuote, VenueStatus
from schemas.settings import DEFAULT_DIRECTIONS

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def latest(
    direction: str, quotes: dict[str, tuple[str, bool]], venue: str | None = "binance"
) -> Latest:
    chosen = quotes.get(venue or "")
    return Latest(
        direction,
        venue,
        Decimal(chosen[0]) if chosen else None,
        T if chosen else None,
        T if chosen else None,
        not (chosen and chosen[1]),
        "preferred venue",
        T,
        {v: VenueQuote(Decimal(value), T, T, fresh) for v, (value, fresh) in quotes.items()},
    )


@pytest.fixture
def snapshot() -> Snapshot:
    now = [0.0]
    snap = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: now[0])
    snap.apply(latest("BTC-USD", {"binance": ("54000.000123", True), "kraken": ("54001", True)}), 1)
    snap.apply(latest("ETH-USD", {"binance": ("3400.10", False)}), 2)
    snap.apply(latest("*", {}), 3)
    return snap


def test_directions_parsing() -> None:
    known = DEFAULT_DIRECTIONS
    assert parse_directions(None, known) == list(known)
    assert parse_directions(["eth-usd,BTC-USD", "btc-usd"], known) == ["ETH-USD", "BTC-USD"]
    assert parse_directions([" , ", ""], known) == list(known)
    with pytest.raises(ApiError) as info:
        parse_directions(["BTC-EUR,x" + "y" * 100], known)
    assert info.value.status == 422
    assert "BTC-EUR" in info.value.message and ", ".join(known) in info.value.message
    assert "y" * 50 not in info.value.message  # bad input is echoed, but not at any length


def test_exchanger_parsing_uses_the_given_venues_and_aliases() -> None:
    assert parse_exchanger(None) is None
    assert parse_exchanger("  ") is None
    assert parse_exchanger(" BINANCE ") == "binance"
    assert parse_exchanger("CoinGeko", ("binance", "coingecko")) == "coingecko"
    with pytest.raises(ApiError) as info:
        parse_exchanger("mtgox", ("binance", "kraken"))
    assert info.value.status == 422 and "binance, kraken" in info.value.message


def test_query_strings_are_decoded_like_starlette() -> None:
    assert v1_params(b"") == (None, [])
    assert v1_params(b"direction=btc-usd%2CETH-USD&direction=x&exchanger=B") == (
        "B",
        ["btc-usd,ETH-USD", "x"],
    )
    with pytest.raises(ApiError, match="exchanger is given 2 times: it takes one value"):
        v1_params(b"exchanger=a&direction=x&exchanger=B")  # never silently the last one
    assert v1_params(b"exchanger=&other=1") == ("", [])


def test_v1_body_is_exact(snapshot: Snapshot) -> None:
    body = courses_v1(snapshot, None, ["BTC-USD", "ETH-USD"])
    assert (
        body == b'{"exchanger":"binance","courses":[{"direction":"BTC-USD","value":54000.000123}]}'
    )
    assert orjson.loads(body)["courses"][0]["value"] == 54000.000123
    assert courses_v1(snapshot, "kraken", ["BTC-USD"]).endswith(b'"value":54001}]}')


def test_v1_503_when_nothing_is_fresh(snapshot: Snapshot) -> None:
    with pytest.raises(ApiError) as info:
        courses_v1(snapshot, "binance", ["ETH-USD"])
    assert (info.value.status, info.value.retry_after_s) == (503, 1)
    with pytest.raises(ApiError, match="no rates yet"):
        courses_v1(Snapshot(DEFAULT_DIRECTIONS), None, ["BTC-USD"])
    snapshot.apply(latest("*", {}, venue=None), 4)
    with pytest.raises(ApiError, match="no venue has fresh rates"):
        courses_v1(snapshot, None, ["BTC-USD"])


def test_answers_carry_etag_cache_control_and_retry_after(snapshot: Snapshot) -> None:
    ok = answer_v1(snapshot, None, ["btc-usd"])
    headers = dict(ok.headers)
    assert ok.status == 200 and headers[b"cache-control"] == b"max-age=1"
    assert headers[b"etag"] == ok.etag and headers[b"content-length"] == b"%d" % len(ok.body)
    assert matches(ok.etag, ok.etag) and matches(ok.etag, b'"x", W/' + (ok.etag or b""))
    assert matches(ok.etag, b"*") and not matches(ok.etag, b'"other"')
    assert not matches(None, b"*")
    assert ok.not_modified().status == 304 and ok.not_modified().body == b""
    gone = answer_v1(snapshot, "binance", ["ETH-USD"])
    assert gone.status == 503 and dict(gone.headers)[b"retry-after"] == b"1"
    assert dict(gone.headers)[b"cache-control"] == b"no-store"
    bad = answer_v1(snapshot, "nope", [])
    assert bad.status == 422 and b"retry-after" not in dict(bad.headers)
    assert dict(bad.headers)[b"cache-control"] == b"max-age=1"


def test_the_v1_cache_survives_republishing_and_is_cleared_by_a_change(
    snapshot: Snapshot,
) -> None:
    v1 = V1Answers(snapshot)
    first = v1.get(b"direction=BTC-USD")
    assert v1.get(b"direction=BTC-USD") is first  # rendered once
    # The pipeline republishes every key each second: an equal record changes nothing.
    assert not snapshot.apply(latest("BTC-USD", {"binance": ("54000.000123", True),
                                                 "kraken": ("54001", True)}), 9)  # fmt: skip
    assert v1.get(b"direction=BTC-USD") is first
    assert snapshot.apply(latest("BTC-USD", {"binance": ("54000.5", True)}), 10)
    second = v1.get(b"direction=BTC-USD")
    assert second.body.endswith(b'"value":54000.5}]}') and second.etag != first.etag


def test_readiness_names_what_is_missing(snapshot: Snapshot) -> None:
    assert "not loaded" in readiness(Snapshot(DEFAULT_DIRECTIONS)).reason
    assert readiness(snapshot) == readiness(snapshot, None)
    assert readiness(snapshot).ready
    down = readiness(snapshot, "127.0.0.1:9: connection refused")
    assert not down.ready and "Kafka broker unreachable" in down.reason
    clock = [0.0]
    snap = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: clock[0])
    snap.apply(latest("*", {}), 1)
    clock[0] = 30.0
    assert "no record from rates.latest for 30 s" in readiness(snap).reason


def test_v2_course_shows_the_choice_its_age_and_the_other_fresh_venues() -> None:
    record = Latest(
        "BTC-RUB",
        "binance",
        Decimal("7737723.15"),
        T,
        T,
        False,
        "preferred venue",
        T,
        {
            "binance": VenueQuote(Decimal("7737723.15"), T, T, True),
            "kraken": VenueQuote(Decimal("7737800.5"), T, T - timedelta(seconds=1), True),
            "okx": VenueQuote(Decimal("7000000"), T, T, False),
        },
        (
            Leg("binance", "BTC-USD", Decimal("94936.03"), T),
            Leg("cbr", "USD-RUB", Decimal("81.5"), T),
        ),
    )
    body = orjson.dumps(course("BTC-RUB", record, T + timedelta(milliseconds=1500)))
    assert b'"value":7737723.15' in body and b'"age_ms":1500' in body
    data = orjson.loads(body)
    assert [q["venue"] for q in data["quotes"]] == ["kraken"]
    assert data["quotes"][0]["age_ms"] == 2500
    assert [leg["venue"] for leg in data["derived_from"]] == ["binance", "cbr"]
    assert b'"value":94936.03,' in body
    empty = course("ETH-RUB", None, T)
    assert empty["venue"] is None and empty["stale"] is True and empty["quotes"] == []


def test_v2_courses_and_venues(snapshot: Snapshot) -> None:
    with pytest.raises(ApiError) as info:
        courses_v2(Snapshot(DEFAULT_DIRECTIONS), ["BTC-USD"], T)
    assert info.value.status == 503
    data = orjson.loads(courses_v2(snapshot, ["ETH-USD", "BTC-RUB"], T))
    assert data["active"]["venue"] == "binance"
    assert [(c["direction"], c["stale"]) for c in data["courses"]] == [
        ("ETH-USD", True),
        ("BTC-RUB", True),
    ]
    status = VenueStatus("binance", "up", T, T - timedelta(seconds=2), "")
    assert snapshot.apply_status(status, int(T.timestamp() * 1000))
    assert not snapshot.apply_status(status, int(T.timestamp() * 1000) + 5000)
    venues = orjson.loads(venues_v2(snapshot, ["binance"], T + timedelta(seconds=6)))["venues"]
    assert [v["venue"] for v in venues] == ["binance", "kraken"]
    # The newest quote (received at T) is newer than the last status's frame (T - 2 s).
    assert venues[0]["state"] == "up" and venues[0]["last_frame_age_ms"] == 6000
    assert venues[0]["status_age_ms"] == 1000 and venues[0]["kind"] == "exchanger"
    assert venues[0]["directions"] == ["BTC-USD"]
    assert venues[1]["state"] is None and venues[1]["directions"] == ["BTC-USD"]
    assert venues[1]["last_frame_age_ms"] == 6000  # no status: its quotes tell


def test_events_resume_after_last_event_id(snapshot: Snapshot) -> None:
    stamp = 1_000_000
    snapshot.apply(latest("BTC-USD", {"binance": ("1", True)}), stamp)
    snapshot.apply(latest("ETH-USD", {"binance": ("2", True)}), stamp + 10_000)
    everything = resume_keys(snapshot, ["BTC-USD", "ETH-USD", "ETH-RUB"], None)
    assert everything == ["*", "BTC-USD", "ETH-USD"]  # oldest change first; no data: nothing
    assert resume_keys(snapshot, ["BTC-USD", "ETH-USD"], "garbage") == everything
    after = str(stamp + RESUME_MARGIN_MS + 1)
    assert resume_keys(snapshot, ["BTC-USD", "ETH-USD"], after) == ["ETH-USD"]
    assert resume_keys(snapshot, ["BTC-USD"], after) == []
    text = event(snapshot, "ETH-USD", T)
    assert text.startswith(b"id: %d\nevent: course\ndata: {" % (stamp + 10_000))
    assert text.endswith(b"}\n\n") and b'"value":2,' in text
    assert event(snapshot, "*", T).split(b"\n")[1] == b"event: active"


async def test_changes_coalesce_until_read() -> None:
    changes = Changes()
    assert await changes.wait(0.01) == set()
    for key in ("BTC-USD", "ETH-USD", "BTC-USD"):
        changes.push(key)
    assert await changes.wait(1) == {"BTC-USD", "ETH-USD"}
    waiter = asyncio.create_task(changes.wait(5))
    await asyncio.sleep(0)
    changes.push("*")
    assert await waiter == {"*"}


def test_history_parameters_and_cursor() -> None:
    assert parse_rfc3339("since", "2026-11-24T19:00:00+03:00") == T
    for bad in ("yesterday", "2026-11-24", "2026-11-24T16:00:00"):
        with pytest.raises(ApiError, match="RFC 3339"):
            parse_rfc3339("since", bad)
    with pytest.raises(ApiError, match="earlier than until"):
        make_query("BTC-USD", "2026-11-24T16:00:00Z", "2026-11-24T15:00:00Z", 10, None)
    cursor = Cursor(T, "binance:1:BTC-USD")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("%%%", "bm90IGpzb24", Cursor(T, "x").encode()[:-3]):
        with pytest.raises(ApiError, match="cursor"):
            Cursor.decode(bad)
    query = make_query("BTC-USD", None, "2026-11-24T17:00:00Z", 2, cursor.encode())
    text, params = query.sql()
    assert "ts < %s" in text and "(ts, id) > (%s, %s)" in text and "ts >= %s" not in text
    assert params == ["BTC-USD", T + timedelta(hours=1), T, "binance:1:BTC-USD", 3]


def test_history_page_prints_exact_values_and_the_next_cursor() -> None:
    query = make_query("BTC-USD", None, None, 2, None)
    legs = [
        {"venue": "cbr", "direction": "USD-RUB", "value": "81.50", "ts": "2026-11-24T16:00:00Z"}
    ]
    rows = [
        (f"q{i}", "binance", "BTC-USD", Decimal("54000.000100"), T + timedelta(seconds=i), T, legs)
        for i in range(3)
    ]
    body = page(query, rows)
    data = orjson.loads(body)
    assert [q["id"] for q in data["quotes"]] == ["q0", "q1"]
    assert b'"value":54000.000100' in body and b'"value":81.50' in body
    assert Cursor.decode(data["next_cursor"]) == Cursor(T + timedelta(seconds=1), "q1")
    assert orjson.loads(page(query, rows[:2]))["next_cursor"] is None


def test_answer_make_counts_the_body() -> None:
    answer = Answer.make(201, b"abc", (b"x-a", b"1"))
    assert answer.headers == (
        (b"content-type", b"application/json"),
        (b"content-length", b"3"),
        (b"x-a", b"1"),
    )


def test_v1_stops_vouching_for_rates_when_records_stop_coming() -> None:
    clock = [100.0]
    snap = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: clock[0])
    v1 = V1Answers(snap, max_silence_s=10)
    snap.apply(latest("BTC-USD", {"binance": ("1.5", True)}), 1)
    snap.apply(latest("*", {}), 2)
    assert v1.get(b"").status == 200
    clock[0] += 10.5
    silent = v1.get(b"")
    assert silent.status == 503 and b"no rates from the pipeline" in silent.body
    assert dict(silent.headers)[b"retry-after"] == b"1"
    assert v1.get(b"direction=nope").status == 422  # bad input is still named as such
    snap.apply(latest("*", {}), 3)  # a republished record, even unchanged, vouches again
    assert v1.get(b"").status == 200


def test_while_the_broker_is_away_v1_keeps_the_last_rates_for_longer() -> None:
    clock = [100.0]
    snap = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: clock[0])
    feed = FeedState(lambda: clock[0])
    v1 = V1Answers(snap, max_silence_s=10, away=feed.away, away_max_s=60)
    snap.apply(latest("BTC-USD", {"binance": ("1.5", True)}), 1)
    snap.apply(latest("*", {}), 2)
    feed.flowing()
    clock[0] += 2
    feed.replaced()  # the embedded broker was recycled: the workers start again
    clock[0] += 30
    assert v1.get(b"").status == 200  # 32 s of silence, but the broker is away
    state = readiness(snap, feed.broker_error, away=feed.away())
    assert not state.ready and "replaced (restarted or recycled) 30 s ago" in state.reason
    body = orjson.loads(courses_v2(snap, ["BTC-USD"], T, feed.away()))["courses"][0]
    assert body["stale"] is True and body["value"] == 1.5
    assert body["reason"].startswith("the Kafka broker was replaced")
    clock[0] += 30.5
    gone = v1.get(b"")
    assert gone.status == 503 and b"while the Kafka broker is away" in gone.body
    snap.apply(latest("*", {}), 3)
    feed.flowing()  # the pipeline is back
    assert feed.away() is None and v1.get(b"").status == 200
    clock[0] += 11  # and the ordinary rule holds again
    assert v1.get(b"").status == 503


def test_an_unreachable_broker_is_away_until_records_flow() -> None:
    clock = [0.0]
    feed = FeedState(lambda: clock[0])
    feed.unreachable("127.0.0.1:9092: connection refused")
    clock[0] = 5.0
    feed.answering()  # the port answers again: a new broker, the pipeline not back yet
    assert feed.broker_error is None
    assert feed.away() == "the Kafka broker stopped answering 5 s ago"
    feed.flowing()
    assert feed.away() is None
