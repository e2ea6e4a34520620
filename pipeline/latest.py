"""This worker's books (direction -> venue -> latest quote) and the choices made from them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from pipeline import metrics
from pipeline.broadcast import Broadcast
from pipeline.failover import choose, choose_active
from pipeline.health import Policy
from pipeline.warmup import active_waiting, settled
from schemas.aliases import aliases, canonical
from schemas.records import Latest, Quote
from schemas.topics import ACTIVE_KEY

log = logging.getLogger(__name__)


def changed(previous: Latest | None, latest: Latest) -> bool:
    """Whether the rate itself changed (not just the other venues' quotes)."""
    return previous is None or (
        previous.venue,
        previous.value,
        previous.ts,
        previous.stale,
        previous.reason,
    ) != (latest.venue, latest.value, latest.ts, latest.stale, latest.reason)


class LatestRates:
    """Keeps each direction's book and chosen rate; logs and counts every switch.

    The Faust table is the durable copy of the books (for recovery after a rebalance); the
    decisions are made from these in-memory books so that each quote costs one decode.
    """

    def __init__(self, policy: Policy, broadcast: Broadcast) -> None:
        self.policy = policy
        self.broadcast = broadcast
        self.books: dict[str, dict[str, Quote]] = {}
        self.chosen: dict[str, Latest] = {}
        self._excluded: dict[str, frozenset[str]] = {}
        #: direction -> when its book first held a quote here (its warm-up starts then).
        self.started: dict[str, datetime] = {}
        #: direction -> the direction whose decision serves it (USDTERC-USD -> USDTTRC-USD).
        self.canonical = canonical(policy.directions)
        #: canonical direction -> every direction its record is published as.
        self.aliases = aliases(policy.directions)

    def is_alias(self, direction: str) -> bool:
        """Whether another direction's decision serves this one (same market, another name)."""
        return self.canonical.get(direction, direction) != direction

    def names(self, direction: str) -> tuple[str, ...]:
        """The directions a record of ``direction`` is published as (itself first)."""
        return self.aliases.get(direction, (direction,))

    def load(self, direction: str, book: Mapping[str, Quote]) -> None:
        """Seed a book recovered from the table (a direction this worker just took over)."""
        self.books.setdefault(direction, dict(book))

    def forget(self, direction: str) -> None:
        """Drop a direction this worker no longer owns."""
        self.books.pop(direction, None)
        self.chosen.pop(direction, None)

    def add(self, quote: Quote, now: datetime) -> Latest | None:
        """Take a quote into its direction's book and choose again.

        Returns the new record when the rate changed (venue, value, staleness or reason),
        None when only another venue's quote did: those reach rates.latest with the
        once-a-second republish, which keeps the per-quote cost small. An alias's quote
        (USDTERC-USD) is the same market quote as its canonical direction's, which decides
        for both: it is not taken.
        """
        if self.is_alias(quote.direction):
            return None
        book = self.books.setdefault(quote.direction, {})
        current = book.get(quote.venue)
        if current is None or current.received_at <= quote.received_at:
            book[quote.venue] = quote
        last = self.broadcast.health.last_data
        if quote.venue not in last or last[quote.venue] < quote.received_at:
            last[quote.venue] = quote.received_at
        previous = self.chosen.get(quote.direction)
        latest = self.decide(quote.direction, now)
        return latest if changed(previous, latest) else None

    def previous(self, direction: str) -> Latest | None:
        # After a takeover the previous owner's choice arrives through rates.latest.
        return self.chosen.get(direction) or self.broadcast.latest.get(direction)

    def decide(self, direction: str, now: datetime) -> Latest:
        previous = self.previous(direction)
        book = self.books.get(direction, {})
        if book:
            self.started.setdefault(direction, now)
        decision = choose(
            direction,
            book,
            previous,
            self.broadcast.health,
            self.policy,
            now,
            self.broadcast.references.by_source(),
            self.started.get(direction),
        )
        latest = decision.latest
        excluded = frozenset(decision.outliers)
        if excluded != self._excluded.get(direction, frozenset()):
            for venue in excluded - self._excluded.get(direction, frozenset()):
                log.warning(
                    "%s: excluding %s, %.2f%% from the median of the other fresh venues",
                    direction,
                    venue,
                    decision.outliers[venue] * 100,
                )
                metrics.OUTLIERS.labels(direction, venue).inc()
            self._excluded[direction] = excluded
        self._note_switch(previous, latest)
        self.chosen[direction] = latest
        return latest

    def active_if_unhealthy(self, now: datetime) -> Latest | None:
        """A new active venue, when the current one is not healthy (or there is none yet).

        None while the active venue stays healthy, or when choosing again keeps it: coverage
        changes wait for the timer, because directions are decided on different workers and
        may disagree for milliseconds.
        """
        current = self.chosen.get(ACTIVE_KEY) or self.broadcast.latest.get(ACTIVE_KEY)
        health = self.broadcast.health
        if (
            current is not None
            and current.venue is not None
            and health.healthy_for(current.venue, now, self.policy) is not None
        ):
            return None
        active = self.active(now)
        if active is None:
            return None
        return active if current is None or current.venue != active.venue else None

    def seen_rates(self) -> bool:
        """Whether rates.latest holds some direction's record (the active venue's view)."""
        return any(direction != ACTIVE_KEY for direction in self.broadcast.latest)

    def active(self, now: datetime) -> Latest | None:
        """The active venue, from every direction's last record on rates.latest; None at
        start, until the directions' rates are chosen for good (pipeline/warmup.py).

        Only the topic's view: this worker's own choices reach it within milliseconds, and
        its memory may still hold directions another worker has taken over.
        """
        view = self.broadcast.latest
        previous = self.chosen.get(ACTIVE_KEY) or view.get(ACTIVE_KEY)
        self.started.setdefault(ACTIVE_KEY, now)
        if active_waiting(view, previous, self.policy, now, self.started[ACTIVE_KEY]):
            return None
        latest = choose_active(view, previous, self.broadcast.health, self.policy, now)
        self._note_switch(previous, latest)
        self.chosen[ACTIVE_KEY] = latest
        return latest

    @staticmethod
    def _note_switch(previous: Latest | None, latest: Latest) -> None:
        """Log and count a switch: a change of the venue chosen for good. The first choice
        (after a provisional one at start) is not a switch."""
        if not settled(latest):
            return
        if previous is None or not settled(previous):
            log.debug("first choice %s: %s (%s)", latest.direction, latest.venue, latest.reason)
            return
        if previous.venue == latest.venue:
            return
        log.info(
            "switch %s: %s -> %s (%s)",
            latest.direction,
            previous.venue,
            latest.venue,
            latest.reason,
        )
        metrics.SWITCHES.labels(latest.direction, str(latest.venue)).inc()


class DurableBooks:
    """The books with their durable copy, the Faust table ``latest_rates``.

    A worker taking over a direction (after a rebalance) recovers its book from the table,
    here and only here. The table is written at most once per ``write_interval_s`` per
    direction, and only when the book changed: Tansu never compacts the changelog, keeps it
    in memory, and a takeover replays all of it. A copy a few seconds old is enough: the new
    owner also reads rates.normalized again from the last committed offset, and a venue's
    next quote replaces an older one in the book.
    """

    def __init__(
        self,
        rates: LatestRates,
        table: MutableMapping[str, dict[str, Any]],
        write_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = rates
        self.table = table
        self.write_interval_s = write_interval_s
        self.monotonic = monotonic
        self._written: dict[str, float] = {}
        #: Directions whose book changed since it was last written.
        self._dirty: set[str] = set()

    def recover(self, direction: str) -> bool:
        """Whether this worker holds the direction's book, recovering it from the table."""
        if direction in self.rates.books:
            return True
        stored = self.table.get(direction) or {}
        if not stored:
            return False
        self.rates.load(direction, {venue: Quote.from_json(q) for venue, q in stored.items()})
        return True

    def add(self, quote: Quote, now: datetime) -> Latest | None:
        """:meth:`LatestRates.add` on the recovered book; the table follows (conflated).

        Call it from the agent that consumes rates.normalized: Faust lets a table be written
        only while iterating the stream of the table's source topic.
        """
        direction = quote.direction
        if self.rates.is_alias(direction):
            return None
        self.recover(direction)
        before = self.rates.books.get(direction, {}).get(quote.venue)
        latest = self.rates.add(quote, now)
        book = self.rates.books[direction]
        if book[quote.venue] is not before:
            self._dirty.add(direction)
        tick = self.monotonic()
        due = tick - self._written.get(direction, -float("inf")) >= self.write_interval_s
        if due and direction in self._dirty:
            self.table[direction] = {venue: q.to_dict() for venue, q in book.items()}
            self._written[direction] = tick
            self._dirty.discard(direction)
        return latest
