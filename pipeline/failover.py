"""Pure failover: which venue's quote is the rate of a direction, and which venue is active.

One function of (quotes, venue states, policy, now). A venue is healthy while its connector
says it is ``up`` (venues.status, broadcast to every worker); a quote is fresh while its
venue is healthy and it is younger than the max age by local receive time; a derived quote
also needs its reference leg to be usable. Among fresh quotes, one deviating too far from
the median of the others is excluded. The most preferred venue wins, except that a venue
that recovered must stay healthy for the hysteresis period before it is preferred again.
When nothing is fresh the last value is kept and marked stale; nothing is ever invented.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from schemas.records import Latest, Quote, VenueQuote, VenueState
from schemas.topics import ACTIVE_KEY


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
    previous_venue = previous.venue if previous is not None else None
    if candidates:
        venue, back = _pick(candidates, previous, health, now, policy)
        if venue == previous_venue and previous is not None and not previous.stale:
            reason, since = previous.reason, previous.since
        else:
            since = now
            if back is not None:
                reason = back
            elif previous_venue is not None and previous_venue != venue:
                reason = problems.get(previous_venue) or f"{previous_venue} has no quote"
            else:
                better = sorted(
                    (v for v in quotes if policy.rank(v) < policy.rank(venue)), key=policy.rank
                )
                reason = (
                    problems.get(better[0])
                    or f"{better[0]} healthy for less than {policy.hysteresis_s:g} s"
                    if better
                    else "most preferred fresh venue"
                )
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
