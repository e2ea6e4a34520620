"""Pure normalization: a raw venue frame into quotes of the configured directions.

Venue parsers return market quotes (``MarketQuote``: a price of a venue market such as
``BTC-USDT``); this module turns them into ``Quote`` records of directions. Each configured
direction ``X-USD`` is served by one route per venue, chosen from the markets the venue has:

- ``X-USD`` itself (Kraken, Coinbase, CoinGecko);
- ``X-USDT`` counted as USD (the market convention, ``RATES_USDT_AS_USD``), or converted
  through the venue's own USDT-USD quote when that setting is off;
- for USDT (``USDTTRC``/``USDTERC``: one token on two chains) without a USDT-USD market,
  ``USDC-USDT`` inverted, USDC standing in for USD. USDT-USD is never the constant 1.

``X-RUB`` is derived: the venue's ``X-USD`` times the current USD-RUB reference (CoinGecko
or CBR, with failover between them), rounded to 8 decimal places, with both legs recorded.
References (and, when converting through it, each venue's USDT-USD) go to rates.reference so
that every worker can use them whatever partitions it owns.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from connectors.venues.base import MarketQuote, Venue
from pipeline.health import Health, Policy, age_s, reference_fresh
from schemas.aliases import ASSET_ALIASES
from schemas.errors import FrameError
from schemas.records import Leg, Quote, RawFrame

USD, USDT, RUB = "USD", "USDT", "RUB"
USD_RUB = "USD-RUB"
USDT_USD = "USDT-USD"
USDC_USDT = "USDC-USDT"
USDT_RUB = "USDT-RUB"

EIGHT_PLACES = Decimal("0.00000001")


def round8(value: Decimal) -> Decimal:
    return value.quantize(EIGHT_PLACES, rounding=ROUND_HALF_EVEN)


def split(pair: str) -> tuple[str, str]:
    base, _, quote = pair.partition("-")
    return base, quote


class Route(enum.Enum):
    """How a venue market quote becomes a direction's USD (or other) quote."""

    DIRECT = "direct"  # the market is the direction (or USDT counted as USD)
    INVERT = "invert"  # USDC-USDT inverted: USDT-USD with USDC as the USD proxy
    VIA_USDT = "via_usdt"  # X-USDT times the venue's own USDT-USD


@dataclass(frozen=True, slots=True)
class Target:
    """One direction a market serves, and how."""

    direction: str
    route: Route


@dataclass(frozen=True)
class Conversion:
    """Which markets serve which directions, per set of markets a venue has."""

    directions: tuple[str, ...]
    #: BTC-USDT counts as BTC-USD (the market convention).
    usdt_as_usd: bool = True

    @functools.cached_property
    def _rub_bases(self) -> frozenset[str]:
        return frozenset(split(d)[0] for d in self.directions if split(d)[1] == RUB)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a few venues, each a fixed market set
    def plan(self, markets: frozenset[str]) -> Mapping[str, tuple[Target, ...]]:
        """market -> the directions it serves for a venue with these markets."""
        plan: dict[str, list[Target]] = {}

        def add(market: str, direction: str, route: Route) -> None:
            plan.setdefault(market, []).append(Target(direction, route))

        # USD quotes are needed for the USD directions and as the leg of the RUB ones.
        wanted = list(self.directions) + [f"{base}-{USD}" for base in sorted(self._rub_bases)]
        for direction in dict.fromkeys(wanted):
            base, quote = split(direction)
            asset = ASSET_ALIASES.get(base, base)
            if quote == RUB:
                continue  # derived from X-USD and the reference
            if f"{asset}-{quote}" in markets:
                add(f"{asset}-{quote}", direction, Route.DIRECT)
            elif quote == USD and asset == USDT and USDC_USDT in markets:
                add(USDC_USDT, direction, Route.INVERT)
            elif quote == USD and asset != USDT and f"{asset}-{USDT}" in markets:
                route = Route.DIRECT if self.usdt_as_usd else Route.VIA_USDT
                add(f"{asset}-{USDT}", direction, route)
        return {market: tuple(targets) for market, targets in plan.items()}

    def emits(self, direction: str) -> bool:
        return direction in self.directions


@dataclass
class References:
    """Every worker's copy of rates.reference: (market, venue) -> latest quote."""

    quotes: dict[tuple[str, str], Quote] = field(default_factory=dict)

    def update(self, quote: Quote) -> None:
        key = (quote.direction, quote.venue)
        current = self.quotes.get(key)
        if current is None or current.received_at <= quote.received_at:
            self.quotes[key] = quote

    def usd_rub(self, health: Health, now: datetime, policy: Policy) -> Quote | None:
        """The USD-RUB reference to use now: the first usable source by priority."""
        for venue in policy.reference_priority:
            quote = self.quotes.get((USD_RUB, venue))
            if reference_fresh(quote, health, now, policy):
                return quote
        return None

    def by_source(self) -> dict[str, Quote]:
        """The latest USD-RUB quote of each reference source."""
        return {venue: q for (market, venue), q in self.quotes.items() if market == USD_RUB}

    def usdt_usd(self, venue: str, health: Health, now: datetime, policy: Policy) -> Quote | None:
        quote = self.quotes.get((USDT_USD, venue))
        if quote is None or health.healthy_for(venue, now, policy) is None:
            return None
        return quote if age_s(quote, now) <= policy.max_age_s else None


@dataclass(frozen=True)
class Normalized:
    """What one frame yields: quotes for rates.normalized, references for rates.reference."""

    quotes: list[Quote]
    references: list[Quote]


def _leg(quote: Quote) -> Leg:
    return Leg(quote.venue, quote.direction, quote.value, quote.ts)


def _market_leg(source: MarketQuote) -> Leg:
    """A market quote as the leg of a derived quote (the leg's ``direction`` is the market)."""
    return Leg(source.venue, source.market, source.value, source.ts)


def _reference_quote(source: MarketQuote) -> Quote:
    """A reference market quote as it goes to rates.reference: direction = the market."""
    return Quote(
        source.venue, source.market, source.value, source.ts, source.received_at, source.id
    )


def _quote(
    source: MarketQuote, direction: str, value: Decimal, legs: tuple[Leg, ...] | None
) -> Quote:
    """The quote of ``direction`` a market quote yields; its id extends the market quote's."""
    return Quote(
        venue=source.venue,
        direction=direction,
        value=value,
        ts=source.ts,
        received_at=source.received_at,
        id=f"{source.id}/{direction}",
        derived_from=legs,
    )


def _references(
    market_quotes: Sequence[MarketQuote], policy: Policy, conversion: Conversion
) -> list[Quote]:
    """Reference quotes carried by one frame (their ``direction`` is the reference market)."""
    found = []
    by_market = {q.market: q for q in market_quotes}
    for q in market_quotes:
        if q.market == USD_RUB and q.venue in policy.reference_priority:
            found.append(_reference_quote(q))
    rub, usd = by_market.get(USDT_RUB), by_market.get(USDT_USD)
    if rub is not None and usd is not None and rub.venue in policy.reference_priority:
        # A source quoting USDT in both currencies (CoinGecko): its USD-RUB is their ratio.
        legs = (_market_leg(rub), _market_leg(usd))
        found.append(_quote(rub, USD_RUB, round8(rub.value / usd.value), legs))
    if not conversion.usdt_as_usd:
        if usd is not None:
            found.append(_reference_quote(usd))
        elif (usdc := by_market.get(USDC_USDT)) is not None:
            found.append(_quote(usdc, USDT_USD, round8(1 / usdc.value), (_market_leg(usdc),)))
    return found


def normalize(
    raw: RawFrame,
    venues: Mapping[str, Venue],
    conversion: Conversion,
    references: References,
    health: Health,
    policy: Policy,
    now: datetime,
) -> Normalized:
    """All direction quotes and references in one raw frame; FrameError when unparsable.

    A replayed frame is parsed at its original receive time (``recorded_at``), so a quote
    whose venue gives no time keeps its original ``ts`` and id; its ``received_at`` is the
    replay's, so freshness works as live.
    """
    venue = venues.get(raw.venue)
    if venue is None:
        raise FrameError(f"frame from unknown venue {raw.venue!r}")
    market_quotes = venue.parse(raw.frame, raw.recorded_at or raw.received_at)
    if raw.recorded_at is not None:
        market_quotes = [replace(q, received_at=raw.received_at) for q in market_quotes]
    refs = _references(market_quotes, policy, conversion)
    plan = conversion.plan(frozenset(venue.markets.values()))
    usd_rub: Quote | None = None
    quotes: list[Quote] = []
    for source in market_quotes:
        for target in plan.get(source.market, ()):
            if target.route is Route.DIRECT:
                quote = _quote(source, target.direction, source.value, None)
            elif target.route is Route.INVERT:
                inverted = round8(1 / source.value)
                quote = _quote(source, target.direction, inverted, (_market_leg(source),))
            else:
                usdt = references.usdt_usd(venue.name, health, now, policy)
                if usdt is None:
                    continue  # cannot convert yet: never invent a USDT-USD of 1
                value = round8(source.value * usdt.value)
                quote = _quote(source, target.direction, value, (_market_leg(source), _leg(usdt)))
            if conversion.emits(quote.direction):
                quotes.append(quote)
            base = split(quote.direction)[0]
            rub_direction = f"{base}-{RUB}"
            if not conversion.emits(rub_direction):
                continue
            if usd_rub is None:
                usd_rub = references.usd_rub(health, now, policy)
                if usd_rub is None:
                    continue  # no usable reference: no RUB rate rather than a wrong one
            legs = (_leg(quote), _leg(usd_rub))
            quotes.append(_quote(source, rub_direction, round8(quote.value * usd_rub.value), legs))
    return Normalized(quotes, refs)


@dataclass
class Normalizer:
    """normalize() with this process's references kept current (the agent's pure core).

    References a frame carries are used by the next frames at once; other workers learn
    them through rates.reference.
    """

    venues: Mapping[str, Venue]
    conversion: Conversion
    policy: Policy
    references: References = field(default_factory=References)
    health: Health = field(default_factory=Health)

    def __call__(self, raw: RawFrame, now: datetime) -> Normalized:
        seen = self.health.last_data.get(raw.venue)
        if seen is None or seen < raw.received_at:
            # Only consulted for venues nobody reports on (a replay without statuses).
            self.health.last_data[raw.venue] = raw.received_at
        result = normalize(
            raw, self.venues, self.conversion, self.references, self.health, self.policy, now
        )
        for reference in result.references:
            self.references.update(reference)
        return result
