"""Version 2's bodies: courses with their provenance, and venues."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from api.answers import unavailable
from api.render.values import age_ms, number, time_or_none
from api.snapshot import Snapshot
from schemas.records import Latest, Leg, format_time
from schemas.venues import EXCHANGERS, REFERENCES


def _legs(legs: tuple[Leg, ...] | None) -> list[dict[str, Any]] | None:
    if legs is None:
        return None
    return [
        {
            "venue": leg.venue,
            "direction": leg.direction,
            "value": number(leg.value),
            "ts": format_time(leg.ts),
        }
        for leg in legs
    ]


def course(
    direction: str, record: Latest | None, now: datetime, away: str | None = None
) -> dict[str, Any]:
    """One direction: the chosen venue's quote, why, and the other fresh venues' quotes.

    While the broker is away (``away`` says why) every rate is the last one kept: stale.
    """
    if record is None:
        return {
            "direction": direction,
            "venue": None,
            "value": None,
            "ts": None,
            "received_at": None,
            "age_ms": None,
            "stale": True,
            "reason": "no data yet",
            "since": None,
            "derived_from": None,
            "quotes": [],
        }
    others = [
        {
            "venue": venue,
            "value": number(q.value),
            "ts": format_time(q.ts),
            "age_ms": age_ms(now, q.received_at),
        }
        for venue, q in sorted(record.quotes.items())
        if q.fresh and venue != record.venue
    ]
    return {
        "direction": direction,
        "venue": record.venue,
        "value": None if record.value is None else number(record.value),
        "ts": time_or_none(record.ts),
        "received_at": time_or_none(record.received_at),
        "age_ms": age_ms(now, record.received_at),
        "stale": record.stale or away is not None,
        "reason": record.reason if away is None else f"{away}: last value kept",
        "since": time_or_none(record.since),
        "derived_from": _legs(record.derived_from),
        "quotes": others,
    }


def active(record: Latest | None) -> dict[str, Any] | None:
    """The active venue: which, why and since when."""
    if record is None:
        return None
    return {"venue": record.venue, "reason": record.reason, "since": time_or_none(record.since)}


def courses_v2(
    snapshot: Snapshot, directions: Sequence[str], now: datetime, away: str | None = None
) -> bytes:
    """Every asked direction with its provenance; 503 before anything has arrived."""
    if not snapshot.loaded and not snapshot.latest:
        raise unavailable("no rates yet: nothing has arrived from rates.latest")
    return orjson.dumps(
        {
            "active": active(snapshot.active),
            "courses": [course(d, snapshot.latest.get(d), now, away) for d in directions],
        }
    )


def _venue_names(snapshot: Snapshot, configured: Sequence[str]) -> list[str]:
    """Configured venues in order, then any other venue the topics mention."""
    seen = set(snapshot.venues)
    for record in snapshot.latest.values():
        seen.update(record.quotes)
    return list(dict.fromkeys([*configured, *sorted(seen)]))


def _kind(name: str) -> str:
    if name in EXCHANGERS:
        return "exchanger"
    return "reference" if name in REFERENCES else "unknown"


def last_frame_at(snapshot: Snapshot, name: str) -> datetime | None:
    """When the venue's last data frame arrived: its newest quote on rates.latest (republished
    every second), or its connector's last status (every 5 s, and the only one for a venue
    that serves no direction), whichever is newer."""
    status = snapshot.venues.get(name)
    found = status.last_frame_at if status is not None else None
    for record in snapshot.latest.values():
        quote = record.quotes.get(name)
        if quote is not None and (found is None or quote.received_at > found):
            found = quote.received_at
    return found


def venues_v2(snapshot: Snapshot, configured: Sequence[str], now: datetime) -> bytes:
    """Each venue's state, the age of its last data frame and the directions it serves fresh."""
    now_ms = int(now.timestamp() * 1000)
    items = []
    for name in _venue_names(snapshot, configured):
        status = snapshot.venues.get(name)
        stamp = snapshot.status_ms.get(name)
        serves = [
            d
            for d in snapshot.directions
            if (r := snapshot.latest.get(d)) is not None
            and (q := r.quotes.get(name)) is not None
            and q.fresh
        ]
        last = last_frame_at(snapshot, name)
        items.append(
            {
                "venue": name,
                "kind": _kind(name),
                "state": None if status is None else status.state,
                "since": None if status is None else format_time(status.since),
                "last_frame_at": time_or_none(last),
                "last_frame_age_ms": age_ms(now, last),
                "detail": "no status received yet" if status is None else status.detail,
                "status_age_ms": None if stamp is None else max(0, now_ms - stamp),
                "directions": serves,
            }
        )
    return orjson.dumps({"venues": items})
