"""``GET /api/v2/courses/history``: pages of stored quotes (``resolution=raw``) or of their
1-minute bars (``resolution=1m``) from PostgreSQL, never the hot path.

The query and the page are pure functions; :class:`History` is the thin shell around a
psycopg pool that opens lazily, so the API starts and serves without PostgreSQL and this
one endpoint answers 503 while it is away.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api import metrics
from api.answers import ApiError, unavailable
from api.params import Resolution, parse_rfc3339
from api.render.values import number
from common.database import libpq_url
from schemas.records import format_time, parse_time

log = logging.getLogger(__name__)

#: Seconds a request waits for a connection, and PostgreSQL for a statement.
TIMEOUT_S = 2.0


# Legs are stored compact; quote_legs_out (migration 0003) gives them back as objects.
_QUOTES = (
    "SELECT id, venue, direction, value, ts, received_at, quote_legs_out(derived_from) FROM quotes"
)
_BARS = (
    "SELECT minute, venue, open, high, low, close, quote_count, open_ts, close_ts FROM quotes_1m"
)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after this (ts, id) of a quote, (minute, venue) of a bar."""

    ts: datetime
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([format_time(self.ts), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, ident = orjson.loads(raw)
            if not isinstance(ts, str) or not isinstance(ident, str):
                raise ValueError("not a cursor")
            return cls(parse_time(ts), ident)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise ApiError(
                422, "cursor is not one this API returned: pass next_cursor unchanged"
            ) from None


@dataclass(frozen=True, slots=True)
class Query:
    direction: str
    since: datetime | None
    until: datetime | None
    limit: int
    after: Cursor | None
    resolution: Resolution = "raw"

    def sql(self) -> tuple[str, list[Any]]:
        """One more row than the page, to know whether another page follows."""
        select, time, key = (
            (_QUOTES, "ts", "id") if self.resolution == "raw" else (_BARS, "minute", "venue")
        )
        where = ["direction = %s"]
        params: list[Any] = [self.direction]
        if self.since is not None:
            where.append(f"{time} >= %s")
            params.append(self.since)
        if self.until is not None:
            where.append(f"{time} < %s")
            params.append(self.until)
        if self.after is not None:
            where.append(f"({time}, {key}) > (%s, %s)")
            params += [self.after.ts, self.after.id]
        params.append(self.limit + 1)
        text = f"{select} WHERE {' AND '.join(where)} ORDER BY {time}, {key} LIMIT %s"
        return text, params


def make_query(
    direction: str,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    resolution: Resolution = "raw",
) -> Query:
    start = parse_rfc3339("since", since)
    end = parse_rfc3339("until", until)
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "since must be earlier than until")
    after = Cursor.decode(cursor) if cursor else None
    return Query(direction, start, end, limit, after, resolution)


def page(query: Query, rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The JSON page, oldest first, and the cursor of the next page (or null)."""
    if query.resolution == "1m":
        return bars_page(query, rows)
    shown = rows[: query.limit]
    quotes = [
        {
            "id": ident,
            "venue": venue,
            "direction": direction,
            "value": number(Decimal(value)),
            "ts": format_time(ts),
            "received_at": format_time(received_at),
            "derived_from": _legs(derived_from),
        }
        for ident, venue, direction, value, ts, received_at, derived_from in shown
    ]
    more = len(rows) > query.limit
    next_cursor = Cursor(shown[-1][4], shown[-1][0]).encode() if more else None
    return orjson.dumps(
        {"direction": query.direction, "quotes": quotes, "next_cursor": next_cursor}
    )


def bars_page(query: Query, rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The JSON page of 1-minute bars: by minute, then venue; the next page's cursor."""
    shown = rows[: query.limit]
    bars = [
        {
            "minute": format_time(minute),
            "venue": venue,
            "open": number(Decimal(open_)),
            "high": number(Decimal(high)),
            "low": number(Decimal(low)),
            "close": number(Decimal(close)),
            "count": count,
            "first_ts": format_time(first_ts),
            "last_ts": format_time(last_ts),
        }
        for minute, venue, open_, high, low, close, count, first_ts, last_ts in shown
    ]
    more = len(rows) > query.limit
    next_cursor = Cursor(shown[-1][0], shown[-1][1]).encode() if more else None
    return orjson.dumps(
        {"direction": query.direction, "resolution": "1m", "bars": bars, "next_cursor": next_cursor}
    )


def _legs(raw: Any) -> list[dict[str, Any]] | None:
    """Legs as stored (jsonb, values as decimal strings) with values as JSON numbers."""
    if not isinstance(raw, list):
        return None
    legs = []
    for leg in raw:
        if isinstance(leg, dict):
            value = leg.get("value")
            legs.append({**leg, "value": number(Decimal(value))} if isinstance(value, str) else leg)
    return legs


class History:
    """The pool, opened lazily; ``None`` URL: history is not configured."""

    def __init__(self, database_url: str | None) -> None:
        self._pool: AsyncConnectionPool | None = None
        if database_url:
            self._pool = AsyncConnectionPool(
                libpq_url(database_url),
                min_size=0,
                max_size=4,
                open=False,
                timeout=TIMEOUT_S,
                reconnect_timeout=TIMEOUT_S,
                kwargs={
                    "connect_timeout": max(1, int(TIMEOUT_S)),
                    "options": f"-c statement_timeout={int(TIMEOUT_S * 1000)}",
                },
                name="history",
            )

    async def open(self) -> None:
        if self._pool is not None:
            await self._pool.open(wait=False)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def fetch(self, query: Query) -> bytes:
        """A page of quotes or bars."""
        return page(query, await self.rows(*query.sql()))

    async def rows(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one statement; 503 when PostgreSQL is not configured or away."""
        if self._pool is None:
            raise ApiError(503, "history is not configured: DATABASE_URL is not set")
        try:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                await cur.execute(text, params)
                rows = await cur.fetchall()
        except (PoolTimeout, psycopg.Error) as exc:
            # Unreachable, too slow, or not migrated: this endpoint waits, the rest serves.
            metrics.HISTORY_ERRORS.inc()
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            log.warning("history query failed: %s", reason)
            raise unavailable(
                f"history unavailable: PostgreSQL did not answer ({reason}); "
                "the live rates are still served"
            ) from None
        return rows
