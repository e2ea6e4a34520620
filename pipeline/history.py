"""The history writer (``rates history``): quotes and venue switches into PostgreSQL.

It has its own consumer group on ``rates.normalized`` and ``rates.latest`` and uses plain
aiokafka, because Faust's ``take()`` acknowledges records before they are stored. Records
are gathered into a bounded batch, written in one transaction (multi-row ``INSERT ... ON
CONFLICT DO NOTHING``: quotes are keyed on (ts, direction, id), switches on (direction, at,
to_venue), so a redelivered record is stored once), together with the per-minute rollup of the
quotes it newly stored (pipeline/rollup.py), and only then are their offsets committed.

While PostgreSQL is unreachable the batch is kept, the consumer's partitions are paused (so
memory stays bounded and only this consumer waits) and the write is retried with capped
backoff; nothing is lost. The same process keeps the partitions (pipeline/partitions.py):
created ahead and for any day a batch holds, dropped whole by the retention.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common.backoff import Backoff
from common.database import libpq_url
from pipeline import metrics
from pipeline.partitions import QUOTES, ROLLUP, Partitions
from pipeline.rollup import COMPACT_PARTS, INSERT_PARTS, bar_columns, minute_of, rollup
from pipeline.settings import HistorySettings
from schemas.errors import RatesError, RecordError
from schemas.records import Latest, Quote

log = logging.getLogger(__name__)

#: Tansu makes every group join take half the session timeout (docs/architecture.md).
SESSION_TIMEOUT_MS = 6000
#: One write (connect, insert, commit) longer than this counts as PostgreSQL being down.
WRITE_TIMEOUT_S = 30.0
#: Seconds between compactions of the bars of finished minutes into quotes_1m.
ROLLUP_INTERVAL_S = 10.0
#: Switches deleted per retention statement, so no delete holds locks for long.
RETENTION_CHUNK = 10_000

# -- pure: switches and rows ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chosen:
    """The venue chosen for a direction, and since when."""

    venue: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Switch:
    """A change of the chosen venue of a direction (``*``: the active venue)."""

    direction: str
    from_venue: str | None
    to_venue: str
    reason: str
    at: datetime


def derive_switches(
    last: Mapping[str, Chosen], records: Iterable[Latest]
) -> tuple[list[Switch], dict[str, Chosen]]:
    """The switches among ``rates.latest`` records, and the choice per direction after them.

    A record whose venue differs from the one chosen before it (``last``: the last stored
    switch of each direction) is a switch at the record's ``since``. A record not newer
    than the known choice is a redelivery and changes nothing; a record without a venue
    (no quote yet) is not a choice.
    """
    state = dict(last)
    found: list[Switch] = []
    for record in records:
        if record.venue is None or record.since is None:
            continue
        previous = state.get(record.direction)
        if previous is not None and (
            record.venue == previous.venue or record.since <= previous.since
        ):
            continue
        found.append(
            Switch(
                record.direction,
                previous.venue if previous is not None else None,
                record.venue,
                record.reason,
                record.since,
            )
        )
        state[record.direction] = Chosen(record.venue, record.since)
    return found, state


def quote_columns(quotes: Sequence[Quote]) -> tuple[list[Any], ...]:
    """Column arrays for ``INSERT ... SELECT FROM unnest(...)`` (one round trip per batch)."""
    return (
        [q.id for q in quotes],
        [q.venue for q in quotes],
        [q.direction for q in quotes],
        [q.value for q in quotes],
        [q.ts for q in quotes],
        [q.received_at for q in quotes],
        [
            None
            if q.derived_from is None
            else orjson.dumps([leg.to_dict() for leg in q.derived_from]).decode()
            for q in quotes
        ],
    )


def switch_columns(switches: Sequence[Switch]) -> tuple[list[Any], ...]:
    return (
        [s.direction for s in switches],
        [s.from_venue for s in switches],
        [s.to_venue for s in switches],
        [s.reason for s in switches],
        [s.at for s in switches],
    )


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
# which venue is chosen (and the writer compares with it after a restart). Quotes and their
# rollup are never deleted row by row: their partitions are dropped whole.
DELETE_SWITCHES = """
DELETE FROM switches WHERE id IN (
    SELECT s.id FROM switches s WHERE s.at < %s
    AND EXISTS (SELECT 1 FROM switches n WHERE n.direction = s.direction AND n.at > s.at)
    LIMIT %s)
"""


Columns = Callable[[Sequence[Any]], tuple[list[Any], ...]]


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


# -- the batch ------------------------------------------------------------------------------


@dataclass
class Batch:
    """Records consumed but not yet durable, and the offsets to commit once they are."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    latest: list[Latest] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    opened: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.offsets)

    def add(self, tp: TopicPartition, offset: int, item: Quote | Latest | None) -> None:
        if not self.offsets:
            self.opened = time.monotonic()
        self.offsets[tp] = offset + 1
        self.records += 1
        if isinstance(item, Quote):
            self.quotes[item.id] = item
        elif isinstance(item, Latest):
            self.latest.append(item)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.writer.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %d partition(s)", len(assigned))


# -- the writer -----------------------------------------------------------------------------


class HistoryWriter:
    """Consumes rates.normalized and rates.latest into PostgreSQL, committing after durability."""

    def __init__(
        self,
        settings: HistorySettings,
        prepare: Callable[[], object] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.prepare = prepare
        self.clock = clock
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=self.topics.history_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=1000,
        )
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            libpq_url(settings.database),
            min_size=1,
            max_size=2,
            open=False,
            kwargs={"connect_timeout": 5, "application_name": "rates-history"},
            check=AsyncConnectionPool.check_connection,
            # Give up background reconnects early: the write loop asks again, and a fresh
            # attempt connects at once when PostgreSQL is back (no long pool backoff).
            reconnect_timeout=max(2.0, settings.history_retry_cap_s),
        )
        self.batch = Batch()
        self.partitions = Partitions()
        self.chosen: dict[str, Chosen] | None = None  # loaded from the database when needed
        self.prepared = prepare is None
        self.preparing = asyncio.Lock()
        self.down_since: float | None = None
        self.backoff = Backoff(base_s=0.2, cap_s=settings.history_retry_cap_s)
        self.failures = 0

    # -- consuming ----------------------------------------------------------------------

    def decode(self, topic: str, value: bytes | None) -> Quote | Latest | None:
        try:
            if topic == self.topics.normalized:
                return Quote.from_json(value or b"")
            return Latest.from_json(value or b"")
        except RecordError as exc:
            metrics.HISTORY_BAD_RECORDS.labels(topic).inc()
            log.warning("skipped a bad record on %s: %s", topic, exc)
            return None

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # aiokafka rebalances eagerly: every partition is revoked, and the new owner starts
        # from the committed offsets, so what is not durable yet is consumed again there.
        if self.batch:
            log.info(
                "rebalance; %d records not yet stored are left to be consumed again",
                self.batch.records,
            )
        self.batch = Batch()
        self.chosen = None
        metrics.HISTORY_PENDING.set(0)

    def due_in(self) -> float:
        """Seconds until the batch must be written (0: now)."""
        interval = self.settings.history_flush_interval_s
        if not self.batch:
            return interval
        if self.batch.records >= self.settings.history_batch_size:
            return 0.0
        return max(0.0, self.batch.opened + interval - time.monotonic())

    async def fetch(self, wait_s: float) -> None:
        room = self.settings.history_batch_size - self.batch.records
        found = await self.consumer.getmany(timeout_ms=int(wait_s * 1000) + 1, max_records=room)
        for tp, messages in found.items():
            for message in messages:
                self.batch.add(tp, message.offset, self.decode(tp.topic, message.value))
        metrics.HISTORY_PENDING.set(self.batch.records)

    # -- writing ------------------------------------------------------------------------

    async def _load_chosen(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, Chosen]:
        cursor = await conn.execute(LAST_SWITCHES)
        return {direction: Chosen(venue, at) for direction, venue, at in await cursor.fetchall()}

    async def ensure_prepared(self) -> None:
        """Apply the migrations once (the first write, or the first retention run)."""
        async with self.preparing:
            if not self.prepared:
                assert self.prepare is not None
                await asyncio.to_thread(self.prepare)  # migrations, under yoyo's lock
                self.prepared = True

    async def write(self, batch: Batch) -> None:
        """Store the batch in one transaction; raises on any database failure."""
        await self.ensure_prepared()
        # In key order, so the index grows at its right edge (densely packed pages).
        quotes = sorted(batch.quotes.values(), key=lambda q: (q.ts, q.direction, q.id))
        started = time.monotonic()
        async with self.pool.connection(timeout=5.0) as conn:
            times = [q.ts for q in quotes]
            for target in (QUOTES, ROLLUP):
                if self.partitions.needs(target, times):
                    await self.partitions.ensure(conn, target, times)
            async with conn.transaction():
                chosen = self.chosen if self.chosen is not None else await self._load_chosen(conn)
                switches, after = derive_switches(chosen, batch.latest)
                new = set(await _insert(conn, "quotes", INSERT_QUOTES, quote_columns, quotes))
                bars = rollup(q for q in quotes if q.id in new)
                if bars:
                    await conn.execute(INSERT_PARTS, bar_columns(bars))
                stored_switches = len(
                    await _insert(conn, "switches", INSERT_SWITCHES, switch_columns, switches)
                )
            stored_quotes = len(new)
        # Committed: the rows are durable.
        self.chosen = after
        metrics.HISTORY_WRITE_SECONDS.observe(time.monotonic() - started)
        metrics.HISTORY_BATCHES.inc()
        metrics.HISTORY_ROWS.labels("quotes").inc(stored_quotes)
        metrics.HISTORY_ROWS.labels("switches").inc(stored_switches)
        metrics.HISTORY_DUPLICATES.labels("quotes").inc(len(quotes) - stored_quotes)
        metrics.HISTORY_DUPLICATES.labels("switches").inc(len(switches) - stored_switches)
        if quotes:
            newest = max(q.received_at for q in quotes)
            metrics.HISTORY_NEWEST.set(newest.timestamp())
        for switch in switches:
            log.info(
                "stored switch %s: %s -> %s at %s (%s)",
                switch.direction,
                switch.from_venue,
                switch.to_venue,
                switch.at.isoformat(),
                switch.reason,
            )
        log.debug("stored %d quotes, %d switches", stored_quotes, stored_switches)

    async def flush(self) -> bool:
        """Write the batch and commit its offsets; False (batch kept) when PostgreSQL fails."""
        batch = self.batch
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await self.write(batch)
        except (psycopg.Error, PoolTimeout, TimeoutError, OSError, RatesError) as exc:
            self.failed(exc)
            return False
        self.recovered()
        try:
            await self.consumer.commit(batch.offsets)
        except KafkaError as exc:
            # The rows are stored: at worst they are consumed and skipped again.
            log.warning("offset commit failed (%s); records may be redelivered", exc)
        if self.batch is batch:
            self.batch = Batch()
        metrics.HISTORY_PENDING.set(self.batch.records)
        return True

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        reason = "error" if isinstance(exc, psycopg.ProgrammingError) else "unavailable"
        metrics.HISTORY_WRITE_ERRORS.labels(reason).inc()
        metrics.HISTORY_DATABASE_UP.set(0)
        words = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.pause()
            log.warning(
                "PostgreSQL does not accept writes (%s); consumption paused, "
                "%d records held, retrying",
                words,
                self.batch.records,
            )
        else:
            log.debug("write failed again: %s", words)

    def recovered(self) -> None:
        metrics.HISTORY_DATABASE_UP.set(1)
        if self.down_since is not None:
            log.info(
                "PostgreSQL accepts writes again after %.1f s; consumption resumed",
                time.monotonic() - self.down_since,
            )
            self.down_since = None
            self.failures = 0
            self.resume()

    def pause(self) -> None:
        self.consumer.pause(*self.consumer.assignment())
        metrics.HISTORY_PAUSED.set(1)

    def resume(self) -> None:
        self.consumer.resume(*self.consumer.assignment())
        metrics.HISTORY_PAUSED.set(0)

    async def wait_before_retry(self) -> None:
        """Sleep the backoff while polling the paused consumer (keeps it in its group)."""
        deadline = time.monotonic() + self.backoff.delay(self.failures)
        while (remaining := deadline - time.monotonic()) > 0:
            # Partitions are paused: nothing is fetched, but the poll counts as alive.
            self.pause()  # a rebalance may have assigned new, unpaused partitions
            await self.consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000) + 1)

    # -- retention ----------------------------------------------------------------------

    async def apply_retention(self) -> int:
        """Keep the partitions and apply the retention; the partitions and switches removed.

        Creates the partitions of the next days (and months) ahead, moves rows found in a
        DEFAULT partition into partitions of their own, drops the partitions of quotes and
        of the rollup older than their retention, and deletes switches older than the
        rollup's, in chunks (the newest of each direction is kept however old).
        """
        now = self.clock()
        quotes_days = self.settings.rates_history_retention_days
        rollup_days = self.settings.rates_history_rollup_retention_days
        self.partitions.known.clear()  # read the catalog again: someone may have changed it
        dropped = []
        async with self.pool.connection(timeout=5.0) as conn:
            for target, days in ((QUOTES, quotes_days), (ROLLUP, rollup_days)):
                await self.partitions.ensure(conn, target, target.ahead(now))
                await self.partitions.adopt_default(conn, target)
                if days:
                    cutoff = now - timedelta(days=days)
                    dropped += await self.partitions.drop_expired(conn, target, cutoff)
        deleted = 0
        while rollup_days:
            cutoff = now - timedelta(days=rollup_days)
            async with self.pool.connection(timeout=5.0) as conn, conn.transaction():
                cursor = await conn.execute(DELETE_SWITCHES, (cutoff, RETENTION_CHUNK))
                chunk = max(cursor.rowcount, 0)
            metrics.HISTORY_RETENTION_DELETED.labels("switches").inc(chunk)
            deleted += chunk
            if chunk < RETENTION_CHUNK:
                break
        if dropped or deleted:
            log.info(
                "retention dropped partitions %s and deleted %d switches",
                ", ".join(dropped) or "(none)",
                deleted,
            )
        return len(dropped) + deleted

    # -- the rollup ---------------------------------------------------------------------

    async def compact_bars(self) -> int:
        """Merge the bars of finished minutes into quotes_1m; the bars written."""
        now = self.clock()
        async with self.pool.connection(timeout=5.0) as conn, conn.transaction():
            cursor = await conn.execute(COMPACT_PARTS, {"finished": minute_of(now), "now": now})
            written = max(cursor.rowcount, 0)
        metrics.HISTORY_ROWS.labels("quotes_1m").inc(written)
        return written

    async def rollup_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(ROLLUP_INTERVAL_S)
            if not self.prepared:
                continue
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await self.compact_bars()
                failing = False
            except (psycopg.Error, PoolTimeout, TimeoutError, OSError) as exc:
                # The parts wait in PostgreSQL: one warning per outage, then try again.
                report = log.debug if failing else log.warning
                report("compacting the 1-minute bars failed (%s); trying again later", exc)
                failing = True

    async def retention_loop(self) -> None:
        """The partitions kept from the start (the days ahead exist before the first write)
        and every ``HISTORY_RETENTION_INTERVAL_S``."""
        failing = False
        while True:
            delay = self.settings.history_retention_interval_s
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S * 10):
                    await self.ensure_prepared()
                    await self.apply_retention()
                failing = False
            except (psycopg.Error, PoolTimeout, TimeoutError, OSError, RatesError) as exc:
                # The write path reports PostgreSQL being away: one warning per outage here.
                report = log.debug if failing else log.warning
                report("retention failed (%s); trying again later", exc)
                failing = True
                delay = min(delay, 10.0)
            await asyncio.sleep(delay)

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        await self.pool.open(wait=False)
        self.consumer.subscribe(
            [self.topics.normalized, self.topics.latest], listener=_Rebalance(self)
        )
        await self.consumer.start()
        retention = asyncio.create_task(self.retention_loop(), name="history-retention")
        compaction = asyncio.create_task(self.rollup_loop(), name="history-rollup")
        log.info(
            "history writer consuming %s and %s (group %s)",
            self.topics.normalized,
            self.topics.latest,
            self.topics.history_group,
        )
        try:
            while True:
                if self.down_since is not None and not self.batch:
                    # A rebalance dropped what was held: consume again, and find out.
                    self.down_since = None
                    self.resume()
                if self.down_since is not None:
                    await self.wait_before_retry()
                    await self.flush()
                elif (wait_s := self.due_in()) > 0:
                    await self.fetch(wait_s)
                else:
                    await self.flush()
        finally:
            retention.cancel()
            compaction.cancel()
            await self.close()

    async def close(self) -> None:
        """Store what is held if PostgreSQL answers quickly; then leave the group."""
        if self.batch and self.down_since is None:
            try:
                async with asyncio.timeout(5.0):
                    await self.write(self.batch)
                    await self.consumer.commit(self.batch.offsets)
            except (psycopg.Error, PoolTimeout, TimeoutError, OSError, KafkaError) as exc:
                log.warning("%d records not stored at exit: %s", self.batch.records, exc)
        await self.consumer.stop()
        await self.pool.close()


async def run(settings: HistorySettings, prepare: Callable[[], object] | None = None) -> None:
    """Run the history writer until cancelled."""
    metrics.HISTORY_DATABASE_UP.set(0)
    await HistoryWriter(settings, prepare).run()
