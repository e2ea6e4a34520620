"""The per-minute rollup of the quotes (table ``quotes_1m``): one bar per minute, direction
and venue, kept much longer than every quote.

A bar holds open, high, low, close (the first and last quotes by ``(ts, id)``, the order of
the history pages, with their times and ids) and the number of quotes. Bars merge: the bar of
a set of quotes is the merge of the bars of any split of it, in any order. The history writer
rolls up the quotes each batch newly stored (``INSERT ... RETURNING``: a redelivered quote is
not returned, so it is never counted twice) and stores these bars in the same transaction, so
the rollup is exactly the stored quotes, whatever the order of arrival.

The batch's bars go to ``quotes_1m_parts`` (insert only, small); once their minute is over
they are compacted into ``quotes_1m``, so a bar is written there once instead of being
updated at every batch (each update would leave a dead row version, and for a non-HOT update
an index entry, in a table kept for a year).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.records import Quote


def minute_of(t: datetime) -> datetime:
    """The start (UTC) of the minute holding ``t``."""
    return t.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Bar:
    """The quotes of one venue for one direction within one minute (venue time)."""

    minute: datetime
    direction: str
    venue: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    count: int
    open_ts: datetime
    open_id: str
    close_ts: datetime
    close_id: str

    @property
    def key(self) -> tuple[datetime, str, str]:
        return self.minute, self.direction, self.venue

    @classmethod
    def of(cls, quote: Quote) -> Bar:
        return cls(
            minute_of(quote.ts),
            quote.direction,
            quote.venue,
            quote.value,
            quote.value,
            quote.value,
            quote.value,
            1,
            quote.ts,
            quote.id,
            quote.ts,
            quote.id,
        )

    def merge(self, other: Bar) -> Bar:
        """The bar of both bars' quotes (same minute, direction and venue; no quote in both)."""
        if other.key != self.key:
            raise ValueError(f"bars of different keys: {self.key} and {other.key}")
        first = self if (self.open_ts, self.open_id) <= (other.open_ts, other.open_id) else other
        last = self if (self.close_ts, self.close_id) >= (other.close_ts, other.close_id) else other
        return Bar(
            self.minute,
            self.direction,
            self.venue,
            first.open,
            max(self.high, other.high),
            min(self.low, other.low),
            last.close,
            self.count + other.count,
            first.open_ts,
            first.open_id,
            last.close_ts,
            last.close_id,
        )


def rollup(quotes: Iterable[Quote]) -> list[Bar]:
    """One bar per (minute, direction, venue) of distinct quotes, in key order."""
    bars: dict[tuple[datetime, str, str], Bar] = {}
    for quote in quotes:
        bar = Bar.of(quote)
        held = bars.get(bar.key)
        bars[bar.key] = bar if held is None else held.merge(bar)
    return [bars[key] for key in sorted(bars)]


def bar_columns(bars: Sequence[Bar]) -> tuple[list[Any], ...]:
    """Column arrays for ``INSERT ... SELECT FROM unnest(...)``, in the table's order."""
    return (
        [b.minute for b in bars],
        [b.direction for b in bars],
        [b.venue for b in bars],
        [b.open for b in bars],
        [b.high for b in bars],
        [b.low for b in bars],
        [b.close for b in bars],
        [b.count for b in bars],
        [b.open_ts for b in bars],
        [b.close_ts for b in bars],
        [b.open_id for b in bars],
        [b.close_id for b in bars],
    )


_COLUMNS = """minute, direction, venue, open, high, low, close, quote_count, open_ts, close_ts,
    open_id, close_id"""

#: A batch's bars, beside its quotes (``quotes_1m_parts``: insert only).
INSERT_PARTS = f"""
INSERT INTO quotes_1m_parts ({_COLUMNS})
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::numeric[], %s::numeric[],
                     %s::numeric[], %s::numeric[], %s::integer[], %s::timestamptz[],
                     %s::timestamptz[], %s::text[], %s::text[])
"""

#: The parts of finished minutes (and of minutes ahead of the clock) taken out and merged
#: into ``quotes_1m``: ``rollup()`` over the parts, then ``Bar.merge`` with a stored bar (a
#: late quote's). A part is deleted by exactly one compaction (row locks), so it counts once.
#: Every right-hand side of the update reads the stored row as it was.
COMPACT_PARTS = f"""
WITH parts AS (
    DELETE FROM quotes_1m_parts WHERE minute < %(finished)s OR minute > %(now)s
    RETURNING *
)
INSERT INTO quotes_1m AS b ({_COLUMNS})
SELECT minute, direction, venue,
       (array_agg(open ORDER BY open_ts, open_id))[1], max(high), min(low),
       (array_agg(close ORDER BY close_ts DESC, close_id DESC))[1], sum(quote_count),
       min(open_ts), max(close_ts),
       (array_agg(open_id ORDER BY open_ts, open_id))[1],
       (array_agg(close_id ORDER BY close_ts DESC, close_id DESC))[1]
FROM parts
GROUP BY minute, direction, venue
ORDER BY minute, direction, venue
ON CONFLICT (minute, direction, venue) DO UPDATE SET
    open = CASE WHEN (EXCLUDED.open_ts, EXCLUDED.open_id) < (b.open_ts, b.open_id)
                THEN EXCLUDED.open ELSE b.open END,
    open_ts = CASE WHEN (EXCLUDED.open_ts, EXCLUDED.open_id) < (b.open_ts, b.open_id)
                   THEN EXCLUDED.open_ts ELSE b.open_ts END,
    open_id = CASE WHEN (EXCLUDED.open_ts, EXCLUDED.open_id) < (b.open_ts, b.open_id)
                   THEN EXCLUDED.open_id ELSE b.open_id END,
    close = CASE WHEN (EXCLUDED.close_ts, EXCLUDED.close_id) > (b.close_ts, b.close_id)
                 THEN EXCLUDED.close ELSE b.close END,
    close_ts = CASE WHEN (EXCLUDED.close_ts, EXCLUDED.close_id) > (b.close_ts, b.close_id)
                    THEN EXCLUDED.close_ts ELSE b.close_ts END,
    close_id = CASE WHEN (EXCLUDED.close_ts, EXCLUDED.close_id) > (b.close_ts, b.close_id)
                    THEN EXCLUDED.close_id ELSE b.close_id END,
    high = GREATEST(b.high, EXCLUDED.high),
    low = LEAST(b.low, EXCLUDED.low),
    quote_count = b.quote_count + EXCLUDED.quote_count
"""
