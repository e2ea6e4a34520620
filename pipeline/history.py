"""The history writer (``rates history``): quotes and venue switches into PostgreSQL.

It has its own consumer group on ``rates.normalized`` and ``rates.latest`` and uses plain
aiokafka, because Faust's ``take()`` acknowledges records before they are stored. Records
are gathered into a bounded batch, written in one transaction (multi-row ``INSERT ... ON
CONFLICT DO NOTHING``: quotes are keyed on (ts, direction, id), switches on (direction, at,
to_venue), so a redelivered record is stored once), together with the 1-minute bars of the
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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common.backoff import Backoff
from common.clock import utcnow
from common.database import libpq_url
from pipeline import metrics
from pipeline.history_rows import Batch, Chosen
from pipeline.history_store import compact_bars, delete_old_switches, store
from pipeline.partitions import QUOTES, ROLLUP, Partitions
from pipeline.settings import HistorySettings
from schemas.errors import RatesError, RecordError
from schemas.records import Latest, Quote

log = logging.getLogger(__name__)

#: One write (connect, insert, commit) longer than this counts as PostgreSQL being down.
WRITE_TIMEOUT_S = 30.0
#: Seconds between compactions of the bars of finished minutes into quotes_1m.
ROLLUP_INTERVAL_S = 10.0


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
        clock: Callable[[], datetime] = utcnow,
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
            session_timeout_ms=int(settings.history_session_timeout_s * 1000),
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
        self.chosen: dict[str, Chosen] | None = None  # loaded from the database when needed
        self.prepared = prepare is None
        self.preparing = asyncio.Lock()
        self.partitions = Partitions()
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
        started = time.monotonic()
        async with self.pool.connection(timeout=5.0) as conn:
            times = [q.ts for q in batch.quotes.values()]
            for target in (QUOTES, ROLLUP):  # DDL in a short transaction of its own
                if self.partitions.needs(target, times):
                    await self.partitions.ensure(conn, target, times)
            stored = await store(conn, batch, self.chosen)
        # Committed: the rows are durable.
        self.chosen = stored.chosen
        metrics.HISTORY_WRITE_SECONDS.observe(time.monotonic() - started)
        metrics.HISTORY_BATCHES.inc()
        for switch in stored.switches:
            log.info(
                "stored switch %s: %s -> %s at %s (%s)",
                switch.direction,
                switch.from_venue,
                switch.to_venue,
                switch.at.isoformat(),
                switch.reason,
            )

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
        if rollup_days:
            deleted = await delete_old_switches(self.pool, now - timedelta(days=rollup_days))
        if dropped or deleted:
            log.info(
                "retention dropped partitions %s and deleted %d switches",
                ", ".join(dropped) or "(none)",
                deleted,
            )
        return len(dropped) + deleted

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

    # -- the rollup ---------------------------------------------------------------------

    async def rollup_loop(self) -> None:
        """Every ``ROLLUP_INTERVAL_S``, the bars of finished minutes into quotes_1m."""
        failing = False
        while True:
            await asyncio.sleep(ROLLUP_INTERVAL_S)
            if not self.prepared:
                continue
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await compact_bars(self.pool, self.clock())
                failing = False
            except (psycopg.Error, PoolTimeout, TimeoutError, OSError) as exc:
                # The parts wait in PostgreSQL: one warning per outage, then try again.
                report = log.debug if failing else log.warning
                report("compacting the 1-minute bars failed (%s); trying again later", exc)
                failing = True

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
