"""Pure failover: which venue's quote is the rate of a direction, and which venue is active.

One function of (quotes, venue states, policy, now); which quotes are fresh is decided in
pipeline/health.py. Among fresh quotes, one deviating too far from the median of the others
is excluded. The most preferred venue wins, except that a venue that recovered must stay
healthy for the hysteresis period before it is preferred again.
When nothing is fresh the last value is kept and marked stale; nothing is ever invented.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipeline.health import Health, Policy, unusable
from schemas.records import Latest, Quote, VenueQuote
from schemas.topics import ACTIVE_KEY


def outliers(values: Mapping[str, Decimal], max_deviation: float) -> dict[str, float]:
    """Venues whose value deviates more than max_deviation from the median of the others.

    Needs at least two others: with one, nobody can tell which of the two is wrong.
    """
    found = {}
    for venue, value in values.items():
        others = [v for name, v in values.items() if name != venue]
        if len(others) < 2:
            continue
        median = statistics.median(others)
        deviation = float(abs(value - median) / median)
        if deviation > max_deviation:
            found[venue] = deviation
    return found


@dataclass(frozen=True)
class Decision:
    """The rate of one direction, and the quotes the sanity check excluded."""

    latest: Latest
    outliers: Mapping[str, float]


def _pick(
    candidates: set[str],
    previous: Latest | None,
    health: Health,
    now: datetime,
    policy: Policy,
) -> tuple[str, str | None]:
    """The venue among candidates, and the reason when it replaces a still-usable choice.

    Hysteresis holds back a venue that *recovered*: one that failed after the current choice
    was made. A venue healthy since before that (its first quote just came later, as at a
    cold start) is preferred at once.
    """
    previous_venue = previous.venue if previous is not None else None
    chosen_for = (
        (now - previous.since).total_seconds()
        if previous is not None and previous.since is not None
        else 0.0
    )

    def why_settled(venue: str) -> str | None:
        healthy = health.healthy_for(venue, now, policy)
        if healthy is None:
            return None
        if healthy >= policy.hysteresis_s:
            return f"{venue} preferred again after {policy.hysteresis_s:g} s healthy"
        if healthy > chosen_for:
            return f"{venue} preferred: healthy since before {previous_venue} was chosen"
        return None

    def by_rank(venue: str) -> tuple[int, str]:
        return (policy.rank(venue), venue)

    if previous_venue in candidates:
        better = sorted(
            (v for v in candidates if policy.rank(v) < policy.rank(previous_venue)), key=by_rank
        )
        for venue in better:
            reason = why_settled(venue)
            if reason is not None:
                return venue, reason
        return previous_venue, None
    if previous_venue is None:
        return min(candidates, key=by_rank), None
    ready = [v for v in candidates if why_settled(v) is not None]
    return min(ready or candidates, key=by_rank), None


def _why_new(
    venue: str,
    previous: Latest | None,
    quotes: Mapping[str, Quote],
    problems: Mapping[str, str | None],
    policy: Policy,
) -> str:
    """Why ``venue`` is chosen now, when it is not the previous choice kept."""
    previous_venue = previous.venue if previous is not None else None
    if previous_venue is not None and previous_venue != venue:
        return problems.get(previous_venue) or f"{previous_venue} has no quote"
    better = sorted((v for v in quotes if policy.rank(v) < policy.rank(venue)), key=policy.rank)
    if not better:
        return "most preferred fresh venue"
    return problems.get(better[0]) or f"{better[0]} healthy for less than {policy.hysteresis_s:g} s"


def choose(
    direction: str,
    quotes: Mapping[str, Quote],
    previous: Latest | None,
    health: Health,
    policy: Policy,
    now: datetime,
    references: Mapping[str, Quote] | None = None,
) -> Decision:
    """The rate of one direction from each venue's latest quote of it."""
    problems = {v: unusable(q, health, now, policy, references) for v, q in quotes.items()}
    fresh = {v: q.value for v, q in quotes.items() if problems[v] is None}
    excluded = outliers(fresh, policy.max_deviation)
    for venue, deviation in excluded.items():
        problems[venue] = f"{venue} outlier ({deviation:.1%} from the median of the others)"
    candidates = set(fresh) - set(excluded)
    view = {
        venue: VenueQuote(q.value, q.ts, q.received_at, venue in candidates)
        for venue, q in sorted(quotes.items())
    }
    if candidates:
        venue, back = _pick(candidates, previous, health, now, policy)
        if previous is not None and venue == previous.venue and not previous.stale:
            reason, since = previous.reason, previous.since
        else:
            reason = back or _why_new(venue, previous, quotes, problems, policy)
            since = now
        chosen = quotes[venue]
        latest = Latest(
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
    elif previous is not None and previous.value is not None:
        latest = Latest(
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
    elif quotes:
        venue = min(quotes, key=lambda v: (policy.rank(v), v))
        q = quotes[venue]
        latest = Latest(
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
    else:
        latest = Latest(direction, None, None, None, None, True, "no quote yet", None, view)
    return Decision(latest, excluded)


def choose_active(
    latest: Mapping[str, Latest],
    previous: Latest | None,
    health: Health,
    policy: Policy,
    now: datetime,
) -> Latest:
    """The active venue (key ``*``) for v1 answers without ``exchanger``.

    The most preferred healthy venue with fresh quotes for every configured direction; when
    none serves them all, the most preferred among those serving the most. Hysteresis as for
    directions.
    """
    coverage: dict[str, int] = {}
    for direction in policy.directions:
        record = latest.get(direction)
        for venue, quote in (record.quotes if record is not None else {}).items():
            if quote.fresh:
                coverage[venue] = coverage.get(venue, 0) + 1
    previous_venue = previous.venue if previous is not None else None
    if not coverage:
        return Latest(
            direction=ACTIVE_KEY,
            venue=previous_venue,
            value=None,
            ts=None,
            received_at=None,
            stale=True,
            reason="no venue has fresh quotes",
            since=previous.since if previous is not None else None,
        )
    best = max(coverage.values())
    candidates = {v for v, n in coverage.items() if n == best}
    venue, back = _pick(candidates, previous, health, now, policy)
    total = len(policy.directions)
    if venue == previous_venue and previous is not None and not previous.stale:
        reason, since = previous.reason, previous.since
    elif back is not None:
        reason, since = back, now
    elif previous_venue is not None and previous_venue != venue:
        if health.healthy_for(previous_venue, now, policy) is None:
            reason = f"{previous_venue} {health.why_not(previous_venue, now, policy)}"
        else:
            reason = f"{previous_venue} fresh in {coverage.get(previous_venue, 0)} of {total}"
        since = now
    else:
        reason, since = f"fresh in {best} of {total} directions", now
    return Latest(
        direction=ACTIVE_KEY,
        venue=venue,
        value=None,
        ts=None,
        received_at=None,
        stale=False,
        reason=reason,
        since=since,
    )
