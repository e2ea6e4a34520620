"""Query parameters: how the routes declare them (for OpenAPI) and how they are validated.

The parsing functions are pure and shared by v1 (both its FastAPI route and the edge's fast
path), v2 and history; a bad value raises :class:`~api.answers.ApiError` (422) naming the
valid ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from fastapi import Header, Query

from api.answers import ApiError
from schemas.records import parse_time
from schemas.venues import EXCHANGERS

#: Aliases accepted for ``exchanger`` (the original spelling of the service's first client).
EXCHANGER_ALIASES = {"coingeko": "coingecko"}

#: Quotes per history page: by default, and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

#: History resolutions: ``raw``, every quote; ``1m``, per minute and venue, open, high, low,
#: close and count.
Resolution = Literal["raw", "1m"]

#: How much of a bad parameter an error message repeats.
_ECHO_MAX = 40

EXCHANGER_DOC = (
    "venue name, case-insensitive: one of "
    + ", ".join(f"`{name}`" for name in EXCHANGERS)
    + "".join(
        f" (`{alias}` is accepted for `{name}`)"
        for alias, name in EXCHANGER_ALIASES.items()
        if name in EXCHANGERS
    )
    + ". Default: the active venue chosen by the failover policy"
)

# -- declared (what FastAPI reads from the request, and OpenAPI shows) ------------------------

Directions = Annotated[
    list[str] | None,
    Query(
        description="directions, repeatable or comma-separated, case-insensitive; "
        "default: every configured direction, in the configured order",
        examples=["BTC-USD,ETH-RUB"],
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        description="an ETag from an earlier answer: 304 if unchanged",
        examples=['"6db6d9d928f217c7"'],
    ),
]
Exchanger = Annotated[
    str | None,
    Query(description=EXCHANGER_DOC, examples=["binance"]),
]
V1Directions = Annotated[
    list[str] | None,
    Query(
        description="directions to return, repeatable (`direction=BTC-USD&direction="
        "ETH-USD`) or comma-separated (`direction=BTC-USD,ETH-USD`), case-insensitive; "
        "duplicates collapse; answered in the order asked. Default: every configured "
        "direction, in the configured order",
        examples=["BTC-USD,ETH-USD"],
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        description="the id of the last event received: resume after it",
        examples=["1795540478517"],
    ),
]

HistoryDirection = Annotated[
    str, Query(description="one direction, case-insensitive", examples=["BTC-USD"])
]
Since = Annotated[
    str | None,
    Query(
        description="RFC 3339 time with offset, inclusive; default: the oldest stored",
        examples=["2026-11-24T16:00:00Z"],
    ),
]
Until = Annotated[
    str | None,
    Query(
        description="RFC 3339 time with offset, exclusive; default: no end",
        examples=["2026-11-24T17:00:00Z"],
    ),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="quotes per page", examples=[100])]
PageCursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page",
        examples=["WyIyMDI2LTExLTI0VDE2OjAwOjAxLjAwMDAwMFoiLCJxMSJd"],
    ),
]
HistoryResolution = Annotated[
    Resolution,
    Query(
        description="`raw`: every quote; `1m`: per minute and venue, open, high, low, close "
        "and count",
        examples=["1m"],
    ),
]

# -- parsed ---------------------------------------------------------------------------------


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO_MAX else value[:_ECHO_MAX] + "..."


def parse_directions(values: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """Repeatable and comma-separated, case-insensitive, duplicates collapsed, order kept."""
    asked = [part.strip().upper() for v in values or () for part in v.split(",")]
    asked = [a for a in asked if a]
    if not asked:
        return list(known)
    wanted = list(dict.fromkeys(asked))
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise ApiError(
            422,
            f"unknown direction {', '.join(map(_echo, unknown))}; "
            f"valid directions: {', '.join(known)}",
        )
    return wanted


def parse_history_direction(value: str, known: Sequence[str]) -> str:
    """The one direction a history page is of (case-insensitive)."""
    wanted = parse_directions([value], known)
    if len(wanted) != 1:
        raise ApiError(422, "history takes one direction at a time")
    return wanted[0]


def parse_exchanger(value: str | None, exchangers: Sequence[str] = EXCHANGERS) -> str | None:
    """A venue name, case-insensitive, aliases resolved; None (blank) means the active venue."""
    if value is None or not value.strip():
        return None
    name = value.strip().lower()
    name = EXCHANGER_ALIASES.get(name, name)
    if name not in exchangers:
        raise ApiError(
            422, f"unknown exchanger {_echo(value)!r}; valid exchangers: {', '.join(exchangers)}"
        )
    return name


def v1_params(query: bytes) -> tuple[str | None, list[str]]:
    """``exchanger`` (the last one wins) and every ``direction``, decoded as Starlette does."""
    exchanger: str | None = None
    directions: list[str] = []
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "direction":
            directions.append(value)
        elif name == "exchanger":
            exchanger = value
    return exchanger, directions


def parse_rfc3339(name: str, value: str | None) -> datetime | None:
    """An RFC 3339 time with its offset (``2026-11-24T16:00:00Z``), as aware UTC."""
    if value is None or not value.strip():
        return None
    try:
        return parse_time(value.strip())
    except ValueError:
        raise ApiError(
            422,
            f"{name}={value[:40]!r} is not an RFC 3339 time with an offset, "
            "e.g. 2026-11-24T16:00:00Z",
        ) from None
