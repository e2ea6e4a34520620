"""The pure v2 answers: courses with their provenance, venues, and server-sent events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from api.snapshot import Snapshot, number, unavailable
from schemas.records import Latest, Leg, format_time
from schemas.topics import ACTIVE_KEY
from schemas.venues import EXCHANGERS, REFERENCES


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def age_ms(now: datetime, then: datetime | None) -> int | None:
    """Milliseconds since ``then`` by this host's clock, never negative."""
    if then is None:
        return None
    return max(0, int((now - then).total_seconds() * 1000))


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


def course(direction: str, record: Latest | None, now: datetime) -> dict[str, Any]:
    """One direction: the chosen venue's quote, why, and the other fresh venues' quotes."""
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
        "ts": _time(record.ts),
        "received_at": _time(record.received_at),
        "age_ms": age_ms(now, record.received_at),
        "stale": record.stale,
        "reason": record.reason,
        "since": _time(record.since),
        "derived_from": _legs(record.derived_from),
        "quotes": others,
    }


def active(record: Latest | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"venue": record.venue, "reason": record.reason, "since": _time(record.since)}


def courses_v2(snapshot: Snapshot, directions: Sequence[str], now: datetime) -> bytes:
    """Every asked direction with its provenance; 503 before anything has arrived."""
    if not snapshot.loaded and not snapshot.latest:
        raise unavailable("no rates yet: nothing has arrived from rates.latest")
    return orjson.dumps(
        {
            "active": active(snapshot.active),
            "courses": [course(d, snapshot.latest.get(d), now) for d in directions],
        }
    )


def _venue_names(snapshot: Snapshot, configured: Sequence[str]) -> list[str]:
    """Configured venues in order, then any other venue the topics mention."""
    seen = set(snapshot.venues)
    for record in snapshot.latest.values():
        seen.update(record.quotes)
    return list(dict.fromkeys([*configured, *sorted(seen)]))


def venues_v2(snapshot: Snapshot, configured: Sequence[str], now: datetime) -> bytes:
    """Each venue's state, the age of its last frame and the directions it serves fresh."""
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
        items.append(
            {
                "venue": name,
                "kind": "exchanger"
                if name in EXCHANGERS
                else "reference"
                if name in REFERENCES
                else "unknown",
                "state": None if status is None else status.state,
                "since": None if status is None else format_time(status.since),
                "last_frame_at": None if status is None else _time(status.last_frame_at),
                "last_frame_age_ms": None if status is None else age_ms(now, status.last_frame_at),
                "detail": "no status received yet" if status is None else status.detail,
                "status_age_ms": None if stamp is None else max(0, now_ms - stamp),
                "directions": serves,
            }
        )
    return orjson.dumps({"venues": items})


# -- server-sent events ---------------------------------------------------------------------

#: Changes stamped this long before a client's Last-Event-ID are sent again on resume:
#: stamps are producer times, ordered per partition but not across partitions.
RESUME_MARGIN_MS = 2000


def event(snapshot: Snapshot, key: str, now: datetime) -> bytes:
    """One change as an SSE event; its id is the change's Kafka timestamp in ms."""
    if key == ACTIVE_KEY:
        name, data = b"active", active(snapshot.active)
    else:
        name, data = b"course", course(key, snapshot.latest.get(key), now)
    stamp = snapshot.changed_ms.get(key, 0)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (stamp, name, orjson.dumps(data))


def resume_keys(
    snapshot: Snapshot, directions: Sequence[str], last_event_id: str | None
) -> list[str]:
    """The keys a (re)connecting client must receive first, oldest change first.

    Without a usable Last-Event-ID: everything it asked for. With one: what changed since
    (a margin earlier). Each event carries a key's whole state, so a missed change is
    repaired by its latest state, and any process of the API can resume any client.
    """
    keys = [ACTIVE_KEY, *directions]
    since: int | None = None
    if last_event_id is not None and last_event_id.strip().isdigit():
        since = int(last_event_id.strip()) - RESUME_MARGIN_MS
    known = [k for k in keys if k in snapshot.changed_ms]
    if since is not None:
        known = [k for k in known if snapshot.changed_ms[k] >= since]
    return to_send(snapshot, known, directions)


def to_send(snapshot: Snapshot, keys: Iterable[str], directions: Sequence[str]) -> list[str]:
    """The changed keys a stream of these directions sends, oldest change first."""
    asked = set(directions)
    chosen = [k for k in keys if k == ACTIVE_KEY or k in asked]
    return sorted(chosen, key=lambda k: (snapshot.changed_ms.get(k, 0), k))
