"""How values print in every answer: Decimals as JSON numbers with their own digits, times."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import orjson

from schemas.records import format_decimal, format_time


def number(value: Decimal) -> orjson.Fragment:
    """A JSON number printed from the Decimal with its own digits (no float round trip)."""
    return orjson.Fragment(format_decimal(value).encode())


def time_or_none(value: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds, or None."""
    return None if value is None else format_time(value)


def age_ms(now: datetime, then: datetime | None) -> int | None:
    """Milliseconds since ``then`` by this host's clock, never negative."""
    if then is None:
        return None
    return max(0, int((now - then).total_seconds() * 1000))
