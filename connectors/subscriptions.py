"""Which venue symbols serve the configured directions: pure, from naming rules and listings.

Each exchange names markets by its own rule (``connectors.venues.base.Naming``); for each
asset the configured directions need, the first candidate market the venue lists and trades
is subscribed. Directions that no enabled venue serves are reported once, by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from connectors.venues.naming import Naming
from schemas.directions import market_asset


@dataclass(frozen=True)
class Plan:
    """One venue's subscriptions for the configured directions, and what it cannot serve."""

    venue: str
    #: Venue symbol -> market, to subscribe (in the order of the assets).
    symbols: dict[str, str] = field(default_factory=dict)
    #: Asset -> the market that gives its USD price on this venue.
    serves: dict[str, str] = field(default_factory=dict)
    #: Asset -> why this venue cannot give its USD price.
    missing: dict[str, str] = field(default_factory=dict)
    #: False when the listing could not be read: the preferred candidates are subscribed
    #: unchecked (a venue that lacks one stays silent for it, as Binance does).
    checked: bool = True

    def by_direction(self, directions: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """(direction -> serving market, direction -> why not) for the configured directions."""
        serves: dict[str, str] = {}
        missing: dict[str, str] = {}
        for direction in directions:
            asset = market_asset(direction)
            if asset in self.serves:
                serves[direction] = self.serves[asset]
            elif asset in self.missing:
                missing[direction] = self.missing[asset]
        return serves, missing


def _why(symbol: str, listed: Mapping[str, bool]) -> str:
    return f"{symbol} is not listed" if symbol not in listed else f"{symbol} is not trading"


def plan(
    venue: str, naming: Naming, assets: Sequence[str], listed: Mapping[str, bool] | None
) -> Plan:
    """Subscriptions of a venue for these assets, given its listing (None: not known)."""
    result = Plan(venue, checked=listed is not None)
    for asset in assets:
        candidates = naming.candidates(asset)
        if not candidates:
            continue
        if listed is None:
            chosen: str | None = candidates[0]
        else:
            chosen = next((m for m in candidates if listed.get(naming.symbol(m))), None)
        if chosen is None:
            assert listed is not None
            result.missing[asset] = "; ".join(_why(naming.symbol(m), listed) for m in candidates)
            continue
        result.serves[asset] = chosen
        result.symbols.setdefault(naming.symbol(chosen), chosen)
    return result


def unserved(directions: Sequence[str], plans: Iterable[Plan]) -> list[str]:
    """The directions that no venue's plan serves (each needs a venue with its asset)."""
    served = {asset for p in plans for asset in p.serves}
    return [d for d in directions if market_asset(d) not in served]


def groups(symbols: Sequence[str], per_connection: int) -> list[list[str]]:
    """Symbols split over as few connections as the venue's per-connection limit allows."""
    if per_connection < 1:
        raise ValueError("a connection must carry at least one symbol")
    return [list(symbols[i : i + per_connection]) for i in range(0, len(symbols), per_connection)]
