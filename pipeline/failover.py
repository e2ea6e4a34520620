"""Pure failover: which venue's quote is the rate of a direction, and which venue is active."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.records import Latest, Quote, VenueQuote
from schemas.topics import ACTIVE_KEY


@dataclass(frozen=True)
class Policy:
    """How a venue is chosen."""

    directions: tuple[str, ...]
    priority: tuple[str, ...]
    max_age_s: float = 60.0

    def rank(self, venue: str) -> int:
        """Lower is preferred; venues missing from the priority list come last."""
        try:
            return self.priority.index(venue)
        except ValueError:
            return len(self.priority)


def is_fresh(quote: Quote, now: datetime, policy: Policy) -> bool:
    """Younger than the max age by local receive time (a negative age counts as fresh)."""
    return (now - quote.received_at).total_seconds() <= policy.max_age_s


def _view(quotes: Mapping[str, Quote], fresh: set[str]) -> dict[str, VenueQuote]:
    return {
        venue: VenueQuote(q.value, q.ts, q.received_at, venue in fresh)
        for venue, q in sorted(quotes.items())
    }


def choose(
    direction: str,
    quotes: Mapping[str, Quote],
    previous: Latest | None,
    policy: Policy,
    now: datetime,
) -> Latest:
    """The rate of one direction from each venue's latest quote.

    The most preferred venue with a fresh quote wins. When no quote is fresh the last
    chosen value is kept and marked stale; nothing is ever invented.
    """
    fresh = {venue for venue, q in quotes.items() if is_fresh(q, now, policy)}
    view = _view(quotes, fresh)
    if fresh:
        venue = min(fresh, key=lambda v: (policy.rank(v), v))
        better = [v for v in quotes if policy.rank(v) < policy.rank(venue)]
        reason = (
            "preferred venue"
            if not better
            else f"{', '.join(sorted(better, key=policy.rank))} stale"
        )
        chosen = quotes[venue]
        since = previous.since if previous is not None and previous.venue == venue else now
        return Latest(
            direction=direction,
            venue=venue,
            value=chosen.value,
            ts=chosen.ts,
            received_at=chosen.received_at,
            stale=False,
            reason=reason,
            since=since,
            quotes=view,
            derived_from=chosen.derived_from,
        )
    if previous is not None and previous.value is not None:
        return Latest(
            direction=direction,
            venue=previous.venue,
            value=previous.value,
            ts=previous.ts,
            received_at=previous.received_at,
            stale=True,
            reason="no fresh quote: last value kept",
            since=previous.since,
            quotes=view,
            derived_from=previous.derived_from,
        )
    if quotes:
        venue = min(quotes, key=lambda v: (policy.rank(v), v))
        q = quotes[venue]
        return Latest(
            direction=direction,
            venue=venue,
            value=q.value,
            ts=q.ts,
            received_at=q.received_at,
            stale=True,
            reason="no fresh quote: last value kept",
            since=now,
            quotes=view,
            derived_from=q.derived_from,
        )
    return Latest(
        direction=direction,
        venue=None,
        value=None,
        ts=None,
        received_at=None,
        stale=True,
        reason="no quote yet",
        since=None,
        quotes=view,
    )


def choose_active(
    latest: Mapping[str, Latest], previous: Latest | None, policy: Policy, now: datetime
) -> Latest:
    """The active venue (key ``*``): the most preferred venue serving the most directions fresh."""
    coverage: dict[str, int] = {}
    for direction in policy.directions:
        record = latest.get(direction)
        if record is None:
            continue
        for venue, quote in record.quotes.items():
            if quote.fresh:
                coverage[venue] = coverage.get(venue, 0) + 1
    if not coverage:
        return Latest(
            direction=ACTIVE_KEY,
            venue=previous.venue if previous is not None else None,
            value=None,
            ts=None,
            received_at=None,
            stale=True,
            reason="no venue has fresh quotes",
            since=previous.since if previous is not None else None,
            quotes={},
        )
    best = max(coverage.values())
    venue = min((v for v, n in coverage.items() if n == best), key=lambda v: (policy.rank(v), v))
    since = previous.since if previous is not None and previous.venue == venue else now
    return Latest(
        direction=ACTIVE_KEY,
        venue=venue,
        value=None,
        ts=None,
        received_at=None,
        stale=False,
        reason=f"fresh in {best} of {len(policy.directions)} directions",
        since=since,
        quotes={},
    )
