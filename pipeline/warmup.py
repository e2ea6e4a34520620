"""The warm-up at start: a direction's first choice for good waits until every enabled
exchanger has quoted it (or is known not to serve), or a short warm-up after its first quote.

Until then its record on rates.latest is provisional: the most preferred fresh venue so far,
``since`` null, no switch logged or stored; and no active venue is chosen, so that v1's first
answer without ``exchanger`` comes from the preferred venue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pipeline.health import Health, Policy
from schemas.records import Latest, Quote
from schemas.topics import ACTIVE_KEY


def settled(record: Latest | None) -> bool:
    """Whether a record holds a choice made for good (a venue, and since when)."""
    return record is not None and record.venue is not None and record.since is not None


def provisional(record: Latest | None) -> bool:
    """Whether a record holds a fresh rate chosen while warming up (not yet a choice)."""
    return (
        record is not None
        and record.venue is not None
        and record.since is None
        and not record.stale
    )


def waiting_for(
    quotes: Mapping[str, Quote],
    previous: Latest | None,
    health: Health,
    policy: Policy,
    now: datetime,
    started: datetime | None,
) -> list[str]:
    """The enabled exchangers a direction still waits for before its first choice for good.

    Empty once the direction was chosen for good, ``policy.warmup_s`` after ``started``
    (its first quote; None: no warm-up), or when each exchanger has quoted it or is known
    not to serve (down or silent).
    """
    if started is None or settled(previous):
        return []
    if (now - started).total_seconds() >= policy.warmup_s:
        return []

    def heard(venue: str) -> bool:
        status = health.statuses.get(venue)
        return venue in quotes or (status is not None and status.state in ("down", "silent"))

    return [venue for venue in policy.venues if not heard(venue)]


def active_waiting(latest: Mapping[str, Latest], previous: Latest | None) -> list[str]:
    """Directions whose rate is still provisional, while no active venue was chosen for good:
    the active venue is chosen once none is (so that the first is the preferred one)."""
    if settled(previous):
        return []
    return [d for d, record in latest.items() if d != ACTIVE_KEY and provisional(record)]
