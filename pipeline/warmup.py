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


def active_waiting(
    latest: Mapping[str, Latest],
    previous: Latest | None,
    policy: Policy | None = None,
    now: datetime | None = None,
    started: datetime | None = None,
) -> list[str]:
    """Directions the first active venue still waits for: those whose rate is provisional,
    and, until ``policy.warmup_s`` after ``started`` (when this worker began choosing it),
    those with no rate yet (a RUB rate waits for its reference), so that the first active
    venue is the preferred one and serves every direction it can. None once an active venue
    was chosen for good."""
    if settled(previous):
        return []
    waiting = [d for d, record in latest.items() if d != ACTIVE_KEY and provisional(record)]
    warming = (
        policy is not None
        and now is not None
        and started is not None
        and (now - started).total_seconds() < policy.warmup_s
    )
    if warming and policy is not None:
        waiting += [
            d for d in policy.directions if (record := latest.get(d)) is None or not record.venue
        ]
    return waiting
