"""``GET /api/v2/switches``: the stored venue switches (PostgreSQL ``switches``, written by the
history writer from rates.latest), oldest first, in pages like the history's.

Each direction's first choice is a row without ``from_venue``; the active venue of v1 is the
direction ``*``. The query and the page are pure; the pool is the history's (api/history.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from api.answers import ApiError
from api.history import Cursor
from api.params import parse_rfc3339
from schemas.records import format_time

_SWITCHES = "SELECT id, direction, from_venue, to_venue, reason, at FROM switches"


@dataclass(frozen=True, slots=True)
class SwitchQuery:
    """Switches of some directions (all: empty) with ``since <= at < until``, after a cursor."""

    directions: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    limit: int
    after: Cursor | None

    def sql(self) -> tuple[str, list[Any]]:
        """One more row than the page, to know whether another page follows."""
        where: list[str] = []
        params: list[Any] = []
        if self.directions:
            where.append("direction = ANY(%s)")
            params.append(list(self.directions))
        if self.since is not None:
            where.append("at >= %s")
            params.append(self.since)
        if self.until is not None:
            where.append("at < %s")
            params.append(self.until)
        if self.after is not None:
            where.append("(at, id) > (%s, %s)")
            params += [self.after.ts, int(self.after.id)]
        params.append(self.limit + 1)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        return f"{_SWITCHES}{condition} ORDER BY at, id LIMIT %s", params


def make_switch_query(
    directions: Sequence[str],
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
) -> SwitchQuery:
    start = parse_rfc3339("since", since)
    end = parse_rfc3339("until", until)
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "since must be earlier than until")
    after = Cursor.decode(cursor) if cursor else None
    if after is not None and not after.id.isdigit():
        raise ApiError(422, "cursor is not one this API returned: pass next_cursor unchanged")
    return SwitchQuery(tuple(directions), start, end, limit, after)


def switches_page(query: SwitchQuery, rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The JSON page, oldest first, and the cursor of the next page (or null)."""
    shown = rows[: query.limit]
    switches = [
        {
            "direction": direction,
            "from_venue": from_venue,
            "to_venue": to_venue,
            "reason": reason,
            "at": format_time(at),
        }
        for _, direction, from_venue, to_venue, reason, at in shown
    ]
    more = len(rows) > query.limit
    next_cursor = Cursor(shown[-1][5], str(shown[-1][0])).encode() if more else None
    return orjson.dumps({"switches": switches, "next_cursor": next_cursor})
