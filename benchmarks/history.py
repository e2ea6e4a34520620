"""The history's size on disk at demo rates (`make history-size`).

Runs the `make demo` stack against a PostgreSQL of its own for ``HISTORY_MINUTES`` (default
10), then measures: quotes stored per day, bytes per stored quote on disk (table, indexes and
TOAST of every partition, divided by the rows), the same rows in the layout before migration
0003 (built from the repository's own migrations 0001 and 0002, in a schema of its own), and
the 1-minute bars per day and their bytes. From these: the disk a day takes, and what the
default retentions hold.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from benchmarks.stack import demo_stack
from devtools.embedded import start_postgres
from pipeline.settings import HistorySettings
from rates import migrate

DAY_S = 86_400.0

#: The size of every partition (with its indexes and TOAST) of a partitioned table.
SIZE = "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%s)"


def legacy_layout(conn: psycopg.Connection[TupleRow]) -> None:
    """Schema ``legacy`` with the tables of migrations 0001 and 0002 (before partitioning)."""
    conn.execute("DROP SCHEMA IF EXISTS legacy CASCADE")
    conn.execute("CREATE SCHEMA legacy")
    conn.execute("SET search_path = legacy")
    for name in ("0001_history.sql", "0002_history_retention.sql"):
        conn.execute((migrate.MIGRATIONS / name).read_text().encode())  # several statements
    conn.execute("SET search_path = public")


def day_of_bars(conn: psycopg.Connection[TupleRow]) -> tuple[int, int]:
    """(bars, bytes) of a day of bars made of the measured ones, repeated minute after minute.

    A few minutes of bars take a few pages, so their size is mostly pages and the empty
    partitions ahead; the measured bars repeated over a day give the size per bar."""
    (span,) = row(conn, "SELECT max(minute) - min(minute) + interval '1 minute' FROM quotes_1m")
    copies = max(1, round(timedelta(days=1) / span))
    conn.execute("CREATE TEMPORARY TABLE day_of_bars (LIKE quotes_1m INCLUDING CONSTRAINTS)")
    conn.execute("ALTER TABLE day_of_bars ADD PRIMARY KEY (minute, direction, venue)")
    conn.execute(
        "INSERT INTO day_of_bars (minute, direction, venue, open, high, low, close, quote_count, "
        "open_ts, close_ts, open_id, close_id) "
        "SELECT minute + k * %(span)s, direction, venue, open, high, low, close, quote_count, "
        "open_ts + k * %(span)s, close_ts + k * %(span)s, open_id, close_id "
        "FROM quotes_1m, generate_series(0, %(copies)s - 1) AS k "
        "ORDER BY k, minute, direction, venue",  # as compacted: minute after minute
        {"span": span, "copies": copies},
    )
    bars, size = row(
        conn, "SELECT count(*), pg_total_relation_size('day_of_bars') FROM day_of_bars"
    )
    conn.execute("DROP TABLE day_of_bars")
    return int(bars), int(size)


def row(conn: psycopg.Connection[TupleRow], query: str, *params: Any) -> tuple[Any, ...]:
    found = conn.execute(query.encode(), params).fetchone()
    if found is None:
        raise RuntimeError(f"no answer to {query}")
    return found


def measure(url: str) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        quotes, derived, first, last = row(
            conn,
            "SELECT count(*), count(derived_from), min(received_at), max(received_at) FROM quotes",
        )
        if not quotes:
            raise RuntimeError("no quote was stored")
        window_s = (last - first).total_seconds()
        bars, bar_minutes = row(
            conn,
            "SELECT count(*), count(DISTINCT minute) FROM quotes_1m "
            "WHERE minute > (SELECT min(minute) FROM quotes_1m) "
            "AND minute < (SELECT max(minute) FROM quotes_1m)",  # whole minutes only
        )
        size = int(row(conn, SIZE, "quotes")[0])
        all_bars, bar_size = day_of_bars(conn)
        parts = int(row(conn, "SELECT pg_total_relation_size('quotes_1m_parts')")[0])
        legacy_layout(conn)
        # The legacy writer's batches came in arrival order: the closest order to replay.
        conn.execute(
            "INSERT INTO legacy.quotes SELECT id, venue, direction, value, ts, received_at, "
            "quote_legs_out(derived_from) FROM quotes ORDER BY received_at"
        )
        legacy = int(row(conn, "SELECT pg_total_relation_size('legacy.quotes')")[0])
        conn.execute("DROP SCHEMA legacy CASCADE")
    per_day = quotes / window_s * DAY_S
    bytes_per_quote = size / quotes
    bars_per_day = bars / bar_minutes * 1440 if bar_minutes else 0.0
    bytes_per_bar = bar_size / all_bars
    defaults = HistorySettings.model_fields
    quote_days = defaults["rates_history_retention_days"].default
    bar_days = defaults["rates_history_rollup_retention_days"].default
    quotes_day_gb = per_day * bytes_per_quote / 1e9
    bars_day_gb = bars_per_day * bytes_per_bar / 1e9
    return {
        "window_s": round(window_s, 1),
        "quotes": quotes,
        "derived_share": round(derived / quotes, 3),
        "quotes_per_day": round(per_day),
        "bytes_per_quote": round(bytes_per_quote, 1),
        "legacy_bytes_per_quote": round(legacy / quotes, 1),
        "quotes_gb_per_day": round(quotes_day_gb, 2),
        "legacy_gb_per_day": round(per_day * legacy / quotes / 1e9, 2),
        "bars_per_day": round(bars_per_day),
        "bytes_per_bar": round(bytes_per_bar, 1),
        "bars_mb_per_day": round(bars_day_gb * 1e3, 1),
        "parts_kb": round(parts / 1e3),  # bars of the last minutes, not yet compacted
        "retention_days": {"quotes": quote_days, "bars": bar_days},
        # A day's partition is dropped once the whole day is older than the retention, so
        # up to one more day of quotes is on disk.
        "default_gb": round((quote_days + 1) * quotes_day_gb + bar_days * bars_day_gb, 1),
        "every_quote_30_days_gb": round(30 * quotes_day_gb, 1),
    }


def run() -> dict[str, Any]:
    minutes = float(os.environ.get("HISTORY_MINUTES", "10"))
    directory = Path(tempfile.mkdtemp(prefix="cp-bench-pg-"))
    pg = start_postgres(directory / "data", log=directory / "pg.log")
    try:
        with demo_stack({"DATABASE_URL": pg.address}):
            time.sleep(minutes * 60)
        result = measure(pg.address)
    finally:
        pg.stop()
        shutil.rmtree(directory, ignore_errors=True)
    result["minutes"] = minutes
    return result


def report(result: dict[str, Any]) -> str:
    r = result
    return "\n".join(
        [
            f"## history on disk at demo rates ({r['minutes']:g} min of `make demo`, "
            f"{r['quotes']} quotes over {r['window_s']:g} s; {r['derived_share']:.0%} derived)",
            "",
            "| | per row | per day |",
            "|---|---|---|",
            f"| quotes (every quote) | {r['bytes_per_quote']:g} B | {r['quotes_per_day']:,} rows, "
            f"{r['quotes_gb_per_day']:g} GB |",
            f"| quotes, layout before 0003 | {r['legacy_bytes_per_quote']:g} B | "
            f"{r['legacy_gb_per_day']:g} GB |",
            f"| quotes_1m (1-minute bars) | {r['bytes_per_bar']:g} B | {r['bars_per_day']:,} rows, "
            f"{r['bars_mb_per_day']:g} MB |",
            "",
            f"(and {r['parts_kb']:g} kB of bars of the last minutes, not compacted yet)",
            "",
            f"every quote for 30 days: {r['every_quote_30_days_gb']:g} GB; the defaults "
            f"(quotes {r['retention_days']['quotes']} days, bars {r['retention_days']['bars']} "
            f"days): about {r['default_gb']:g} GB",
            f"machine: {r.get('machine', '?')}, {r.get('date', '?')}",
        ]
    )
