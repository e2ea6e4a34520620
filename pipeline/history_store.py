"""The history's SQL: one transaction per batch (quotes, their 1-minute bars, switches), the
bars' compaction, and the chunked deletes of old switches (quotes and bars are partitioned:
pipeline/partitions.py drops them whole)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from pipeline import metrics
from pipeline.history_rows import (
    Batch,
    Chosen,
    Switch,
    derive_switches,
    quote_columns,
    switch_columns,
)
from pipeline.rollup import COMPACT_PARTS, INSERT_PARTS, bar_columns, minute_of, rollup

log = logging.getLogger(__name__)

#: Switches deleted per retention statement, so no delete holds locks for long.
RETENTION_CHUNK = 10_000

# Legs arrive as on the topic and are stored compact (quote_legs_in, migration 0003). The
# ids of the rows inserted come back: the rollup counts those, never a redelivered quote.
INSERT_QUOTES = """
INSERT INTO quotes (id, venue, direction, value, ts, received_at, derived_from)
SELECT id, venue, direction, value, ts, received_at, quote_legs_in(legs)
FROM unnest(%s::text[], %s::text[], %s::text[], %s::numeric[],
            %s::timestamptz[], %s::timestamptz[], %s::jsonb[])
     AS r(id, venue, direction, value, ts, received_at, legs)
ON CONFLICT (ts, direction, id) DO NOTHING
RETURNING id
"""

INSERT_SWITCHES = """
INSERT INTO switches (direction, from_venue, to_venue, reason, at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
ON CONFLICT ON CONSTRAINT switches_once DO NOTHING
RETURNING id
"""

LAST_SWITCHES = """
SELECT DISTINCT ON (direction) direction, to_venue, at
FROM switches WHERE to_venue IS NOT NULL ORDER BY direction, at DESC
"""

# Deletes in chunks; the newest switch of a direction is kept however old, because it says
# which venue is chosen (and the writer compares with it after a restart).
DELETE_SWITCHES = """
DELETE FROM switches WHERE id IN (
    SELECT s.id FROM switches s WHERE s.at < %s
    AND EXISTS (SELECT 1 FROM switches n WHERE n.direction = s.direction AND n.at > s.at)
    LIMIT %s)
"""


Columns = Callable[[Sequence[Any]], tuple[list[Any], ...]]


@dataclass(frozen=True, slots=True)
class Stored:
    """What one batch's transaction stored."""

    switches: list[Switch]
    #: The choice per direction after the batch (what the next batch compares with).
    chosen: dict[str, Chosen]


async def _insert(
    conn: psycopg.AsyncConnection[Any], table: str, sql: str, columns: Columns, rows: Sequence[Any]
) -> list[Any]:
    """Insert rows in one statement; the ids of the new rows (``RETURNING id``).

    A row PostgreSQL refuses (a NUL character, a constraint) must not block the history:
    the rows are then inserted one by one and the refused ones skipped, counted and logged.
    """
    if not rows:
        return []
    try:
        async with conn.transaction():  # a savepoint
            cursor = await conn.execute(sql, columns(rows))
            return [row[0] for row in await cursor.fetchall()]
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        log.warning("PostgreSQL refuses a row of %s (%s); storing one by one", table, exc)
    stored = []
    for row in rows:
        try:
            async with conn.transaction():
                cursor = await conn.execute(sql, columns([row]))
                stored += [found[0] for found in await cursor.fetchall()]
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            metrics.HISTORY_BAD_RECORDS.labels(table).inc()
            log.warning("skipped a row of %s PostgreSQL refuses (%s): %r", table, exc, row)
    return stored


async def store(
    conn: psycopg.AsyncConnection[Any], batch: Batch, chosen: Mapping[str, Chosen] | None
) -> Stored:
    """Store a batch's quotes and switches in one transaction; raises on any failure.

    ``chosen`` is the choice per direction before the batch; None reads it from the newest
    stored switches (after a start or a rebalance).
    """
    # In key order, so the index grows at its right edge (densely packed pages).
    quotes = sorted(batch.quotes.values(), key=lambda q: (q.ts, q.direction, q.id))
    async with conn.transaction():
        if chosen is None:
            cursor = await conn.execute(LAST_SWITCHES)
            rows = await cursor.fetchall()
            chosen = {direction: Chosen(venue, at) for direction, venue, at in rows}
        switches, after = derive_switches(chosen, batch.latest)
        new = set(await _insert(conn, "quotes", INSERT_QUOTES, quote_columns, quotes))
        # The bars of the quotes stored now, beside them (compacted once their minute is over).
        bars = rollup(q for q in quotes if q.id in new)
        if bars:
            await conn.execute(INSERT_PARTS, bar_columns(bars))
        stored_switches = len(
            await _insert(conn, "switches", INSERT_SWITCHES, switch_columns, switches)
        )
    stored_quotes = len(new)
    metrics.HISTORY_ROWS.labels("quotes").inc(stored_quotes)
    metrics.HISTORY_ROWS.labels("switches").inc(stored_switches)
    metrics.HISTORY_DUPLICATES.labels("quotes").inc(len(quotes) - stored_quotes)
    metrics.HISTORY_DUPLICATES.labels("switches").inc(len(switches) - stored_switches)
    if quotes:
        metrics.HISTORY_NEWEST.set(max(q.received_at for q in quotes).timestamp())
    log.debug("stored %d quotes, %d switches", stored_quotes, stored_switches)
    return Stored(switches, after)


async def compact_bars(pool: AsyncConnectionPool[Any], now: datetime) -> int:
    """Merge the bars of finished minutes (and of minutes ahead of ``now``) into quotes_1m;
    the bars written."""
    async with pool.connection(timeout=5.0) as conn, conn.transaction():
        cursor = await conn.execute(COMPACT_PARTS, {"finished": minute_of(now), "now": now})
        written = int(max(cursor.rowcount, 0))
    metrics.HISTORY_ROWS.labels("quotes_1m").inc(written)
    return written


async def delete_old_switches(pool: AsyncConnectionPool[Any], cutoff: datetime) -> int:
    """Delete switches older than ``cutoff`` (but the newest of each direction), in chunks."""
    total = 0
    while True:
        async with pool.connection(timeout=5.0) as conn, conn.transaction():
            cursor = await conn.execute(DELETE_SWITCHES, (cutoff, RETENTION_CHUNK))
            deleted = int(max(cursor.rowcount, 0))
        metrics.HISTORY_RETENTION_DELETED.labels("switches").inc(deleted)
        total += deleted
        if deleted < RETENTION_CHUNK:
            return total
