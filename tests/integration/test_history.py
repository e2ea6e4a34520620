"""The history writer on a real broker and a real PostgreSQL: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from devtools.embedded import start_postgres
from devtools.environment import clean_env
from devtools.processes import Procs
from devtools.waiting import wait_until
from rates import migrate
from rates.embedded import free_port
from rates.kafka import ensure_topics
from schemas.records import Latest, Quote
from schemas.topics import Topics
from tests.integration.harness import SimHandle, courses, produce, read_topics, unique_prefix
from tests.reliability import REPORT, Row


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def stored_ids(url: str, prefix: str) -> set[str]:
    return {r[0] for r in rows(url, "SELECT id FROM quotes WHERE id LIKE %s", prefix + "%")}


def metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}", timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not served"
    return float(found.group(1))


def test_a_killed_writer_loses_nothing_and_stores_nothing_twice(
    kafka: str, postgres: str, procs: Procs
) -> None:
    topics = Topics(unique_prefix())
    tag = uuid.uuid4().hex[:8].upper()
    now = datetime.now(UTC).replace(microsecond=0)
    migrate.apply(postgres)
    # Older than the retention: deleted, except the newest switch of a direction.
    old = now - timedelta(days=40)
    with psycopg.connect(postgres) as conn:
        conn.execute(
            "INSERT INTO quotes VALUES (%s, 'binance', 'BTC-USD', 1, %s, %s, NULL)",
            (f"{topics.prefix}old", old, old),
        )
        for venue, days in (("binance", 50), ("kraken", 45)):
            conn.execute(
                "INSERT INTO switches (direction, to_venue, reason, at) VALUES (%s, %s, 'old', %s)",
                (f"{tag}OLD", venue, now - timedelta(days=days)),
            )

    # Two quotes per second of venue time, each with its own id.
    count = 40_000
    quotes = [
        Quote(
            "binance",
            "BTC-USD",
            Decimal(f"{90000 + i}.12345678"),
            now - timedelta(seconds=count - i // 2),
            now,
            f"{topics.prefix}binance:BTCUSDT:t{i}/BTC-USD",
        )
        for i in range(count)
    ]
    poison = Quote("bin\x00ance", "BTC-USD", Decimal(1), now, now, f"{topics.prefix}poison")
    direction = f"{tag}-USD"
    at = [now - timedelta(minutes=m) for m in (30, 20, 10)]
    choices = [("binance", 0), ("binance", 0), ("kraken", 1), ("kraken", 1), ("binance", 2)]
    latest = [
        Latest(direction, venue, Decimal(1), now, now, False, f"reason {n}", at[n])
        for venue, n in choices
    ]
    asyncio.run(ensure_topics(kafka, [topics.normalized, topics.latest], 4))
    records = [(topics.normalized, q.direction.encode(), q.to_json()) for q in quotes[:20_000]]
    records += [(topics.latest, r.direction.encode(), r.to_json()) for r in latest]
    records += [(topics.normalized, b"BTC-USD", poison.to_json())]
    records += [(topics.normalized, q.direction.encode(), q.to_json()) for q in quotes[20_000:]]
    produce(kafka, records)

    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        DATABASE_URL=postgres,
        RATES_TOPIC_PREFIX=topics.prefix,
        HISTORY_BATCH_SIZE="500",
        HISTORY_FLUSH_INTERVAL_S="0.1",
        HISTORY_RETENTION_INTERVAL_S="1",
        RATES_HISTORY_ROLLUP_RETENTION_DAYS="30",  # the switches' retention
    )
    first = procs.start("history-1", ["history"], env)

    def some_stored() -> int | None:
        n = len(stored_ids(postgres, topics.prefix))
        return n if n >= 1000 else None

    wait_until(some_stored, 60, "the first rows", every_s=0.01)
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    at_kill = len(stored_ids(postgres, topics.prefix))
    assert at_kill < count, "the writer finished before it was killed: raise the count"
    print(f"killed with {at_kill} of {count} quotes stored")

    second = procs.start("history-2", ["history"], env)
    expected = {q.id for q in quotes}
    wait_until(
        lambda: stored_ids(postgres, topics.prefix) == expected,
        120,
        "every quote to be stored",
    )
    # Exactly once: one row per id, with its own value (none dropped for sharing a second).
    stored = rows(
        postgres, "SELECT id, value, ts FROM quotes WHERE id LIKE %s", topics.prefix + "%"
    )
    assert len(stored) == count
    assert {(r[0], r[1], r[2]) for r in stored} == {(q.id, q.value, q.ts) for q in quotes}
    second.wait_for("skipped a row of quotes PostgreSQL refuses", 10)

    switches = rows(
        postgres,
        "SELECT from_venue, to_venue, reason, at FROM switches WHERE direction = %s ORDER BY at",
        direction,
    )
    assert switches == [
        (None, "binance", "reason 0", at[0]),
        ("binance", "kraken", "reason 1", at[1]),
        ("kraken", "binance", "reason 2", at[2]),
    ]

    def retained() -> bool:
        gone = not rows(postgres, "SELECT 1 FROM quotes WHERE id = %s", f"{topics.prefix}old")
        kept = rows(postgres, "SELECT to_venue FROM switches WHERE direction = %s", f"{tag}OLD")
        return gone and kept == [("kraken",)]

    wait_until(retained, 30, "the retention to delete old history")


def test_postgres_down_for_30_s_loses_no_history(
    kafka: str, simulator: SimHandle, procs: Procs
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="cp-pg-"))
    port = free_port()
    pg = start_postgres(directory / "data", port=port, log=directory / "pg.log")
    try:
        topics = Topics(unique_prefix())
        api, metrics_port = free_port(), free_port()
        base = f"http://127.0.0.1:{api}"
        env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=kafka,
            DATABASE_URL=pg.address,
            RATES_TOPIC_PREFIX=topics.prefix,
            RATES_STATE_DIR=str(procs.directory / "state"),
            RATES_VENUES="binance",
            API_PORT=str(api),
            HISTORY_METRICS_PORT=str(metrics_port),
            HISTORY_RETRY_CAP_S="1",
            **simulator.env,
        )
        connect = procs.start("connect", ["connect"], env)
        procs.start("worker", ["worker"], env)
        procs.start("api", ["api"], env)
        history = procs.start("history", ["history"], env)

        def first_rows() -> set[str] | None:
            try:  # the writer creates the tables (migrations) before its first write
                return stored_ids(pg.address, "") or None
            except psycopg.errors.UndefinedTable:
                return None

        wait_until(first_rows, 60, "history rows")
        wait_until(lambda: courses(base)[0] == 200, 60, "the API to serve rates")

        pg.stop()
        down_at = datetime.now(UTC)
        values = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = courses(base, direction="ETH-USD")
            assert status == 200, body
            values.add(body["courses"][0]["value"])
            time.sleep(0.5)
        # The latest-rate table and the API kept updating without PostgreSQL.
        assert len(values) > 20
        history.wait_for("PostgreSQL does not accept writes", 5)
        assert metric(metrics_port, "rates_history_database_up") == 0
        assert metric(metrics_port, "rates_history_consumer_paused") == 1

        pg = start_postgres(directory / "data", port=port, log=directory / "pg.log")
        up_at = datetime.now(UTC)
        history.wait_for("PostgreSQL accepts writes again", 30)
        writing_s = (datetime.now(UTC) - up_at).total_seconds()
        connect.stop()

        def complete() -> set[str] | None:
            published = {
                Quote.from_json(m.value).id for m in read_topics(kafka, [topics.normalized])
            }
            return published if published == stored_ids(pg.address, "") else None

        published = wait_until(complete, 60, "the history to hold every published quote")
        during = rows(
            pg.address,
            "SELECT count(*) FROM quotes WHERE received_at BETWEEN %s AND %s",
            down_at,
            up_at,
        )[0][0]
        print(
            f"{len(published)} quotes stored, {during} of them received while PostgreSQL was down"
        )
        assert during > 100
        assert metric(metrics_port, "rates_history_database_up") == 1
        assert metric(metrics_port, "rates_history_consumer_paused") == 0
        REPORT.add(
            Row(
                "PostgreSQL down for 30 s",
                "history writer",
                f"the API and the pipeline kept serving; the writer paused, then stored "
                f"all {len(published)} quotes ({during} received meanwhile), none twice",
                round(writing_s, 1),
            )
        )
    finally:
        pg.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_migrations_are_safe_when_several_processes_start_at_once(
    postgres: str, tmp_path: Path
) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres.rsplit("/", 1)[0] + f"/{name}"
    env = clean_env(DATABASE_URL=url)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "rates", "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    applied = [int(re.findall(r"applied (\d+) migration", out)[0]) for out, _ in outputs]
    migrations = len(list(migrate.MIGRATIONS.glob("*.rollback.sql")))
    assert sorted(applied) == [0, 0, migrations]
