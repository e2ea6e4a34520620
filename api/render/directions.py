"""``GET /api/v2/directions``: each configured direction, who serves it and how, who cannot.

Read from the venues' statuses (the connector publishes, per venue, the market serving each
configured direction and why it cannot serve the others) and from the latest rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from api.snapshot import Snapshot
from schemas.directions import how
from schemas.venues import EXCHANGERS


def _venue_names(snapshot: Snapshot, configured: Sequence[str]) -> list[str]:
    """The configured exchangers in order, then any other exchanger a status names."""
    return [v for v in dict.fromkeys([*configured, *sorted(snapshot.venues)]) if v in EXCHANGERS]


def _one(
    snapshot: Snapshot, direction: str, names: Sequence[str], usdt_as_usd: bool
) -> dict[str, Any]:
    latest = snapshot.latest.get(direction)
    venues: list[dict[str, Any]] = []
    missing: list[dict[str, str]] = []
    for name in names:
        status = snapshot.venues.get(name)
        if status is None:
            missing.append({"venue": name, "reason": "no status from the connector yet"})
            continue
        market = status.serves.get(direction)
        if market is None:
            reason = status.missing.get(direction)
            if reason is None:
                reason = "the connector named no market for it (an older connector?)"
            missing.append({"venue": name, "reason": reason})
            continue
        code, words = how(direction, market, usdt_as_usd)
        quote = None if latest is None else latest.quotes.get(name)
        venues.append(
            {
                "venue": name,
                "market": market,
                "how": code,
                "detail": words,
                "fresh": None if quote is None else quote.fresh,
            }
        )
    return {
        "direction": direction,
        "served": bool(venues),
        "venue": None if latest is None else latest.venue,
        "venues": venues,
        "missing": missing,
    }


def directions_v2(snapshot: Snapshot, configured: Sequence[str], usdt_as_usd: bool) -> bytes:
    """Every configured direction with the venues serving it and those that cannot."""
    names = _venue_names(snapshot, configured)
    items = [_one(snapshot, d, names, usdt_as_usd) for d in snapshot.directions]
    unserved = [
        item["direction"]
        for item in items
        if not item["venues"]
        and all(m["reason"] != "no status from the connector yet" for m in item["missing"])
    ]
    return orjson.dumps({"directions": items, "unserved": unserved})
