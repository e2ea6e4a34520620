"""Pure failover: which venue's quote is the rate of a direction, and which venue is active.

One function of (quotes, venue states, policy, now); which quotes are fresh is decided in
pipeline/health.py. Among fresh quotes, one deviating too far from the median of the others
is excluded. The most preferred venue wins, except that a venue whose data resumed (after a
break, or for the first time after the choice) must stay fresh for the hysteresis period
before it is preferred again: ``fresh_since`` on each venue's quote of the previous record.
At start a direction is chosen for good only after its warm-up (pipeline/warmup.py); until
then its record is provisional (``since`` null): a start records one choice per direction.
When nothing is fresh the last value is kept and marked stale; nothing is ever invented.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipeline.health import Health, Policy, unusable
from pipeline.warmup import settled, waiting_for
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


def _fresh_since(venue: str, previous: Latest | None, now: datetime) -> datetime | None:
    """Since when a venue fresh now has been fresh: its data resumed ``now`` unless the
    previous record saw it fresh too (None there: not known, an older record)."""
    seen = previous.quotes.get(venue) if previous is not None else None
    if seen is not None and seen.fresh:
        return seen.fresh_since
    return now


def _usable_for(
    venue: str, fresh_since: datetime | None, health: Health, now: datetime, policy: Policy
) -> float:
    """Seconds a venue has been usable: healthy, and its data fresh since it resumed."""
    healthy = health.healthy_for(venue, now, policy) or 0.0
    if fresh_since is None:
        return healthy
    return min(healthy, (now - fresh_since).total_seconds())


def _by_rank(policy: Policy) -> Callable[[str], tuple[int, str]]:
    return lambda venue: (policy.rank(venue), venue)


def _pick(
    candidates: set[str],
    previous: Latest | None,
    usable_for: Callable[[str], float],
    policy: Policy,
) -> tuple[str, str | None]:
    """The venue among candidates, and the reason when it replaces a still-usable choice.

    The first choice is the most preferred candidate. Then a more preferred venue replaces
    a still-usable choice only after ``hysteresis_s`` usable; when the choice is no longer
    usable, the most preferred candidate usable that long takes over, else the most
    preferred one.
    """
    rank = _by_rank(policy)
    if previous is None or not settled(previous):
        return min(candidates, key=rank), None
    current = str(previous.venue)
    if current in candidates:
        for venue in sorted((v for v in candidates if rank(v) < rank(current)), key=rank):
            if usable_for(venue) >= policy.hysteresis_s:
                return venue, f"{venue} preferred again after {policy.hysteresis_s:g} s healthy"
        return current, None
    ready = [v for v in candidates if usable_for(v) >= policy.hysteresis_s]
    return min(ready or candidates, key=rank), None


def _why_new(
    venue: str,
    previous: Latest | None,
    quotes: Mapping[str, Quote],
    problems: Mapping[str, str | None],
    policy: Policy,
) -> str:
    """Why ``venue`` is chosen now, when it is not the previous choice kept."""
    previous_venue = previous.venue if settled(previous) and previous is not None else None
    if previous_venue is not None and previous_venue != venue:
        return problems.get(previous_venue) or f"{previous_venue} has no quote"
    better = sorted((v for v in quotes if policy.rank(v) < policy.rank(venue)), key=policy.rank)
    if not better:
        return "most preferred fresh venue"
    return problems.get(better[0]) or f"{better[0]} healthy for less than {policy.hysteresis_s:g} s"


#: The reason of a rate kept while nothing is fresh.
KEPT = "no fresh quote: last value kept"


def _rate(
    direction: str,
    venue: str | None,
    source: Quote | Latest,
    stale: bool,
    reason: str,
    since: datetime | None,
    view: Mapping[str, VenueQuote],
) -> Latest:
    """A direction's record serving ``source``'s value (a venue's quote, or the last rate)."""
    return Latest(
        direction=direction,
        venue=venue,
        value=source.value,
        ts=source.ts,
        received_at=source.received_at,
        stale=stale,
        reason=reason,
        since=since,
        quotes=view,
        derived_from=source.derived_from,
    )


def choose(
    direction: str,
    quotes: Mapping[str, Quote],
    previous: Latest | None,
    health: Health,
    policy: Policy,
    now: datetime,
    references: Mapping[str, Quote] | None = None,
    started: datetime | None = None,
) -> Decision:
    """The rate of one direction from each venue's latest quote of it.

    ``started``: when the direction's first quote arrived (its warm-up; None: none).
    """
    problems = {v: unusable(q, health, now, policy, references) for v, q in quotes.items()}
    fresh = {v: q.value for v, q in quotes.items() if problems[v] is None}
    excluded = outliers(fresh, policy.max_deviation)
    for venue, deviation in excluded.items():
        problems[venue] = f"{venue} outlier ({deviation:.1%} from the median of the others)"
    candidates = set(fresh) - set(excluded)
    view = {
        venue: VenueQuote(
            q.value,
            q.ts,
            q.received_at,
            venue in candidates,
            _fresh_since(venue, previous, now) if venue in candidates else None,
        )
        for venue, q in sorted(quotes.items())
    }
    waiting = waiting_for(quotes, previous, health, policy, now, started)
    if candidates:
        if waiting:
            venue = min(candidates, key=_by_rank(policy))
            reason = f"warming up: waiting for {', '.join(waiting)} (at most {policy.warmup_s:g} s)"
            since: datetime | None = None
        else:

            def usable_for(name: str) -> float:
                return _usable_for(name, view[name].fresh_since, health, now, policy)

            venue, back = _pick(candidates, previous, usable_for, policy)
            if (
                previous is not None
                and settled(previous)
                and venue == previous.venue
                and (not previous.stale)
            ):
                reason, since = previous.reason, previous.since
            else:
                reason = back or _why_new(venue, previous, quotes, problems, policy)
                since = now
        latest = _rate(direction, venue, quotes[venue], False, reason, since, view)
    elif previous is not None and previous.value is not None:
        latest = _rate(direction, previous.venue, previous, True, KEPT, previous.since, view)
    elif quotes:
        # Never chosen: the most preferred venue's last quote, stale; not a choice (no since).
        venue = min(quotes, key=_by_rank(policy))
        latest = _rate(direction, venue, quotes[venue], True, KEPT, None, view)
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
    directions: a venue that serves more directions, or is preferred, replaces a healthy
    active venue only once its data has been fresh for ``hysteresis_s`` in each direction.
    """
    coverage: dict[str, int] = {}
    fresh_since: dict[str, datetime | None] = {}
    for direction in policy.directions:
        record = latest.get(direction)
        for venue, quote in (record.quotes if record is not None else {}).items():
            if quote.fresh:
                coverage[venue] = coverage.get(venue, 0) + 1
                since = fresh_since.get(venue)
                if quote.fresh_since is not None and (since is None or since < quote.fresh_since):
                    fresh_since[venue] = quote.fresh_since
    current = previous.venue if previous is not None and settled(previous) else None
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
        )
    total = len(policy.directions)
    rank = _by_rank(policy)

    def key(venue: str) -> tuple[int, int, str]:
        return (-coverage.get(venue, 0), *rank(venue))

    def usable_for(venue: str) -> float:
        return _usable_for(venue, fresh_since.get(venue), health, now, policy)

    reason: str | None = None
    if current is not None and current in coverage and health.healthy_for(current, now, policy):
        venue = current
        for better in sorted((v for v in coverage if key(v) < key(current)), key=key):
            if usable_for(better) >= policy.hysteresis_s:
                venue = better
                if coverage[better] > coverage[current]:
                    reason = f"{current} fresh in {coverage[current]} of {total}"
                else:
                    reason = f"{better} preferred again after {policy.hysteresis_s:g} s healthy"
                break
    else:
        best = max(coverage.values())
        candidates = [v for v, n in coverage.items() if n == best]
        ready = [v for v in candidates if usable_for(v) >= policy.hysteresis_s]
        venue = min(ready or candidates, key=rank)
        if current is not None and current != venue:
            if health.healthy_for(current, now, policy) is None:
                reason = f"{current} {health.why_not(current, now, policy)}"
            else:
                reason = f"{current} fresh in {coverage.get(current, 0)} of {total}"
        else:
            reason = f"fresh in {best} of {total} directions"
    if previous is not None and venue == current and not previous.stale:
        reason, since = previous.reason, previous.since
    else:
        since = now
    return Latest(
        direction=ACTIVE_KEY,
        venue=venue,
        value=None,
        ts=None,
        received_at=None,
        stale=False,
        reason=reason or f"fresh in {coverage[venue]} of {total} directions",
        since=since,
    )
