"""History sized, on a real PostgreSQL, Tansu and processes: the partitioning migration keeps
old data and rolls back, retention drops whole partitions, a redelivered quote is stored once,
the per-minute rollup is exact, and the history endpoint serves quotes and bars."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
import psycopg
from yoyo import get_backend, read_migrations

from common.database import yoyo_url
from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from pipeline.partitions import QUOTES, ROLLUP
from pipeline.rollup import Bar, rollup
from rates import migrate
from rates.embedded import free_port
from rates.kafka import ensure_topics
from schemas.records import Leg, Quote
from schemas.topics import Topics
from tests.integration.harness import produce, unique_prefix

OLD_SCHEMA = ("0001_history", "0002_history_retention")
PARTITIONING = "0003_history_partitions"


def fresh_database(postgres: str) -> str:
    name = f"h_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


def yoyo(url: str, *, apply: Iterable[str] = (), rollback: Iterable[str] = ()) -> None:
    """Apply or roll back the named migrations, as `yoyo apply/rollback` would."""
    wanted, unwanted = set(apply), set(rollback)
    backend = get_backend(yoyo_url(url))
    migrations = read_migrations(str(migrate.MIGRATIONS))
    try:
        with backend.lock():
            if wanted:
                chosen = migrations.filter(lambda m: m.id in wanted)
                backend.apply_migrations(backend.to_apply(chosen))
            if unwanted:
                chosen = migrations.filter(lambda m: m.id in unwanted)
                backend.rollback_migrations(backend.to_rollback(chosen))
    finally:
        backend.connection.close()


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def layout(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the schema of the history looks like: tables, columns, indexes, constraints."""
    return {
        "tables": rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                            "AND tablename NOT LIKE '%%yoyo%%' ORDER BY 1"),
        "columns": rows(url, "SELECT table_name, column_name, data_type, is_nullable, "
                             "collation_name FROM information_schema.columns "
                             "WHERE table_name IN ('quotes', 'switches') "
                             "ORDER BY 1, ordinal_position"),
        "indexes": rows(url, "SELECT indexname, indexdef FROM pg_indexes "
                             "WHERE tablename IN ('quotes', 'switches') ORDER BY 1"),
        "constraints": rows(url, "SELECT conrelid::regclass::text, conname, "
                                 "pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid "
                                 "IN ('quotes'::regclass, 'switches'::regclass) ORDER BY 1, 2"),
        "functions": rows(url, "SELECT proname FROM pg_proc WHERE proname LIKE 'quote_legs%%'"),
    }  # fmt: skip


def leg(venue: str, direction: str, value: str, ts: datetime) -> Leg:
    return Leg(venue, direction, Decimal(value), ts)


def quotes_at(day: datetime, tag: str, count: int = 6) -> list[Quote]:
    """Plain and derived quotes (one and two legs) of two venues at ``day`` + a few seconds."""
    found = []
    for i in range(count):
        ts = day + timedelta(seconds=7 * i, microseconds=123)
        venue = ("binance", "kraken")[i % 2]
        usd = Decimal(f"9500{i}.1200")  # trailing zeros: the venue's digits are kept
        found.append(Quote(venue, "BTC-USD", usd, ts, ts, f"{tag}:{venue}:t{i}/BTC-USD"))
        legs = (leg(venue, "BTC-USD", str(usd), ts), leg("cbr", "USD-RUB", "81.5046", day))
        found.append(
            Quote(
                venue, "BTC-RUB", Decimal(f"7743{i}.5"), ts, ts, f"{tag}:{venue}:t{i}/BTC-RUB", legs
            )
        )
        inverted = (leg(venue, "USDC-USDT", "0.9998", ts),)
        found.append(
            Quote(venue, "USDTTRC-USD", Decimal("1.00020004"), ts, ts,
                  f"{tag}:{venue}:u{i}/USDTTRC-USD", inverted)
        )  # fmt: skip
    return found


def insert_old(url: str, quotes: Iterable[Quote]) -> None:
    """Rows as the history writer stored them before migration 0003 (legs as objects)."""
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO quotes (id, venue, direction, value, ts, received_at, derived_from) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
            [
                (q.id, q.venue, q.direction, q.value, q.ts, q.received_at,
                 None if q.derived_from is None
                 else orjson.dumps([x.to_dict() for x in q.derived_from]).decode())
                for q in quotes
            ],
        )  # fmt: skip


def as_row(q: Quote) -> tuple[Any, ...]:
    legs = None if q.derived_from is None else [x.to_dict() for x in q.derived_from]
    return (q.id, q.venue, q.direction, q.value, q.ts, q.received_at, legs)


def stored(url: str, legs: str = "quote_legs_out(derived_from)") -> set[tuple[Any, ...]]:
    found = rows(url, f"SELECT id, venue, direction, value, ts, received_at, {legs} FROM quotes")
    return {(*r[:6], orjson.dumps(r[6], option=orjson.OPT_SORT_KEYS)) for r in found}


def expected(quotes: Iterable[Quote]) -> set[tuple[Any, ...]]:
    return {
        (*as_row(q)[:6], orjson.dumps(as_row(q)[6], option=orjson.OPT_SORT_KEYS)) for q in quotes
    }


def partitions(url: str, table: str) -> dict[str, int]:
    """Each partition of ``table`` and the rows it holds."""
    names = [
        r[0]
        for r in rows(
            url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            table,
        )
    ]
    return {name: rows(url, f"SELECT count(*) FROM {name}")[0][0] for name in names}


def bars(url: str) -> dict[tuple[datetime, str, str], Bar]:
    found = rows(
        url,
        "SELECT minute, direction, venue, open, high, low, close, quote_count, open_ts, open_id, "
        "close_ts, close_id FROM quotes_1m",
    )
    return {(r[0], r[1], r[2]): Bar(*r) for r in found}


def test_the_partitioning_migration_keeps_old_quotes_and_rolls_back(postgres: str) -> None:
    url = fresh_database(postgres)
    yoyo(url, apply=OLD_SCHEMA)
    before = layout(url)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=40), today - timedelta(days=1), today]
    old = [q for n, day in enumerate(days) for q in quotes_at(day + timedelta(hours=n), f"d{n}")]
    insert_old(url, old)
    original = stored(url, legs="derived_from")
    assert original == expected(old)

    assert migrate.apply(url) == [PARTITIONING]
    # Every quote kept, with its exact value and legs, each in its day's partition.
    assert stored(url) == expected(old)
    held = partitions(url, "quotes")
    assert held == {QUOTES.name(day): len(old) // 3 for day in days} | {"quotes_default": 0}
    located = rows(url, "SELECT tableoid::regclass::text, ts FROM quotes")
    assert all(name == QUOTES.name(QUOTES.period.floor(ts)) for name, ts in located)
    # The rollup of the old quotes is made by the migration, exactly as the writer makes it.
    assert bars(url) == {bar.key: bar for bar in rollup(old)}
    assert set(partitions(url, "quotes_1m")) == {
        ROLLUP.name(ROLLUP.period.floor(d)) for d in days
    } | {"quotes_1m_default"}
    # Smaller rows: legs stored as arrays, without the keys.
    legs = rows(url, "SELECT derived_from::text FROM quotes WHERE id = %s", old[1].id)[0][0]
    assert legs.startswith('[["binance","BTC-USD","95000.1200","')

    yoyo(url, rollback=[PARTITIONING])
    assert layout(url) == before
    assert stored(url, legs="derived_from") == original
    # And forward again: nothing lost either way.
    assert migrate.apply(url) == [PARTITIONING]
    assert stored(url) == expected(old)


def test_retention_drops_whole_partitions_and_keeps_recent_ones(
    kafka: str, postgres: str, procs: Procs
) -> None:
    url = fresh_database(postgres)
    yoyo(url, apply=OLD_SCHEMA)
    now = datetime.now(UTC)
    today = QUOTES.period.floor(now)
    kept_days = [today - timedelta(days=1), today]  # retention 2 days: yesterday's day is whole
    gone_days = [today - timedelta(days=10), today - timedelta(days=3)]
    old = {day: quotes_at(day, f"r{n}", 2) for n, day in enumerate(gone_days + kept_days)}
    insert_old(url, [q for quotes in old.values() for q in quotes])
    with psycopg.connect(url) as conn:
        for direction, venue, days in (
            ("BTC-USD", "binance", 500),
            ("BTC-USD", "kraken", 400),  # the newest of its direction: kept however old
            ("ETH-USD", "okx", 450),  # the only one of its direction: kept
            ("ETH-RUB", "okx", 400),
            ("ETH-RUB", "bybit", 3),
        ):
            conn.execute(
                "INSERT INTO switches (direction, to_venue, reason, at) VALUES (%s, %s, 'r', %s)",
                (direction, venue, now - timedelta(days=days)),
            )
    topics = Topics(unique_prefix())
    asyncio.run(ensure_topics(kafka, [topics.normalized, topics.latest], 4))
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        DATABASE_URL=url,
        RATES_TOPIC_PREFIX=topics.prefix,
        HISTORY_RETENTION_INTERVAL_S="1",
        RATES_HISTORY_RETENTION_DAYS="2",
        RATES_HISTORY_ROLLUP_RETENTION_DAYS="365",
    )
    # The writer migrates the old data itself, then keeps the partitions (no write needed).
    writer = procs.start("history", ["history"], env)
    ahead = {QUOTES.name(day) for day in QUOTES.ahead(now)}

    def dropped() -> dict[str, int] | None:
        try:
            held = partitions(url, "quotes")
        except psycopg.errors.UndefinedTable:
            return None
        gone = not {QUOTES.name(day) for day in gone_days} & set(held)
        return held if gone and ahead <= set(held) else None

    held = wait_until(dropped, 60, "the expired partitions to be dropped")
    for day in kept_days:
        assert held[QUOTES.name(day)] == len(old[day])
    assert stored(url) == expected(q for day in kept_days for q in old[day])
    assert rows(url, "SELECT direction, to_venue FROM switches ORDER BY 1, 2") == [
        ("BTC-USD", "kraken"),
        ("ETH-RUB", "bybit"),
        ("ETH-USD", "okx"),
    ]
    writer.wait_for("retention dropped partitions", 10)

    # Rows another writer put outside every partition: moved into a partition of their own,
    # dropped with it when expired, kept when not; the same for the rollup.
    far, late = now + timedelta(days=20), now - timedelta(days=20)
    with psycopg.connect(url) as conn:
        for ident, ts in (("far", far), ("late", late)):
            conn.execute(
                "INSERT INTO quotes (id, venue, direction, value, ts, received_at) "
                "VALUES (%s, 'okx', 'BTC-USD', 1, %s, %s)",
                (ident, ts, ts),
            )
        old_minute = (now - timedelta(days=400)).replace(second=0, microsecond=0)
        conn.execute(
            "INSERT INTO quotes_1m (minute, direction, venue, open, high, low, close, "
            "quote_count, open_ts, close_ts, open_id, close_id) "
            "VALUES (%s, 'BTC-USD', 'okx', 1, 1, 1, 1, 1, %s, %s, 'x', 'x')",
            (old_minute, old_minute, old_minute),
        )
    assert partitions(url, "quotes")["quotes_default"] == 2

    def adopted() -> bool:
        held = partitions(url, "quotes")
        rollup_held = partitions(url, "quotes_1m")
        return (
            held["quotes_default"] == 0
            and held.get(QUOTES.name(QUOTES.period.floor(far))) == 1
            and QUOTES.name(QUOTES.period.floor(late)) not in held
            and rollup_held["quotes_1m_default"] == 0
            and ROLLUP.name(ROLLUP.period.floor(old_minute)) not in rollup_held
        )

    wait_until(adopted, 30, "the rows of the DEFAULT partitions to be adopted")
    assert {r[0] for r in rows(url, "SELECT id FROM quotes WHERE id IN ('far', 'late')")} == {"far"}


def shuffled(items: list[Any], seed: int) -> list[Any]:
    copy = items[:]
    random.Random(seed).shuffle(copy)
    return copy


def test_redelivered_quotes_are_stored_once_and_rolled_up_exactly(
    kafka: str, postgres: str, procs: Procs
) -> None:
    url = fresh_database(postgres)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Three minutes of quotes, and a day far ahead (its partition is made for it).
    quotes = [
        q
        for n, start in enumerate((now - timedelta(minutes=3), now + timedelta(days=12)))
        for q in quotes_at(start, f"q{n}", 26)
    ]
    topics = Topics(unique_prefix())
    asyncio.run(ensure_topics(kafka, [topics.normalized, topics.latest], 4))
    records = [(topics.normalized, q.direction.encode(), q.to_json()) for q in quotes]
    # Out of order, and every third quote twice (in different batches of 7).
    produce(kafka, shuffled(records, 1) + shuffled(records[::3], 2))
    metrics_port, api_port = free_port(), free_port()
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        DATABASE_URL=url,
        RATES_TOPIC_PREFIX=topics.prefix,
        RATES_STATE_DIR=str(procs.directory / "state"),
        HISTORY_BATCH_SIZE="7",
        HISTORY_METRICS_PORT=str(metrics_port),
        API_PORT=str(api_port),
    )
    writer = procs.start("history", ["history"], env)
    wait_until(lambda: stored_count(url) == len(quotes), 60, "every quote to be stored")
    writer.stop()
    # Everything again (a producer's retries, a replay): consumed, and stored no second time.
    produce(kafka, shuffled(records, 3))
    writer = procs.start("history-again", ["history"], env)

    def duplicates() -> bool:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}", timeout=5).text
        found = re.search(r'^rates_history_duplicates_total\{table="quotes"\} (\S+)$', text, re.M)
        return found is not None and float(found.group(1)) >= len(quotes)

    wait_until(duplicates, 60, "the redelivered quotes to be consumed")
    assert stored(url) == expected(quotes)
    assert partitions(url, "quotes")[QUOTES.name(QUOTES.period.floor(quotes[-1].ts))] == 78
    assert partitions(url, "quotes")["quotes_default"] == 0
    # Bars of finished minutes (and of minutes ahead of the clock) are compacted every 10 s.
    exact = {bar.key: bar for bar in rollup(quotes)}
    wait_until(lambda: bars(url) == exact, 30, "the bars to be compacted")
    assert rows(url, "SELECT count(*) FROM quotes_1m_parts") == [(0,)]

    # The history endpoint serves both: every quote, and every bar, page by page.
    procs.start("api", ["api"], env)
    base = f"http://127.0.0.1:{api_port}/api/v2/courses/history"

    def pages(**params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            asked = {**params, **({"cursor": cursor} if cursor else {})}
            answer = httpx.get(base, params=asked, timeout=10)
            assert answer.status_code == 200, answer.text
            data = answer.json(parse_float=Decimal, parse_int=Decimal)
            found += data["bars" if params.get("resolution") == "1m" else "quotes"]
            cursor = data["next_cursor"]
            if cursor is None:
                return found

    wait_until(lambda: httpx.get(base, params={"direction": "BTC-RUB"}).status_code == 200, 30,
               "the API")  # fmt: skip
    raw = pages(direction="BTC-RUB", limit=10)
    rub = sorted((q for q in quotes if q.direction == "BTC-RUB"), key=lambda q: (q.ts, q.id))
    assert [(q["id"], Decimal(q["value"])) for q in raw] == [(q.id, q.value) for q in rub]
    reference = f"{now - timedelta(minutes=3):%Y-%m-%dT%H:%M:%S}.000000Z"
    assert raw[0]["derived_from"][1] == {
        "venue": "cbr", "direction": "USD-RUB", "value": Decimal("81.5046"), "ts": reference
    }  # fmt: skip
    minutes = pages(direction="BTC-RUB", resolution="1m", limit=3)
    want = rollup(rub)
    assert [
        (b["minute"], b["venue"], b["open"], b["high"], b["low"], b["close"], b["count"])
        for b in minutes
    ] == [
        (f"{b.minute:%Y-%m-%dT%H:%M:%S}.000000Z", b.venue, b.open, b.high, b.low, b.close,
         b.count)
        for b in want
    ]  # fmt: skip
    bad = httpx.get(base, params={"direction": "BTC-RUB", "resolution": "5m"}, timeout=10)
    assert bad.status_code == 422
    assert "resolution: Input should be 'raw' or '1m'" in bad.json()["detail"]


def stored_count(url: str) -> int:
    try:
        return int(rows(url, "SELECT count(*) FROM quotes")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0
