"""The history's SQL: one transaction per batch, and the retention's chunked deletes."""

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

log = logging.getLogger(__name__)

#: Rows deleted per retention statement, so no delete holds locks for long.
RETENTION_CHUNK = 10_000

INSERT_QUOTES = """
INSERT INTO quotes (id, venue, direction, value, ts, received_at, derived_from)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::numeric[],
                     %s::timestamptz[], %s::timestamptz[], %s::jsonb[])
ON CONFLICT (id) DO NOTHING
"""

INSERT_SWITCHES = """
INSERT INTO switches (direction, from_venue, to_venue, reason, at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
ON CONFLICT ON CONSTRAINT switches_once DO NOTHING
"""

LAST_SWITCHES = """
SELECT DISTINCT ON (direction) direction, to_venue, at
FROM switches WHERE to_venue IS NOT NULL ORDER BY direction, at DESC
"""

# Deletes in chunks; the newest switch of a direction is kept however old, because it says
# which venue is chosen (and the writer compares with it after a restart).
DELETE_QUOTES = """
DELETE FROM quotes WHERE id IN (SELECT id FROM quotes WHERE ts < %s LIMIT %s)
"""
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
) -> int:
    """Insert rows in one statement; the number of new rows.

    A row PostgreSQL refuses (a NUL character, a constraint) must not block the history:
    the rows are then inserted one by one and the refused ones skipped, counted and logged.
    """
    if not rows:
        return 0
    try:
        async with conn.transaction():  # a savepoint
            cursor = await conn.execute(sql, columns(rows))
            return max(cursor.rowcount, 0)
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        log.warning("PostgreSQL refuses a row of %s (%s); storing one by one", table, exc)
    stored = 0
    for row in rows:
        try:
            async with conn.transaction():
                cursor = await conn.execute(sql, columns([row]))
                stored += max(cursor.rowcount, 0)
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
    quotes = list(batch.quotes.values())
    async with conn.transaction():
        if chosen is None:
            cursor = await conn.execute(LAST_SWITCHES)
            rows = await cursor.fetchall()
            chosen = {direction: Chosen(venue, at) for direction, venue, at in rows}
        switches, after = derive_switches(chosen, batch.latest)
        stored_quotes = await _insert(conn, "quotes", INSERT_QUOTES, quote_columns, quotes)
        stored_switches = await _insert(conn, "switches", INSERT_SWITCHES, switch_columns, switches)
    metrics.HISTORY_ROWS.labels("quotes").inc(stored_quotes)
    metrics.HISTORY_ROWS.labels("switches").inc(stored_switches)
    metrics.HISTORY_DUPLICATES.labels("quotes").inc(len(quotes) - stored_quotes)
    metrics.HISTORY_DUPLICATES.labels("switches").inc(len(switches) - stored_switches)
    if quotes:
        metrics.HISTORY_NEWEST.set(max(q.received_at for q in quotes).timestamp())
    log.debug("stored %d quotes, %d switches", stored_quotes, stored_switches)
    return Stored(switches, after)


async def delete_older(pool: AsyncConnectionPool[Any], cutoff: datetime) -> int:
    """Delete quotes and switches older than ``cutoff``, in chunks; the rows deleted."""
    total = 0
    for table, statement in (("quotes", DELETE_QUOTES), ("switches", DELETE_SWITCHES)):
        while True:
            async with pool.connection(timeout=5.0) as conn, conn.transaction():
                cursor = await conn.execute(statement, (cutoff, RETENTION_CHUNK))
                deleted = max(cursor.rowcount, 0)
            metrics.HISTORY_RETENTION_DELETED.labels(table).inc(deleted)
            total += deleted
            if deleted < RETENTION_CHUNK:
                break
    return total
