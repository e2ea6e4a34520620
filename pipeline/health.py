"""Freshness: whether a venue is healthy and a quote may be served now, under a policy.

A venue is healthy while its connector says it is ``up`` (venues.status, broadcast to every
worker) and that report is recent; a venue nobody reports on (a replay) while its data is
younger than its silence limit. A quote is fresh while its venue is healthy and it is
younger than the max age by local receive time; a derived quote also needs its reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from schemas.records import Quote, VenueState


@dataclass(frozen=True)
class Policy:
    """How venues are judged and chosen; built from the worker's settings, which hold the
    defaults (``WorkerSettings.policy()``)."""

    directions: tuple[str, ...]
    priority: tuple[str, ...]
    #: A quote older than this (by local receive time) is stale, even on a healthy venue.
    max_age_s: float
    #: A recovered venue must stay healthy this long before it is preferred again.
    hysteresis_s: float
    #: A quote further than this fraction from the median of the other fresh venues is excluded.
    max_deviation: float
    #: A venue status older than this means its connector is gone: the venue is not healthy.
    status_timeout_s: float
    #: Every venue's silence limit; venues without any status (e.g. a replay) are healthy
    #: while their data is this recent.
    silence_limits_s: Mapping[str, float]
    #: USD-RUB reference sources, most preferred first.
    reference_priority: tuple[str, ...]
    #: Reference sources whose rate stays valid this long whatever their connection (CBR
    #: publishes once a business day: its rate covers weekends and holidays).
    reference_max_age_s: Mapping[str, float]
    #: Enabled exchangers: at start, a direction is chosen for good once each has quoted it
    #: (or is known to be down), or ``warmup_s`` after its first quote.
    venues: tuple[str, ...] = ()
    warmup_s: float = 0.0

    def rank(self, venue: str) -> int:
        """Lower is preferred; venues missing from the priority list come last."""
        try:
            return self.priority.index(venue)
        except ValueError:
            return len(self.priority)

    def silence_limit_s(self, venue: str) -> float:
        # A venue outside the registry has no limit: its data alone never makes it healthy.
        return self.silence_limits_s.get(venue, 0.0)


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """The last venues.status of a venue, as this worker received it."""

    state: VenueState
    #: When the venue entered this state (connector clock).
    since: datetime
    #: When this worker received the status (local clock).
    seen_at: datetime


@dataclass
class Health:
    """What the worker knows about every venue's connection (updated as records arrive)."""

    statuses: dict[str, VenueHealth] = field(default_factory=dict)
    #: Newest receive time of any quote per venue; used only for venues without a status.
    last_data: dict[str, datetime] = field(default_factory=dict)

    def healthy_for(self, venue: str, now: datetime, policy: Policy) -> float | None:
        """Seconds the venue has been healthy, or None when it is not healthy."""
        status = self.statuses.get(venue)
        if status is None:
            seen = self.last_data.get(venue)
            if seen is None or (now - seen).total_seconds() > policy.silence_limit_s(venue):
                return None
            return float("inf")  # no connector reports on it (a replay): judged by its data
        if status.state != "up":
            return None
        if (now - status.seen_at).total_seconds() > policy.status_timeout_s:
            return None
        return max(0.0, (now - status.since).total_seconds())

    def why_not(self, venue: str, now: datetime, policy: Policy) -> str:
        """Plain words for why a venue is not healthy."""
        status = self.statuses.get(venue)
        if status is None:
            return "not reporting" if venue not in self.last_data else "silent"
        if status.state != "up":
            return status.state
        return "status lost"


def age_s(quote: Quote, now: datetime) -> float:
    return (now - quote.received_at).total_seconds()


def reference_fresh(quote: Quote | None, health: Health, now: datetime, policy: Policy) -> bool:
    """Whether a reference quote (USD-RUB) may be used now."""
    if quote is None:
        return False
    long_lived = policy.reference_max_age_s.get(quote.venue)
    if long_lived is not None:
        return age_s(quote, now) <= long_lived
    if health.healthy_for(quote.venue, now, policy) is None:
        return False
    return age_s(quote, now) <= policy.max_age_s


def unusable(
    quote: Quote,
    health: Health,
    now: datetime,
    policy: Policy,
    references: Mapping[str, Quote] | None = None,
) -> str | None:
    """Why a quote cannot be served now (None when it is fresh)."""
    if health.healthy_for(quote.venue, now, policy) is None:
        return f"{quote.venue} {health.why_not(quote.venue, now, policy)}"
    age = age_s(quote, now)
    if age > policy.max_age_s:
        return f"{quote.venue} quote stale ({age:.0f} s old)"
    for leg in quote.derived_from or ():
        if leg.venue == quote.venue:
            continue  # a leg of the same venue lives and dies with it
        current = (references or {}).get(leg.venue)
        if not reference_fresh(current, health, now, policy):
            return f"{quote.venue} reference {leg.venue} stale"
    return None
