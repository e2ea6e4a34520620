"""The history's range partitions: which exist, which are needed, which are expired.

``quotes`` is partitioned by day of venue time and ``quotes_1m`` by month (migration 0003),
each with a DEFAULT partition for rows outside every range. The history writer creates the
partitions it needs before it writes (today and the next days ahead, and any other day a batch
holds), moves rows found in a DEFAULT partition into their own partition, and applies the
retention by dropping partitions whose whole range is older than the cutoff. The choices are
pure functions over the partitions' bounds; :class:`Partitions` is the thin shell.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import psycopg
from psycopg import sql

from pipeline import metrics

log = logging.getLogger(__name__)

#: Days (quotes) or months (rollup) created ahead of time, beyond the current one.
AHEAD = 3
#: Partition DDL waits at most this long for a lock (a long query must not hold it queued).
LOCK_TIMEOUT = "5s"
#: Partition DDL of several writers (a rebalance, a restart) is serialized on this lock.
ADVISORY_LOCK = 0x72617465  # "rate"


class Period(Enum):
    DAY = "day"
    MONTH = "month"

    def floor(self, t: datetime) -> datetime:
        """The start (UTC) of the period holding ``t``."""
        day = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day if self is Period.DAY else day.replace(day=1)

    def following(self, start: datetime) -> datetime:
        """The start of the next period."""
        if self is Period.DAY:
            return start + timedelta(days=1)
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Partitioned:
    """A table partitioned by ``period`` on the timestamptz ``column``."""

    table: str
    column: str
    period: Period

    @property
    def default(self) -> str:
        return f"{self.table}_default"

    def name(self, start: datetime) -> str:
        """``quotes_p20261124`` (days), ``quotes_1m_p202611`` (months)."""
        suffix = f"{start:%Y%m%d}" if self.period is Period.DAY else f"{start:%Y%m}"
        return f"{self.table}_p{suffix}"

    def starts(self, times: Iterable[datetime]) -> set[datetime]:
        """The periods holding these times."""
        return {self.period.floor(t) for t in times}

    def ahead(self, now: datetime, count: int = AHEAD) -> list[datetime]:
        """The current period and ``count`` after it."""
        found = [self.period.floor(now)]
        for _ in range(count):
            found.append(self.period.following(found[-1]))
        return found


QUOTES = Partitioned("quotes", "ts", Period.DAY)
ROLLUP = Partitioned("quotes_1m", "minute", Period.MONTH)


@dataclass(frozen=True, slots=True)
class Bound:
    """A partition's range ``[start, end)``."""

    start: datetime
    end: datetime


_BOUND = re.compile(r"^FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)$")


def parse_bound(expression: str) -> Bound | None:
    """The range of ``pg_get_expr(relpartbound)`` with the session in UTC; None: DEFAULT (or
    a bound this code did not make, such as MINVALUE)."""
    found = _BOUND.match(expression.strip())
    if found is None:
        return None
    try:
        start, end = (datetime.fromisoformat(text) for text in found.groups())
    except ValueError:
        return None
    if start.tzinfo is None or end.tzinfo is None:
        return None
    return Bound(start.astimezone(UTC), end.astimezone(UTC))


def missing(needed: Iterable[datetime], bounds: Iterable[Bound]) -> list[datetime]:
    """The period starts in ``needed`` that no existing partition covers, oldest first."""
    ranges = list(bounds)
    return sorted(s for s in set(needed) if not any(b.start <= s < b.end for b in ranges))


def expired(bounds: Mapping[str, Bound], cutoff: datetime) -> list[str]:
    """The partitions whose whole range is older than ``cutoff``, oldest first."""
    old = sorted((b.start, name) for name, b in bounds.items() if b.end <= cutoff)
    return [name for _, name in old]


# -- SQL --------------------------------------------------------------------------------------

LIST = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
"""


async def _lock(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    await conn.execute("SET LOCAL TimeZone = 'UTC'")  # bounds read back as UTC ISO times
    await conn.execute("SET LOCAL DateStyle = 'ISO'")
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))


async def bounds_of(conn: psycopg.AsyncConnection[Any], target: Partitioned) -> dict[str, Bound]:
    """The range partitions of a table and their bounds (the DEFAULT partition left out)."""
    cursor = await conn.execute(LIST, (target.table,))
    found = {}
    for name, expression in await cursor.fetchall():
        bound = parse_bound(expression)
        if bound is not None:
            found[name] = bound
    return found


async def attach(conn: psycopg.AsyncConnection[Any], target: Partitioned, start: datetime) -> int:
    """Create the partition of the period starting at ``start``; the rows it took over.

    Rows of that period already in the DEFAULT partition are moved into it first, since
    PostgreSQL refuses a new partition whose rows the DEFAULT one holds. Call within a
    transaction that holds the advisory lock.
    """
    end = target.period.following(start)
    name = sql.Identifier(target.name(start))
    table, column = sql.Identifier(target.table), sql.Identifier(target.column)
    await conn.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
            name, table
        )
    )
    cursor = await conn.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {default} WHERE {column} >= %s AND {column} < %s "
            "RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ).format(default=sql.Identifier(target.default), column=column, name=name),
        (start, end),
    )
    moved = max(cursor.rowcount, 0)
    await conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            table, name, sql.Literal(start), sql.Literal(end)
        )
    )
    return moved


@dataclass
class Partitions:
    """The partitions known to exist, so that a batch checks its periods without a query."""

    known: dict[str, list[Bound]] = field(default_factory=dict)

    def needs(self, target: Partitioned, times: Iterable[datetime]) -> list[datetime]:
        return missing(target.starts(times), self.known.get(target.table, []))

    async def ensure(
        self, conn: psycopg.AsyncConnection[Any], target: Partitioned, times: Iterable[datetime]
    ) -> list[str]:
        """Create the missing partitions of the periods holding ``times``; their names.

        Runs its own short transaction (DDL locks the table until commit), under the
        advisory lock, and reads the catalog again there, so concurrent writers agree.
        """
        needed = target.starts(times)
        if target.table in self.known and not missing(needed, self.known[target.table]):
            return []
        created = []
        async with conn.transaction():
            await _lock(conn)
            bounds = await bounds_of(conn, target)
            for start in missing(needed, bounds.values()):
                moved = await attach(conn, target, start)
                created.append(target.name(start))
                bounds[target.name(start)] = Bound(start, target.period.following(start))
                if moved:
                    log.info("moved %d rows of %s into %s", moved, target.default, created[-1])
        self.known[target.table] = list(bounds.values())
        if created:
            metrics.HISTORY_PARTITIONS.labels(target.table, "created").inc(len(created))
            log.info("created partitions %s", ", ".join(created))
        return created

    async def adopt_default(
        self, conn: psycopg.AsyncConnection[Any], target: Partitioned
    ) -> list[str]:
        """Give the rows of the DEFAULT partition partitions of their own; the ones created."""
        async with conn.transaction():
            cursor = await conn.execute(
                sql.SQL("SELECT DISTINCT date_trunc({}, {}, 'UTC') FROM {}").format(
                    sql.Literal(target.period.value),
                    sql.Identifier(target.column),
                    sql.Identifier(target.default),
                )
            )
            times = [row[0] for row in await cursor.fetchall()]
        if not times:
            return []
        self.known.pop(target.table, None)  # rows there: some partition was missing
        return await self.ensure(conn, target, times)

    async def drop_expired(
        self, conn: psycopg.AsyncConnection[Any], target: Partitioned, cutoff: datetime
    ) -> list[str]:
        """Drop the partitions whose whole range is older than ``cutoff``; their names."""
        async with conn.transaction():
            await _lock(conn)
            bounds = await bounds_of(conn, target)
            names = expired(bounds, cutoff)
            for name in names:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                del bounds[name]
        self.known[target.table] = list(bounds.values())
        metrics.HISTORY_PARTITIONS.labels(target.table, "dropped").inc(len(names))
        return names
