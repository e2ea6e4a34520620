"""Directions that name one market twice (USDTTRC, USDTERC: one token on two chains).

Aliases of one market are one decision: the pipeline chooses the first configured direction
of the market (its *canonical* direction) and publishes the same record under every alias;
the API serves every alias from that one record, so one answer never holds two values.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.directions import ASSET_ALIASES


def market_of(direction: str) -> str:
    """The market a direction names: ``USDTERC-RUB`` -> ``USDT-RUB``."""
    base, _, quote = direction.partition("-")
    return f"{ASSET_ALIASES.get(base, base)}-{quote}"


def canonical(directions: Iterable[str]) -> dict[str, str]:
    """direction -> the first of ``directions`` naming the same market (itself, most often)."""
    first: dict[str, str] = {}
    found = {}
    for direction in directions:
        found[direction] = first.setdefault(market_of(direction), direction)
    return found


def aliases(directions: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """canonical direction -> every direction served from its record (itself first)."""
    groups: dict[str, list[str]] = {}
    for direction, of in canonical(directions).items():
        groups.setdefault(of, []).append(direction)
    return {of: tuple(group) for of, group in groups.items()}
